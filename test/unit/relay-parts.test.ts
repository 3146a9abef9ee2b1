import t from 'tap';
import { parseRange } from '../../packages/relay/dist/api/artifacts.js';
import { formatCredential, hashSecret, newSecret, parseCredential, secretMatches } from '../../packages/relay/dist/auth/secrets.js';
import { deploymentState } from '../../packages/relay/dist/fleet/rollout-progress.js';
import { parseLabelChanges } from '../../packages/relay/dist/cli/devices.js';
import { parseModelRef, parseSize } from '../../packages/relay/dist/cli/parse.js';

t.test('byte ranges', async (t) => {
  t.equal(parseRange(undefined, 100), undefined);
  t.same(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
  t.same(parseRange('bytes=90-', 100), { start: 90, end: 99 });
  t.same(parseRange('bytes=-10', 100), { start: 90, end: 99 });
  t.same(parseRange('bytes=50-1000', 100), { start: 50, end: 99 }, 'clamped to the end');
  t.equal(parseRange('bytes=100-', 100), 'invalid');
  t.equal(parseRange('bytes=9-3', 100), 'invalid');
  t.equal(parseRange('bytes=-', 100), 'invalid');
  t.equal(parseRange('items=0-1', 100), 'invalid');
});

t.test('credentials', async (t) => {
  const secret = newSecret();
  const cred = formatCredential('opa', 'a1b2c3d4e5f6', secret);
  t.same(parseCredential('opa', cred), { id: 'a1b2c3d4e5f6', secret });
  t.equal(parseCredential('ope', cred), null, 'kinds do not mix');
  t.equal(parseCredential('opa', 'opa_short_x'), null);
  t.ok(secretMatches(secret, hashSecret(secret)));
  t.notOk(secretMatches(`${secret}x`, hashSecret(secret)));
  t.notOk(secretMatches(secret, 'abcd'), 'a malformed hash never matches');
  t.not(hashSecret(secret), secret, 'only the hash is kept');
});

t.test('deployment state from device states', async (t) => {
  const d = (...states: string[]) => ({ devices: states.map((state, i) => ({ deviceId: `d${i}`, state, reason: null, updatedAt: 0 })) }) as never;
  t.equal(deploymentState(d('serving', 'serving')), 'succeeded');
  t.equal(deploymentState(d('serving', 'superseded')), 'succeeded');
  t.equal(deploymentState(d('serving', 'loading')), 'in-progress');
  t.equal(deploymentState(d('failed', 'pending')), 'in-progress');
  t.equal(deploymentState(d('failed', 'serving')), 'failed');
});

t.test('CLI argument parsing', async (t) => {
  t.same(parseLabelChanges(['a=1', 'b-', 'c=x,d=y']), { a: '1', b: null, c: 'x', d: 'y' });
  t.throws(() => parseLabelChanges(['oops']), /not key=value/);
  t.same(parseModelRef('linear'), { name: 'linear', version: undefined });
  t.same(parseModelRef('linear:3'), { name: 'linear', version: 3 });
  t.same(parseModelRef('linear:latest'), { name: 'linear', version: undefined });
  t.throws(() => parseModelRef('bad name:x'), /not NAME or NAME:VERSION/);
  t.equal(parseSize('500MB'), 500e6);
  t.equal(parseSize('2GiB'), 2 * 1024 ** 3);
  t.throws(() => parseSize('lots'), /size like/);
});
