import t from 'tap';
import { parseRange } from '../../packages/relay/dist/api/artifacts.js';
import { formatCredential, hashSecret, newSecret, parseCredential, secretMatches } from '../../packages/relay/dist/auth/secrets.js';
import { deploymentState } from '../../packages/relay/dist/fleet/rollout-progress.js';
import { rolloutSettled, type DeviceRolloutState } from '../../packages/relay/dist/store/records.js';
import { parseLabelChanges } from '../../packages/relay/dist/cli/devices.js';
import { parseModelRef } from '../../packages/relay/dist/cli/parse.js';
import { parseSize } from '@outpost/shared';
import { HotArtifacts } from '../../packages/relay/dist/artifacts/hot-artifacts.js';
import { Slots } from '../../packages/relay/dist/fleet/slots.js';
import { FileArtifactStore } from '../../packages/relay/dist/artifacts/artifact-store.js';
import { Readable } from 'node:stream';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
  const counts = (...states: DeviceRolloutState[]) => {
    const c: Partial<Record<DeviceRolloutState, number>> = {};
    for (const s of states) c[s] = (c[s] ?? 0) + 1;
    return c;
  };
  const d = (...states: DeviceRolloutState[]) => ({ counts: counts(...states) });
  t.equal(deploymentState(d('serving', 'serving')), 'succeeded');
  t.equal(deploymentState(d('serving', 'superseded')), 'succeeded');
  t.equal(deploymentState(d('serving', 'removed')), 'succeeded', 'a device that left does not hold the rollout');
  t.equal(deploymentState(d('serving', 'loading')), 'in-progress');
  t.equal(deploymentState(d('failed', 'pending')), 'in-progress');
  t.equal(deploymentState(d('failed', 'serving')), 'failed');
  t.equal(deploymentState(d('serving', 'waiting')), 'in-progress', 'devices not yet released');
  t.equal(deploymentState({ ...d('serving', 'healthy'), strategy: { kind: 'rolling', batch: 1, canary: 0, failureThreshold: null, healthWindowMs: 1000 } }), 'in-progress', 'serving is not done inside a health window');
  t.equal(deploymentState({ ...d('healthy', 'healthy'), strategy: { kind: 'rolling', batch: 1, canary: 0, failureThreshold: null, healthWindowMs: 1000 } }), 'succeeded');
  t.equal(deploymentState({ ...d('pending'), state: 'canceled' }), 'canceled', 'an ended deployment stays ended');
});

t.test('rollout settled', async (t) => {
  for (const s of ['waiting', 'pending', 'downloading', 'loading'] as const) t.notOk(rolloutSettled(s, 0), s);
  for (const s of ['serving', 'healthy', 'failed', 'superseded', 'removed', 'canceled'] as const) t.ok(rolloutSettled(s, 0), s);
  t.notOk(rolloutSettled('serving', 5000), 'serving waits for its health window');
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

t.test('hot artifacts: shared reads, least recently used leave first, big files stream', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hot-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = { path: (sha: string) => join(dir, sha) } as never;
  // Files named by the sha256 of their bytes, as the artifact store keeps them.
  const sha: Record<string, string> = {};
  for (const [name, size] of [['a', 40], ['b', 40], ['c', 40], ['big', 60]] as const) {
    const bytes = Buffer.alloc(size, name);
    sha[name] = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(dir, sha[name]!), bytes);
  }
  const corrupt: Array<[string, string]> = [];
  const hot = new HotArtifacts(store, 100, async (s: string, actual: string) => void corrupt.push([s, actual]), 50);
  const [a1, a2] = await Promise.all([hot.get(sha.a!, 40), hot.get(sha.a!, 40)]);
  t.equal(a1, a2, 'two devices asking at once share one read');
  t.equal(await hot.get(sha.big!, 60), undefined, 'a file over the per-file bound is not kept');
  await hot.get(sha.b!, 40);
  await hot.get(sha.a!, 40); // a is now the most recently used
  await hot.get(sha.c!, 40); // over budget: b leaves
  t.equal(hot.bytes, 80);
  writeFileSync(join(dir, sha.a!), Buffer.alloc(40, 'x'));
  t.equal((await hot.get(sha.a!, 40))!.toString()[0], 'a', 'a stayed in memory');
  writeFileSync(join(dir, sha.b!), Buffer.alloc(40, 'x'));
  await t.rejects(hot.get(sha.b!, 40), { code: 'OUTPOST_ERR_ARTIFACT_CORRUPT' }, 'b changed on disk: it is not loaded');
  t.same(corrupt, [[sha.b, createHash('sha256').update(Buffer.alloc(40, 'x')).digest('hex')]], 'and it is reported with the hash it had');
  t.equal(hot.bytes, 80, 'nothing corrupt was kept');
  hot.forget(sha.a!);
  t.equal(hot.bytes, 40, 'a file pushed again is forgotten');
});

t.test('download slots: first come, first served', async (t) => {
  const slots = new Slots(1);
  t.equal(await slots.take(0), true);
  t.equal(await slots.take(0), false, 'no wait: turned away at once');
  const order: string[] = [];
  const first = slots.take(10_000).then((ok) => order.push(`first ${ok}`));
  const second = slots.take(10_000).then((ok) => order.push(`second ${ok}`));
  const late = slots.take(1).then((ok) => order.push(`late ${ok}`));
  await late;
  t.equal(slots.waiting, 2, 'a waiter whose time ran out left the queue');
  slots.release();
  await first;
  slots.release();
  await second;
  t.same(order, ['late false', 'first true', 'second true']);
  t.equal(slots.active, 1);
  slots.release();
  t.equal(slots.active, 0);
  const gone = new AbortController();
  t.equal(await slots.take(0), true);
  const aborted = slots.take(10_000, gone.signal);
  gone.abort();
  t.equal(await aborted, false, 'a client that went away stops waiting');
  t.equal(slots.waiting, 0);
});

t.test('artifact store: a file being committed is not removed under its push', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-artifacts-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = new FileArtifactStore(dir);
  const bytes = Buffer.from('model bytes');
  const sha = createHash('sha256').update(bytes).digest('hex');
  const staged = await store.stage(Readable.from([bytes]));
  const committing = staged.commit();
  t.equal(store.remove(sha), false, 'kept while the push records its reference');
  await committing;
  t.equal(store.remove(sha), false, 'still kept in the push\'s own next step');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(store.fileState(sha).state, 'ok');
  t.equal(store.remove(sha), true, 'removable once the push is done');
  t.equal(store.fileState(sha).state, 'missing');
  t.equal(store.remove(sha), false, 'nothing left to remove');
});
