// Lint in the Fastify family's style (neostandard), with TypeScript. Formatting is prettier's
// (.prettierrc.json): neostandard's style rules are off so that the two never disagree.
import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, noStyle: true, ignores: ['dist/**', 'coverage/**', '.tap/**', 'bench/results/**'] }),
  {
    rules: {
      // No line over 120 characters unless it is data: a string, a template or a pattern.
      'max-len': [
        'error',
        { code: 120, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true },
      ],
      // `void promise` says on purpose that nothing waits for it; elsewhere void stays refused.
      'no-void': ['error', { allowAsStatement: true }],
    },
  },
  {
    // prom-client metrics register themselves (`registers: [registry]`) and are fed by collect()
    // when scraped: nothing else needs to hold them.
    files: ['src/surrogate/metrics.ts'],
    rules: { 'no-new': 'off' },
  },
]
