// Regression: `/@%2f"/..` was made canonical as `/@/` (the encoded slash read as "/" before the
// dot segment removed `"`), while the proxy's URL parser keeps %2F inside its segment and sends
// the origin `/`: a request judged as one path and served as another. Found by the generated
// WHATWG URL test in test/request-target.test.ts.
import t from 'tap'
import { canonicalPath } from '../../src/policy/request-target.js'

t.test('a dot segment in a path with an encoded slash is a bad request target', async (t) => {
  for (const target of ['/@%2f"/..', '/a%2Fb/..', '/a%2fb/%2e%2e/secret', '/secret%2F..%2Fx', '/a/%2F/../b']) {
    t.equal(canonicalPath(target, 'h'), null, target)
    t.not(
      new URL(target, 'http://o/').pathname,
      canonicalPath(target.replace(/%2f/gi, '/'), 'h'),
      `${target}: the proxy and the router disagree on it`,
    )
  }
  t.equal(canonicalPath('/a%2Fb/c', 'h'), '/a/b/c', 'an encoded slash alone is read as the router reads it')
  t.equal(canonicalPath('/a/b/../c', 'h'), '/a/c', 'a dot segment alone is resolved')
})
