/**
 * The package's public surface: the plugin, metadata validation, the errors and the types a user
 * of them meets. The pipeline behind it (loaders, compiled tables, the trust walk) is not part of
 * it, so its layout can change without a major version.
 */
export {
  default,
  cdniAuthz,
  type CdniAuthz,
  type CdniAuthzOptions,
  type DatabaseInfo,
  type DecisionCounts,
  type DenyReason,
  type UpdateResult,
} from './plugin/plugin.js'
export { validateMetadata, type PreparedPolicy, type RefusedPolicy } from './load/prepare.js'
export { parseMetadataText } from './load/parse-text.js'
export type { ValidationReport } from './load/translate.js'
export type { GatewayOptions, TrustOptions } from './facts/trust-walk.js'
export type { Explanation } from './policy/explain.js'
export type { SiteExplanation } from './policy/site.js'
export type { PolicySummary } from './policy/compile.js'
export type { Problem } from './policy/model.js'
export { InvalidMetadataError, InvalidOptionError, SnapshotError, type SnapshotRefusal } from './errors.js'
