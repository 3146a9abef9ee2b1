// The N-node rendezvous barrier: rank 0 waits for every other rank's check-in with the job's
// secret; a wrong secret, a rank out of range or a flood of bytes is refused without counting;
// missing ranks are named at the timeout; a joining rank that finds nothing says where it looked.

import t from 'tap';
import { connect, type Socket } from 'node:net';
import { waitFor } from '../helpers/wait.js';
import { hostRendezvous, joinRendezvous, localAddressToward } from '@outpost/shared';

const SECRET = 'a-secret-of-enough-length';

/** Sends raw bytes to the point and returns what it answered. */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    let answer = '';
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    s.on('data', (d) => (answer += d.toString()));
    s.on('close', () => resolve(answer));
    s.on('error', () => resolve(answer));
  });
}

t.test('rank 0 is ready once every other rank checked in with the secret', async (t) => {
  const host = await hostRendezvous({ addr: '127.0.0.1', secret: SECRET, worldSize: 3, timeoutMs: 10_000 });
  t.teardown(() => host.close());
  let ready = false;
  void host.ready.then(() => (ready = true));
  t.equal(await raw(host.port, `outpost-rendezvous 1 wrong-secret-of-enough-length\n`), 'refused\n', 'a wrong secret');
  t.equal(await raw(host.port, `outpost-rendezvous 3 ${SECRET}\n`), 'refused\n', 'a rank past the world size');
  t.equal(await raw(host.port, `outpost-rendezvous 0 ${SECRET}\n`), 'refused\n', 'rank 0 itself');
  t.equal(await raw(host.port, 'x'.repeat(10_000)), '', 'a flood without a newline is cut off');
  await joinRendezvous({ point: host, rank: 1, secret: SECRET, timeoutMs: 5_000 });
  await joinRendezvous({ point: host, rank: 1, secret: SECRET, timeoutMs: 5_000 });
  t.equal(ready, false, 'one rank twice is not two ranks');
  await joinRendezvous({ point: host, rank: 2, secret: SECRET, timeoutMs: 5_000 });
  await host.ready;
  t.pass('ready with ranks 1 and 2');
});

t.test('a flood of silent connections neither holds the port nor keeps the ranks apart', async (t) => {
  const host = await hostRendezvous({ addr: '127.0.0.1', secret: SECRET, worldSize: 3, timeoutMs: 20_000 });
  t.teardown(() => host.close());
  // 40 connections that never say a word: four times the cap of 2 × 3 + 4.
  let closedByRank0 = 0;
  const flood = await Promise.all(
    Array.from({ length: 40 }, () => new Promise<Socket>((resolve) => {
      const s = connect(host.port, '127.0.0.1', () => resolve(s));
      s.on('error', () => undefined);
      s.on('close', () => closedByRank0++);
    })),
  );
  t.teardown(() => flood.forEach((s) => s.destroy()));
  await joinRendezvous({ point: host, rank: 1, secret: SECRET, timeoutMs: 15_000 });
  await joinRendezvous({ point: host, rank: 2, secret: SECRET, timeoutMs: 15_000 });
  await host.ready;
  t.pass('both ranks checked in past the flood');
  await waitFor('every silent connection closed by rank 0', () => closedByRank0 === 40, 15_000);
  t.equal(closedByRank0, 40, 'none is kept: past the cap at once, the rest after 2 s of silence');
});

t.test('at the timeout rank 0 names the ranks that never came', async (t) => {
  const host = await hostRendezvous({ addr: '127.0.0.1', secret: SECRET, worldSize: 4, timeoutMs: 300 });
  t.teardown(() => host.close());
  await joinRendezvous({ point: host, rank: 2, secret: SECRET, timeoutMs: 5_000 });
  await t.rejects(host.ready, /ranks 1, 3 did not reach rank 0 at 127\.0\.0\.1:\d+ within 0 s: the nodes must reach each other directly/);
});

t.test('a joining rank that cannot reach rank 0 says where it looked', async (t) => {
  const host = await hostRendezvous({ addr: '127.0.0.1', secret: SECRET, worldSize: 2, timeoutMs: 10_000 });
  const port = host.port;
  await host.close();
  await t.rejects(joinRendezvous({ point: { addr: '127.0.0.1', port }, rank: 1, secret: SECRET, timeoutMs: 300 }), new RegExp(`cannot reach rank 0 at 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`));
  const other = await hostRendezvous({ addr: '127.0.0.1', secret: 'another-jobs-secret-here', worldSize: 2, timeoutMs: 10_000 });
  t.teardown(() => other.close());
  await t.rejects(joinRendezvous({ point: other, rank: 1, secret: SECRET, timeoutMs: 1_000 }), /refused this rank \(refused\): is it another job's port/);
});

t.test('canceled while waiting', async (t) => {
  const abort = new AbortController();
  const host = await hostRendezvous({ addr: '127.0.0.1', secret: SECRET, worldSize: 2, timeoutMs: 10_000, signal: abort.signal });
  t.teardown(() => host.close());
  abort.abort();
  await t.rejects(host.ready, /canceled while waiting for the other ranks/);
});

t.test('the local address toward a host', async (t) => {
  t.equal(await localAddressToward('127.0.0.1'), '127.0.0.1');
});
