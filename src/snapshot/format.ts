/**
 * The snapshot file: a graph of plain data (objects, arrays, Maps, strings, numbers, typed
 * arrays) in one binary file that loads as views over one buffer. Nothing here knows what a
 * policy is: the encoder walks whatever the compiled structures hold, so a table that gains,
 * loses or retypes an array needs no change here (policy-snapshot.ts tells a file another build
 * wrote by its fingerprint).
 *
 * Layout (little-endian header; sections in the machine's order, which the byte-order word checks):
 *
 *    0  magic          8 bytes   "CDNISNAP"
 *    8  format         u32       FORMAT_VERSION: what this file's layout is
 *   12  byte order     u32       0x01020304 as a Uint32Array writes it on the writer's machine
 *   16  checksum       u32       CRC-32 (zlib's) of every byte of the file but these four
 *   20  sections       u32       n, the section count
 *   24  file length    f64       bytes in the whole file, so a truncated one is told apart
 *   32  version        f64       the policy version the file was written for
 *   40  document       32 bytes  SHA-256 of the document text it was compiled from
 *   72  build          32 bytes  fingerprint of the code that compiled it
 *  104  section table  n × 16    kind u32, element count u32, byte offset f64
 *  ...  sections                 each at an offset that is a multiple of 8, zeros between
 *
 * Section 0 (kind 0) is the skeleton: UTF-8 JSON of the graph, in which every typed array of
 * more than INLINE_MAX integers is `{"$":"t","k":kind,"s":section}` and becomes, on load, a view
 * over the file's own buffer (no copy, no parse). Smaller ones are written out in the JSON
 * (`"v":[...]`): a pattern list holds a dozen tiny arrays per level, and a section each would
 * make the table longer than the data. Other tags: `"m"` a Map (its entries as pairs), `"="` an
 * object referenced more than once, defined with an id, `"@"` a later reference to it (a site
 * compiles an inherited ACL once, and it stays one object after load), `"n"` a number JSON cannot
 * write (NaN, ±Infinity, -0), `"u"` undefined, `"o"` a plain object that has a `$` key of its own.
 */
import { crc32 } from 'node:zlib'
import { SnapshotError } from '../errors.js'

export const MAGIC = 'CDNISNAP'
/** Raised whenever the layout above or the skeleton's tags change meaning. */
export const FORMAT_VERSION = 1
export const HEADER_BYTES = 104
const ENTRY_BYTES = 16
const BYTE_ORDER = 0x01020304
const CHECKSUM_AT = 16
/** Typed arrays of at most this many integers are written in the skeleton. */
const INLINE_MAX = 16

/**
 * Typed-array constructors by their kind number in the section table (0 is the skeleton). Append
 * only: a number, once written, means its constructor for this format version.
 */
const KINDS = [
  null,
  Uint8Array,
  Int8Array,
  Uint8ClampedArray,
  Uint16Array,
  Int16Array,
  Uint32Array,
  Int32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
] as const
type TypedArrayKind = Exclude<(typeof KINDS)[number], null>
type AnyTypedArray = InstanceType<TypedArrayKind>
/** Kinds whose elements JSON writes exactly (floats may be NaN or -0; BigInts are no JSON numbers). */
const LAST_INTEGER_KIND = 7

/** What the header says besides the layout. */
export interface SnapshotHeader {
  /** Policy version. */
  version: number
  /** SHA-256 of the document text, 32 bytes. */
  document: Uint8Array
  /** Fingerprint of the build that compiled it, 32 bytes. */
  build: Uint8Array
}

export interface DecodedSnapshot extends SnapshotHeader {
  value: unknown
}

/** What the caller expects of the file: refused before its checksum is even computed otherwise. */
export interface SnapshotExpectation {
  document: Uint8Array
  build: Uint8Array
}

const align8 = (n: number): number => (n + 7) & ~7

/** Writes `value` as a snapshot. Throws a TypeError naming the place of anything it cannot hold. */
export function encodeSnapshot(value: unknown, header: SnapshotHeader): Uint8Array {
  const references = countReferences(value)
  const ids = new Map<object, number>()
  const sections: AnyTypedArray[] = []
  const encode = (item: unknown): unknown => {
    if (typeof item === 'number') return Number.isFinite(item) && !Object.is(item, -0) ? item : numberTag(item)
    if (item === undefined) return { $: 'u' }
    if (typeof item !== 'object' || item === null) return item
    const shared = (references.get(item) as number) > 1
    if (shared) {
      const id = ids.get(item)
      if (id !== undefined) return { $: '@', i: id }
    }
    const encoded = encodeObject(item)
    if (!shared) return encoded
    const id = ids.size
    ids.set(item, id)
    return { $: '=', i: id, v: encoded }
  }
  const encodeObject = (item: object): unknown => {
    if (ArrayBuffer.isView(item)) {
      const array = item as AnyTypedArray
      const kind = KINDS.indexOf(array.constructor as TypedArrayKind)
      if (kind <= LAST_INTEGER_KIND && array.length <= INLINE_MAX) {
        return { $: 't', k: kind, v: Array.from(array as Uint32Array) }
      }
      sections.push(array)
      return { $: 't', k: kind, s: sections.length }
    }
    if (Array.isArray(item)) return item.map(encode)
    if (item instanceof Map) return { $: 'm', v: Array.from(item, ([key, entry]) => [encode(key), encode(entry)]) }
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(item)) out[key] = encode((item as Record<string, unknown>)[key])
    return '$' in out ? { $: 'o', v: out } : out
  }
  const skeleton = JSON.stringify(encode(value))
  return assembleSnapshot(skeleton, sections, header)
}

