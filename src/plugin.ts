/**
 * The Fastify plugin: compiles the policy at register time and on every `update`, and enforces it
 * in a callback-style `onRequest` hook (no promise per request) that only reads prepared arrays.
 */
import type { TLSSocket } from 'node:tls'
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { compileTrust, createClientFacts, extractClientFacts, gatewayName, type TrustConfig, type TrustOptions } from './client-facts.js'
import { compilePolicy, decide, describeDenial, explain, isAllowed, type CompiledPolicy, type Explanation, type PolicySummary } from './compile.js'
import { InvalidMetadataError, InvalidOptionError } from './errors.js'
import { loadPolicyModel, parseMetadataText, type LoadContext } from './metadata.js'
import type { Problem } from './model.js'
import { maskMsisdn } from './msisdn.js'
import { PolicyCompiler } from './policy-compiler.js'
import type { PreparedPolicy, RefusedPolicy } from './prepare.js'

export interface CdniAuthzOptions extends TrustOptions {
  /** The initial metadata document (parsed JSON, or JSON text). With none, every request is
   * denied until `cdniAuthz.update()` loads one. */
  metadata?: unknown
  /** MSISDNs are personal data: `off` (default) keeps them out of deny lines, `masked` logs the
   * first five digits, `full` the whole number. */
  logMsisdn?: 'off' | 'masked' | 'full'
}

/** Why requests were denied, counted for metrics. */
export type DenyReason = 'no-policy' | 'no-rule-matched' | 'deny-rule'

export interface DecisionCounts {
  allowed: number
  denied: Record<DenyReason, number>
}

export interface UpdateResult {
  /** Increments with every accepted document. */
  version: number
  warnings: Problem[]
  summary: PolicySummary
}

/** What the plugin decorates the instance with, as `fastify.cdniAuthz`. */
export interface CdniAuthz {
  /** Validates, compiles and swaps in a new policy atomically. Throws an error with
   * `statusCode` 400 and `errors` when the document is refused; the live policy stays. */
  update(doc: unknown): UpdateResult
  /** True once a policy is live. */
  readonly loaded: boolean
  /** Version of the live policy (0 before the first). */
  readonly version: number
  /** Counts of the live policy, or null. */
  readonly summary: PolicySummary | null
  /** Field-by-field explanation of the decision for a request, or null with no policy. */
  explain(request: FastifyRequest): Explanation | null
  /** Parses, validates and compiles JSON text in a worker thread, without touching the live
   * policy. Pair with `commit` to swap it in. */
  prepare(text: string): Promise<PreparedPolicy | RefusedPolicy>
  /** Swaps a prepared policy in, in one assignment. `version` continues a persisted count. */
  commit(prepared: PreparedPolicy, version?: number): UpdateResult
  /** Decisions since start, for metrics. */
  readonly counts: DecisionCounts
}

declare module 'fastify' {
  interface FastifyInstance {
    cdniAuthz: CdniAuthz
  }
  interface FastifyContextConfig {
    /** `false` exempts the route from CDNI authorization. */
    cdniAuthz?: boolean
  }
}

/** The deny body reveals nothing of the policy (SPEC.md section 5). */
const DENY_BODY = '{"statusCode":403,"error":"Forbidden","message":"Access denied"}'

function deny(reply: FastifyReply): void {
  reply.code(403).header('content-type', 'application/json; charset=utf-8').send(DENY_BODY)
}

function isEncrypted(request: FastifyRequest): boolean {
  return (request.socket as Partial<TLSSocket> | null)?.encrypted === true
}

