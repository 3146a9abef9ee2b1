// Builds the self-contained agent package to copy to a device: the built agent with its
// production dependencies (onnxruntime-node's binaries for that platform only), a launcher
// in bin/, as out/outpost-agent-VERSION-linux-ARCH.tar.gz. The device needs Node.js 20+.
//
//   pnpm run package:agent [--arch x64|arm64|all] [--out DIR]

import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AGENT_NODE_FLAGS } from '../packages/agent/dist/cli/install.js';

const ROOT = resolve(import.meta.dirname, '..');
const { values } = parseArgs({ options: { arch: { type: 'string', default: 'all' }, out: { type: 'string', default: join(ROOT, 'out') } } });
const ARCHES = values.arch === 'all' ? ['x64', 'arm64'] : [values.arch!];
for (const arch of ARCHES) if (arch !== 'x64' && arch !== 'arm64') throw new Error(`--arch ${arch}: onnxruntime-node ships linux binaries for x64 and arm64 only`);
const out = resolve(values.out!);
const version = (JSON.parse(readFileSync(join(ROOT, 'packages/agent/package.json'), 'utf8')) as { version: string }).version;

function pnpm(args: string[]): void {
  // Run the same pnpm that runs this script when there is one, else the README's.
  const execPath = process.env.npm_execpath;
  if (execPath && /pnpm/.test(execPath)) execFileSync(process.execPath, [execPath, ...args], { cwd: ROOT, stdio: 'inherit' });
  else execFileSync('npx', ['--yes', 'pnpm@10', ...args], { cwd: ROOT, stdio: 'inherit' });
}

/** Deletes onnxruntime-node binaries for every platform but linux/ARCH (they are 85% of the size). */
function pruneOnnxruntime(dir: string, arch: string): void {
  const store = join(dir, 'node_modules/.pnpm');
  for (const entry of readdirSync(store).filter((e) => e.startsWith('onnxruntime-node@'))) {
    const bin = join(store, entry, 'node_modules/onnxruntime-node/bin');
    for (const napi of readdirSync(bin)) {
      for (const platform of readdirSync(join(bin, napi))) {
        if (platform !== 'linux') rmSync(join(bin, napi, platform), { recursive: true, force: true });
        else for (const a of readdirSync(join(bin, napi, platform))) if (a !== arch) rmSync(join(bin, napi, platform, a), { recursive: true, force: true });
      }
    }
  }
}

// The same V8 flags as the systemd unit (AGENT_NODE_FLAGS), for an agent started by hand.
const LAUNCHER = `#!/bin/sh
# Runs the Outpost agent from this folder with the system's Node.js (20 or newer).
here="$(dirname "$(readlink -f "$0")")"
exec node ${AGENT_NODE_FLAGS.join(' ')} "$here/../dist/cli/main.js" "$@"
`;

const staging = join(out, '.staging');
rmSync(staging, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
pnpm(['--filter', '@outpost/agent', 'deploy', '--prod', '--legacy', staging]);

for (const arch of ARCHES) {
  const name = `outpost-agent-${version}-linux-${arch}`;
  const dir = join(out, name);
  rmSync(dir, { recursive: true, force: true });
  cpSync(staging, dir, { recursive: true, verbatimSymlinks: true });
  pruneOnnxruntime(dir, arch);
  mkdirSync(join(dir, 'bin'), { recursive: true });
  writeFileSync(join(dir, 'bin/outpost-agent'), LAUNCHER);
  chmodSync(join(dir, 'bin/outpost-agent'), 0o755);
  const tarball = join(out, `${name}.tar.gz`);
  execFileSync('tar', ['-czf', tarball, '-C', out, name]);
  process.stdout.write(`${tarball} (${(statSync(tarball).size / 1024 ** 2).toFixed(1)} MiB)\n`);
}
rmSync(staging, { recursive: true, force: true });
if (!existsSync(out)) throw new Error('nothing was built');
