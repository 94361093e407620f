// Regression: static mode served one folder for every host, so a HostIndex naming two hosts let
// the freer host's ACLs open the other's files; and /secret served secret/index.html past a
// /secret/* pattern.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AUTH, config, rawGet, start } from '../helpers/surrogate.js'

const deny = { 'generic-metadata-type': 'MI.LocationACL', 'generic-metadata-value': { locations: [] } }
const video = {
  host: 'video.example.com',
  'host-metadata': {
    metadata: [],
    paths: [{ 'path-pattern': { pattern: '/secret/*' }, 'path-metadata': { metadata: [deny] } }],
  },
}

t.test('one folder: a push naming two hosts is a 400 and the live policy stays; no index file is served', async (t) => {
  const cfg = config()
  mkdirSync(join(cfg.root as string, 'secret'))
  writeFileSync(join(cfg.root as string, 'secret', 'x.txt'), 'SECRET')
  writeFileSync(join(cfg.root as string, 'secret', 'index.html'), 'SECRET')
  const s = await start(cfg)
  t.teardown(() => s.surrogate.close())
  t.equal((await s.push({ hosts: [video] })).status, 200)
  const refused = await s.push({ hosts: [video, { host: 'free.example.com', 'host-metadata': { metadata: [] } }] })
  t.equal(refused.status, 400)
  t.match(await refused.json(), { errors: [{ pointer: '/hosts/1/host', message: /serves one folder/ }] })
  t.same(await (await fetch(`${s.apiUrl}/cdni/metadata`, { headers: AUTH })).json(), { hosts: [video] })
  t.equal(
    (await rawGet(s.contentUrl, '/secret/x.txt', 'free.example.com')).status,
    403,
    'free.example.com is no HostMatch',
  )
  t.equal((await rawGet(s.contentUrl, '/secret/x.txt', 'video.example.com')).status, 403)
  const folder = await rawGet(s.contentUrl, '/secret', 'video.example.com')
  t.equal(folder.status, 404)
  t.not(folder.body, 'SECRET')
})
