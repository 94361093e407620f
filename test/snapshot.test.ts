// Snapshot files: what the format holds, and what is refused. A snapshot that is corrupt (any byte
// flipped), truncated (at any length), of another format version, of another document, build or
// load context is a SnapshotError saying which, and is never served.
import t from 'tap'
import { crc32 } from 'node:zlib'
import { SnapshotError } from '../src/errors.js'
import { compileMetadata, etagOf } from '../src/load/prepare.js'
import type { CompiledSite } from '../src/policy/site.js'
import {
  assembleSnapshot,
  decodeSnapshot,
  encodeSnapshot,
  FORMAT_VERSION,
  HEADER_BYTES,
} from '../src/snapshot/format.js'
import {
  buildFingerprint,
  decodePolicySnapshot,
  encodePolicySnapshot,
  readPolicySnapshot,
  writePolicySnapshot,
} from '../src/snapshot/policy-snapshot.js'

const DOCUMENT = digest(1)
const BUILD = digest(2)
const HEADER = { version: 7, document: DOCUMENT, build: BUILD }
const EXPECTED = { document: DOCUMENT, build: BUILD }

function digest(fill: number): Uint8Array {
  return new Uint8Array(32).fill(fill)
}

/** Recomputes the checksum of a file edited on purpose, so that what is checked next is reached. */
function reseal(file: Uint8Array): Uint8Array {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength)
  view.setUint32(16, crc32(file.subarray(20), crc32(file.subarray(0, 16))), true)
  return file
}

function refusal(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    if (err instanceof SnapshotError) return err.reason
    throw err
  }
  return 'accepted'
}

t.test('a graph of plain data comes back equal, large typed arrays as views over the file', async (t) => {
  const shared = { name: 'shared', list: [1, 2] }
  const big = Uint32Array.from({ length: 1000 }, (_, i) => i * 7)
  const value = {
    text: 'héllo \ud800 "quoted"',
    numbers: [0, -0, 1.5, NaN, Infinity, -Infinity, 2 ** 53],
    flags: [true, false, null, undefined],
    map: new Map<unknown, unknown>([
      ['a', shared],
      [7, new Map([[1, 'one']])],
    ]),
    again: shared,
    arrays: {
      big,
      bigAgain: big,
      small: Int32Array.of(-1, 2, -3),
      bytes: new Uint8Array(40).fill(9),
      floats: Float64Array.of(NaN, -0, 0.1),
      longs: BigInt64Array.of(-1n, 2n ** 62n),
      empty: new Uint16Array(0),
      clamped: Uint8ClampedArray.of(255),
      viewOfPart: new Uint32Array(big.buffer, 400, 100),
    },
    dollar: { $: 'not a tag', v: 1 },
    bare: Object.assign(Object.create(null) as object, { x: 1 }),
  }
  const file = encodeSnapshot(value, HEADER)
  const decoded = decodeSnapshot(file, EXPECTED)
  t.equal(decoded.version, 7)
  t.same(decoded.document, DOCUMENT)
  const got = decoded.value as typeof value
  t.same(got, value)
  t.ok(Object.is(got.numbers[1], -0), '-0 stays -0')
  t.ok(Number.isNaN(got.numbers[3]))
  t.ok('3' in got.flags && got.flags[3] === undefined, 'undefined is kept')
  t.equal(got.again, got.map.get('a'), 'an object reached twice is one object')
  t.equal(got.arrays.bigAgain, got.arrays.big, 'so is a typed array')
  t.equal(got.arrays.big.buffer, file.buffer, 'a large typed array is a view over the file')
  t.equal(got.arrays.big.byteOffset % 8, 0, 'at an aligned offset')
  t.not(got.arrays.small.buffer, file.buffer, 'a small one is its own')
  t.ok(got.arrays.floats instanceof Float64Array && Object.is(got.arrays.floats[1], -0))
  t.same([...got.arrays.longs], [-1n, 2n ** 62n])
  t.same(got.dollar, { $: 'not a tag', v: 1 }, 'an object with a $ key of its own is not read as a tag')
  t.equal((got.bare as { x: number }).x, 1)
})

t.test('an input at an unaligned offset is copied before views are made', async (t) => {
  const file = encodeSnapshot({ big: new Float64Array(100).fill(2.5) }, HEADER)
  const padded = new Uint8Array(file.length + 1)
  padded.set(file, 1)
  const got = decodeSnapshot(padded.subarray(1), EXPECTED).value as { big: Float64Array }
  t.equal(got.big[99], 2.5)
})

