import t from 'tap';
import { credentialKind, formatBytes, formatLabels, notAnEnrollToken, parseDuration, parseLabels, relayUrl } from '@outpost/shared';
import { parseDeviceTopic, isWithinDevicePrefix, deviceTopic } from '@outpost/shared';

t.test('durations', async (t) => {
  t.equal(parseDuration('15m'), 900_000);
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('2h'), 7_200_000);
  t.equal(parseDuration('7d'), 604_800_000);
  t.equal(parseDuration('30'), 30_000, 'bare numbers are seconds');
  t.throws(() => parseDuration('soon'), /invalid duration "soon"/);
  t.throws(() => parseDuration('0s'), /more than zero/);
});

t.test('labels', async (t) => {
  t.same(parseLabels('site=lab,tier=edge', 'zone=a'), { site: 'lab', tier: 'edge', zone: 'a' });
  t.same(parseLabels(''), {});
  t.equal(formatLabels({ a: '1', b: '2' }), 'a=1,b=2');
  t.throws(() => parseLabels('novalue'), /use key=value/);
  t.throws(() => parseLabels('bad key=x'), /invalid label key/);
  t.throws(() => parseLabels('k=sp ace'), /invalid label value/);
});

t.test('bytes', async (t) => {
  t.equal(formatBytes(512), '512 B');
  t.equal(formatBytes(1536), '1.5 KiB');
  t.equal(formatBytes(5 * 1024 ** 3), '5.0 GiB');
});

t.test('topics', async (t) => {
  t.same(parseDeviceTopic('outpost/v1/devices/dev_1/health'), { deviceId: 'dev_1', leaf: 'health' });
  t.equal(parseDeviceTopic('outpost/v1/devices/dev_1/a/b'), null);
  t.equal(parseDeviceTopic('other/topic'), null);
  t.equal(parseDeviceTopic('outpost/v1/devices//x'), null);
  t.equal(deviceTopic('dev_1', 'desired'), 'outpost/v1/devices/dev_1/desired');
  t.ok(isWithinDevicePrefix('outpost/v1/devices/dev_1/#', 'dev_1'));
  t.notOk(isWithinDevicePrefix('outpost/v1/devices/dev_10/#', 'dev_1'), 'a longer id is another device');
  t.notOk(isWithinDevicePrefix('outpost/v1/devices/+/status', 'dev_1'));
  t.notOk(isWithinDevicePrefix('#', 'dev_1'));
});

t.test('relay URLs', async (t) => {
  t.equal(relayUrl('127.0.0.1:8080'), 'https://127.0.0.1:8080', 'host:port means https:// (TLS is the default)');
  t.equal(relayUrl('relay.local'), 'https://relay.local');
  t.equal(relayUrl(' https://relay.example.com/ '), 'https://relay.example.com');
  t.equal(relayUrl('http://[::1]:8080/'), 'http://[::1]:8080');
  t.equal(relayUrl('http://relay:8080/prefix/'), 'http://relay:8080/prefix', 'a path prefix (behind a proxy) is kept');
  t.throws(() => relayUrl('mqtt://outpost:pw@broker:1883'), /mqtt:\/\/outpost:pw@broker:1883 is an MQTT URL: give the relay's HTTP URL, e\.g\. https:\/\/broker:8080/);
  t.throws(() => relayUrl('ws://relay:8080'), /^ws:\/\/relay:8080: give the relay's http:\/\/ or https:\/\/ URL, e\.g\. https:\/\/relay:8080$/);
  t.throws(() => relayUrl('http://'), /is not a URL/);
  t.throws(() => relayUrl('relay:port'), /is not a URL/);
});

t.test('credential kinds, from their prefix', async (t) => {
  t.equal(credentialKind('opa_0123456789ab_secret'), 'opa');
  t.equal(credentialKind('ods_x'), 'ods');
  t.equal(credentialKind('xyz_0123'), undefined);
  t.equal(credentialKind('constructor_x'), undefined);
  t.equal(notAnEnrollToken('ope_0123456789ab_secret'), undefined);
  t.match(notAnEnrollToken('opa_0123456789ab_secret'), /^that is an API token \(opa_…\), not an enrollment token \(ope_…\): make one on the relay host with outpost-relay tokens enroll$/);
  t.match(notAnEnrollToken('ods_x'), /^that is a device secret/);
  t.match(notAnEnrollToken(''), /^that is not an enrollment token \(they start with ope_\)/);
});
