import t, { type Test } from 'tap'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { StateStore } from '../src/surrogate/state.js'

t.test('a fresh directory holds nothing; a written document reads back with its version', async (t) => {
  const dir = t.testdir({})
  const store = new StateStore(join(dir, 'nested', 'state'))
  t.equal(await store.read(), null)
  await store.write('{"deliveryCriteria":[]}', 7)
  t.same(await store.read(), { text: '{"deliveryCriteria":[]}', version: 7 })
  await store.write('{"b":2}', 8)
  t.same(await store.read(), { text: '{"b":2}', version: 8 })
  t.same(
    readdirSync(join(dir, 'nested', 'state')).sort(),
    ['metadata.json', 'state.json'],
    'no temporary file left behind',
  )
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
  t.same(
    readdirSync(dir).sort(),
    ['metadata.json', 'state.json'],
    'no temporary left; the record names a document that never landed',
  )
})

t.test('a record ahead of its document (the push after it never landed) reads as the version before', async (t) => {
  const dir = t.testdir({})
  const store = new StateStore(dir)
  await store.write('{"first":1}', 4)
  // What a crash (or a full disk) between the two renames leaves: the record of push 5, document 4.
  const record = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { sha256: string }
  writeFileSync(
    join(dir, 'state.json'),
    JSON.stringify({ version: 5, sha256: record.sha256.replace(/^./, (c) => (c === '0' ? '1' : '0')) }),
  )
  t.same(await store.read(), { text: '{"first":1}', version: 4 })
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ version: 1, sha256: 'other' }))
  t.same(await store.read(), { text: '{"first":1}', version: 1 }, 'never below 1')
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ version: 9 }))
  t.same(
    await store.read(),
    { text: '{"first":1}', version: 9 },
    'a record without a digest (an older release) is believed',
  )
})

t.test('temporaries a killed writer left behind are cleared at start, even before any document landed', async (t) => {
  const dir = t.testdir({
    '.state.json.123.1.tmp': '{"ver',
    '.metadata.json.123.2.tmp': '{"deliv',
    '.metadata.snapshot.123.3.tmp': 'CDNISNAP',
    'other.tmp': 'kept',
  })
  t.equal(await new StateStore(dir).read(), null)
  t.same(readdirSync(dir), ['other.tmp'], 'only our own temporaries are removed')
  writeFileSync(join(dir, '.metadata.json.77.3.tmp'), 'torn')
  writeFileSync(join(dir, 'metadata.json'), '{}')
  t.same(await new StateStore(dir).read(), { text: '{}', version: 1 })
  t.same(readdirSync(dir).sort(), ['metadata.json', 'other.tmp'])
})

/** A StateStore whose directory syncs are recorded: the paths opened to be synced, in order. */
async function observedStore(t: Test, dir: string) {
  const synced: string[] = []
  const fs = await import('node:fs/promises')
  const { StateStore: Observed } = await t.mockImport<typeof import('../src/surrogate/state.js')>(
    '../src/surrogate/state.js',
    {
      'node:fs/promises': {
        ...fs,
        open: async (path: string, flags?: string, mode?: number) => {
          const handle = await fs.open(path, flags, mode)
          if (flags !== 'r') return handle
          const sync = handle.sync.bind(handle)
          handle.sync = async () => {
            await sync()
            synced.push(path)
          }
          return handle
        },
      },
    },
  )
  return { store: new Observed(dir), synced }
}

t.test(
  'creating the state directory syncs every parent that gained an entry, so the first push survives power failure',
  async (t) => {
    const root = t.testdir({ existing: {} })
    const { store, synced } = await observedStore(t, join(root, 'existing', 'new', 'deeper', 'state'))
    await store.write('{"first":1}', 1)
    const state = join(root, 'existing', 'new', 'deeper', 'state')
    t.same(
      synced,
      [join(root, 'existing', 'new', 'deeper'), join(root, 'existing', 'new'), join(root, 'existing'), state, state],
      'the three parents that gained a directory, then the directory after each file',
    )
    synced.length = 0
    await store.write('{"second":2}', 2)
    t.same(synced, [state, state], 'nothing created, no parent synced')

    const flat = await observedStore(t, join(root, 'flat'))
    await flat.store.write('{}', 1)
    t.same(flat.synced, [root, join(root, 'flat'), join(root, 'flat')], 'one directory created: its parent synced')

    // `first` (here `detour`) is not on the way up from the resolved path: every parent up to the
    // root is synced, which covers the ones that changed.
    const odd = await observedStore(t, `${root}/detour/../around/state`)
    await odd.store.write('{}', 1)
    t.same(odd.synced.slice(0, 2), [join(root, 'around'), root])
    t.same(odd.synced.slice(-3), ['/', odd.store.dir, odd.store.dir], 'up to the root, once')
    t.equal(odd.synced.filter((path) => path === '/').length, 1)
    t.same(readdirSync(root).sort(), ['around', 'detour', 'existing', 'flat'])
  },
)