t.test('what a snapshot cannot hold is refused at write, by place', async (t) => {
  const cyclic: Record<string, unknown> = {}
  cyclic.self = { back: cyclic }
  class Table {
    size = 1
  }
  const cases: [unknown, RegExp][] = [
    [cyclic, /a cycle \(at self\.back\)/],
    [{ list: [1, new Table()] }, /a Table \(at list\.1\)/],
    [new Map([['k', () => 1]]), /a function \(at k\)/],
    [{ n: 1n }, /a bigint \(at n\)/],
    [{ s: Symbol('s') }, /a symbol \(at s\)/],
    [new DataView(new ArrayBuffer(4)), /a DataView \(at the root\)/],
    [new Set([1]), /a Set/],
    [JSON.parse('{"a":{"__proto__":1}}'), /a key named __proto__ \(at a\)/],
    [new Map([[{ f: () => 1 }, 1]]), /a function \(at <key \[object Object\]>\.f\)/],
  ]
  for (const [value, message] of cases) t.throws(() => encodeSnapshot(value, HEADER), { name: 'TypeError', message })
  t.throws(() => encodeSnapshot(1, { ...HEADER, build: new Uint8Array(31) }), /build digest must be 32 bytes, not 31/)
})

t.test('a map whose key is an object keeps it', async (t) => {
  const key = { k: 1 }
  const got = decodeSnapshot(encodeSnapshot({ m: new Map([[key, key]]) }, HEADER), EXPECTED).value as {
    m: Map<object, object>
  }
  const [[k, v]] = [...got.m] as [[object, object]]
  t.same(k, key)
  t.equal(k, v)
})

t.test('every byte flipped, and every length short of the whole, is refused', async (t) => {
  const file = encodeSnapshot({ a: Uint32Array.from({ length: 100 }, (_, i) => i), b: 'text' }, HEADER)
  const reasons = new Set<string>()
  for (let i = 0; i < file.length; i++) {
    const copy = Uint8Array.from(file)
    copy[i] = (copy[i] as number) ^ 0x20
    const reason = refusal(() => decodeSnapshot(copy, EXPECTED))
    if (reason === 'accepted') t.fail(`a flip at byte ${i} was accepted`)
    reasons.add(reason)
  }
  t.same([...reasons].sort(), ['build', 'byte-order', 'checksum', 'document', 'format-version', 'magic', 'truncated'])
  for (let length = 0; length < file.length; length++) {
    const reason = refusal(() => decodeSnapshot(file.subarray(0, length), EXPECTED))
    if (reason !== 'truncated') t.fail(`${length} bytes: ${reason}`)
  }
  const longer = new Uint8Array(file.length + 8)
  longer.set(file)
  t.equal(
    refusal(() => decodeSnapshot(longer, EXPECTED)),
    'malformed',
  )
  t.equal(
    refusal(() => decodeSnapshot(new TextEncoder().encode('{"deliveryCriteria":[]}'), EXPECTED)),
    'magic',
  )
})

t.test('a file of another format version or byte order, document or build, is refused as such', async (t) => {
  const file = encodeSnapshot([1], HEADER)
  const other = Uint8Array.from(file)
  new DataView(other.buffer).setUint32(8, FORMAT_VERSION + 1, true)
  t.throws(() => decodeSnapshot(reseal(other), EXPECTED), {
    name: 'SnapshotError',
    code: 'FST_CDNI_SNAPSHOT_REFUSED',
    reason: 'format-version',
    message: `policy snapshot refused (format-version): format version ${FORMAT_VERSION + 1}, this code reads ${FORMAT_VERSION}`,
  })
  const swapped = Uint8Array.from(file)
  swapped.set(Uint8Array.from(file.subarray(12, 16)).reverse(), 12)
  t.equal(
    refusal(() => decodeSnapshot(reseal(swapped), EXPECTED)),
    'byte-order',
  )
  t.equal(
    refusal(() => decodeSnapshot(file, { ...EXPECTED, document: digest(3) })),
    'document',
  )
  t.equal(
    refusal(() => decodeSnapshot(file, { ...EXPECTED, build: digest(3) })),
    'build',
  )
})

