import t from 'tap'
import type { CompiledPolicy } from '../src/policy/compile.js'
import type { Worker } from 'node:worker_threads'
import { PolicyCompiler } from '../src/worker/client.js'
import { preparePolicy, transferList } from '../src/load/prepare.js'
import { DEFAULT_LOAD_CONTEXT } from '../src/load/translate.js'

const doc = JSON.stringify({
  deliveryCriteria: [{ region: { subnet: ['10.0.0.0/8', '2001:db8::/32'], subnet2: '10.5.0.0/16' } }],
})

t.test('the worker prepares what preparePolicy prepares, typed arrays included', async (t) => {
  const compiler = new PolicyCompiler()
  t.teardown(() => compiler.close())
  const remote = await compiler.prepare(doc, DEFAULT_LOAD_CONTEXT)
  const local = preparePolicy(doc, DEFAULT_LOAD_CONTEXT)
  if (!remote.ok || !local.ok) throw new Error('expected both to succeed')
  t.equal(remote.etag, local.etag)
  t.same(remote.compiled.summary, local.compiled.summary)
  const [r, l] = [remote.compiled.policies[0] as CompiledPolicy, local.compiled.policies[0] as CompiledPolicy]
  t.ok(r.subnetV4.table.nodes instanceof Uint32Array)
  t.same(Array.from(r.subnetV6.table.nodes), Array.from(l.subnetV6.table.nodes))
  t.same(Array.from(r.subnetV6.table.leaves), Array.from(l.subnetV6.table.leaves))
  t.match(await compiler.prepare('{ nope', DEFAULT_LOAD_CONTEXT), {
    ok: false,
    errors: [{ message: /line 1, column 3/ }],
  })
})

t.test('preparePolicy refuses bad JSON and invalid documents with their problems', async (t) => {
  t.match(preparePolicy('[', DEFAULT_LOAD_CONTEXT), {
    ok: false,
    errors: [{ pointer: '', message: /invalid JSON at line 1, column 2/ }],
    warnings: [],
  })
  t.match(preparePolicy('{"deliveryCriteria":[]}', DEFAULT_LOAD_CONTEXT), {
    ok: false,
    errors: [{ pointer: '/deliveryCriteria' }],
  })
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

t.test('closing a compiler that never started a worker does nothing', async (t) => {
  await t.resolves(new PolicyCompiler().close())
})

t.test('close() resolves even when the worker answers its last job during the termination', async (t) => {
  // The answer unreferenced the worker while terminate() waited for its 'exit', and the empty
  // event loop ended the process with close() unresolved. A listener placed before the
  // compiler's own closes the compiler as the answer arrives, so the race is taken every time.
  const compiler = new PolicyCompiler()
  await compiler.prepare(doc, DEFAULT_LOAD_CONTEXT)
  const { worker } = (compiler as unknown as { live: { worker: Worker } }).live
  let closing: Promise<void> | undefined
  worker.prependOnceListener('message', () => {
    closing = compiler.close()
  })
  t.equal((await compiler.prepare(doc, DEFAULT_LOAD_CONTEXT)).ok, true)
  await closing
  t.pass('close() resolved')
})

t.test('a job sent while the previous worker is still exiting is not failed by that exit', async (t) => {
  const compiler = new PolicyCompiler()
  t.teardown(() => compiler.close())
  await compiler.prepare(doc, DEFAULT_LOAD_CONTEXT)
  const closing = compiler.close()
  const next = compiler.prepare(doc, DEFAULT_LOAD_CONTEXT)
  await closing
  t.equal((await next).ok, true)
})

t.test('a worker that crashes on its own is replaced on the next job', async (t) => {
  const compiler = new PolicyCompiler()
  t.teardown(() => compiler.close())
  t.equal((await compiler.prepare(doc, DEFAULT_LOAD_CONTEXT)).ok, true)
  const first = (compiler as unknown as { live: { worker: Worker } }).live.worker
  // A job long enough (tens of milliseconds of parsing and compiling) that the worker is surely
  // still on it when it dies; a small one can finish and answer before the termination lands.
  const subnets = Array.from({ length: 30_000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.0/24`)
  const pending = compiler.prepare(
    JSON.stringify({ deliveryCriteria: [{ region: { subnet: subnets } }] }),
    DEFAULT_LOAD_CONTEXT,
  )
  await first.terminate()
  await t.rejects(pending, { message: /worker exited/ })
  t.equal((await compiler.prepare(doc, DEFAULT_LOAD_CONTEXT)).ok, true)
  t.not((compiler as unknown as { live: { worker: Worker } }).live.worker, first, 'a new worker')
})
