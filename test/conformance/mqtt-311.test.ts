// MQTT 3.1.1 conformance of the brokers devices use, case by case from the specification's
// numbered statements: sessions, retained messages, wildcards, QoS 1 and 2 redelivery. Each case
// runs on the relay's embedded broker (aedes behind the relay's authentication, access policy,
// quotas and retained index) and on Mosquitto (with the ACL of docs/architecture.md), as a
// device: an enrolled identity on its own topics, the only kind of client the relay lets in.
// The last group is where the relay deliberately differs from a plain broker; each case there
// says what each broker does and why. Wills have their own file (wills.test.ts).

import t from 'tap';
import { brokerTargets, type DeviceIdentity } from '../helpers/broker-targets.js';
import { relayMetric } from '../helpers/hostile.js';
import { subscribePacket } from '../helpers/mqtt-codec.js';
import { RawMqtt, type RawMqttOptions } from '../helpers/raw-mqtt.js';
import { waitFor } from '../helpers/wait.js';

for (const target of brokerTargets()) {
  t.test(`MQTT 3.1.1 on ${target.name}`, { skip: target.skip }, async (t) => {
    const broker = await target.start(t);
    const connectAs = (d: DeviceIdentity, opts: Partial<RawMqttOptions> = {}) => RawMqtt.connect(broker.url, { clientId: d.clientId, username: d.username, password: d.password, ...opts });

    await t.test('sessions', async (t) => {
      await t.test('MQTT-3.1.2-6, MQTT-3.2.2-1: with CleanSession 1 the session ends with the connection, and CONNACK says no session', async (t) => {
        const d = await broker.device();
        const first = await connectAs(d);
        t.equal(first.connack!.sessionPresent, false);
        t.same(await first.subscribe([d.topic('health'), 1]), [1]);
        await first.disconnect();
        const second = await connectAs(d);
        t.equal(second.connack!.sessionPresent, false, 'session present 0');
        // A PUBACK does not mean routed (aedes acks first): 'before' could still reach the
        // subscription made after it. A message on another topic, published after 'before' and
        // received, shows the broker routed 'before' while no subscription of this connection
        // matched it.
        await second.subscribe([d.topic('status'), 1]);
        await second.publishAcked(d.topic('health'), 'before', { qos: 1 });
        await second.publishAcked(d.topic('status'), 'routed', { qos: 1 });
        await second.message(d.topic('status'), 'routed');
        await second.subscribe([d.topic('health'), 1]);
        await second.publishAcked(d.topic('health'), 'after', { qos: 1 });
        await second.message(d.topic('health'), 'after');
        t.same(second.messages(d.topic('health')).map((m) => m.payload.toString()), ['after'], 'the first connection\'s subscription did not survive it');
        await second.disconnect();
      });

      await t.test('MQTT-3.1.2-4, MQTT-3.2.2-2, MQTT-3.2.2-3: with CleanSession 0 the subscriptions outlive the connection', async (t) => {
        const d = await broker.device();
        const first = await connectAs(d, { clean: false });
        t.equal(first.connack!.sessionPresent, false, 'no stored session yet: session present 0 (MQTT-3.2.2-3)');
        await first.subscribe([d.topic('health'), 1]);
        await first.disconnect();
        const second = await connectAs(d, { clean: false });
        t.equal(second.connack!.sessionPresent, true, 'the session was kept: session present 1 (MQTT-3.2.2-2)');
        await second.publishAcked(d.topic('health'), 'no new subscribe', { qos: 1 });
        const m = await second.message(d.topic('health'), 'no new subscribe');
        t.equal(m.qos, 1, 'delivered by the kept subscription, at its QoS');
        await second.disconnect();
        const clean = await connectAs(d, { clean: true });
        t.equal(clean.connack!.sessionPresent, false, 'CleanSession 1 discards it (MQTT-3.1.2-6)');
        await clean.disconnect();
        const third = await connectAs(d, { clean: false });
        t.equal(third.connack!.sessionPresent, false, 'and it is gone for good');
        await third.disconnect();
      });

      await t.test('MQTT-3.1.2-5, MQTT-4.5.0-1: a QoS 1 message that arrives while a CleanSession 0 client is away is kept and delivered when it returns', async (t) => {
        const d = await broker.device();
        const first = await connectAs(d, { clean: false });
        await first.subscribe([d.topic('desired'), 1]);
        await first.disconnect();
        await broker.publishDesired(d);
        const back = await connectAs(d, { clean: false });
        t.equal(back.connack!.sessionPresent, true);
        const m = await back.message(d.topic('desired'));
        t.equal(m.qos, 1, 'queued at QoS 1');
        t.equal(m.retain, false, 'sent for the kept subscription, not as a retained message of a new one (MQTT-3.3.1-9)');
        t.match(JSON.parse(m.payload.toString()), { revision: Number }, 'the desired state published while it was away');
        await back.disconnect();
      });

      // aedes speaks 3.1.1 and 3.1; Mosquitto 2 speaks MQTT 5 as well (a v5 CONNECT has properties this 3.1.1 one lacks).
      if (target.name === 'embedded') {
        await t.test('MQTT-3.1.2-2: the embedded broker answers an MQTT 5 CONNECT with CONNACK 1 (unacceptable protocol level)', async (t) => {
          const d = await broker.device();
          const c = await RawMqtt.open(broker.url, { clientId: d.clientId, username: d.username, password: d.password, protocolLevel: 5 });
          t.equal(c.connack?.returnCode, 1);
          await c.closed;
          t.pass('and closes the connection (MQTT-3.2.2-5)');
        });
      }

      await t.test('MQTT-3.12.4-1: PINGREQ is answered with PINGRESP', async (t) => {
        const d = await broker.device();
        const c = await connectAs(d, { keepalive: 5 });
        await c.ping();
        t.pass('PINGRESP');
        await c.disconnect();
      });
    });

    await t.test('retained messages', async (t) => {
      await t.test('MQTT-3.3.1-5, MQTT-3.3.1-6, MQTT-3.3.1-8, MQTT-3.1.2-7: a retained message is kept past its session and sent, RETAIN 1, to every new matching subscription', async (t) => {
        const d = await broker.device();
        const pub = await connectAs(d);
        await pub.publishAcked(d.topic('reported'), 'r1', { qos: 1, retain: true });
        await pub.disconnect();
        for (const filter of [d.topic('reported'), `${d.prefix}/+`, `${d.prefix}/#`]) {
          const sub = await connectAs(d);
          t.same(await sub.subscribe([filter, 1]), [1]);
          const m = await sub.message(d.topic('reported'), 'r1');
          t.same([m.retain, m.qos], [true, 1], `${filter}: RETAIN 1, at the QoS it was published with`);
          await sub.disconnect();
        }
      });

      await t.test('MQTT-3.3.1-9: a message for an established subscription is sent with RETAIN 0, however it was published', async (t) => {
        const d = await broker.device();
        const c = await connectAs(d);
        await c.subscribe([d.topic('reported'), 1]);
        await c.publishAcked(d.topic('reported'), 'live', { qos: 1, retain: true });
        t.equal((await c.message(d.topic('reported'), 'live')).retain, false);
        await c.disconnect();
      });

      await t.test('MQTT-3.3.1-12: a PUBLISH with RETAIN 0 neither stores nor replaces the retained message', async (t) => {
        const d = await broker.device();
        const c = await connectAs(d);
        await c.publishAcked(d.topic('reported'), 'kept', { qos: 1, retain: true });
        await c.publishAcked(d.topic('reported'), 'passing', { qos: 1 });
        await c.disconnect();
        const sub = await connectAs(d);
        await sub.subscribe([d.topic('reported'), 1]);
        t.equal((await sub.next('publish')).payload.toString(), 'kept');
        await sub.disconnect();
      });

      await t.test('MQTT-3.3.1-7, MQTT-3.3.1-5: a QoS 0 retained message replaces the retained one, and is kept with its QoS', async (t) => {
        const d = await broker.device();
        const c = await connectAs(d);
        await c.publishAcked(d.topic('reported'), 'qos1', { qos: 1, retain: true });
        c.publish(d.topic('reported'), 'qos0', { retain: true });
        await c.disconnect();
        const sub = await connectAs(d);
        await sub.subscribe([d.topic('reported'), 2]);
        const m = await sub.next('publish');
        t.same([m.payload.toString(), m.qos], ['qos0', 0], 'the QoS 0 one, sent at QoS 0 (MQTT-3.8.4-6: the lower of the two)');
        await sub.disconnect();
      });

      await t.test('MQTT-3.3.1-10, MQTT-3.3.1-11: a zero-byte retained message is delivered as usual and removes the retained message', async (t) => {
        const d = await broker.device();
        const c = await connectAs(d);
        await c.publishAcked(d.topic('reported'), 'gone soon', { qos: 1, retain: true });
        await c.subscribe([d.topic('reported'), 1]);
        await c.message(d.topic('reported'), 'gone soon');
        await c.publishAcked(d.topic('reported'), '', { qos: 1, retain: true });
        t.equal((await c.message(d.topic('reported'), '')).payload.length, 0, 'the empty message reaches the subscriber');
        await c.disconnect();
        const sub = await connectAs(d);
        await sub.subscribe([d.topic('reported'), 1]);
        // The first message after the SUBACK is this live one: no retained message came before it.
        await sub.publishAcked(d.topic('reported'), 'sentinel', { qos: 1 });
        const first = await sub.next('publish');
        t.same([first.payload.toString(), first.retain], ['sentinel', false], 'nothing was retained');
        await sub.disconnect();
      });

      await t.test('MQTT-3.8.4-3: subscribing again to the same filter replaces the subscription and sends the retained message again', async (t) => {
        const d = await broker.device();
        const c = await connectAs(d);
        await c.publishAcked(d.topic('reported'), 'state', { qos: 1, retain: true });
        // A PUBACK does not mean stored: aedes acks a QoS 1 PUBLISH before it stores and forwards
        // it, so this first copy may come live (RETAIN 0). Once it arrived, it was stored: both
        // brokers store a retained message before forwarding it.
        await c.subscribe([d.topic('reported'), 1]);
        await c.message(d.topic('reported'), 'state');
        await c.subscribe([d.topic('reported'), 1]);
        t.equal((await c.message(d.topic('reported'), 'state')).retain, true, 're-sent for the repeated subscription');
        await c.subscribe([d.topic('reported'), 1]);
        t.equal((await c.message(d.topic('reported'), 'state')).retain, true, 're-sent again for the next one');
        await c.publishAcked(d.topic('reported'), 'next', { qos: 1 });
        await c.message(d.topic('reported'), 'next');
        await c.ping();
        t.equal(c.messages(d.topic('reported')).filter((m) => m.payload.toString() === 'next').length, 1, 'one subscription, replaced: the next message arrives once');
        await c.disconnect();
      });
    });

    await t.test('wildcards', async (t) => {
      await t.test('MQTT-4.7.1-3: + matches exactly one topic level', async (t) => {
        const d = await broker.device();
        const c = await connectAs(d);
        t.same(await c.subscribe([`${d.prefix}/+`, 1]), [1]);
        for (const leaf of ['health', 'job-log', 'status']) {
          await c.publishAcked(d.topic(leaf), leaf, { qos: 1 });
          await c.message(d.topic(leaf), leaf);
        }
        t.pass('each leaf under the prefix matched');
        await c.disconnect();
      });

      await t.test('MQTT-4.7.1-2: # matches every level below its parent', async (t) => {
        const d = await broker.device();
        const c = await connectAs(d);
        t.same(await c.subscribe([`${d.prefix}/#`, 1]), [1]);
        for (const leaf of ['health', 'reported']) {
          await c.publishAcked(d.topic(leaf), leaf, { qos: 1 });
          await c.message(d.topic(leaf), leaf);
        }
        t.pass('each leaf under the prefix matched');
        await c.disconnect();
      });

      await t.test('MQTT-4.7.1-2, MQTT-4.7.1-3: a filter whose wildcard is not a whole level, or whose # is not last, is a protocol violation: the connection closes (MQTT-4.8.0-1)', async (t) => {
        for (const filter of ['health#', 'hea+lth', '#/health']) {
          const d = await broker.device();
          const c = await connectAs(d);
          const id = c.id();
          c.send(subscribePacket(id, [[`${d.prefix}/${filter}`, 0]]));
          await c.closed;
          t.pass(`${d.prefix}/${filter}: closed`);
        }
      });
    });

    await t.test('QoS 1 and 2', async (t) => {
      await t.test('MQTT-4.3.3-2: until PUBREL, a QoS 2 PUBLISH sent again with its packet id is answered with PUBREC and not delivered twice', async (t) => {
        const d = await broker.device();
        const c = await connectAs(d);
        await c.subscribe([d.topic('health'), 0]);
        const id = c.publish(d.topic('health'), 'once', { qos: 2 });
        await c.next('pubrec', (p) => p.id === id);
        c.publish(d.topic('health'), 'once', { qos: 2, id, dup: true });
        await c.next('pubrec', (p) => p.id === id);
        t.pass('PUBREC again for the repeated PUBLISH');
        c.ack('pubrel', id);
        await c.next('pubcomp', (p) => p.id === id);
        await c.publishAcked(d.topic('health'), 'end', { qos: 1 });
        await c.message(d.topic('health'), 'end');
        t.equal(c.messages(d.topic('health')).filter((m) => m.payload.toString() === 'once').length, 1, 'delivered once');
        await c.disconnect();
      });

      await t.test('MQTT-4.4.0-1, MQTT-3.3.1-1: an unacknowledged QoS 1 delivery is sent again, DUP 1 with its packet id, when a CleanSession 0 client returns', async (t) => {
        const d = await broker.device();
        const first = await connectAs(d, { clean: false, autoAck: false });
        await first.subscribe([d.topic('health'), 1]);
        await first.publishAcked(d.topic('health'), 'ack me', { qos: 1 });
        const sent = await first.message(d.topic('health'), 'ack me');
        t.same([sent.qos, sent.dup], [1, false], 'first sent with DUP 0');
        await first.destroy(); // no PUBACK
        const back = await connectAs(d, { clean: false, autoAck: false });
        const again = await back.message(d.topic('health'), 'ack me');
        t.same([again.id, again.dup, again.qos], [sent.id, true, 1], 'sent again with its packet id and DUP 1');
        back.ack('puback', again.id!);
        await back.disconnect();
      });

      await t.test('MQTT-4.4.0-1: an unacknowledged QoS 2 delivery is sent again (DUP 1, same id), and so is a PUBREL never completed', async (t) => {
        const d = await broker.device();
        const first = await connectAs(d, { clean: false, autoAck: false });
        await first.subscribe([d.topic('health'), 2]);
        await first.publishAcked(d.topic('health'), 'exactly once', { qos: 2 });
        const sent = await first.message(d.topic('health'), 'exactly once');
        t.same([sent.qos, sent.dup], [2, false]);
        await first.destroy(); // no PUBREC
        const second = await connectAs(d, { clean: false, autoAck: false });
        const again = await second.message(d.topic('health'), 'exactly once');
        t.same([again.id, again.dup], [sent.id, true], 'PUBLISH sent again with its packet id and DUP 1');
        second.ack('pubrec', again.id!);
        await second.next('pubrel', (p) => p.id === sent.id);
        await second.destroy(); // no PUBCOMP
        const third = await connectAs(d, { clean: false, autoAck: false });
        await third.next('pubrel', (p) => p.id === sent.id);
        t.pass('PUBREL sent again with its packet id');
        third.ack('pubcomp', sent.id!);
        await third.ping();
        t.equal(third.messages(d.topic('health')).length, 0, 'and not the PUBLISH it had released');
        await third.disconnect();
      });

      await t.test('MQTT-4.4.0-1, MQTT-4.3.3-2: a QoS 2 PUBLISH the client sends again after reconnecting, before its PUBREL, is delivered once', async (t) => {
        const d = await broker.device();
        const first = await connectAs(d, { clean: false });
        await first.subscribe([d.topic('health'), 2]);
        const id = first.publish(d.topic('health'), 'once', { qos: 2 });
        await first.next('pubrec', (p) => p.id === id);
        await first.destroy(); // no PUBREL
        const back = await connectAs(d, { clean: false });
        back.publish(d.topic('health'), 'once', { qos: 2, id, dup: true });
        await back.next('pubrec', (p) => p.id === id);
        back.ack('pubrel', id);
        await back.next('pubcomp', (p) => p.id === id);
        await back.publishAcked(d.topic('health'), 'end', { qos: 2 });
        await back.message(d.topic('health'), 'end');
        // The broker's deliveries to this session, by packet id: a resend keeps its id, a duplicate would not.
        const ids = new Set([...first.messages(d.topic('health')), ...back.messages(d.topic('health'))].filter((m) => m.payload.toString() === 'once').map((m) => m.id));
        t.equal(ids.size, 1, 'one delivery of the message to the subscriber');
        await back.disconnect();
      });
    });

    await t.test('where the relay differs from a plain broker, deliberately', async (t) => {
      await t.test('MQTT-3.1.3-9: a client id other than the device id is rejected (CONNACK 2); Mosquitto\'s ACL keys on the username instead', async (t) => {
        const d = await broker.device();
        const c = await RawMqtt.open(broker.url, { clientId: `${d.clientId}-2`, username: d.username, password: d.password });
        // The relay: a device's client id is its identity's session, which another client could otherwise take over (MQTT-3.1.4-2).
        t.equal(c.connack?.returnCode, target.name === 'embedded' ? 2 : 0);
        await c.destroy();
      });

      await t.test('MQTT-3.8.4-5: a filter outside the device prefix gets 128 from the relay; Mosquitto grants it and filters each message by its ACL', async (t) => {
        const d = await broker.device();
        const c = await connectAs(d);
        const granted = await c.subscribe([d.topic('desired'), 1], ['#', 1], ['outpost/v1/devices/+/status', 1], ['$SYS/#', 0]);
        t.same(granted, target.name === 'embedded' ? [1, 128, 128, 128] : [1, 1, 1, 0], `return codes ${granted.join(', ')}`);
        await c.ping();
        t.pass('either way the session stays');
        await c.disconnect();
      });

      await t.test('MQTT-3.3.5-2: a publish outside the prefix is never delivered: the relay closes the connection, Mosquitto acknowledges and drops it', async (t) => {
        const d = await broker.device();
        const other = await broker.device();
        const c = await connectAs(d);
        const id = c.publish(other.topic('status'), 'forged', { qos: 1, retain: true });
        if (target.name === 'embedded') {
          await c.closed;
          t.notOk(c.received.some((p) => p.type === 'puback'), 'closed without a PUBACK');
        } else {
          await c.next('puback', (p) => p.id === id);
          await c.disconnect();
        }
        const victim = await connectAs(other);
        await victim.subscribe([other.topic('status'), 1]);
        await victim.publishAcked(other.topic('status'), 'sentinel', { qos: 1 });
        t.equal((await victim.next('publish')).payload.toString(), 'sentinel', 'the other device\'s status was not forged');
        await victim.disconnect();
      });

      await t.test('a device publishes only the leaves it writes: its own desired state is the relay\'s (acknowledged, dropped); Mosquitto takes it', async (t) => {
        const d = await broker.device();
        const c = await connectAs(d);
        const before = broker.relay ? await relayMetric(broker.relay, 'outpost_device_quota_events_total', 'quota="topic",action="dropped"') : 0;
        await c.publishAcked(d.topic('desired'), 'forged', { qos: 1, retain: true });
        await c.ping();
        t.pass('acknowledged, the session stays');
        await c.disconnect();
        if (broker.relay) {
          t.ok((await relayMetric(broker.relay, 'outpost_device_quota_events_total', 'quota="topic",action="dropped"')) > before, 'the relay counted the refused topic');
        } else {
          const sub = await connectAs(d);
          await sub.subscribe([d.topic('desired'), 1]);
          t.equal((await sub.next('publish')).payload.toString(), 'forged', 'Mosquitto kept it retained');
          await sub.disconnect();
        }
      });

      await t.test('a CleanSession 0 session holds at most 32 messages unacknowledged: the relay closes a device that lets more pile up; Mosquitto sends 20 and queues the rest', async (t) => {
        const d = await broker.device();
        const c = await connectAs(d, { clean: false, autoAck: false });
        await c.subscribe([d.topic('health'), 1]);
        for (let i = 0; i < 40; i++) c.publish(d.topic('health'), `m${i}`, { qos: 1 });
        if (target.name === 'embedded') {
          await c.closed;
          t.ok(c.messages(d.topic('health')).length <= 32, `closed after ${c.messages(d.topic('health')).length} unacknowledged deliveries`);
          t.ok((await relayMetric(broker.relay!, 'outpost_device_quota_events_total', 'quota="session"')) > 0, 'counted as a quota event');
        } else {
          await c.next('puback', (p) => p.id === 40);
          await c.ping();
          t.equal(c.messages(d.topic('health')).length, 20, 'Mosquitto: max_inflight_messages 20, the session stays');
          await c.destroy();
        }
        // Acknowledged at last, they leave the session, which then works as before.
        const held = c.messages(d.topic('health')).length;
        const back = await connectAs(d, { clean: false });
        await waitFor('the held messages sent again', () => back.messages(d.topic('health')).length >= held);
        await back.ping();
        await back.publishAcked(d.topic('health'), 'after', { qos: 1 });
        await back.message(d.topic('health'), 'after');
        t.pass('the session delivers again');
        await back.disconnect();
      });

      await t.test('retained only on state leaves: a retained heartbeat is delivered but not kept by the relay; Mosquitto keeps it', async (t) => {
        const d = await broker.device();
        const c = await connectAs(d);
        await c.subscribe([d.topic('health'), 1]);
        await c.publishAcked(d.topic('health'), 'beat', { qos: 1, retain: true });
        await c.message(d.topic('health'), 'beat');
        await c.disconnect();
        const sub = await connectAs(d);
        await sub.subscribe([d.topic('health'), 1]);
        await sub.publishAcked(d.topic('health'), 'sentinel', { qos: 1 });
        const first = await sub.next('publish');
        t.equal(first.payload.toString(), target.name === 'embedded' ? 'sentinel' : 'beat', target.name === 'embedded' ? 'nothing was retained' : 'the heartbeat was retained');
        await sub.disconnect();
      });
    });
  });
}
