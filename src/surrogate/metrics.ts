/**
 * The push API's Prometheus metrics, on a registry of their own (not prom-client's global one, so
 * two surrogates in one process, as in the tests, never share counts). Everything but the push
 * counter is read from the plugin when scraped, so a scrape always shows the live policy.
 */
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import type { WorkerPool } from './cluster.js'
import type { CdniAuthz } from '../plugin/plugin.js'
import type { Follower } from '../follow/follower.js'

/** How a push ended: the `result` label of cdni_authz_push_total. */
export type PushResult =
  | 'accepted'
  | 'invalid'
  | 'unauthorized'
  | 'precondition_failed'
  | 'too_large'
  | 'unsupported_media_type'
  | 'storage_error'
  | 'workers_unavailable'
  | 'following'

export interface ApiMetrics {
  /** The media type of `text()`. */
  readonly contentType: string
  countPush(result: PushResult): void
  /** Every metric in the Prometheus text format, collected now. */
  text(): Promise<string>
}

/** The plugin's decision counts, summed across processes when aggregated. */
function decisionCounter(registry: Registry, authz: Pick<CdniAuthz, 'counts'>): void {
  new Counter({
    name: 'cdni_authz_decisions_total',
    help: 'Authorization decisions by outcome and reason',
    labelNames: ['outcome', 'reason'],
    registers: [registry],
    aggregator: 'sum',
    // The plugin keeps plain counts on its hot path; they become labels only when scraped.
    collect() {
      this.reset()
      this.inc({ outcome: 'allow', reason: 'rule' }, authz.counts.allowed)
      for (const [reason, count] of Object.entries(authz.counts.denied)) this.inc({ outcome: 'deny', reason }, count)
    },
  })
}

/** `compileSeconds` is the live policy's, or 0 while there is none. */
export function createMetrics(
  authz: Pick<CdniAuthz, 'counts' | 'version' | 'summary'>,
  compileSeconds: () => number,
  follower: Pick<Follower, 'counts'> | null = null,
  workers: Pick<WorkerPool, 'metrics'> | null = null,
): ApiMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const pushes = new Counter({
    name: 'cdni_authz_push_total',
    help: 'Metadata pushes by result',
    labelNames: ['result'],
    registers: [registry],
  })
  decisionCounter(registry, authz)
  new Gauge({
    name: 'cdni_authz_policy_version',
    help: 'Version of the live policy (0: none)',
    registers: [registry],
    collect() {
      this.set(authz.version)
    },
  })
  new Gauge({
    name: 'cdni_authz_policy_compile_seconds',
    help: 'Time the live policy took to validate and compile',
    registers: [registry],
    collect() {
      this.set(compileSeconds())
    },
  })
  new Gauge({
    name: 'cdni_authz_policy_prefixes',
    help: 'Prefixes in the live policy, by kind',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const summary = authz.summary
      this.set({ kind: 'ipv4' }, summary?.ipv4Prefixes ?? 0)
      this.set({ kind: 'ipv6' }, summary?.ipv6Prefixes ?? 0)
      this.set({ kind: 'msisdn' }, summary?.msisdnPrefixes ?? 0)
    },
  })
  if (follower !== null) followerMetrics(registry, follower)
  return {
    contentType: registry.contentType,
    countPush: (result) => pushes.inc({ result }),
    // With workers, each one's decisions and policy version join this process's metrics
    // (cluster-worker.ts says how each is aggregated).
    text: async () =>
      workers === null
        ? registry.metrics()
        : AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), ...(await workers.metrics())]).metrics(),
  }
}

/** What the follower reports, per source. */
function followerMetrics(registry: Registry, follower: Pick<Follower, 'counts'>): void {
  new Counter({
    name: 'cdni_authz_follow_polls_total',
    help: 'Polls of each followed source, by result (changed, unchanged, refused, error)',
    labelNames: ['source', 'result'],
    registers: [registry],
    collect() {
      this.reset()
      for (const { url, results } of follower.counts()) {
        for (const [result, count] of Object.entries(results)) this.inc({ source: url, result }, count)
      }
    },
  })
  new Counter({
    name: 'cdni_authz_follow_requests_total',
    help: 'Requests to each followed source, by answer (modified: 200, not_modified: 304)',
    labelNames: ['source', 'answer'],
    registers: [registry],
    collect() {
      this.reset()
      for (const { url, answers } of follower.counts()) {
        this.inc({ source: url, answer: 'modified' }, answers.modified)
        this.inc({ source: url, answer: 'not_modified' }, answers.notModified)
      }
    },
  })
  new Gauge({
    name: 'cdni_authz_follow_seconds_since_success',
    help: 'Seconds since each followed source was last fetched or revalidated (-1: never)',
    labelNames: ['source'],
    registers: [registry],
    collect() {
      for (const { url, sinceSuccess } of follower.counts()) this.set({ source: url }, sinceSuccess ?? -1)
    },
  })
  new Gauge({
    name: 'cdni_authz_follow_stale',
    help: '1 while the metadata of a followed source is stale (its requests denied), else 0',
    labelNames: ['source'],
    registers: [registry],
    collect() {
      for (const { url, stale } of follower.counts()) this.set({ source: url }, stale ? 1 : 0)
    },
  })
}

/**
 * A worker's metrics (`--workers`), read by the primary at each scrape and aggregated with its own
 * (AggregatorRegistry): decisions are summed; each worker's policy version gives the lowest and
 * the highest served, so a scrape shows a worker left behind.
 */
export function createWorkerMetrics(authz: Pick<CdniAuthz, 'counts' | 'version'>): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  decisionCounter(registry, authz)
  for (const extreme of ['min', 'max'] as const) {
    new Gauge({
      name: `cdni_authz_workers_policy_version_${extreme}`,
      help: `The ${extreme === 'min' ? 'lowest' : 'highest'} policy version a worker serves`,
      registers: [registry],
      aggregator: extreme,
      collect() {
        this.set(authz.version)
      },
    })
  }
  return registry
}
