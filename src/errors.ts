/**
 * Errors thrown by the plugin, built with @fastify/error like the official plugins: a code, a
 * message and a status, so Fastify's error handler and callers can tell them apart.
 */
import createError from '@fastify/error'
import type { Problem } from './policy/model.js'

/** A plugin option is wrong. The message names the option. */
export const InvalidOptionError = createError('FST_CDNI_INVALID_OPTION', 'cdni-authz: %s', 500, TypeError)

const InvalidMetadataBase = createError('FST_CDNI_INVALID_METADATA', 'invalid CDNI metadata: %s', 400)

/** A metadata document was refused. `errors` holds every problem found, by JSON pointer. */
export class InvalidMetadataError extends InvalidMetadataBase {
  readonly errors: Problem[]
  readonly warnings: Problem[]

  /** `errors` is never empty: a document is refused for a reason. */
  constructor(errors: [Problem, ...Problem[]] | Problem[], warnings: Problem[] = []) {
    const first = errors[0] as Problem
    super(
      `${first.pointer || '(document)'} ${first.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`,
    )
    this.errors = errors
    this.warnings = warnings
  }
}

/** A push in a media type the API does not take. */
export const UnsupportedPayloadError = createError('FST_CDNI_UNSUPPORTED_PAYLOAD', '%s', 415)

// The push API's refusals. It answers them as `{ statusCode, error, message }` (a refused
// document adds its `errors` and `warnings`), without the code: the body the API has always had.

/** A push API request without the bearer token (or with another one). */
export const UnauthorizedError = createError('FST_CDNI_UNAUTHORIZED', 'a valid bearer token is required', 401)

/** A push whose If-Match / If-None-Match does not hold for the live document; %s is its ETag. */
export const PreconditionFailedError = createError(
  'FST_CDNI_PRECONDITION_FAILED',
  "the live document's ETag is %s",
  412,
)

const MetadataRefusedBase = createError(
  'FST_CDNI_METADATA_REFUSED',
  'metadata refused; the live policy is unchanged',
  400,
)

/** A pushed document the surrogate will not enforce: invalid, or one its content could not follow. */
export class MetadataRefusedError extends MetadataRefusedBase {
  constructor(
    readonly errors: Problem[],
    readonly warnings: Problem[],
  ) {
    super()
  }
}

/** An accepted push that could not be stored; %s is the file system's error code. */
export const StorageUnavailableError = createError(
  'FST_CDNI_STORAGE_UNAVAILABLE',
  'could not store the document (%s); the live policy is unchanged',
  503,
)

/** A push that a cluster worker could not load (%s says which and why): nothing was switched. */
export const WorkersUnavailableError = createError(
  'FST_CDNI_WORKERS_UNAVAILABLE',
  'not every worker could load the document (%s); the live policy is unchanged',
  503,
)

/** GET /cdni/metadata before any document was accepted. */
export const NoMetadataError = createError('FST_CDNI_NO_METADATA', 'no metadata has been accepted yet', 404)

/** /readyz while no policy is loaded, or while a followed policy is stale; %s says which. */
export const NotReadyError = createError('FST_CDNI_NOT_READY', '%s', 503)

/** A push to a surrogate whose policy follows sources (`--follow`); %s names them. */
export const FollowingError = createError(
  'FST_CDNI_FOLLOWING',
  'this surrogate follows %s; its policy changes only there',
  409,
)

/** Why a snapshot was not used (docs/ARCHITECTURE.md, "Snapshot format"). */
export type SnapshotRefusal =
  | 'unreadable'
  | 'truncated'
  | 'magic'
  | 'format-version'
  | 'byte-order'
  | 'checksum'
  | 'malformed'
  | 'document'
  | 'build'
  | 'context'

const SnapshotRefusedBase = createError('FST_CDNI_SNAPSHOT_REFUSED', 'policy snapshot refused (%s): %s', 500)

/** A compiled-policy snapshot that will not be served; compile the document instead. */
export class SnapshotError extends SnapshotRefusedBase {
  constructor(
    readonly reason: SnapshotRefusal,
    detail: string,
    options?: { cause: unknown },
  ) {
    super(reason, detail, ...(options === undefined ? [] : [options]))
    this.name = 'SnapshotError'
  }
}
