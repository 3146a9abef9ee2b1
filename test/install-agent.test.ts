// Installing the agent on a device is a package, not a checkout: build the tarball, unpack
// it far from the repo, run it as a device would, and write its systemd unit.

import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURES, runCli, startAgent, startRelay, tempDir, enrollDevice } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';
import { renderUnit } from '../packages/agent/dist/cli/install.js';

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
  const chosen = execFileSync(bin, ['install', '--systemd', '--dry-run', '--grpc-port', 'off', '--accelerator', 'npu', '--accelerator', 'cuda'], { encoding: 'utf8' });
  t.match(chosen, /^ExecStart=.* start --data-dir \/var\/lib\/outpost-agent --port 8000 --grpc-port off --accelerator npu --accelerator cuda$/m, 'the unit starts the agent with the chosen gRPC port and accelerators');
  const badAccelerator = spawnSync(bin, ['install', '--systemd', '--dry-run', '--accelerator', 'NPU!'], { encoding: 'utf8' });
  t.not(badAccelerator.status, 0);
  t.match(badAccelerator.stderr, /--accelerator.*lower-case letters/);
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
  await agent.stop();

  await t.test('the unit takes training consent, datasets and the inference token (from a file)', async (t) => {
    const etc = tempDir(t, 'etc');
    const dataset = tempDir(t, 'images');
    const tokenFile = join(etc, 'outpost-agent', 'inference.token');
    const unitFile = join(etc, 'outpost-agent.service');
    const secret = 'inference-secret-never-on-a-command-line';
    const install = spawnSync(bin, ['install', '--systemd', '--unit-path', unitFile, '--data-dir', d.dataDir, '--port', '0', '--accept-training', '--dataset', `images=${dataset}`, '--token-file', tokenFile], {
      encoding: 'utf8',
      env: { ...process.env, OUTPOST_AGENT_TOKEN: secret },
    });
    t.equal(install.status, 0, install.stderr);
    t.match(install.stdout, `(the inference token is read from ${tokenFile})`);
    t.match(install.stderr, /warning: --dataset images=\/tmp\/.*: the service has a private \/tmp \(PrivateTmp=true\) and will not see it/);
    t.equal(readFileSync(tokenFile, 'utf8'), `${secret}\n`);
    t.equal(statSync(tokenFile).mode & 0o777, 0o600, 'the token file is 0600');
    const unit = readFileSync(unitFile, 'utf8');
    t.notMatch(unit, secret, 'the secret is not in the unit');
    t.match(unit, `LoadCredential=inference-token:${tokenFile}\n`);
    const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!;
    t.match(exec, ` start --data-dir ${d.dataDir} --port 0 --accept-training --dataset images=${dataset} --token-file \${CREDENTIALS_DIRECTORY}/inference-token`);

    // Run what the unit runs, the way systemd would: its credentials directory holds a copy of the token file.
    const credentials = tempDir(t, 'credentials');
    copyFileSync(tokenFile, join(credentials, 'inference-token'));
    const args = exec.split(' ');
    const started = await startAgent(t, d, args.slice(args.indexOf('start') + 1).map((a) => a.replace('${CREDENTIALS_DIRECTORY}', credentials)), join(pkg, 'dist/cli/main.js'));
    const models = (auth?: string) => fetch(`${started.httpUrl}/v2/models/linear`, { headers: auth ? { authorization: auth } : {} });
    await waitFor('linear served again', async () => ((await models(`Bearer ${secret}`)).status === 200 ? true : undefined));
    t.equal((await models()).status, 401, 'the inference API wants the token');
    t.equal((await models('Bearer wrong')).status, 401);
    const target = await waitFor('the device to offer training', async () => {
      const list = JSON.parse((await relay.cli('targets', 'list', '--json')).stdout) as Array<{ name: string; acceptsTraining: boolean; datasets: string[] }>;
      return list.find((x) => x.name === d.deviceId && x.acceptsTraining);
    });
    t.same(target.datasets, ['images']);

    // A token file that exists already is used in place; one that does not is refused.
    const own = join(etc, 'own.token');
    writeFileSync(own, 'mine\n', { mode: 0o644 });
    const inPlace = spawnSync(bin, ['install', '--systemd', '--dry-run', '--token-file', own], { encoding: 'utf8', env: { ...process.env, OUTPOST_AGENT_TOKEN: '' } });
    t.equal(inPlace.status, 0, inPlace.stderr);
    t.match(inPlace.stdout, `LoadCredential=inference-token:${own}\n`);
    t.match(inPlace.stderr, `warning: ${own} is readable by other users (mode 0644): chmod 600 ${own}`);
    const none = spawnSync(bin, ['install', '--systemd', '--dry-run', '--token-file', join(etc, 'nope')], { encoding: 'utf8', env: { ...process.env, OUTPOST_AGENT_TOKEN: '' } });
    t.equal(none.status, 1);
    t.match(none.stderr, /^error: OUTPOST_ERR_BAD_REQUEST: cannot read --token-file .*nope \(ENOENT\): write the token there \(mode 0600\), or set OUTPOST_AGENT_TOKEN and install writes it$/m);
    const dry = spawnSync(bin, ['install', '--systemd', '--dry-run', '--token-file', join(etc, 'later.token')], { encoding: 'utf8', env: { ...process.env, OUTPOST_AGENT_TOKEN: 'x' } });
    t.match(dry.stderr, /\(dry run\) would write the inference token from OUTPOST_AGENT_TOKEN to .*later\.token \(mode 0600\)/);
    t.notOk(existsSync(join(etc, 'later.token')), 'a dry run writes nothing');
    // Paths systemd would expand are escaped; a dataset in a home folder relaxes ProtectHome to read-only.
    const odd = spawnSync(bin, ['install', '--systemd', '--dry-run', '--data-dir', '/var/lib/a%h$USER b'], { encoding: 'utf8' });
    t.match(odd.stdout, ' --data-dir "/var/lib/a%%h$$USER b" ');
    t.match(odd.stdout, /^ReadWritePaths="\/var\/lib\/a%%h\$\$USER b"$/m);
    t.match(odd.stdout, /^StateDirectory=outpost-agent$/m);
    t.match(odd.stdout, /^ProtectHome=true$/m);
    const home = renderUnit({ user: 'outpost', dataDir: '/var/lib/outpost-agent', nodePath: '/usr/bin/node', mainPath: '/opt/a/main.js', port: 8000, datasets: { photos: '/home/me/photos' } });
    t.match(home, /^ProtectHome=read-only$/m, 'a dataset under /home stays readable');
    t.match(home, / --dataset photos=\/home\/me\/photos$/m);
  });
});
