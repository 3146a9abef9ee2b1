// Installing the agent on a device is a package, not a checkout: build the tarball, unpack
// it far from the repo, run it as a device would, and write its systemd unit.

import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURES, runCli, startAgent, startRelay, tempDir, enrollDevice } from './helpers/programs.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

t.test('the packaged agent runs on its own and installs as a service', async (t) => {
  const out = tempDir(t, 'pkg');
  execFileSync(process.execPath, [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'scripts/package-agent.ts'), '--arch', 'x64', '--out', out], { cwd: ROOT, stdio: 'pipe' });
  const tarball = readdirSync(out).find((f) => f.endsWith('-linux-x64.tar.gz'));
  t.ok(tarball, 'a linux-x64 tarball');
  const device = tempDir(t, 'device');
  execFileSync('tar', ['-xzf', join(out, tarball!), '-C', device]);
  const pkg = join(device, tarball!.replace(/\.tar\.gz$/, ''));
  const bin = join(pkg, 'bin/outpost-agent');
  const ort = readdirSync(join(pkg, 'node_modules/.pnpm')).find((e) => e.startsWith('onnxruntime-node@'))!;
  t.same(readdirSync(join(pkg, 'node_modules/.pnpm', ort, 'node_modules/onnxruntime-node/bin/napi-v6')), ['linux'], 'only linux binaries');
  t.same(readdirSync(join(pkg, 'node_modules/.pnpm', ort, 'node_modules/onnxruntime-node/bin/napi-v6/linux')), ['x64']);

  t.match(readFileSync(bin, 'utf8'), /^exec node --max-semi-space-size=1 --no-concurrent-recompilation "/m, 'the launcher runs node with the unit\'s V8 flags');
  const help = execFileSync(bin, ['--help'], { encoding: 'utf8' });
  t.match(help, /enroll/);
  t.match(help, /install/);

  const unit = execFileSync(bin, ['install', '--systemd', '--dry-run', '--user', 'edge'], { encoding: 'utf8' });
  t.match(unit, /^User=edge$/m);
  t.match(unit, /^Restart=on-failure$/m);
  t.match(unit, new RegExp(`^ExecStart=\\S*node --max-semi-space-size=1 --no-concurrent-recompilation ${pkg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/dist/cli/main.js start --data-dir /var/lib/outpost-agent --port 8000$`, 'm'));
  t.match(unit, /^ProtectSystem=strict$/m);
  const unitPath = join(device, 'outpost-agent.service');
  const wrote = execFileSync(bin, ['install', '--systemd', '--unit-path', unitPath], { encoding: 'utf8' });
  t.match(wrote, /systemctl daemon-reload && systemctl enable --now outpost-agent/);
  t.equal(readFileSync(unitPath, 'utf8'), execFileSync(bin, ['install', '--systemd', '--dry-run'], { encoding: 'utf8' }));

  // Now use it for real: enroll against a relay, serve a deployed model.
  const relay = await startRelay(t);
  const d = await enrollDevice(t, relay, 'packaged');
  t.ok(existsSync(join(d.dataDir, 'device.json')));
  const agent = await startAgent(t, d, [], bin);
  await relay.cli('models', 'push', join(FIXTURES, 'linear.onnx'), '--name', 'linear');
  const dep = await relay.cli('deploy', 'linear', '--device', d.deviceId, '--wait');
  t.equal(dep.code, 0, dep.stderr);
  const res = await agent.infer<{ outputs: Array<{ shape: number[] }> }>('linear', { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
  t.equal(res.status, 200);
  t.same(res.body.outputs[0]!.shape, [1, 3]);
  const status = await runCli(join(pkg, 'dist/cli/main.js'), ['status', '--data-dir', d.dataDir, '--json']);
  t.match(JSON.parse(status.stdout), { running: true, models: [{ name: 'linear', state: 'serving' }] });
});
