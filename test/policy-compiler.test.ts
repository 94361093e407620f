import t from 'tap'
import type { CompiledPolicy } from '../src/compile.js'
import type { Worker } from 'node:worker_threads'
import { PolicyCompiler } from '../src/policy-compiler.js'
import { preparePolicy, transferList } from '../src/prepare.js'
import { DEFAULT_LOAD_CONTEXT } from '../src/metadata.js'

const doc = JSON.stringify({ deliveryCriteria: [{ region: { subnet: ['10.0.0.0/8', '2001:db8::/32'], subnet2: '10.5.0.0/16' } }] })

t.test('the worker prepares what preparePolicy prepares, typed arrays included', async (t) => {
  const compiler = new PolicyCompiler()
  t.teardown(() => compiler.close())
  const remote = await compiler.prepare(doc, DEFAULT_LOAD_CONTEXT)
  const local = preparePolicy(doc, DEFAULT_LOAD_CONTEXT)
  if (!remote.ok || !local.ok) throw new Error('expected both to succeed')
  t.equal(remote.etag, local.etag)
  t.same(remote.compiled.summary, local.compiled.summary)
  const [r, l] = [remote.compiled as CompiledPolicy, local.compiled as CompiledPolicy]
  t.ok(r.subnetV4.table.entries instanceof Uint32Array)
  t.same(Array.from(r.subnetV6.table.entries), Array.from(l.subnetV6.table.entries))
  t.match(await compiler.prepare('{ nope', DEFAULT_LOAD_CONTEXT), { ok: false, errors: [{ message: /line 1, column 3/ }] })
})

t.test('preparePolicy refuses bad JSON and invalid documents with their problems', async (t) => {
  t.match(preparePolicy('[', DEFAULT_LOAD_CONTEXT), { ok: false, errors: [{ pointer: '', message: /invalid JSON at line 1, column 2/ }], warnings: [] })
  t.match(preparePolicy('{"deliveryCriteria":[]}', DEFAULT_LOAD_CONTEXT), { ok: false, errors: [{ pointer: '/deliveryCriteria' }] })
})

t.test('transferList names each buffer of a compiled policy once', async (t) => {
  const local = preparePolicy(doc, DEFAULT_LOAD_CONTEXT)
  if (!local.ok) throw new Error('expected success')
  const buffers = transferList(local.compiled)
  t.equal(buffers.length, 18, 'six tables: entries, index and bits each')
  t.equal(new Set(buffers).size, buffers.length)
})

t.test('a worker that dies fails its pending jobs, and the next job gets a new worker', async (t) => {
  const compiler = new PolicyCompiler()
  t.teardown(() => compiler.close())
  const pending = compiler.prepare(doc, DEFAULT_LOAD_CONTEXT)
  await compiler.close()
  await t.rejects(pending, { message: /worker exited/ })
  const again = await compiler.prepare(doc, DEFAULT_LOAD_CONTEXT)
  t.equal(again.ok, true)
})

t.test('a worker that crashes on its own is replaced on the next job', async (t) => {
  const compiler = new PolicyCompiler()
  t.teardown(() => compiler.close())
  t.equal((await compiler.prepare(doc, DEFAULT_LOAD_CONTEXT)).ok, true)
  const pending = compiler.prepare(doc, DEFAULT_LOAD_CONTEXT)
  await (compiler as unknown as { worker: Worker }).worker.terminate()
  await t.rejects(pending, { message: /worker exited/ })
  t.equal((await compiler.prepare(doc, DEFAULT_LOAD_CONTEXT)).ok, true)
})
