// The plugin's snapshot methods, for an operator who runs a cluster of their own: one process
// writes the live policy, another loads it and serves it through the same hook; a snapshot of
// anything but the document asked for is refused and the live policy stays.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { buildApp } from './helpers/app.js'

const TEXT = JSON.stringify({ deliveryCriteria: [{ region: { subnet: ['10.0.0.0/8'] } }] })
const OTHER = JSON.stringify({ deliveryCriteria: [{ region: { subnet: ['192.0.2.0/24'] } }] })

const status = async (app: Awaited<ReturnType<typeof buildApp>>, address: string) =>
  (await app.inject({ url: '/x', remoteAddress: address })).statusCode

t.test('a snapshot written by one app is served by another, with its version', async (t) => {
  const dir = t.testdir({})
  const path = `${dir}/metadata.snapshot`
  const writer = await buildApp(t, {})
  const prepared = await writer.cdniAuthz.prepare(TEXT)
  if (!prepared.ok) throw new Error('fixture refused')
  writer.cdniAuthz.commit(prepared, 5)
  t.ok((await writer.cdniAuthz.writeSnapshot(path)) > 0)

  const reader = await buildApp(t, {})
  t.equal(await status(reader, '10.1.2.3'), 403, 'no policy yet')
  const result = await reader.cdniAuthz.loadSnapshot(path, TEXT)
  t.match(result, { version: 5, warnings: [], summary: { ipv4Prefixes: 1 } })
  t.equal(reader.cdniAuthz.version, 5)
  t.equal(await status(reader, '10.1.2.3'), 200)
  t.equal(await status(reader, '192.0.2.1'), 403)
  t.equal((await reader.cdniAuthz.loadSnapshot(path, { etag: prepared.etag })).version, 5, 'or by ETag')
  // The loaded policy is written again as it came: a worker can hand it on.
  await reader.cdniAuthz.writeSnapshot(`${dir}/again.snapshot`)
  t.equal((await writer.cdniAuthz.loadSnapshot(`${dir}/again.snapshot`, TEXT)).version, 5)
})

t.test('a snapshot of another document, or a damaged one, is refused and the live policy stays', async (t) => {
  const dir = t.testdir({})
  const path = `${dir}/metadata.snapshot`
  const app = await buildApp(t, {})
  app.cdniAuthz.update(TEXT)
  await app.cdniAuthz.writeSnapshot(path)
  app.cdniAuthz.update(OTHER)
  await t.rejects(app.cdniAuthz.loadSnapshot(path, OTHER), { name: 'SnapshotError', reason: 'document' })
  writeFileSync(path, 'CDNISNAP')
  await t.rejects(app.cdniAuthz.loadSnapshot(path, TEXT), { name: 'SnapshotError', reason: 'truncated' })
  t.equal(app.cdniAuthz.version, 2)
  t.equal(await status(app, '192.0.2.1'), 200, 'the document loaded last is still served')
})

t.test('a snapshot of a policy compiled under other options is refused', async (t) => {
  const dir = t.testdir({})
  const path = `${dir}/metadata.snapshot`
  const app = await buildApp(t, { metadata: TEXT })
  await app.cdniAuthz.writeSnapshot(path)
  const other = await buildApp(t, { enforcedElsewhere: ['MI.SourceMetadata'] })
  await t.rejects(other.cdniAuthz.loadSnapshot(path, TEXT), { name: 'SnapshotError', reason: 'context' })
})

t.test('there is nothing to snapshot without a live policy compiled from text', async (t) => {
  const app = await buildApp(t, {})
  const path = `${t.testdir({})}/metadata.snapshot`
  await t.rejects(app.cdniAuthz.writeSnapshot(path), /no policy is live to snapshot/)
  app.cdniAuthz.update(JSON.parse(TEXT))
  await t.rejects(app.cdniAuthz.writeSnapshot(path), /given to update\(\) parsed; a snapshot needs the document text/)
})
