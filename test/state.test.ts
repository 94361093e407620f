import t from 'tap'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { StateStore } from '../src/state.js'

t.test('a fresh directory holds nothing; a written document reads back with its version', async (t) => {
  const dir = t.testdir({})
  const store = new StateStore(join(dir, 'nested', 'state'))
  t.equal(await store.read(), null)
  await store.write('{"deliveryCriteria":[]}', 7)
  t.same(await store.read(), { text: '{"deliveryCriteria":[]}', version: 7 })
  await store.write('{"b":2}', 8)
  t.same(await store.read(), { text: '{"b":2}', version: 8 })
  t.same(readdirSync(join(dir, 'nested', 'state')).sort(), ['metadata.json', 'state.json'], 'no temporary file left behind')
})

t.test('a damaged state.json restarts the version count; an unreadable document is an error', async (t) => {
  const dir = t.testdir({ 'metadata.json': '{}', 'state.json': 'garbage' })
  t.same(await new StateStore(dir).read(), { text: '{}', version: 1 })
  writeFileSync(join(dir, 'state.json'), '{"version": -3}')
  t.same(await new StateStore(dir).read(), { text: '{}', version: 1 })
  const broken = t.testdir({})
  mkdirSync(join(broken, 'metadata.json'))
  await t.rejects(new StateStore(broken).read(), { name: 'StateError', message: /cannot read .*metadata\.json/ })
})

t.test('a failed rename removes its temporary file and reports the error', async (t) => {
  const dir = t.testdir({})
  mkdirSync(join(dir, 'metadata.json'))
  mkdirSync(join(dir, 'metadata.json', 'keep'))
  await t.rejects(new StateStore(dir).write('{}', 1), { code: /EISDIR|ENOTEMPTY|EEXIST/ })
  t.same(readdirSync(dir), ['metadata.json'])
})
