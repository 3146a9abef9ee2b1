// Bundles the dashboard (packages/relay/dashboard/src, TypeScript) with the shared fleet model
// and uPlot into one ES module the relay serves at /assets/app.js. Part of `pnpm run build`.

import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../packages/relay/', import.meta.url));

await build({
  entryPoints: [`${root}dashboard/src/main.ts`],
  outfile: `${root}dist/dashboard/app.js`,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  // OUTPOST_DASHBOARD_MINIFY=0 keeps names readable in a profile (bench/dashboard --profile).
  minify: process.env.OUTPOST_DASHBOARD_MINIFY !== '0',
  sourcemap: 'linked',
  legalComments: 'eof', // uPlot's MIT notice travels with the bundle
  logLevel: 'warning',
});
