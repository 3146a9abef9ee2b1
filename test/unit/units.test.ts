import t from 'tap';
import { formatBytes, formatLabels, parseDuration, parseLabels } from '@outpost/shared';
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
