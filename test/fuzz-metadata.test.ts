// Metadata fuzzing: random JSON, and valid documents mutated (wrong types, huge arrays, deep
// nesting, odd Unicode, duplicate keys, numbers at the limits). Whatever comes in, the loader
// either accepts a document the compiler then handles and decides with, or refuses it with
// problems that carry JSON pointers into it; it never throws, never hangs (each case is timed
// against a generous bound) and its answer stays bounded in size.
import t from 'tap'
import fc from 'fast-check'
import { readFileSync } from 'node:fs'
import { createClientFacts } from '../src/facts/facts.js'
import { loadPolicyModel } from '../src/load/delivery-criteria.js'
import { parseMetadataText } from '../src/load/parse-text.js'
import { compileMetadata } from '../src/load/prepare.js'
import { compilePolicy } from '../src/policy/compile.js'
import type { Problem } from '../src/policy/model.js'
import { aclsAllow, selectNode } from '../src/policy/site.js'
import { MAX_PROBLEMS } from '../src/load/translate.js'
import { Ajv, type ErrorObject } from 'ajv'

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000)
const CONTEXT = { gatewaysConfigured: true, countryDatabase: false, asnDatabase: false }

const seeds: unknown[] = [
  ...[1, 2, 3].map(
    (n) => JSON.parse(readFileSync(new URL(`../examples/seed-example-${n}.json`, import.meta.url), 'utf8')) as unknown,
  ),
  JSON.parse(readFileSync(new URL('../examples/demo/metadata.json', import.meta.url), 'utf8')) as unknown,
  {
    deliveryProfiles: [
      {
        deliveryCriteria: [{ region: { country: ['CN', 'gb'], bgpAs: [64496, 4200000000] } }],
        deliveryRules: { allow: false },
      },
      {
        deliveryCriteria: [
          { region: { subnet: ['10.0.0.0/255.255.0.0', '2001:db8::/32'] } },
          { timeWindow: { startTime: '2026-01-01T00:00:00Z', endTime: '2027-01-01T00:00:00.5+08:00' } },
        ],
        deliveryRules: { allow: true },
      },
    ],
  },
  // RFC 8006: a host with all three ACLs, nested paths, and a type this edge does not enforce.
  {
    hosts: [
      {
        host: 'video.example.com',
        'host-metadata': {
          metadata: [
            {
              'generic-metadata-type': 'MI.LocationACL',
              'generic-metadata-value': {
                locations: [
                  {
                    action: 'allow',
                    footprints: [
                      {
                        'footprint-type': 'footprintunion',
                        'footprint-value': [
                          { 'footprint-type': 'ipv4cidr', 'footprint-value': ['10.0.0.0/8'] },
                          { 'footprint-type': 'x-msisdn-prefix', 'footprint-value': ['+86135'] },
                        ],
                      },
                    ],
                  },
                ],
              },
            },
            {
              'generic-metadata-type': 'MI.TimeWindowACL',
              'generic-metadata-value': {
                times: [{ action: 'allow', windows: [{ start: 946717200, end: 4102444800 }] }],
              },
            },
            {
              'generic-metadata-type': 'MI.ProtocolACL',
              'generic-metadata-value': { 'protocol-acl': [{ action: 'allow', protocols: ['http/1.1', 'https/1.1'] }] },
              'mandatory-to-enforce': true,
            },
          ],
          paths: [
            {
              'path-pattern': { pattern: '/live/*.m3u8', 'case-sensitive': true },
              'path-metadata': {
                metadata: [
                  {
                    'generic-metadata-type': 'MI.CachePolicy',
                    'generic-metadata-value': {},
                    'mandatory-to-enforce': false,
                  },
                ],
                paths: [],
              },
            },
          ],
        },
      },
      { host: '[2001:db8::1]:8443', 'host-metadata': { metadata: [] } },
    ],
  },
]

/** Resolves an RFC 6901 pointer in `doc`; undefined when it does not lead anywhere. */
function resolve(doc: unknown, pointer: string): { found: boolean } {
  if (pointer === '') return { found: true }
  let node: unknown = doc
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (typeof node !== 'object' || node === null || !Object.prototype.hasOwnProperty.call(node, token)) {
      return { found: false }
    }
    node = (node as Record<string, unknown>)[token]
  }
  return { found: true }
}

