// Regressions in the matcher: a star could split a percent-encoded octet (and missed a match its
// own reference allowed: *?f against %2f), and an indexed level looked a path's first segment up
// by toLowerCase(), which folds letters the matcher does not (İ, the Kelvin sign).
import t from 'tap'
import { compilePattern, compilePatternList, firstMatch, matchPattern } from '../../src/policy/path-pattern.js'

t.test('a star takes whole octets', async (t) => {
  t.notOk(matchPattern(compilePattern('*3'), '/%C3'))
  t.notOk(matchPattern(compilePattern('*?f'), '%2f'))
  t.notOk(matchPattern(compilePattern('/*?1'), '/x%41'), 'the path ends in the octet 0x41, not in "1"')
  t.ok(matchPattern(compilePattern('/*?1'), '/x%411'), '? is the whole octet')
})

t.test('an indexed level finds what trying each pattern in order finds', async (t) => {
  const texts = ['/İ/*', '/\u212a/*', '/a/*', '/b/*', '/c/*', '/d/*', '/e/*', '/f/*']
  const patterns = texts.map((text) => compilePattern(text))
  const list = compilePatternList(patterns)
  t.not(list.index, null)
  for (const path of ['/İ/x', '/\u212a/x', '/i/x', '/k/x']) {
    t.equal(
      firstMatch(list, path),
      patterns.findIndex((pattern) => matchPattern(pattern, path)),
      path,
    )
  }
})