t.test('a skeleton or section table the writer would never write is refused as malformed', async (t) => {
  const skeletons = ['{"a":', '{"$":"?"}', '{"$":"@","i":0}', '{"$":"t","k":6,"s":0}', '{"$":"t","k":6,"s":9}']
  for (const skeleton of skeletons) {
    t.equal(
      refusal(() => decodeSnapshot(assembleSnapshot(skeleton, [], HEADER), EXPECTED)),
      'malformed',
      skeleton,
    )
  }
  const entry = (file: Uint8Array, s: number) => new DataView(file.buffer, file.byteOffset + HEADER_BYTES + 16 * s, 16)
  const withSection = () => assembleSnapshot('{"$":"t","k":6,"s":1}', [new Uint32Array(20)], HEADER)
  t.same(decodeSnapshot(withSection(), EXPECTED).value, new Uint32Array(20))
  const unknownKind = withSection()
  entry(unknownKind, 1).setUint32(0, 99, true)
  const pastTheEnd = withSection()
  entry(pastTheEnd, 1).setUint32(4, 1000, true)
  const noSkeleton = withSection()
  entry(noSkeleton, 0).setUint32(0, 6, true)
  t.match(
    [unknownKind, pastTheEnd, noSkeleton].map((file) => {
      try {
        return decodeSnapshot(reseal(file), EXPECTED)
      } catch (err) {
        return err
      }
    }),
    [
      { reason: 'malformed', message: /section 1 is of unknown kind 99/ },
      { reason: 'malformed', message: /section 1 ends past the file/ },
      { reason: 'malformed', message: /section 0 is not the skeleton/ },
    ],
  )
})

// ---- Policies ------------------------------------------------------------------------------

const CONTEXT = { gatewaysConfigured: false, countryDatabase: false, asnDatabase: false }
const TEXT = JSON.stringify({ deliveryCriteria: [{ region: { subnet: ['10.0.0.0/8', '2001:db8::/32'] } }] })

function compiled(text = TEXT): CompiledSite {
  const result = compileMetadata(JSON.parse(text), CONTEXT)
  if (!result.ok) throw new Error('fixture refused')
  return result.compiled
}

t.test('a policy snapshot is for one document, one build and one load context', async (t) => {
  const etag = etagOf(TEXT)
  const bytes = encodePolicySnapshot(compiled(), 4, { etag, context: CONTEXT })
  t.equal(decodePolicySnapshot(bytes, { etag, context: { ...CONTEXT } }).version, 4)
  t.equal(
    refusal(() => decodePolicySnapshot(bytes, { etag: etagOf(`${TEXT} `), context: CONTEXT })),
    'document',
  )
  t.throws(
    () => decodePolicySnapshot(bytes, { etag, context: { ...CONTEXT, enforcedElsewhere: ['mi.sourcemetadata'] } }),
    {
      reason: 'context',
      message: /compiled under \{"asnDatabase":false,"countryDatabase":false,"gatewaysConfigured":false\}, not/,
    },
  )
  t.throws(() => decodePolicySnapshot(bytes, { etag: 'W/"abc"', context: CONTEXT }), {
    name: 'TypeError',
    message: /"W\/\\"abc\\"" is not a document ETag/,
  })
  t.equal(buildFingerprint(), buildFingerprint(), 'read once')
  t.equal(buildFingerprint().length, 32)
})

t.test('written atomically beside the document, read back whole, or refused', async (t) => {
  const dir = t.testdir({})
  const path = `${dir}/metadata.snapshot`
  const etag = etagOf(TEXT)
  const size = await writePolicySnapshot(path, compiled(), 2, { etag, context: CONTEXT })
  const read = await readPolicySnapshot(path, TEXT, CONTEXT)
  t.equal(read.version, 2)
  t.equal(read.etag, etag)
  t.same(read.site, compiled())
  t.equal((await readPolicySnapshot(path, { etag }, CONTEXT)).version, 2, 'by ETag as well as by text')
  t.ok(size > HEADER_BYTES)
  await t.rejects(readPolicySnapshot(`${dir}/none.snapshot`, TEXT, CONTEXT), {
    name: 'SnapshotError',
    reason: 'unreadable',
    message: /cannot read .*none\.snapshot: ENOENT/,
  })
  await t.rejects(readPolicySnapshot(path, '{}', CONTEXT), { name: 'SnapshotError', reason: 'document' })
})
