// `$` topics are the broker's (MQTT 3.1.1 §4.7.2), for every identity, the relay's own included:
// aedes acts on some of them (a publish to `$SYS/{broker id}/new/clients` closes the client of
// that id, as if it had connected to another broker of a cluster) and tells of every connection
// and subscription on others. The relay's privileged credentials are made fresh at each start
// and never leave the process, so this file starts the embedded broker itself, with credentials
// of its own, as the relay does.

import t from 'tap';
import type { Logger } from '@outpost/shared';
import { startEmbeddedBroker } from '../../packages/relay/dist/broker/embedded-broker.js';
import { RawMqtt } from '../helpers/raw-mqtt.js';

const DEVICE = { id: 'dev_reserved', secret: 'ods_test_secret' };
const prefix = `outpost/v1/devices/${DEVICE.id}`;

t.test('$ topics are reserved for every identity', async (t) => {
  const warnings: string[] = [];
  const log = { warn: (_o: unknown, msg: string) => warnings.push(msg), info() {}, debug() {}, error() {} } as unknown as Logger;
  const broker = await startEmbeddedBroker({
    host: '127.0.0.1',
    port: 0,
    log,
    relayUsername: 'outpost-relay',
    relayPassword: 'relay-secret',
    authenticateDevice: async (id, secret) => id === DEVICE.id && secret === DEVICE.secret,
  });
  t.teardown(() => broker.close());
  const asRelay = () => RawMqtt.connect(broker.url, { clientId: `outpost-relay-${Math.random().toString(16).slice(2, 8)}`, username: 'outpost-relay', password: 'relay-secret' });
  const asDevice = () => RawMqtt.connect(broker.url, { clientId: DEVICE.id, username: DEVICE.id, password: DEVICE.secret });

  await t.test('the relay\'s identity cannot close a device by publishing to $SYS/…/new/clients', async (t) => {
    const device = await asDevice();
    const relay = await asRelay();
    await relay.publishAcked('$SYS/another-broker/new/clients', DEVICE.id, { qos: 1 });
    t.pass('acknowledged (MQTT-3.3.5-2), so the relay\'s session stays');
    await relay.ping();
    await device.ping();
    t.notOk(device.isClosed(), 'the device is still connected');
    t.ok(warnings.includes("mqtt publish dropped: $ topics are the broker's own"), 'the refusal is logged');
    await relay.disconnect();
    await device.disconnect();
  });

  await t.test('the relay\'s identity may not subscribe to $ topics; its # does not match them (MQTT-4.7.2-1)', async (t) => {
    const relay = await asRelay();
    t.same(await relay.subscribe(['$SYS/#', 0], ['$outpost/#', 0], ['#', 1]), [128, 128, 1], '$ filters get 128; # is granted');
    // aedes publishes $SYS/{id}/new/clients and …/new/subscribes for this connection and subscription.
    const device = await asDevice();
    await device.subscribe([`${prefix}/desired`, 1]);
    await device.publishAcked(`${prefix}/health`, 'sentinel', { qos: 1 });
    await relay.message(`${prefix}/health`, 'sentinel');
    const seen = relay.received.filter((p) => p.type === 'publish').map((p) => (p as { topic: string }).topic);
    t.same(seen.filter((topic) => topic.startsWith('$')), [], `no $ topic reached the relay (it saw ${seen.join(', ')})`);
    await device.disconnect();
    await relay.disconnect();
  });

  await t.test('a device publishing to $SYS is outside its prefix: disconnected, as any such publish', async (t) => {
    const device = await asDevice();
    t.same(await device.subscribe(['$SYS/#', 0]), [128]);
    device.publish('$SYS/another-broker/new/clients', DEVICE.id, { qos: 1 });
    await device.closed;
    t.notOk(device.received.some((p) => p.type === 'puback'), 'closed without a PUBACK');
  });
});