/** The invariant every answer must hold. */
function check(doc: unknown): 'accepted' | 'refused' {
  const started = performance.now()
  const result = compileMetadata(doc, CONTEXT)
  const problems: Problem[] = result.ok ? result.warnings : result.errors
  if (problems.length > MAX_PROBLEMS + 1) throw new Error(`${problems.length} problems: the list is not capped`)
  for (const problem of problems) {
    if (typeof problem.pointer !== 'string' || typeof problem.message !== 'string' || problem.message.length === 0) {
      throw new Error(`malformed problem ${JSON.stringify(problem)}`)
    }
    // Every pointer leads into the document; one naming a missing member leads to its parent.
    const parent = problem.pointer.slice(0, Math.max(0, problem.pointer.lastIndexOf('/')))
    if (!resolve(doc, problem.pointer).found && !resolve(doc, parent).found) {
      throw new Error(`pointer ${problem.pointer} does not lead into the document`)
    }
  }
  if (result.ok) {
    const compiled = result.compiled
    const scratch = new Uint32Array(compiled.words)
    if (compiled.catchAll !== null) aclsAllow(compiled.catchAll, createClientFacts(), scratch)
    for (const host of compiled.hosts.keys()) {
      const acls = selectNode(compiled, host, '/live/a.m3u8?x')
      if (acls === null) throw new Error(`host ${host} of the site is not selected`)
      aclsAllow(acls, createClientFacts(), scratch)
    }
  } else if (result.errors.length === 0) {
    throw new Error('refused without a reason')
  }
  if (performance.now() - started > 2000) throw new Error('took over 2 s')
  return result.ok ? 'accepted' : 'refused'
}

// ---- Mutations of valid documents ----------------------------------------------------------

const oddStrings = fc.constantFrom(
  '',
  ' ',
  '\u0000',
  '\ud800',
  '\udfff\ud800',
  '\u202e10.0.0.0/8',
  '１０.0.0.0/8',
  '10.0.0.0/８',
  '10.0.0.0/8\u200b',
  'Ａ',
  'c\u0327n',
  'CN\u0000',
  '10.0.0.0/33',
  '10.0.0.0/-1',
  '10.0.0.0/08',
  '10.0.0.0/255.0.255.0',
  '::/129',
  '2001:db8::/32%eth0',
  '+86135038',
  '1'.repeat(16),
  '135038 ',
  'https ',
  'HTTP',
  '2026-13-01T00:00:00Z',
  '2026-02-30T00:00:00Z',
  '2026-01-01T24:00:00Z',
  '2026-01-01 00:00:00Z',
  '2026-01-01T00:00:00',
  '0000-01-01T00:00:00Z',
  '9999-12-31T23:59:60Z',
)
const limitNumbers = fc.constantFrom(
  0,
  -0,
  -1,
  1.5,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  1e-7,
  4294967295.5,
)
const replacement: fc.Arbitrary<unknown> = fc.oneof(
  oddStrings,
  limitNumbers,
  fc.constantFrom(
    null,
    true,
    false,
    [],
    {},
    [[]],
    { '': 1 },
    { __proto__: null },
    { constructor: 1 },
    { toString: 'x' },
  ),
  fc.jsonValue({ maxDepth: 3 }),
  fc
    .integer({ min: 1000, max: 30000 })
    .map((n) => Array.from({ length: n }, (_, i) => (i % 7 === 0 ? 'bad' : `10.${(i >> 8) & 255}.${i & 255}.0/24`))),
  fc.integer({ min: 100, max: 1000 }).map((depth) => {
    let nested: unknown = '10.0.0.0/8'
    for (let i = 0; i < depth; i++) nested = i % 2 === 0 ? [nested] : { region: nested }
    return nested
  }),
)

/** A node of a document, as its place in its parent (null for the root). */
type Place = { parent: Record<string | number, unknown>; key: string | number } | null

/**
 * Every node of a document, in depth-first order, iteratively (the documents nest a thousand
 * deep). Each node is kept as its parent and key, not as a path from the root: paths cost the
 * square of the depth, and a 30,000-entry array a thousand levels down took gigabytes.
 */
