/**
 * Builds small MaxMind DB (.mmdb) files for tests, from a list of networks and their records, as
 * the MaxMind DB File Format Specification 2.0 lays them out: a binary search tree of 24-bit
 * records, 16 zero bytes, the data section, then the metadata marker and map. There is no
 * maintained writer on npm; this one writes only what the tests need (maps, arrays, strings,
 * unsigned integers, booleans) and is checked by reading its files back with mmdb-lib.
 */
import { parseAddress } from '../../src/facts/address.js'

export type MmdbValue = string | number | boolean | MmdbValue[] | { [key: string]: MmdbValue }

export interface MmdbOptions {
  databaseType: string
  ipVersion?: 4 | 6
  /** Seconds since 1970; null leaves build_epoch out. */
  buildEpoch?: number | null
}

const MARKER = Buffer.from('abcdef4d61784d696e642e636f6d', 'hex')

function control(type: number, size: number): Buffer {
  const extended = type > 7
  const first = (extended ? 0 : type) << 5
  let head: number[]
  if (size < 29) head = [first | size]
  else if (size < 285) head = [first | 29, size - 29]
  else if (size < 65_821) head = [first | 30, (size - 285) >> 8, (size - 285) & 255]
  else head = [first | 31, (size - 65_821) >> 16, ((size - 65_821) >> 8) & 255, (size - 65_821) & 255]
  if (extended) head.splice(1, 0, type - 7)
  return Buffer.from(head)
}

function unsigned(type: number, value: number): Buffer {
  const bytes: number[] = []
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256)
  return Buffer.concat([control(type, bytes.length), Buffer.from(bytes)])
}

export function encode(value: MmdbValue): Buffer {
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8')
    return Buffer.concat([control(2, bytes.length), bytes])
  }
  if (typeof value === 'boolean') return control(14, value ? 1 : 0)
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new Error(`only uint32 numbers: ${value}`)
    return unsigned(6, value)
  }
  if (Array.isArray(value)) return Buffer.concat([control(11, value.length), ...value.map(encode)])
  const entries = Object.entries(value)
  return Buffer.concat([control(7, entries.length), ...entries.flatMap(([key, item]) => [encode(key), encode(item)])])
}

type Child = Node | { data: number } | null
interface Node {
  children: [Child, Child]
  id: number
}

/** The network's bits: an IPv4 network sits at ::/96 of an IPv6 tree. */
function networkBits(cidr: string, ipVersion: 4 | 6): { bits: number[]; length: number } {
  const [text, lengthText] = cidr.split('/') as [string, string]
  const words = new Uint32Array(4)
  const family = parseAddress(text, words)
  if (family === 0) throw new Error(`bad network ${cidr}`)
  let length = Number(lengthText)
  const total = family === 4 ? 32 : 128
  const bits: number[] = []
  for (let i = 0; i < total; i++) bits.push(((words[i >>> 5] as number) >>> (31 - (i & 31))) & 1)
  if (family === 4 && ipVersion === 6) {
    bits.unshift(...new Array<number>(96).fill(0))
    length += 96
  }
  if (family === 6 && ipVersion === 4) throw new Error('an IPv4 database holds no IPv6 network')
  return { bits, length }
}

/** An .mmdb file holding `networks`, inserted shortest prefix first so longer ones refine them. */
export function buildMmdb(networks: [cidr: string, record: MmdbValue][], options: MmdbOptions): Buffer {
  const ipVersion = options.ipVersion ?? 6
  const data: Buffer[] = []
  const offsets = new Map<string, number>()
  let dataLength = 0
  const dataOffset = (record: MmdbValue): number => {
    const key = JSON.stringify(record)
    let offset = offsets.get(key)
    if (offset === undefined) {
      const bytes = encode(record)
      offset = dataLength
      offsets.set(key, offset)
      data.push(bytes)
      dataLength += bytes.length
    }
    return offset
  }
  const root: Node = { children: [null, null], id: 0 }
  const sorted = networks
    .map(([cidr, record]) => ({ ...networkBits(cidr, ipVersion), record }))
    .sort((a, b) => a.length - b.length)
  for (const { bits, length, record } of sorted) {
    const leaf = { data: dataOffset(record) }
    let node = root
    for (let i = 0; i < length - 1; i++) {
      const bit = bits[i] as 0 | 1
      const child = node.children[bit]
      if (child !== null && 'children' in child) {
        node = child
        continue
      }
      // Nothing here yet, or a shorter network's data, which the new node keeps on both sides.
      const next: Node = { children: [child, child], id: 0 }
      node.children[bit] = next
      node = next
    }
    node.children[bits[length - 1] as 0 | 1] = leaf
  }
  // Number the nodes breadth first; the root is node 0.
  const nodes: Node[] = []
  for (const queue = [root]; queue.length > 0;) {
    const node = queue.shift() as Node
    node.id = nodes.length
    nodes.push(node)
    for (const child of node.children) if (child !== null && 'children' in child) queue.push(child)
  }
  const nodeCount = nodes.length
  const tree = Buffer.alloc(nodeCount * 6)
  const recordValue = (child: Child): number =>
    child === null ? nodeCount : 'children' in child ? child.id : nodeCount + 16 + child.data
  nodes.forEach((node, n) => {
    tree.writeUIntBE(recordValue(node.children[0]), n * 6, 3)
    tree.writeUIntBE(recordValue(node.children[1]), n * 6 + 3, 3)
  })
  const metadata = encode({
    node_count: nodeCount,
    record_size: 24,
    ip_version: ipVersion,
    database_type: options.databaseType,
    languages: ['en'],
    binary_format_major_version: 2,
    binary_format_minor_version: 0,
    description: { en: 'test database' },
    ...(options.buildEpoch === null ? {} : { build_epoch: options.buildEpoch ?? 1_767_225_600 }),
  })
  return Buffer.concat([tree, Buffer.alloc(16), ...data, MARKER, metadata])
}
