// Multi-node jobs that find each other: the ranks of an N-node job on devices get rank 0's
// address and a port it reserved (OUTPOST_MASTER_ADDR/PORT and MASTER_ADDR/PORT, as torchrun
// gives them), and start only once every rank has reached rank 0; two ranks then talk through
// it. A job whose ranks cannot reach rank 0 fails saying so, well before its timeout.

import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { enrollDevice, startAgent, startRelay, tempDir } from './helpers/programs.js';
import { waitFor } from './helpers/wait.js';

interface Job {
  id: string;
  state: string;
  error: string | null;
  runs: Array<{ rank: number; target: string; state: string; error: string | null }>;
}

/** Rank 0 serves MASTER_PORT and waits for one message; the other ranks send theirs to it. */
const EXCHANGE = `
import { createServer, connect } from 'node:net';
const { MASTER_ADDR, MASTER_PORT, OUTPOST_MASTER_ADDR, OUTPOST_MASTER_PORT, OUTPOST_RANK, OUTPOST_WORLD_SIZE } = process.env;
console.log(\`rank \${OUTPOST_RANK}/\${OUTPOST_WORLD_SIZE} master \${MASTER_ADDR}:\${MASTER_PORT} same=\${MASTER_ADDR === OUTPOST_MASTER_ADDR && MASTER_PORT === OUTPOST_MASTER_PORT}\`);
if (OUTPOST_RANK === '0') {
  const server = createServer((s) => s.on('data', (d) => { console.log('rank 0 got: ' + d.toString().trim()); s.end(); server.close(); }));
  server.listen(Number(MASTER_PORT));
} else {
  // As torch.distributed does: try until rank 0's process listens.
  const send = (n) => {
    const s = connect(Number(MASTER_PORT), MASTER_ADDR, () => s.end('hello from rank ' + OUTPOST_RANK + '\\n'));
    s.on('error', () => (n > 0 ? setTimeout(() => send(n - 1), 100) : process.exit(3)));
  };
  send(100);
}
`;

t.test('multi-node rendezvous', async (t) => {
  const relay = await startRelay(t);
  const bundle = tempDir(t, 'exchange');
  writeFileSync(join(bundle, 'exchange.mjs'), EXCHANGE);
  // Two devices that reach each other on loopback, two whose rank 0 says an address nobody reaches.
  const near = [await enrollDevice(t, relay, 'near-a', 'pool=near'), await enrollDevice(t, relay, 'near-b', 'pool=near')];
  const far = [await enrollDevice(t, relay, 'far-a', 'pool=far'), await enrollDevice(t, relay, 'far-b', 'pool=far')];
  for (const d of [...near, ...far]) t.equal((await relay.cli('targets', 'attach', d.deviceId, '--training')).code, 0);
  for (const d of near) await startAgent(t, d, ['--accept-training']);
  // 192.0.2.1 is TEST-NET-1 (RFC 5737): never routed.
  for (const d of far) await startAgent(t, d, ['--accept-training', '--advertise-address', '192.0.2.1']);
  await waitFor('every device online', async () => (await relay.api<{ devices: Array<{ online: boolean }> }>('GET', '/v1/devices')).body.devices.filter((d) => d.online).length === 4 || undefined, 30_000);
  const job = async (id: string) => (await relay.api<Job>('GET', `/v1/jobs/${id}`)).body;

  await t.test('two ranks get rank 0\'s address and port and exchange a message through it', async (t) => {
    const res = await relay.cli('jobs', 'submit', bundle, '--target', 'pool=near', '--nodes', '2', '--command', 'node exchange.mjs', '--timeout', '2m', '--follow');
    t.equal(res.code, 0, res.stderr);
    t.match(res.stdout, /\[0\] rank 0\/2 master 127\.0\.0\.1:\d+ same=true/);
    t.match(res.stdout, /\[1\] rank 1\/2 master 127\.0\.0\.1:\d+ same=true/);
    t.match(res.stdout, /\[0\] rank 0 got: hello from rank 1/);
    const ports = [...res.stdout.matchAll(/master 127\.0\.0\.1:(\d+)/g)].map((m) => m[1]);
    t.equal(new Set(ports).size, 1, 'both ranks were told the same port');
  });

  await t.test('ranks that cannot reach rank 0 fail saying so, before the job\'s timeout', async (t) => {
    const res = await relay.cli('jobs', 'submit', bundle, '--target', 'pool=far', '--nodes', '2', '--command', 'node exchange.mjs', '--rendezvous-timeout', '3s', '--timeout', '10m', '--json');
    t.equal(res.code, 0, res.stderr);
    const id = (JSON.parse(res.stdout) as Job).id;
    const done = await waitFor('the job to fail', async () => ((j) => (j.state === 'failed' ? j : undefined))(await job(id)), 60_000, 200);
    t.match(done.error, /(cannot reach rank 0|did not reach rank 0) at 192\.0\.2\.1:\d+/);
    t.match(done.error, /the nodes must reach each other directly/);
    const logs = (await relay.api<{ lines: Array<{ text: string }> }>('GET', `/v1/jobs/${id}/logs`)).body.lines;
    t.notOk(logs.some((l) => l.text.includes('master')), 'no rank ran its command');
    // The rank still waiting is told to stop (its desired jobs) and says so.
    await waitFor('every rank to end', async () => (await job(id)).runs.every((r) => r.state === 'failed' || r.state === 'canceled') || undefined, 30_000);
  });
});