function places(doc: unknown): Place[] {
  const out: Place[] = []
  const work: [unknown, Place][] = [[doc, null]]
  for (let item = work.pop(); item !== undefined; item = work.pop()) {
    const [node, place] = item
    out.push(place)
    if (typeof node === 'object' && node !== null) {
      const parent = node as Record<string | number, unknown>
      for (const [k, v] of Object.entries(node)) work.push([v, { parent, key: Array.isArray(node) ? Number(k) : k }])
    }
  }
  return out
}

type Mutation =
  | { kind: 'replace'; at: number; value: unknown }
  | { kind: 'delete'; at: number }
  | { kind: 'add'; at: number; key: string; value: unknown }

/**
 * Applies mutations to a copy of `doc`. Inserted values are copied too: fast-check hands out the
 * same constant objects ({}, []) again and again, and mutating them in place made them grow from
 * run to run and, once one was inserted into itself, cyclic (the walk then never ended).
 */
function mutate(doc: unknown, mutations: Mutation[]): unknown {
  let root: unknown = structuredClone(doc)
  for (const original of mutations) {
    const m = 'value' in original ? { ...original, value: structuredClone(original.value) } : original
    const all = places(root)
    const place = all[m.at % all.length] as Place
    if (place === null) {
      if (m.kind === 'replace') root = m.value
      continue
    }
    const { parent, key } = place
    if (m.kind === 'replace') parent[key] = m.value
    else if (m.kind === 'delete') Array.isArray(parent) ? parent.splice(key as number, 1) : delete parent[key]
    else if (typeof parent[key] === 'object' && parent[key] !== null && !Array.isArray(parent[key])) {
      ;(parent[key] as Record<string, unknown>)[m.key] = m.value
    }
  }
  return root
}

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), value: replacement }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('add' as const),
    at: fc.nat(),
    key: fc.constantFrom(
      'region',
      'protocol',
      'timeWindow',
      'subnet',
      'x-vendor',
      'bogus',
      '',
      '__proto__',
      'deliveryRules',
    ),
    value: replacement,
  }),
)

t.test('mutated valid documents: accepted and compiled, or refused with pointers', async (t) => {
  const outcomes = { accepted: 0, refused: 0 }
  fc.assert(
    fc.property(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: 4 }), (seed, mutations) => {
      outcomes[check(mutate(seed, mutations))]++
    }),
    { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261122), endOnFailure: true },
  )
  // Both answers must be reached, or the mutations are too weak (or too strong) to say much.
  t.ok(outcomes.accepted > RUNS / 20, `${outcomes.accepted} accepted`)
  t.ok(outcomes.refused > RUNS / 2, `${outcomes.refused} refused`)
})

t.test('the loader refuses exactly what the published schemas refuse, at the same places', async (t) => {
  // The loader checks a refused document in pieces (src/metadata.ts, collectSchemaErrors), to
  // stay linear; the published schemas, compiled whole here, must agree with it.
  const schema = (name: string) =>
    JSON.parse(readFileSync(new URL(`../schemas/${name}`, import.meta.url), 'utf8')) as object
  const whole = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true })
  whole.addSchema(schema('criteria.schema.json'))
  const validators = {
    deliveryCriteria: whole.compile(schema('delivery-criteria.schema.json')),
    deliveryProfiles: whole.compile(schema('delivery-profiles.schema.json')),
  }
  const at = (e: ErrorObject) => {
    const p = e.params as Record<string, unknown>
    const name =
      e.keyword === 'required'
        ? p.missingProperty
        : e.keyword === 'additionalProperties'
          ? p.additionalProperty
          : undefined
    return name === undefined
      ? e.instancePath
      : `${e.instancePath}/${String(name).replace(/~/g, '~0').replace(/\//g, '~1')}`
  }
  let compared = 0
  fc.assert(
    fc.property(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: 3 }), (seed, mutations) => {
      const doc = mutate(seed, mutations)
      // A value that is neither kind of document is refused at the root, before any schema.
      if (
        typeof doc !== 'object' ||
        doc === null ||
        Array.isArray(doc) ||
        !('deliveryCriteria' in doc || 'deliveryProfiles' in doc)
      ) {
        return
      }
      const format = 'deliveryProfiles' in doc ? 'deliveryProfiles' : 'deliveryCriteria'
      const validate = validators[format]
      if (validate(doc)) return
      const pointers = new Set((validate.errors as ErrorObject[]).map(at))
      const result = loadPolicyModel(doc, CONTEXT)
      if (result.ok) throw new Error('the schema refuses what the loader accepts')
      if (pointers.size > MAX_PROBLEMS) return
      const ours = new Set(result.errors.map((e) => e.pointer))
      for (const pointer of pointers) {
        if (!ours.has(pointer)) {
          throw new Error(`the schema's error at ${pointer} is missing from ${[...ours].join(' ')}`)
        }
      }
      compared++
    }),
    { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261122), endOnFailure: true },
  )
  t.ok(compared > RUNS / 4, `${compared} refused documents compared error by error`)
})

