import t from 'tap'
import { compilePolicy } from '../src/policy/compile.js'
import { explain } from '../src/policy/explain.js'
import { decide, isAllowed } from '../src/policy/decide.js'
import { createClientFacts, type ClientFacts } from '../src/facts/facts.js'
import { loadPolicyModel } from '../src/load/delivery-criteria.js'
import { parseAddress } from '../src/facts/address.js'
import { msisdnKey } from '../src/facts/msisdn.js'

function policyOf(doc: unknown) {
  const loaded = loadPolicyModel(doc, { gatewaysConfigured: true, countryDatabase: true, asnDatabase: true })
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors))
  return compilePolicy(loaded.model)
}

function facts(patch: Partial<ClientFacts> & { sourceText?: string; handsetText?: string }): ClientFacts {
  const f = createClientFacts()
  const { sourceText, handsetText, ...rest } = patch
  Object.assign(f, { protocol: 1, now: Date.now() }, rest)
  if (sourceText) f.sourceFamily = parseAddress(sourceText, f.source)
  if (handsetText) f.handsetFamily = parseAddress(handsetText, f.handset)
  return f
}

function allowed(policy: ReturnType<typeof policyOf>, f: ClientFacts): boolean {
  return isAllowed(policy, decide(policy, f, new Uint32Array(policy.words)))
}

t.test('country and AS facts, once a database supplies them, match their regions', async (t) => {
  const policy = policyOf({
    deliveryCriteria: [{ region: { country: 'cn', bgpAs: 9808 } }, { region: { bgpAs: [64496, 64497] } }],
  })
  t.equal(allowed(policy, facts({ country: 'CN', asn: 9808 })), true, 'both fields of the first region')
  t.equal(
    allowed(policy, facts({ country: 'CN', asn: 4134 })),
    false,
    'country alone is not enough for a two-field region',
  )
  t.equal(allowed(policy, facts({ country: null, asn: 64497 })), true, 'the AS-only region')
  t.equal(allowed(policy, facts({ country: 'GB', asn: -1 })), false, 'no AS fact')
})

t.test('IPv6 prefixes merge across single-field regions; IPv6 handsets match subnet2', async (t) => {
  const policy = policyOf({
    deliveryCriteria: [
      { region: { subnet: '2001:db8::/32' } },
      { region: { subnet: ['2001:db9::/32', '10.0.0.0/8'] } },
      { region: { subnet2: '2001:db8:5::/48', msdnPrefix: '135' } },
    ],
  })
  t.match(policy.summary, { regions: 2, ipv6Prefixes: 3, ipv4Prefixes: 1 })
  t.equal(allowed(policy, facts({ sourceText: '2001:db9::1' })), true)
  t.equal(allowed(policy, facts({ sourceText: '10.2.3.4' })), true)
  t.equal(
    allowed(
      policy,
      facts({
        sourceText: '203.0.113.1',
        handsetText: '2001:db8:5::9',
        msisdn: {
          international: '8613500000000',
          key: msisdnKey('8613500000000'),
          nationalKey: msisdnKey('13500000000'),
        },
      }),
    ),
    true,
  )
  t.equal(
    allowed(
      policy,
      facts({
        sourceText: '203.0.113.1',
        handsetText: '2001:db8:6::9',
        msisdn: {
          international: '8613500000000',
          key: msisdnKey('8613500000000'),
          nationalKey: msisdnKey('13500000000'),
        },
      }),
    ),
    false,
  )
})

t.test('explain() lists, per rule, only the regions of that rule', async (t) => {
  const policy = policyOf({
    deliveryProfiles: [
      { deliveryCriteria: [{ region: { subnet: '10.0.0.0/8', country: 'CN' } }], deliveryRules: { allow: false } },
      {
        deliveryCriteria: [{ region: { subnet: '10.1.0.0/16', bgpAs: 1 } }, { protocol: 'http' }],
        deliveryRules: { allow: true },
      },
    ],
  })
  const result = explain(policy, facts({ sourceText: '10.1.2.3', country: 'GB', asn: 1 }))
  t.match(result, {
    allowed: true,
    decidedBy: '/deliveryProfiles/1',
    failed: ['region'],
    rules: [
      {
        matched: false,
        clauses: [
          {
            regions: [
              {
                pointers: ['/deliveryProfiles/0/deliveryCriteria/0/region'],
                matched: false,
                fields: { subnet: true, country: false },
              },
            ],
          },
        ],
      },
      {
        matched: true,
        clauses: [
          {
            regions: [
              {
                pointers: ['/deliveryProfiles/1/deliveryCriteria/0/region'],
                matched: true,
                fields: { subnet: true, asn: true },
              },
            ],
          },
          { kind: 'protocol', matched: true },
        ],
      },
    ],
  })
  t.equal(result.rules[0]?.clauses[0]?.regions?.length, 1)
  t.equal(result.rules[1]?.clauses[0]?.regions?.length, 1)
})

t.test('compiling never changes the model it was given, and merged lists grow past their first capacity', async (t) => {
  const v4 = Array.from({ length: 40 }, (_, i) => `10.${i}.0.0/16`)
  const v6 = Array.from({ length: 40 }, (_, i) => `2001:db8:${i.toString(16)}::/48`)
  const loaded = loadPolicyModel({
    deliveryCriteria: [{ region: { subnet: [...v4, ...v6] } }, { region: { subnet: ['11.0.0.0/8', '2001:db9::/32'] } }],
  })
  if (!loaded.ok) throw new Error('unexpected')
  const snapshot = () =>
    JSON.stringify(loaded.model, (_key, value: unknown) =>
      ArrayBuffer.isView(value) ? Array.from(value as Uint32Array) : value,
    )
  const before = snapshot()
  const policy = compilePolicy(loaded.model)
  compilePolicy(loaded.model)
  t.equal(snapshot(), before)
  t.match(policy.summary, { regions: 1, ipv4Prefixes: 41, ipv6Prefixes: 41 })
  t.equal(allowed(policy, facts({ sourceText: '2001:db8:27::1' })), true, 'the 40th IPv6 prefix of the first region')
  t.equal(allowed(policy, facts({ sourceText: '2001:db9::1' })), true, 'the merged second region')
})