function numberTag(value: number): { $: 'n'; v: string } {
  return { $: 'n', v: Object.is(value, -0) ? '-0' : String(value) }
}

/**
 * How often each object of the graph is reached, checking on the way that everything can be
 * written: a cycle, a class instance, a function, a symbol or a BigInt outside a typed array is a
 * TypeError that names where it was found.
 */
function countReferences(value: unknown): Map<object, number> {
  const counts = new Map<object, number>()
  const open = new Set<object>()
  const path: (string | number)[] = []
  const refuse = (what: string): never => {
    throw new TypeError(`a snapshot cannot hold ${what} (at ${path.length === 0 ? 'the root' : path.join('.')})`)
  }
  const visit = (item: unknown): void => {
    if (typeof item === 'function' || typeof item === 'symbol' || typeof item === 'bigint') refuse(`a ${typeof item}`)
    if (typeof item !== 'object' || item === null) return
    if (open.has(item)) refuse('a cycle')
    const seen = counts.get(item)
    counts.set(item, (seen ?? 0) + 1)
    if (seen !== undefined) return
    open.add(item)
    if (ArrayBuffer.isView(item)) {
      if (!KINDS.includes(item.constructor as TypedArrayKind)) refuse(`a ${item.constructor.name}`)
    } else if (Array.isArray(item)) {
      item.forEach((entry, i) => within(i, entry))
    } else if (item instanceof Map) {
      for (const [key, entry] of item) {
        within(`<key ${String(key)}>`, key)
        within(String(key), entry)
      }
    } else {
      const prototype = Object.getPrototypeOf(item) as unknown
      if (prototype !== Object.prototype && prototype !== null) refuse(`a ${item.constructor.name}`)
      for (const key of Object.keys(item)) {
        if (key === '__proto__') refuse('a key named __proto__')
        within(key, (item as Record<string, unknown>)[key])
      }
    }
    open.delete(item)
  }
  const within = (key: string | number, item: unknown): void => {
    path.push(key)
    visit(item)
    path.pop()
  }
  visit(value)
  return counts
}

/**
 * Lays out a skeleton and its sections as a file (see the layout at the top). Separate from
 * encodeSnapshot so that tests can write a skeleton the encoder never would.
 */
export function assembleSnapshot(
  skeleton: string,
  sections: readonly AnyTypedArray[],
  header: SnapshotHeader,
): Uint8Array {
  const json = Buffer.from(skeleton, 'utf8')
  const all: ArrayBufferView[] = [json, ...sections]
  const offsets: number[] = []
  let length = align8(HEADER_BYTES + ENTRY_BYTES * all.length)
  for (const section of all) {
    offsets.push(length)
    length = align8(length + section.byteLength)
  }
  const file = Buffer.alloc(length)
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength)
  file.write(MAGIC, 0, 'latin1')
  view.setUint32(8, FORMAT_VERSION, true)
  file.set(new Uint8Array(Uint32Array.of(BYTE_ORDER).buffer), 12)
  view.setUint32(20, all.length, true)
  view.setFloat64(24, length, true)
  view.setFloat64(32, header.version, true)
  file.set(digest(header.document, 'document'), 40)
  file.set(digest(header.build, 'build'), 72)
  all.forEach((section, s) => {
    const entry = HEADER_BYTES + ENTRY_BYTES * s
    view.setUint32(entry, s === 0 ? 0 : KINDS.indexOf(section.constructor as TypedArrayKind), true)
    view.setUint32(entry + 4, s === 0 ? section.byteLength : (section as AnyTypedArray).length, true)
    view.setFloat64(entry + 8, offsets[s] as number, true)
    file.set(new Uint8Array(section.buffer, section.byteOffset, section.byteLength), offsets[s])
  })
  view.setUint32(CHECKSUM_AT, checksum(file), true)
  return file
}

function digest(bytes: Uint8Array, name: string): Uint8Array {
  if (bytes.length !== 32) throw new TypeError(`the ${name} digest must be 32 bytes, not ${bytes.length}`)
  return bytes
}

