// Raw MQTT packets at the embedded broker, from strangers and from an enrolled device: lengths
// that lie, packets before CONNECT, oversized and half-sent CONNECTs, garbage. Memory before
// authentication stays bounded, the attackers' connections close, and the bystander device
// keeps serving and reporting.

import t from 'tap';
import { randomBytes } from 'node:crypto';
import { connackCode, connectPacket, fixedHeader, publishPacket, rawConnect } from '../helpers/mqtt-codec.js';
import { LINEAR_REQUEST, fleetStillWorks, relayMetric, relayWithBystander, rssMiB } from '../helpers/hostile.js';
import { enrollDevice } from '../helpers/programs.js';
import { waitFor } from '../helpers/wait.js';

t.test('raw packets at the broker', async (t) => {
  const { relay, agent } = await relayWithBystander(t);
  const mallory = await enrollDevice(t, relay, 'mallory');
  const prefix = `outpost/v1/devices/${mallory.deviceId}`;

  await t.test('a CONNECT that declares 256 MB is cut at its header; four of them cost the relay nothing', async (t) => {
    const before = rssMiB(relay.proc.pid!);
    const attacks = await Promise.all(
      [1, 2, 3, 4].map(async () => {
        const c = await rawConnect(relay.mqttUrl);
        let sent = 0;
        const chunk = Buffer.alloc(1024 * 1024, 0x41);
        if (await c.send(fixedHeader(1, 0, 256 * 1024 * 1024))) {
          // Stream the body as fast as the broker takes it, until it hangs up.
          while (sent < 64 * 1024 * 1024 && (await c.send(chunk))) sent += chunk.length;
        }
        await c.closed;
        return sent;
      }),
    );
    for (const sent of attacks) t.ok(sent < 64 * 1024 * 1024, `the broker hung up before the body arrived (${(sent / 1024 ** 2).toFixed(0)} MiB sent into the socket buffers)`);
    const grown = rssMiB(relay.proc.pid!) - before;
    t.ok(grown < 32, `relay RSS grew by ${grown.toFixed(1)} MiB, not by the 1 GiB declared`);
    await waitFor('pre-auth bytes back to 0', async () => (await relayMetric(relay, 'outpost_mqtt_preauth_bytes')) === 0);
  });

  await t.test('only a CONNECT may come first; a malformed length closes the connection', async (t) => {
    for (const [what, bytes] of [
      ['a PUBLISH before CONNECT', publishPacket(`${prefix}/status`, '{}')],
      ['a five-byte remaining length', Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01])],
      ['a 20 KiB CONNECT (a will that large is no agent of ours)', connectPacket({ clientId: 'x'.repeat(20 * 1024) })],
    ] as const) {
      const c = await rawConnect(relay.mqttUrl);
      await c.send(bytes);
      await c.closed;
      t.equal(connackCode(c.received()), undefined, `${what}: closed without a CONNACK`);
    }
  });

  await t.test('half-sent CONNECTs share one budget and are closed after the connect timeout', async (t) => {
    const conns = await Promise.all(Array.from({ length: 50 }, () => rawConnect(relay.mqttUrl)));
    // Each declares a 15 KiB CONNECT and sends 10 KiB of it, then nothing.
    await Promise.all(conns.map((c) => c.send(Buffer.concat([fixedHeader(1, 0, 15 * 1024), Buffer.alloc(10 * 1024)]))));
    const held = await waitFor('the half-sent bytes to be counted', async () => {
      const n = await relayMetric(relay, 'outpost_mqtt_preauth_bytes');
      return n >= 50 * 10 * 1024 ? n : undefined;
    });
    t.ok(held <= 16 * 1024 * 1024, `${held} bytes held before authentication, within the 16 MiB budget`);
    await waitFor('every half-sent connection closed', () => conns.every((c) => c.isClosed()), 30_000);
    t.pass('the broker closed them all');
    await waitFor('pre-auth bytes back to 0', async () => (await relayMetric(relay, 'outpost_mqtt_preauth_bytes')) === 0);
  });

  await t.test('garbage from strangers', async (t) => {
    for (let i = 0; i < 30; i++) {
      const c = await rawConnect(relay.mqttUrl);
      await c.send(randomBytes(1 + (i * 997) % 4096));
      c.socket.end();
      await c.closed;
    }
    t.pass('thirty connections of random bytes');
  });

  await t.test('an authenticated device may not send a packet over its limit', async (t) => {
    const c = await rawConnect(relay.mqttUrl);
    await c.send(connectPacket({ clientId: mallory.deviceId, username: mallory.deviceId, password: mallory.secret }));
    await waitFor('CONNACK', () => connackCode(c.received()) === 0);
    await c.send(fixedHeader(3, 0, 10 * 1024 * 1024));
    await c.send(Buffer.alloc(64 * 1024));
    await c.closed;
    t.pass('a 10 MiB PUBLISH closed the device connection at its header');
  });

  await t.test('afterwards', async (t) => fleetStillWorks(t, relay, agent, 'linear', LINEAR_REQUEST));
});
