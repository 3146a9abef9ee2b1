import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERRORS, DesiredState, HealthMessage, messageParser } from '@outpost/shared';

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

t.test('every error code is documented', async (t) => {
  const doc = readFileSync(fileURLToPath(new URL('../../docs/api.md', import.meta.url)), 'utf8');
  for (const [code, { status }] of Object.entries(ERRORS)) {
    t.match(doc, new RegExp(`\\| \`${code}\` \\| ${status} \\|`), `${code} is in docs/api.md with status ${status}`);
  }
});
