// Writes a MaxMind DB (.mmdb) holding a prefix set, for bench/peers.js to measure mmdb-lib's
// reader against: the binary search tree of the MaxMind DB File Format Specification 2.0 (24- or
// 32-bit records), 16 zero bytes, a data section of one record, then the metadata marker and map.
// Built with typed arrays, since a million prefixes make millions of tree nodes. Every prefix
// points at the same record, so a lookup answers "inside some prefix" as ours does.

const MARKER = Buffer.from('abcdef4d61784d696e642e636f6d', 'hex')

function control(type, size) {
  const extended = type > 7
  const head = [(extended ? 0 : type) << 5]
  if (size < 29) head[0] |= size
  else if (size < 285) head.push(size - 29) && (head[0] |= 29)
  else throw new Error('only short values')
  if (extended) head.splice(1, 0, type - 7)
  return Buffer.from(head)
}

/** Encodes the few types the metadata and the record need: maps, arrays, strings, uint32s. */
function encode(value) {
  if (typeof value === 'string') return Buffer.concat([control(2, Buffer.byteLength(value)), Buffer.from(value)])
  if (typeof value === 'number') {
    const bytes = []
    for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256)
    return Buffer.concat([control(6, bytes.length), Buffer.from(bytes)])
  }
  if (Array.isArray(value)) return Buffer.concat([control(11, value.length), ...value.map(encode)])
  const entries = Object.entries(value)
  return Buffer.concat([control(7, entries.length), ...entries.flatMap(([k, v]) => [encode(k), encode(v)])])
}

/**
 * An .mmdb of `prefixes` ({ words, length }: `words` one word for IPv4, four for IPv6), in a tree
 * of `ipVersion` 4 (32 bits) or 6 (128 bits).
 */
export function buildMmdb(prefixes, ipVersion) {
  // Shortest first, so a longer prefix under a shorter one (same record) adds nothing.
  const sorted = [...prefixes].sort((a, b) => a.length - b.length)
  const DATA = -1
  let tree = new Int32Array(1 << 20)
  let nodes = 1
  for (const { words, length } of sorted) {
    let node = 0
    for (let i = 0; i < length; i++) {
      const bit = (words[i >>> 5] >>> (31 - (i & 31))) & 1
      const at = node * 2 + bit
      if (i === length - 1) {
        tree[at] = DATA
        break
      }
      const child = tree[at]
      if (child === DATA) break
      if (child > 0) {
        node = child
        continue
      }
      if ((nodes + 1) * 2 > tree.length) {
        const bigger = new Int32Array(tree.length * 2)
        bigger.set(tree)
        tree = bigger
      }
      tree[at] = nodes
      node = nodes++
    }
  }
  const record = encode({ network: 'hit' })
  const recordSize = nodes + 16 + record.length < 1 << 24 ? 24 : 32
  const bytes = recordSize / 4
  const out = Buffer.alloc(nodes * bytes)
  for (let i = 0; i < nodes * 2; i++) {
    const child = tree[i]
    const value = child === DATA ? nodes + 16 : child === 0 ? nodes : child
    out.writeUIntBE(value, i * (bytes / 2), bytes / 2)
  }
  const metadata = encode({
    node_count: nodes,
    record_size: recordSize,
    ip_version: ipVersion,
    database_type: 'bench',
    languages: ['en'],
    binary_format_major_version: 2,
    binary_format_minor_version: 0,
    build_epoch: 1_767_225_600,
    description: { en: 'benchmark prefixes' },
  })
  return Buffer.concat([out, Buffer.alloc(16), record, MARKER, metadata])
}
