// Device JWTs for a NATS cluster: signed with Node's Ed25519, byte for byte what nkeys signs,
// verifiable with the account signing key, naming the device's derived user key, with the
// permissions a device may have; revocation adds that key to the account's list.

import t from 'tap';
import { createHmac } from 'node:crypto';
import { NatsAccount, nativeKeyPair } from '../../packages/relay/dist/broker/nats-account.js';
import { generateNatsCluster } from '../../packages/relay/dist/broker/nats-config.js';
import { decode, fromSeed, fromPublic } from '@nats-io/jwt';
import { Prefix } from '@nats-io/nkeys';
import { Codec } from '@nats-io/nkeys/lib/codec.js';

const te = new TextEncoder();

t.test('native signatures are the nkeys ones', async (t) => {
  const { credentials } = await generateNatsCluster({ nodes: 1, hosts: ['127.0.0.1'], clientPort: 4222, mqttPort: 1883, clusterPort: 6222, monitorPort: 8222, dir: '/nonexistent' });
  const native = nativeKeyPair(credentials.accountSigningSeed);
  const slow = fromSeed(te.encode(credentials.accountSigningSeed));
  t.equal(native.getPublicKey(), slow.getPublicKey());
  const data = te.encode('the same bytes');
  t.same([...native.sign(data)], [...slow.sign(data)], 'Ed25519 is deterministic: the same signature');

  const account = new NatsAccount(credentials);
  const raw = createHmac('sha256', credentials.accountSigningSeed).update('outpost-device:dev_0123456789ab').digest();
  t.equal(account.userPublicKey('dev_0123456789ab'), fromSeed(Codec.encodeSeed(Prefix.User, raw)).getPublicKey(), 'the derived user key, as before');

  const jwt = await account.deviceJwt('dev_0123456789ab');
  const [head, body, sig] = jwt.split('.') as [string, string, string];
  t.ok(fromPublic(native.getPublicKey()).verify(te.encode(`${head}.${body}`), Buffer.from(sig, 'base64url')), 'verifies with the account signing key');
  const claims = decode(jwt);
  const nats = claims.nats as { bearer_token: boolean; allowed_connection_types: string[]; pub: { allow: string[] }; sub: { allow: string[] }; issuer_account: string };
  t.equal(claims.sub, account.userPublicKey('dev_0123456789ab'));
  t.equal(nats.issuer_account, credentials.accountPublicKey);
  t.equal(nats.bearer_token, true);
  t.same(nats.allowed_connection_types, ['MQTT']);
  t.ok(nats.pub.allow.every((s) => s.startsWith('outpost.v1.devices.dev_0123456789ab.')), 'publishes only under its own subjects');
  t.notOk(nats.pub.allow.some((s) => /\.(desired|jobs|notice|logs-request)$/.test(s)), 'and not what the relay writes');
  t.same(nats.sub.allow, ['outpost.v1.devices.dev_0123456789ab', 'outpost.v1.devices.dev_0123456789ab.>', '$MQTT.sub.>']);
});

t.test('revocation adds the device key to what the account had', async (t) => {
  const { credentials, files } = await generateNatsCluster({ nodes: 3, hosts: ['127.0.0.1'], clientPort: 4222, mqttPort: 1883, clusterPort: 6222, monitorPort: 8222, dir: '/x' });
  const conf = files.find((f) => f.name === 'outpost-1.conf')!.text;
  const accountJwt = new RegExp(`${credentials.accountPublicKey}: "([^"]+)"`).exec(conf)![1]!;
  const account = new NatsAccount(credentials);
  const once = await account.revoked(accountJwt, ['dev_a'], 1000);
  const twice = await account.revoked(once, ['dev_b'], 2000);
  const revocations = (decode(twice).nats as { revocations: Record<string, number> }).revocations;
  t.same(revocations, { [account.userPublicKey('dev_a')]: 1000, [account.userPublicKey('dev_b')]: 2000 });
  t.match(conf, /stream_replicas: 3/);
  t.match(conf, /cluster \{ name: outpost/);
  const other = (await generateNatsCluster({ nodes: 1, hosts: ['127.0.0.1'], clientPort: 1, mqttPort: 2, clusterPort: 3, monitorPort: 4, dir: '/y' })).credentials;
  await t.rejects(new NatsAccount(other).revoked(accountJwt, ['dev_a']), /another nats-config/, "another cluster's account is refused");
  await t.rejects(generateNatsCluster({ nodes: 0, hosts: ['h'], clientPort: 1, mqttPort: 2, clusterPort: 3, monitorPort: 4, dir: '/z' }), /give 1 to 9/);
  await t.rejects(generateNatsCluster({ nodes: 3, hosts: ['a', 'b'], clientPort: 1, mqttPort: 2, clusterPort: 3, monitorPort: 4, dir: '/z' }), /one per node/);
});
