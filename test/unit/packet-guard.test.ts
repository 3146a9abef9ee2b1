// The stream between a device's socket and aedes: a packet aedes writes corked (mqtt-packet
// writes one packet as several chunks) reaches the device whole, in one segment, rather than
// its header first and its payload after Nagle's wait for the device's delayed ACK (~40 ms a
// message, which made a federated round of 100 clients take seconds to hand out).

import t, { type Test } from 'tap';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { PacketGuard, PreAuthBudget } from '../../packages/relay/dist/broker/packet-guard.js';

async function pair(t: Test): Promise<{ guard: PacketGuard; device: Socket; socket: Socket }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const device = connect((server.address() as { port: number }).port, '127.0.0.1');
  const [socket] = await accepted;
  await once(device, 'connect');
  const guard = new PacketGuard(socket, { preAuthPacketBytes: 16 * 1024, preAuthBytes: 64 * 1024 }, new PreAuthBudget(1 << 20));
  guard.authenticated(1 << 20);
  t.teardown(() => {
    guard.destroy();
    device.destroy();
    server.close();
  });
  return { guard, device, socket };
}

t.test('a corked packet goes to the socket as one write, and reaches the device whole', async (t) => {
  const { guard, device, socket } = await pair(t);
  // What the socket is asked to send, call by call (net.Socket sends a _writev in one syscall).
  const sends: number[][] = [];
  const raw = socket as unknown as { _write: (c: Buffer, e: string, cb: () => void) => void; _writev: (cs: Array<{ chunk: Buffer }>, cb: () => void) => void };
  const write = raw._write.bind(socket);
  const writev = raw._writev.bind(socket);
  raw._write = (c, e, cb) => (sends.push([c.length]), write(c, e, cb));
  raw._writev = (cs, cb) => (sends.push(cs.map((c) => c.chunk.length)), writev(cs, cb));
  let received = 0;
  device.on('data', (c: Buffer) => (received += c.length));
  for (let i = 1; i <= 5; i++) {
    sends.length = 0;
    guard.cork();
    guard.write(Buffer.from([0x30, 0x7f])); // a PUBLISH's fixed header
    guard.write(Buffer.alloc(20, 1)); // its topic
    guard.write(Buffer.alloc(105, 2)); // its payload
    process.nextTick(() => guard.uncork());
    const deadline = Date.now() + 5000;
    while (received < 127 * i && Date.now() < deadline) await once(device, 'data');
    t.strictSame(sends, [[2, 20, 105]], `packet ${i}: one send of its three chunks`);
    t.equal(received, 127 * i, `packet ${i}: all its bytes arrived`);
  }
});

t.test('a packet written uncorked goes as it is', async (t) => {
  const { guard, device } = await pair(t);
  const got = once(device, 'data') as Promise<[Buffer]>;
  guard.write(Buffer.from([0xc0, 0x00])); // PINGREQ
  t.strictSame([...(await got)[0]], [0xc0, 0x00]);
});
