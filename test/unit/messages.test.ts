import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERRORS, DesiredState, HealthMessage, ReportedState, StatusMessage, messageParser } from '@outpost/shared';

t.test('message parsers refuse with a reason', async (t) => {
  const desired = messageParser(DesiredState);
  t.same(desired.parse('{"revision":1,"models":[]}'), { ok: true, value: { revision: 1, models: [] } });
  t.same(desired.parse('nope'), { ok: false, reason: 'payload is not JSON' });
  const bad = desired.parse(JSON.stringify({ revision: 1, models: [{ name: 'm', version: 1, sha256: 'xyz', size: 1, deploymentId: 'd' }] }));
  t.equal(bad.ok, false);
  t.match((bad as { reason: string }).reason, /\/models\/0\/sha256/);
  const health = messageParser(HealthMessage);
  t.equal(health.parse(Buffer.from('{"ts":1}')).ok, false);
});

t.test('accelerator and execution provider reports are bounded', async (t) => {
  const status = messageParser(StatusMessage);
  const base = { online: true, ts: 1, training: true, datasets: [] };
  t.same(status.parse(JSON.stringify({ ...base, accelerators: ['cuda', 'gpu'], executionProviders: ['cpu', 'cuda'] })), { ok: true, value: { ...base, accelerators: ['cuda', 'gpu'], executionProviders: ['cpu', 'cuda'] } });
  t.equal(status.parse(JSON.stringify(base)).ok, true, 'older agents omit them');
  const refused = (m: object) => status.parse(JSON.stringify(m));
  t.match(refused({ ...base, accelerators: Array.from({ length: 17 }, (_, i) => `a${i}`) }), { ok: false, reason: /\/accelerators/ }, 'too many');
  t.match(refused({ ...base, accelerators: Array.from({ length: 100_000 }, () => 'cuda') }), { ok: false, reason: /\/accelerators/ }, 'absurdly many');
  t.match(refused({ ...base, accelerators: ['x'.repeat(10_000)] }), { ok: false, reason: /\/accelerators\/0/ }, 'too long');
  t.match(refused({ ...base, accelerators: ['CUDA; DROP TABLE'] }), { ok: false, reason: /\/accelerators\/0/ }, 'not a name');
  t.match(refused({ ...base, accelerators: [{ name: 'cuda' }] }), { ok: false }, 'not a string');
  t.match(refused({ ...base, executionProviders: ['cpu', '../../lib'] }), { ok: false, reason: /\/executionProviders\/1/ });
  const reported = messageParser(ReportedState);
  const model = { name: 'm', version: 1, sha256: 'a'.repeat(64), state: 'serving' };
  t.equal(reported.parse(JSON.stringify({ revision: 1, models: [{ ...model, executionProvider: 'cpu', providersSkipped: [{ provider: 'cuda', reason: 'no library' }] }] })).ok, true);
  t.equal(reported.parse(JSON.stringify({ revision: 1, models: [{ ...model, executionProvider: 'Not A Provider' }] })).ok, false);
  t.equal(reported.parse(JSON.stringify({ revision: 1, models: [{ ...model, providersSkipped: Array.from({ length: 9 }, () => ({ provider: 'cuda', reason: 'x' })) }] })).ok, false, 'at most 8 skipped');
  t.equal(reported.parse(JSON.stringify({ revision: 1, models: [{ ...model, providersSkipped: [{ provider: 'cuda', reason: 'x'.repeat(501) }] }] })).ok, false, 'a bounded reason');
});

t.test('every error code is documented', async (t) => {
  const doc = readFileSync(fileURLToPath(new URL('../../docs/api.md', import.meta.url)), 'utf8');
  for (const [code, { status }] of Object.entries(ERRORS)) {
    t.match(doc, new RegExp(`\\| \`${code}\` \\| ${status} \\|`), `${code} is in docs/api.md with status ${status}`);
  }
});
