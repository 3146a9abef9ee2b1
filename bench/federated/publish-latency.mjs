// Why a federated round took 60-90 ms per client to hand out (docs/benchmarks.md, "Federated
// rounds"): the latency of sequential QoS 1 retained publishes through aedes, the way the relay
// publishes each client's desired jobs, on loopback TCP with
//   bare:     the sockets handed to aedes as they are;
//   before:   each socket behind a PacketGuard without _writev (the relay's until Dec 2026): a
//             packet aedes corked reached the socket chunk by chunk, its payload held back by
//             Nagle until the peer's delayed ACK;
//   guard:    the relay's PacketGuard (packages/relay/dist), which hands a corked packet to the
//             socket as one write;
//   relay:    the same with TCP_NODELAY on the accepted sockets, as the embedded broker runs it.
//
//   node bench/federated/publish-latency.mjs
import { createRequire } from 'node:module';
import net from 'node:net';

const require = createRequire(new URL('../../packages/relay/package.json', import.meta.url));
const { Aedes } = await import(require.resolve('aedes'));
const mqtt = (await import(require.resolve('mqtt'))).default;
const { PacketGuard, PreAuthBudget } = await import(new URL('../../packages/relay/dist/broker/packet-guard.js', import.meta.url).href);

const DEVICES = 20;
const ROUNDS = 3;
const payload = JSON.stringify({ revision: Date.now(), jobs: [{ jobId: 'job_x', rank: 1, worldSize: 100, bundleSha256: 'a'.repeat(64), command: 'sh train.sh', env: {}, federated: { round: 1, globalModelSha256: 'b'.repeat(64), proximalMu: 0 } }] });

/** The guard as it was: no _writev, so Writable hands it a corked batch one chunk at a time. */
class ChunkByChunkGuard extends PacketGuard {
  _writev = null;
}

async function measure(mode) {
  const broker = await Aedes.createBroker();
  const budget = new PreAuthBudget(1 << 24);
  const server = net.createServer((socket) => {
    if (mode === 'relay') socket.setNoDelay(true);
    if (mode === 'bare') return broker.handle(socket);
    const Guard = mode === 'before' ? ChunkByChunkGuard : PacketGuard;
    const guard = new Guard(socket, { preAuthPacketBytes: 16 * 1024, preAuthBytes: 64 * 1024 }, budget);
    guard.authenticated(1 << 20);
    broker.handle(guard);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `mqtt://127.0.0.1:${server.address().port}`;
  const clients = [];
  for (let i = 0; i < DEVICES; i++) {
    const c = mqtt.connect(url, { clientId: `dev${i}`, reconnectPeriod: 0 });
    clients.push(c);
    await new Promise((r) => c.once('connect', r));
    await c.subscribeAsync(`outpost/v1/devices/dev${i}/jobs`, { qos: 1 });
  }
  const relay = mqtt.connect(url, { clientId: 'relay', reconnectPeriod: 0 });
  await new Promise((r) => relay.once('connect', r));
  const ms = [];
  for (let k = 0; k < ROUNDS; k++) {
    for (let i = 0; i < DEVICES; i++) {
      const t = performance.now();
      await new Promise((resolve, reject) => relay.publish(`outpost/v1/devices/dev${i}/jobs`, payload, { qos: 1, retain: true }, (err) => (err ? reject(err) : resolve())));
      ms.push(performance.now() - t);
    }
  }
  ms.sort((a, b) => a - b);
  for (const c of [relay, ...clients]) c.end(true);
  await new Promise((r) => broker.close(r));
  await new Promise((r) => server.close(r));
  return { p50: ms[Math.floor(ms.length / 2)], p90: ms[Math.floor(ms.length * 0.9)], max: ms.at(-1) };
}

for (const mode of ['bare', 'before', 'guard', 'relay']) {
  const r = await measure(mode);
  process.stdout.write(`${mode.padEnd(8)} ${DEVICES * ROUNDS} sequential QoS 1 retained publishes: p50 ${r.p50.toFixed(2)} ms, p90 ${r.p90.toFixed(2)} ms, max ${r.max.toFixed(2)} ms\n`);
}
process.exit(0);
