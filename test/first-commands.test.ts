// The commands README.md gives after its quick start work as printed, from the repo root:
// `./node_modules/.bin/outpost-relay`, `npx pnpm@10 exec outpost-relay` and plain names with
// node_modules/.bin on PATH, which run this checkout's CLIs and never ask the public registry for a package of that name. Before a build
// they say how to build instead of failing on a missing file.

import t from 'tap';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand, tempDir, type CliResult } from './helpers/programs.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url)).replace(/\/$/, '');
const CLIS = [
  { name: 'outpost-relay', pkg: 'packages/relay', usage: /^Usage: outpost-relay \[options\] \[command\]/m },
  { name: 'outpost-agent', pkg: 'packages/agent', usage: /^Usage: outpost-agent \[options\] \[command\]/m },
];

/**
 * The environment a person's shell has: `pnpm test` puts pnpm's own settings in npm_config_*
 * variables, which npm (run inside it) warns about; a user typing the command has none.
 */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { OUTPOST_LOG_LEVEL: 'warn' };
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) || k === 'npm_config_yes') env[k] = v;
  return env;
}

function run(cmd: string, args: string[], cwd = ROOT): Promise<CliResult> {
  return runCommand(cmd, args, { env: userEnv(), cwd });
}

t.test('each bin is a committed launcher, so pnpm install links it before any build', async (t) => {
  for (const cli of CLIS) {
    const pkg = JSON.parse(readFileSync(join(ROOT, cli.pkg, 'package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };
    t.equal(pkg.bin[cli.name], `./bin/${cli.name}.js`, `${cli.name} does not point into dist/`);
    t.ok(pkg.files.includes('bin'), 'and is packed with the package');
    t.ok(existsSync(join(ROOT, 'node_modules/.bin', cli.name)), `pnpm linked ${cli.name} into the root's node_modules/.bin`);
  }
});

t.test('./node_modules/.bin/CLI --help works from the repo root', async (t) => {
  for (const cli of CLIS) {
    const res = await run(`./node_modules/.bin/${cli.name}`, ['--help']);
    t.equal(res.code, 0, res.stderr);
    t.match(res.stdout, cli.usage);
    t.equal(res.stderr, '');
  }
});

t.test('with node_modules/.bin on PATH, as the README suggests, the plain names work', async (t) => {
  const res = await run('sh', ['-c', 'export PATH="$PWD/node_modules/.bin:$PATH"; outpost-relay --version && outpost-agent --version']);
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /^\d+\.\d+\.\d+\n\d+\.\d+\.\d+\n$/);
});

t.test('npx pnpm@10 exec CLI works, and npm has nothing to warn about in this repo', async (t) => {
  for (const cli of CLIS) {
    const res = await run('npx', ['--yes', 'pnpm@10', 'exec', cli.name, '--help']);
    t.equal(res.code, 0, res.stderr);
    t.match(res.stdout, cli.usage);
    t.notMatch(res.stderr, /npm warn/i, 'no warning about the repo config (pnpm settings live in pnpm-workspace.yaml)');
  }
  const npm = await run('npm', ['--version']);
  t.equal(npm.code, 0);
  t.equal(npm.stderr, '', 'npm reads no pnpm setting it does not know');
});

t.test('a launcher before the build says how to build', async (t) => {
  // The launcher as it lies in a fresh clone: its package, no dist/.
  const repo = tempDir(t, 'clone');
  for (const cli of CLIS) {
    mkdirSync(join(repo, cli.pkg, 'bin'), { recursive: true });
    copyFileSync(join(ROOT, cli.pkg, 'package.json'), join(repo, cli.pkg, 'package.json'));
    copyFileSync(join(ROOT, cli.pkg, 'bin', `${cli.name}.js`), join(repo, cli.pkg, 'bin', `${cli.name}.js`));
    const res = await run(process.execPath, [join(repo, cli.pkg, 'bin', `${cli.name}.js`), '--help'], repo);
    t.equal(res.code, 1);
    t.equal(res.stderr, `error: ${cli.name} is not built: run npx pnpm@10 run build in ${repo}\n`);
    t.equal(res.stdout, '');
  }
});
