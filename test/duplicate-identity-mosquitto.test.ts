// Two agents on one identity through Mosquitto: the relay sees it from status messages alone,
// as on its embedded broker; and what a notice not the relay's own costs (nothing).

import t from 'tap';
import { startRelay } from './helpers/programs.js';
import { needPackage } from './helpers/system-package.js';
import { startMosquitto, withAclFile } from './helpers/mosquitto.js';
import { twoAgentsOneIdentity } from './helpers/duplicate-identity.js';

t.test('two agents on one identity, Mosquitto', { skip: needPackage('mosquitto', 'mosquitto') }, async (t) => {
  const broker = (await startMosquitto(t, withAclFile)).url;
  const relay = await startRelay(t, { extraArgs: ['--mqtt-url', broker.replace('mqtt://', 'mqtt://outpost-relay:unused@'), '--advertise-mqtt-url', broker, '--duplicate-clear', '15s'] });
  await twoAgentsOneIdentity(t, relay, { mosquitto: broker });
});
