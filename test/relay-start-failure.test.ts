// A relay start that fails part-way (a port taken, a broker it cannot use) says what failed in
// one line and undoes what it did: no port held, no relay.json, no admin token nobody saw, and
// on a first start no data dir. The next start on the same data dir then works and prints the
// admin token.

import t, { type Test } from 'tap';
import { createServer, type Server } from 'node:net';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, tlsFetch } from '@outpost/shared';
import { createRelay } from '@outpost/relay';
import { RELAY_BIN, closedPort, runCli, startRelay, tempDir } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

/** Holds a loopback port for the test, as another program would. */
async function holdPort(t: Test, port = 0): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as { port: number }).port;
}

/** Whether this process can listen on the port: nothing else holds it. */
async function portIsFree(port: number): Promise<boolean> {
  const server = createServer();
  const free = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (free) await new Promise<void>((resolve) => server.close(() => resolve()));
  return free;
}

const start = (dataDir: string, ...args: string[]) => runCli(RELAY_BIN, ['start', '--data-dir', dataDir, '--host', '127.0.0.1', '--http-port', '0', '--mqtt-port', '0', ...args]);

t.test('a taken HTTP port on a first start: one line, nothing left, and the next start works', async (t) => {
  const busy = await holdPort(t);
  const dataDir = join(tempDir(t, 'relay-parent'), 'relay');
  const failed = await start(dataDir, '--http-port', String(busy));
  t.equal(failed.code, 1);
  t.equal(failed.stderr, `error: HTTP port ${busy} on 127.0.0.1 is in use: pick another with --http-port (0 picks a free one)\n`);
  t.notOk(existsSync(dataDir), 'a first start that failed leaves no data dir (and so no admin token)');

  const relay = await startRelay(t, { dataDir });
  // Printed once the relay is ready, so it may follow the ready line.
  const printed = await waitFor('the admin token printed', () => /Admin token \(shown once[^\n]*\n\s+(opa_\S+)/.exec(relay.stderr())?.[1]);
  t.ok(printed, 'the next start prints the admin token');
  t.equal(printed, relay.token, 'the one saved in admin.token');
  const list = await runCli(RELAY_BIN, ['devices', 'list', '--json', '--relay', relay.httpUrl, '--ca', relay.caFile!, '--token', printed!]);
  t.equal(list.code, 0, list.stderr);
  t.same(JSON.parse(list.stdout), []);
});

t.test('a taken HTTP port on a data dir in use before: its data and token are kept', async (t) => {
  const first = await startRelay(t);
  await first.stop();
  const tokenBefore = readFileSync(join(first.dataDir, 'admin.token'), 'utf8');
  const busy = await holdPort(t);
  const failed = await start(first.dataDir, '--http-port', String(busy));
  t.equal(failed.code, 1);
  t.match(failed.stderr, /^error: HTTP port \d+ on 127\.0\.0\.1 is in use/);
  t.ok(existsSync(join(first.dataDir, 'relay.db')), 'the database stays');
  t.equal(readFileSync(join(first.dataDir, 'admin.token'), 'utf8'), tokenBefore, 'the admin token stays as it was');
  t.notOk(existsSync(join(first.dataDir, 'relay.json')), 'no relay.json points at a relay that is not there');
  const again = await startRelay(t, { dataDir: first.dataDir });
  t.notMatch(again.stderr(), /Admin token/, 'no new admin token on a data dir that has one');
  t.equal((await again.cli('devices', 'list')).code, 0);
});

t.test('a taken MQTT port and an unusable --mqtt-url say so', async (t) => {
  const busy = await holdPort(t);
  const mqtt = await start(join(tempDir(t, 'relay'), 'd'), '--mqtt-port', String(busy));
  t.equal(mqtt.code, 1);
  t.equal(mqtt.stderr, `error: MQTT port ${busy} on 127.0.0.1 is in use: pick another with --mqtt-port (0 picks a free one), or use a broker that runs already with --mqtt-url\n`);

  for (const url of ['broker:1883', 'not a url', 'http://127.0.0.1:1883']) {
    const bad = await start(join(tempDir(t, 'relay'), 'd'), '--mqtt-url', url);
    t.equal(bad.code, 1);
    t.equal(bad.stderr, `error: --mqtt-url "${url}" is not a broker URL: give it as mqtt://USER:PASS@HOST:PORT (or mqtts://, ws://, wss://)\n`);
  }

  const port = await closedPort();
  const refused = await start(join(tempDir(t, 'relay'), 'd'), '--mqtt-url', `mqtt://127.0.0.1:${port}`);
  t.equal(refused.code, 1);
  t.match(refused.stderr, new RegExp(`^error: cannot connect to the MQTT broker at mqtt://127\\.0\\.0\\.1:${port}: connect ECONNREFUSED .*: check --mqtt-url`));

  const nowhere = await start(join(tempDir(t, 'relay'), 'd'), '--host', '192.0.2.1');
  t.equal(nowhere.code, 1);
  t.match(nowhere.stderr, /^error: cannot listen on 192\.0\.2\.1: this machine has no such address \(EADDRNOTAVAIL\): pick another with --host\n$/);
});

t.test('in one process, a failed start frees what it opened, so a retry there works', async (t) => {
  const log = createLogger({ name: 'relay', level: 'silent' });
  const dataDir = join(tempDir(t, 'relay-parent'), 'relay');
  const busy = await holdPort(t);
  const mqttPort = await closedPort();
  await t.rejects(createRelay({ dataDir, host: '127.0.0.1', httpPort: busy, mqttPort, log }), { code: 'EADDRINUSE', message: /^HTTP port \d+ on 127\.0\.0\.1 is in use/ });
  t.ok(await portIsFree(mqttPort), 'the embedded broker let go of its port');
  t.notOk(existsSync(dataDir));

  // What the demo does when 8080 is taken: the same data dir, another port.
  const relay = await createRelay({ dataDir, host: '127.0.0.1', httpPort: 0, mqttPort, log });
  t.match(relay.newAdminToken, /^opa_/, 'the retry makes the admin token');
  const res = await tlsFetch({ ca: relay.ca?.pem })(`${relay.httpUrl}/v1/devices`, { headers: { authorization: `Bearer ${relay.newAdminToken}` } });
  t.equal(res.status, 200, 'and takes requests with it');
  await relay.close();

  // A start that fails after it listened (here: it cannot write the admin token) lets go of
  // the HTTP port and removes relay.json, and keeps the data dir it did not make.
  const other = join(tempDir(t, 'relay-parent'), 'relay');
  mkdirSync(join(other, 'admin.token'), { recursive: true });
  const httpPort = await closedPort();
  await t.rejects(createRelay({ dataDir: other, host: '127.0.0.1', httpPort, mqttPort, log }), { code: 'EISDIR' });
  t.ok(await portIsFree(httpPort), 'the HTTP API let go of its port');
  t.ok(await portIsFree(mqttPort), 'and the broker of its own');
  t.notOk(existsSync(join(other, 'relay.json')));
  t.ok(existsSync(join(other, 'relay.db')), 'a data dir that was there stays');
});

t.test('--ca-dir and --artifacts-dir that cannot be used: one line naming the flag, nothing left', async (t) => {
  const parent = tempDir(t, 'relay-parent');
  const aFile = join(parent, 'a-file');
  writeFileSync(aFile, 'not a folder');
  const cases: Array<[string, string, RegExp]> = [
    ['--ca-dir', join(aFile, 'ca'), /ENOTDIR/],
    ['--artifacts-dir', join(aFile, 'artifacts'), /ENOTDIR/],
    // Longer than any path the system takes.
    ['--ca-dir', join(parent, 'x'.repeat(5000)), /ENAMETOOLONG/],
    ['--artifacts-dir', join(parent, 'x'.repeat(5000)), /ENAMETOOLONG/],
  ];
  for (const [flag, dir, code] of cases) {
    const dataDir = join(parent, `relay-${flag.slice(2)}-${dir.length}`);
    const failed = await start(dataDir, flag, dir);
    t.equal(failed.code, 1, `${flag} ${dir.slice(0, 40)}… fails the start`);
    const lines = failed.stderr.trim().split('\n');
    t.equal(lines.length, 1, 'in one line');
    t.ok(lines[0]!.startsWith(`error: ${flag} ${dir}: cannot use it (`), 'naming the flag and the folder');
    t.match(lines[0], code);
    t.match(lines[0], /give a folder this relay's user can create and write$/, 'and the fix');
    t.notOk(existsSync(dataDir), 'a first start that failed leaves no data dir');
  }
});