const plugin: FastifyPluginCallback<CdniAuthzOptions> = (fastify: FastifyInstance, options, done) => {
  let trust: TrustConfig
  try {
    trust = compileTrust(options)
  } catch (err) {
    done(err as Error)
    return
  }
  const context: LoadContext = {
    gatewaysConfigured: trust.gateways.length > 0,
    countryDatabase: false,
    asnDatabase: false,
  }
  const logMsisdn = options.logMsisdn ?? 'off'
  if (logMsisdn !== 'off' && logMsisdn !== 'masked' && logMsisdn !== 'full') {
    done(new InvalidOptionError('logMsisdn must be "off", "masked" or "full"'))
    return
  }
  let policy: CompiledPolicy | null = null
  let version = 0
  let scratch = new Uint32Array(1)
  const facts = createClientFacts()
  const counts: DecisionCounts = { allowed: 0, denied: { 'no-policy': 0, 'no-rule-matched': 0, 'deny-rule': 0 } }
  let compiler: PolicyCompiler | null = null

  const swap = (compiled: CompiledPolicy, warnings: Problem[], nextVersion = version + 1): UpdateResult => {
    // The swap: one assignment each, between two requests (the hook is synchronous).
    scratch = new Uint32Array(compiled.words)
    policy = compiled
    version = nextVersion
    for (const warning of warnings) fastify.log.warn({ cdniAuthz: { warning } }, 'cdni-authz: metadata warning')
    return { version, warnings, summary: compiled.summary }
  }

  const update = (doc: unknown): UpdateResult => {
    let value = doc
    if (typeof doc === 'string') {
      const parsed = parseMetadataText(doc)
      if (!parsed.ok) throw new InvalidMetadataError([parsed.error])
      value = parsed.value
    }
    const loaded = loadPolicyModel(value, context)
    if (!loaded.ok) throw new InvalidMetadataError(loaded.errors, loaded.warnings)
    return swap(compilePolicy(loaded.model), loaded.warnings)
  }

  fastify.decorate('cdniAuthz', {
    update,
    get loaded() {
      return policy !== null
    },
    get version() {
      return version
    },
    get summary() {
      return policy === null ? null : policy.summary
    },
    explain(request: FastifyRequest): Explanation | null {
      if (policy === null) return null
      const own = createClientFacts()
      extractClientFacts(trust, request.socket.remoteAddress, isEncrypted(request), request.raw.rawHeaders, Date.now(), own)
      return explain(policy, own)
    },
    prepare(text: string) {
      compiler ??= new PolicyCompiler()
      return compiler.prepare(text, context)
    },
    commit(prepared: PreparedPolicy, nextVersion?: number) {
      return swap(prepared.compiled, prepared.warnings, nextVersion)
    },
    counts,
  } satisfies CdniAuthz)
  fastify.addHook('onClose', async () => {
    await compiler?.close()
  })

  if (options.metadata !== undefined) {
    try {
      update(options.metadata)
    } catch (err) {
      done(err as Error)
      return
    }
  }

  // Fastify builds `request.routeOptions` afresh on every read (about a microsecond here), so the
  // opt-out is read only on the way to a denial, and only once some route has opted out. A route
  // registered before this plugin is not seen here: its opt-out is ignored and it stays enforced,
  // which is the safe way to be wrong.
  let someRouteOptedOut = false
  fastify.addHook('onRoute', (routeOptions) => {
    if (routeOptions.config?.cdniAuthz === false) someRouteOptedOut = true
  })
  const optedOut = (request: FastifyRequest): boolean => someRouteOptedOut && request.routeOptions.config.cdniAuthz === false

  fastify.addHook('onRequest', (request, reply, next) => {
    const live = policy
    if (live === null) {
      if (optedOut(request)) {
        next()
        return
      }
      counts.denied['no-policy']++
      request.log.warn({ cdniAuthz: { decision: 'deny', reason: 'no-policy' } }, 'cdni-authz: request denied')
      deny(reply)
      return
    }
    extractClientFacts(trust, request.socket.remoteAddress, isEncrypted(request), request.raw.rawHeaders, live.usesTime ? Date.now() : 0, facts)
    const rule = decide(live, facts, scratch)
    if (isAllowed(live, rule)) {
      counts.allowed++
      next()
      return
    }
    if (optedOut(request)) {
      next()
      return
    }
    const { decidedBy, failed } = describeDenial(live, facts, scratch, rule)
    const reason: DenyReason = decidedBy === null ? 'no-rule-matched' : 'deny-rule'
    counts.denied[reason]++
    request.log.info(
      {
        cdniAuthz: {
          decision: 'deny',
          reason,
          rule: decidedBy,
          failed,
          via: gatewayName(trust, facts.gateway) ?? (facts.sourceFamily === 0 ? 'no-source' : 'direct'),
          handset: facts.handsetFamily !== 0,
          msisdn: facts.msisdn === null ? false : logMsisdn === 'off' ? true : logMsisdn === 'full' ? facts.msisdn.international : maskMsisdn(facts.msisdn.international),
          policyVersion: version,
        },
      },
      'cdni-authz: request denied',
    )
    deny(reply)
  })
  done()
}

/** The CDNI delivery-criteria authorization plugin. */
export const cdniAuthz = fp(plugin, { name: 'cdni-authz', fastify: '5.x' })
export default cdniAuthz
