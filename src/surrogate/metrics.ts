/**
 * The push API's Prometheus metrics, on a registry of their own (not prom-client's global one, so
 * two surrogates in one process, as in the tests, never share counts). Everything but the push
 * counter is read from the plugin when scraped, so a scrape always shows the live policy.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import type { CdniAuthz } from '../plugin/plugin.js'

/** How a push ended: the `result` label of cdni_authz_push_total. */
export type PushResult =
  | 'accepted'
  | 'invalid'
  | 'unauthorized'
  | 'precondition_failed'
  | 'too_large'
  | 'unsupported_media_type'
  | 'storage_error'

export interface ApiMetrics {
  /** The media type of `text()`. */
  readonly contentType: string
  countPush(result: PushResult): void
  /** Every metric in the Prometheus text format, collected now. */
  text(): Promise<string>
}

/** `compileSeconds` is the live policy's, or 0 while there is none. */
export function createMetrics(
  authz: Pick<CdniAuthz, 'counts' | 'version' | 'summary'>,
  compileSeconds: () => number,
): ApiMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const pushes = new Counter({
    name: 'cdni_authz_push_total',
    help: 'Metadata pushes by result',
    labelNames: ['result'],
    registers: [registry],
  })
  new Counter({
    name: 'cdni_authz_decisions_total',
    help: 'Authorization decisions by outcome and reason',
    labelNames: ['outcome', 'reason'],
    registers: [registry],
    // The plugin keeps plain counts on its hot path; they become labels only when scraped.
    collect() {
      this.reset()
      this.inc({ outcome: 'allow', reason: 'rule' }, authz.counts.allowed)
      for (const [reason, count] of Object.entries(authz.counts.denied)) this.inc({ outcome: 'deny', reason }, count)
    },
  })
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
  return {
    contentType: registry.contentType,
    countPush: (result) => pushes.inc({ result }),
    text: () => registry.metrics(),
  }
}
