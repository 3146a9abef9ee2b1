// MQTT 3.1.1 wills, as devices use them: a device publishes `{online:true, session}` retained on
// its status topic, with the matching `{online:false}` as its will, and the relay's view of the
// fleet comes from those two. MQTT-3.1.2-8: the will is published whenever the connection
// closes without a DISCONNECT, whatever closed it. Each kind of close is driven here against a
// real relay (which must then show the device offline) and, where Mosquitto has the same
// notion, against Mosquitto (the retained status must be the will).

import t, { type Test } from 'tap';
import { brokerTargets, type BrokerTarget, type DeviceIdentity } from '../helpers/broker-targets.js';
import { connectPacket, fixedHeader, publishPacket, subscribePacket } from '../helpers/mqtt-codec.js';
import { RawMqtt, type RawMqttOptions } from '../helpers/raw-mqtt.js';
import { waitFor } from '../helpers/wait.js';

interface Status {
  online: boolean;
  ts: number;
  session: number;
}

let sessions = Date.now();

/** A device's connection as the agent makes it: a will saying offline, then its online status. */
async function connectWithWill(broker: BrokerTarget, d: DeviceIdentity, opts: Partial<RawMqttOptions> = {}): Promise<{ client: RawMqtt; session: number }> {
  const session = ++sessions;
  const will = { topic: d.topic('status'), payload: JSON.stringify({ online: false, ts: Date.now(), session }), qos: 1 as const, retain: true };
  const client = await RawMqtt.connect(broker.url, { clientId: d.clientId, username: d.username, password: d.password, will, ...opts });
  await client.publishAcked(d.topic('status'), JSON.stringify({ online: true, ts: Date.now(), session }), { qos: 1, retain: true });
  if (broker.relay) await waitFor('the relay to show the device online', async () => (await relayView(broker, d)).online);
  return { client, session };
}

async function relayView(broker: BrokerTarget, d: DeviceIdentity): Promise<{ online: boolean }> {
  return (await broker.relay!.api<{ online: boolean }>('GET', `/v1/devices/${d.clientId}`)).body;
}

/** The device's retained status, read by a new connection of its own. */
async function retainedStatus(broker: BrokerTarget, d: DeviceIdentity): Promise<Status> {
  const c = await RawMqtt.connect(broker.url, { clientId: d.clientId, username: d.username, password: d.password });
  try {
    await c.subscribe([d.topic('status'), 1]);
    const m = await c.message(d.topic('status'));
    return JSON.parse(m.payload.toString()) as Status;
  } finally {
    await c.disconnect();
  }
}

/** The will of `session` was published: the relay shows the device offline, and it is the retained status. */
async function willPublished(t: Test, broker: BrokerTarget, d: DeviceIdentity, session: number, opts: { retained?: boolean; timeoutMs?: number } = {}): Promise<void> {
  if (broker.relay) {
    await waitFor('the relay to show the device offline', async () => !(await relayView(broker, d)).online);
    t.pass('the relay shows the device offline');
  }
  // A device the embedded broker disconnected for its quotas is refused for 10 s: the relay's view is enough.
  if (opts.retained === false) return;
  const status = await waitFor('the will as the retained status', async () => {
    const s = await retainedStatus(broker, d);
    return !s.online && s.session === session ? s : undefined;
  }, opts.timeoutMs);
  t.equal(status.online, false, 'the will is the retained status (MQTT-3.1.2-17)');
}

