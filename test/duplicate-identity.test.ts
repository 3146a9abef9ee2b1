// Two agents on one identity (a cloned SD card) against the embedded broker: the relay marks the
// device, the dashboard shows it, the copies back off, a finished deployment stays finished.

import t from 'tap';
import { startRelay } from './helpers/programs.js';
import { needPackage } from './helpers/system-package.js';
import { CHROMIUM, openDashboard, twoAgentsOneIdentity } from './helpers/duplicate-identity.js';

t.test('two agents on one identity, embedded broker', async (t) => {
  const relay = await startRelay(t, { extraArgs: ['--duplicate-clear', '15s'] });
  await twoAgentsOneIdentity(t, relay, { dashboard: needPackage(CHROMIUM, 'chromium') ? undefined : await openDashboard(t, relay) });
});