t.test('random JSON values and random text: an answer, never an exception', async (t) => {
  let refused = 0
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
      if (check(value) === 'refused') refused++
      check({ deliveryCriteria: value })
      check({ deliveryProfiles: value })
      check({ hosts: value })
      check({
        hosts: [
          {
            host: 'a.example',
            'host-metadata': {
              metadata: [{ 'generic-metadata-type': 'MI.LocationACL', 'generic-metadata-value': value }],
            },
          },
        ],
      })
    }),
    { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261122), endOnFailure: true },
  )
  t.equal(refused, RUNS, 'a random value is never a policy')
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => {
      const parsed = parseMetadataText(text)
      if (parsed.ok) check(parsed.value)
      else if (!/^invalid JSON at line \d+, column \d+: /.test(parsed.error.message)) {
        throw new Error(parsed.error.message)
      }
    }),
    { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261122), endOnFailure: true },
  )
})

t.test('text-level hostility: deep nesting, duplicate keys, huge numbers, a byte-order mark', async (t) => {
  const deep = parseMetadataText(`{"deliveryCriteria":${'['.repeat(100_000)}${']'.repeat(100_000)}}`)
  t.equal(deep.ok, true, 'JSON.parse takes 100,000 levels')
  if (deep.ok) t.equal(check(deep.value), 'refused')
  const unbalanced = parseMetadataText(`{"deliveryCriteria":${'['.repeat(100_000)}`)
  t.match(
    unbalanced,
    {
      ok: false,
      error: {
        pointer: '',
        line: 1,
        column: 100_021,
        message: 'invalid JSON at line 1, column 100021: Unexpected end of JSON input',
      },
    },
    "unbalanced nesting too deep to locate: the end of the text and V8's reason, no stack overflow",
  )
  // Duplicate keys: JSON.parse keeps the last, and that is the document judged (RFC 8259 leaves
  // it open; the README's security section says so).
  const duplicate = parseMetadataText('{"deliveryCriteria":[{"region":{"subnet":"10.0.0.0/8","subnet":"11.0.0.0/8"}}]}')
  t.ok(duplicate.ok)
  if (duplicate.ok) {
    const result = loadPolicyModel(duplicate.value, CONTEXT)
    t.ok(result.ok && compilePolicy(result.model).summary.ipv4Prefixes === 1, 'one subnet, the last written')
  }
  const huge = parseMetadataText('{"deliveryCriteria":[{"region":{"bgpAs":1e400}}]}')
  t.ok(huge.ok)
  if (huge.ok) t.equal(check(huge.value), 'refused', 'Infinity is no AS number')
  t.match(
    parseMetadataText('\ufeff{"deliveryCriteria":[{"protocol":"http"}]}'),
    { ok: false, error: { message: /line 1, column 1/ } },
    'a byte-order mark is not JSON',
  )
})

t.test('a document of a million bad values is refused in bounded time, with a bounded answer', async (t) => {
  const doc = {
    deliveryCriteria: [{ region: { subnet: Array.from({ length: 1_000_000 }, (_, i) => `10.0.${i}.0/24`) } }],
  }
  const before = process.memoryUsage().heapUsed
  const result = loadPolicyModel(doc, CONTEXT)
  t.equal(result.ok, false)
  t.equal(result.errors.length, MAX_PROBLEMS + 1, 'capped, with a count of the rest')
  t.match(result.errors[MAX_PROBLEMS], { pointer: '', message: /more not shown/ })
  t.ok(process.memoryUsage().heapUsed - before < 200 * 1024 * 1024, 'no per-problem memory kept past the cap')
})
