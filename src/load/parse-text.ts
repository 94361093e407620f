/**
 * Metadata text → a JSON value, both formats alike. `JSON.parse` reads it (it is fast and decides
 * what is JSON); only when it refuses does jsonc-parser locate the fault with a line and column.
 */
import { parse as parseTolerant, printParseErrorCode, type ParseError } from 'jsonc-parser'
import type { Problem } from '../policy/model.js'

/**
 * Parses metadata JSON text. Syntax errors come back as a problem carrying line and column
 * (1-based). JSON.parse stays the parser of record (it is the fastest, and what is accepted must
 * be exactly JSON); only when it fails is jsonc-parser, in strict mode, asked where, because V8's
 * messages often give no position.
 */
export function parseMetadataText(
  text: string,
): { ok: true; value: unknown } | { ok: false; error: Problem & { line: number; column: number } } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown }
  } catch (err) {
    const errors: ParseError[] = []
    try {
      parseTolerant(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false })
    } catch {
      // jsonc-parser descends recursively: nesting thousands deep overflows its stack (found by
      // test/fuzz-metadata.test.ts). V8's own message is then all there is.
      errors.length = 0
    }
    const first = errors[0]
    const position = first ? first.offset : text.length
    const reason = first ? printParseErrorCode(first.error) : (err as Error).message
    const before = text.slice(0, position)
    const line = before.split('\n').length
    const column = position - before.lastIndexOf('\n')
    return {
      ok: false,
      error: { pointer: '', line, column, message: `invalid JSON at line ${line}, column ${column}: ${reason}` },
    }
  }
}
