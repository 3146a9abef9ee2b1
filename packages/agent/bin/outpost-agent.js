#!/usr/bin/env node
// The outpost-agent command. package.json's bin points here, not into dist/, so that
// `pnpm install` links the command before anything is built; until dist/ exists it says how to
// build it instead of failing on a missing file.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  const repo = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
  process.stderr.write(`error: outpost-agent is not built: run npx pnpm@10 run build in ${repo}\n`);
  process.exit(1);
}
await import(main.href);