/** CRC-32 of the whole file but its checksum field. */
function checksum(file: Uint8Array): number {
  return crc32(file.subarray(CHECKSUM_AT + 4), crc32(file.subarray(0, CHECKSUM_AT)))
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0

/**
 * Reads a snapshot: checks it whole, then builds every large typed array as a view over `file`'s
 * buffer, so the file's memory becomes the policy's. A file that is not one this code wrote, for
 * the document and build expected, is a SnapshotError saying why; nothing of it is used.
 */
export function decodeSnapshot(file: Uint8Array, expected: SnapshotExpectation): DecodedSnapshot {
  if (file.byteOffset % 8 !== 0) file = new Uint8Array(file) // views need aligned offsets: a copy
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength)
  if (file.length < MAGIC.length) throw new SnapshotError('truncated', `${file.length} bytes, no header`)
  if (Buffer.from(file.buffer, file.byteOffset, MAGIC.length).toString('latin1') !== MAGIC) {
    throw new SnapshotError('magic', 'not a cdni-authz snapshot')
  }
  if (file.length < HEADER_BYTES) throw new SnapshotError('truncated', `${file.length} bytes, no whole header`)
  const format = view.getUint32(8, true)
  if (format !== FORMAT_VERSION) {
    throw new SnapshotError('format-version', `format version ${format}, this code reads ${FORMAT_VERSION}`)
  }
  if (new Uint32Array(file.buffer, file.byteOffset + 12, 1)[0] !== BYTE_ORDER) {
    throw new SnapshotError('byte-order', 'written on a machine of the other byte order')
  }
  const length = view.getFloat64(24, true)
  if (file.length !== length) {
    throw new SnapshotError(file.length < length ? 'truncated' : 'malformed', `${file.length} bytes of ${length}`)
  }
  const header: SnapshotHeader = {
    version: view.getFloat64(32, true),
    document: file.subarray(40, 72),
    build: file.subarray(72, 104),
  }
  if (!sameBytes(header.document, expected.document)) {
    throw new SnapshotError('document', 'compiled from another document')
  }
  if (!sameBytes(header.build, expected.build)) {
    throw new SnapshotError('build', 'compiled by another build of cdni-authz')
  }
  if (view.getUint32(CHECKSUM_AT, true) !== checksum(file)) throw new SnapshotError('checksum', 'checksum mismatch')
  try {
    return { ...header, value: readGraph(file, view) }
  } catch (err) {
    // Past the checksum only a writer's bug gets here; it is still refused, never half-used.
    throw new SnapshotError('malformed', (err as Error).message)
  }
}

function readGraph(file: Uint8Array, view: DataView): unknown {
  const count = view.getUint32(20, true)
  const sections: (AnyTypedArray | string)[] = []
  for (let s = 0; s < count; s++) {
    const entry = HEADER_BYTES + ENTRY_BYTES * s
    const kind = view.getUint32(entry, true)
    const length = view.getUint32(entry + 4, true)
    const offset = view.getFloat64(entry + 8, true)
    if (kind === 0) {
      sections.push(Buffer.from(file.buffer, file.byteOffset + offset, length).toString('utf8'))
      continue
    }
    const Kind = KINDS[kind]
    if (Kind === undefined || Kind === null) throw new Error(`section ${s} is of unknown kind ${kind}`)
    if (offset + length * Kind.BYTES_PER_ELEMENT > file.length) throw new Error(`section ${s} ends past the file`)
    sections.push(new Kind(file.buffer as ArrayBuffer, file.byteOffset + offset, length))
  }
  const skeleton = sections[0]
  if (typeof skeleton !== 'string') throw new Error('section 0 is not the skeleton')
  const defined: unknown[] = []
  const decode = (node: unknown): unknown => {
    if (typeof node !== 'object' || node === null) return node
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) node[i] = decode(node[i])
      return node
    }
    const tagged = node as { $?: unknown; v?: unknown; i?: number; k?: number; s?: number }
    switch (tagged.$) {
      case undefined:
        return decodeEntries(node as Record<string, unknown>)
      case 't':
        return typedArray(tagged)
      case 'm':
        return new Map((tagged.v as [unknown, unknown][]).map(([key, entry]) => [decode(key), decode(entry)]))
      case '=':
        return (defined[tagged.i as number] = decode(tagged.v))
      case '@':
        if (!((tagged.i as number) in defined)) throw new Error(`reference to ${tagged.i} before its definition`)
        return defined[tagged.i as number]
      case 'n':
        return Number(tagged.v)
      case 'u':
        return undefined
      case 'o':
        return decodeEntries(tagged.v as Record<string, unknown>)
      default:
        throw new Error(`unknown tag ${JSON.stringify(tagged.$)}`)
    }
  }
  const decodeEntries = (object: Record<string, unknown>): object => {
    for (const key in object) object[key] = decode(object[key])
    return object
  }
  const typedArray = (tagged: { k?: number; s?: number; v?: unknown }): AnyTypedArray => {
    if (tagged.s === undefined) {
      const Kind = KINDS[tagged.k as number] as TypedArrayKind
      return new (Kind as Uint32ArrayConstructor)(tagged.v as number[])
    }
    const section = sections[tagged.s]
    if (typeof section !== 'object') throw new Error(`no typed-array section ${tagged.s}`)
    return section
  }
  return decode(JSON.parse(skeleton))
}
