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
    super(`${first.pointer || '(document)'} ${first.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`)
    this.errors = errors
    this.warnings = warnings
  }
}

/** A push in a media type the API does not take. */
export const UnsupportedPayloadError = createError('FST_CDNI_UNSUPPORTED_PAYLOAD', '%s', 415)
