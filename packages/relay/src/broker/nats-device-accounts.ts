// BrokerAccounts on a NATS cluster: a device's MQTT password is a user JWT the relay signs
// (broker/nats-account.ts), and a removed device is revoked in the account JWT the cluster's
// resolver holds. The relay reads that JWT, adds the revocation, and pushes it back through the
// system account; several relays take the store's lock around it, so none drops another's.

import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '@outpost/shared';
import type { Store } from '../store/store.js';
import type { BrokerAccounts } from './mosquitto-dynsec.js';
import { NatsAccount, textOf, type NatsCredentials } from './nats-account.js';

const REQUEST_MS = 5000;

export type NatsDeviceAccounts = BrokerAccounts;

export async function connectNatsDeviceAccounts(opts: { servers: string[]; creds: NatsCredentials; store: Store; log: Logger; name: string }): Promise<NatsDeviceAccounts> {
  const account = new NatsAccount(opts.creds);
  let sys: NatsConnection;
  try {
    sys = await connect({ servers: opts.servers, name: `${opts.name} accounts`, authenticator: credsAuthenticator(new TextEncoder().encode(opts.creds.systemCreds)), maxReconnectAttempts: -1, reconnectTimeWait: 1000, timeout: 10_000 });
  } catch (err) {
    throw new Error(`cannot connect to NATS at ${opts.servers.join(',')} as the system account user: ${(err as Error).message}: is --nats-credentials the file nats-config wrote for this cluster?`);
  }
  const accountJwt = async (): Promise<string> => {
    const reply = await sys.request(`$SYS.REQ.ACCOUNT.${account.accountPublicKey}.CLAIMS.LOOKUP`, '', { timeout: REQUEST_MS });
    const text = textOf(reply.data);
    if (!text.startsWith('ey')) throw new Error(`the cluster has no account ${account.accountPublicKey}: ${text.slice(0, 200)}`);
    return text;
  };
  // The lookup answers before the first device needs it: a wrong file fails the start, not an enrollment.
  await accountJwt().catch((err: Error) => {
    void sys.close();
    throw new Error(`NATS: ${err.message}: is --nats-credentials the file nats-config wrote for this cluster?`);
  });
  // A device's login is a JWT signed for it (the same at enrollment and when asked again);
  // NATS maps MQTT QoS 1 subscriptions onto JetStream consumers: devices subscribe at QoS 0.
  const login = async (deviceId: string) => ({ password: await account.deviceJwt(deviceId), subscribeQos: 0 as const });
  return {
    addDevice: login,
    login,
    async removeDevice(deviceId) {
      await opts.store.exclusive('nats-account', async () => {
        const next = await account.revoked(await accountJwt(), [deviceId]);
        const reply = await sys.request('$SYS.REQ.CLAIMS.UPDATE', next, { timeout: REQUEST_MS });
        const answer = JSON.parse(textOf(reply.data)) as { data?: { code?: number; message?: string }; error?: { description?: string } };
        if (answer.error || (answer.data?.code ?? 200) >= 300) throw new Error(`the cluster refused the account update: ${answer.error?.description ?? answer.data?.message ?? 'no reason given'}`);
      });
      opts.log.info({ deviceId }, "revoked the device's NATS user on the cluster");
    },
    async close() {
      await sys.drain().catch(() => sys.close());
    },
  };
}