for (const target of brokerTargets()) {
  t.test(`wills on ${target.name}`, { skip: target.skip }, async (t) => {
    const broker = await target.start(t);

    await t.test('MQTT-3.1.2-8: the network connection fails (socket destroyed): the will is published', async (t) => {
      const d = await broker.device();
      const { client, session } = await connectWithWill(broker, d);
      await client.destroy();
      await willPublished(t, broker, d, session);
    });

    await t.test('MQTT-3.1.2-24: keepalive timeout: the broker closes the connection and publishes the will', async (t) => {
      const d = await broker.device();
      const started = Date.now();
      const { client, session } = await connectWithWill(broker, d, { keepalive: 1 });
      await client.closed; // nothing more is sent, not even PINGREQ
      t.ok(Date.now() - started >= 1000, 'closed after one and a half keepalives, not before one');
      await willPublished(t, broker, d, session);
    });

    // Observed on Mosquitto 2.0.11: it closes the connection but drops the will; the embedded broker publishes it.
    const mosquittoDropsIt = target.name === 'mosquitto' && 'Mosquitto 2.0.11 does not publish the will of a connection it closes for a second CONNECT';
    await t.test('MQTT-3.1.0-2: a second CONNECT is a protocol violation: closed, and the will published (MQTT-4.8.0-1)', { todo: mosquittoDropsIt }, async (t) => {
      const d = await broker.device();
      const { client, session } = await connectWithWill(broker, d);
      client.send(connectPacket({ clientId: d.clientId, username: d.username, password: d.password }));
      await client.closed;
      await willPublished(t, broker, d, session, { timeoutMs: mosquittoDropsIt ? 3000 : undefined });
    });

    await t.test('MQTT-3.3.2-2: a PUBLISH to a topic with a wildcard closes the connection; the will is published', async (t) => {
      const d = await broker.device();
      const { client, session } = await connectWithWill(broker, d);
      client.send(publishPacket(d.topic('+'), '{}', { qos: 1, id: 9 }));
      await client.closed;
      await willPublished(t, broker, d, session);
    });

    await t.test('MQTT-3.1.4-2: a new connection with the same client id takes over; the old one\'s will is published', async (t) => {
      const d = await broker.device();
      const { client, session } = await connectWithWill(broker, d);
      const taker = await RawMqtt.connect(broker.url, { clientId: d.clientId, username: d.username, password: d.password });
      await client.closed;
      t.pass('the first connection was closed');
      await taker.subscribe([d.topic('status'), 1]);
      const m = JSON.parse((await taker.message(d.topic('status'))).payload.toString()) as Status;
      t.same([m.online, m.session], [false, session], 'the new connection reads the old one\'s will');
      if (broker.relay) await waitFor('the relay to show the device offline', async () => !(await relayView(broker, d)).online);
      await taker.disconnect();
    });

    await t.test('MQTT-3.1.2-8: after a DISCONNECT the will is discarded, not published', async (t) => {
      const d = await broker.device();
      const { client, session } = await connectWithWill(broker, d);
      await client.disconnect();
      const status = await retainedStatus(broker, d);
      t.same([status.online, status.session], [true, session], 'the retained status is still the online one');
      if (broker.relay) t.equal((await relayView(broker, d)).online, true, 'the relay still shows the device online (the agent says offline itself before it disconnects)');
    });

    if (target.name !== 'embedded') return;
    // The relay's own hooks close connections too: each such close publishes the will as well.

    await t.test('the flood guard disconnects a device whose rate bucket is empty: its will is still published', async (t) => {
      const d = await broker.device();
      const { client, session } = await connectWithWill(broker, d);
      // Far past the burst (200) and the strikes (50) after it, in one write.
      const heartbeat = publishPacket(d.topic('health'), '{}');
      client.send(Buffer.concat(Array.from({ length: 2000 }, () => heartbeat)));
      await client.closed;
      await willPublished(t, broker, d, session, { retained: false });
      const relay = broker.relay!;
      await waitFor('the rate disconnect in the log', () => relay.logs.some((l) => l.msg === 'device disconnected: past its quota' && l.deviceId === d.clientId && l.quota === 'rate'));
    });

    await t.test('denied subscriptions past the strikes disconnect the device: its will is published', async (t) => {
      const d = await broker.device();
      const { client, session } = await connectWithWill(broker, d);
      client.send(Buffer.concat(Array.from({ length: 60 }, (_, i) => subscribePacket(100 + i, '#'))));
      await client.closed;
      await willPublished(t, broker, d, session, { retained: false });
    });

    await t.test('a publish outside the device prefix closes the connection: its will is published', async (t) => {
      const d = await broker.device();
      const { client, session } = await connectWithWill(broker, d);
      client.send(publishPacket('outpost/v1/devices/someone-else/status', '{}', { qos: 1, id: 3 }));
      await client.closed;
      await willPublished(t, broker, d, session);
    });

    await t.test('the packet guard refuses an oversized packet after authentication: the will is published', async (t) => {
      const d = await broker.device();
      const { client, session } = await connectWithWill(broker, d);
      client.send(fixedHeader(3, 0, 10 * 1024 * 1024));
      await client.closed;
      await willPublished(t, broker, d, session);
    });

    await t.test('a will may only go to the device\'s own status topic: any other is refused at CONNECT', async (t) => {
      const d = await broker.device();
      const other = await broker.device();
      for (const topic of [other.topic('status'), d.topic('desired'), d.topic('health'), '$SYS/broker/x']) {
        const c = await RawMqtt.open(broker.url, { clientId: d.clientId, username: d.username, password: d.password, will: { topic, payload: '{}', qos: 1, retain: true } });
        t.equal(c.connack?.returnCode, 5, `a will to ${topic}: CONNACK 5 (not authorized)`);
        await c.destroy();
      }
      const { client } = await connectWithWill(broker, d);
      t.pass('a will to its own status topic is accepted');
      await client.disconnect();
    });
  });
}
