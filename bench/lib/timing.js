// The timing loop of the in-process micro-benchmarks (site.js, geo.js): a tenth of the calls to
// warm up, then `count` calls timed; the answers are summed so the work cannot be optimized away.
export function nsPerCall(fn, count) {
  for (let i = 0; i < count / 10; i++) fn(i)
  const t0 = performance.now()
  let sink = 0
  for (let i = 0; i < count; i++) sink += fn(i) ? 1 : 0
  return { ns: ((performance.now() - t0) * 1e6) / count, sink }
}
