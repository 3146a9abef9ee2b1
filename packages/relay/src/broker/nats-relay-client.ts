// The relay's connection to a NATS cluster whose nodes speak MQTT to devices: the relay speaks
// NATS itself. Device messages come through queue groups (each to one relay of the workspace;
// `status` and `logs` to every relay, as on MQTT), and what the relay sends a device is a plain
// NATS publish, which NATS hands to the device's MQTT subscription. NATS publishes are never
// retained MQTT messages: agents read their desired state and jobs over HTTPS on every connect
// (api/device-state.ts), so nothing depends on a retained copy in the broker.

import { connect, credsAuthenticator, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { DEVICE_WRITTEN_LEAVES, guarded, type Logger } from '@outpost/shared';
import { RELAY_SHARE_GROUP, type RelayClient } from './relay-client.js';

export interface NatsRelayClientOptions {
  servers: string[];
  /** The relay user's creds file text (from nats-config's relay-credentials.json). */
  creds: string;
  name: string;
  log: Logger;
  onMessage(topic: string, payload: Buffer): void;
  /** Called on every reconnect: the relay publishes every desired state and job list again. */
  onReconnect?(): void;
}

/** MQTT topic to NATS subject and back (NATS's own mapping, for topics without dots). */
export const topicToSubject = (topic: string) => topic.replaceAll('/', '.');
export const subjectToTopic = (subject: string) => subject.replaceAll('.', '/');

/** What the relay subscribes to: the leaves devices write, in the relays' queue group but for status and logs. */
export function natsSubscriptions(): Array<{ subject: string; queue?: string }> {
  const everyRelay = new Set(['status', 'logs']);
  return DEVICE_WRITTEN_LEAVES.map((leaf) => ({ subject: `outpost.v1.devices.*.${leaf}`, ...(everyRelay.has(leaf) ? {} : { queue: RELAY_SHARE_GROUP }) }));
}

function natsHint(err: Error): string {
  const text = `${(err as { code?: string }).code ?? ''} ${err.message}`;
  if (/authori[sz]ation|authentication|user authentication/i.test(text)) return 'the cluster refused the relay user in --nats-credentials: is it the file nats-config wrote for this cluster?';
  return 'check --broker (nats://HOST:4222[,nats://…]) and that the NATS nodes run';
}

export async function connectNatsRelayClient(opts: NatsRelayClientOptions): Promise<RelayClient> {
  const { log } = opts;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: opts.servers,
      name: opts.name,
      authenticator: credsAuthenticator(new TextEncoder().encode(opts.creds)),
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
      timeout: 10_000,
    });
  } catch (err) {
    throw new Error(`cannot connect to NATS at ${opts.servers.join(',')}: ${(err as Error).message}: ${natsHint(err as Error)}`);
  }
  const subs: Subscription[] = natsSubscriptions().map(({ subject, queue }) =>
    nc.subscribe(subject, {
      ...(queue ? { queue } : {}),
      callback: guarded(log, 'handling a device message', (err: Error | null, msg: { subject: string; data: Uint8Array }) => {
        if (err) return log.error({ err: err.message, subject }, 'relay NATS subscription failed');
        opts.onMessage(subjectToTopic(msg.subject), Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength));
      }),
    }),
  );
  let closing = false;
  const watching = (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') log.warn({ server: s.server }, 'relay NATS connection lost; reconnecting');
      else if (s.type === 'reconnect') {
        log.info({ server: s.server }, 'relay NATS connection back: publishing every desired state and job again');
        opts.onReconnect?.();
      } else if (s.type === 'error' && !closing) log.error({ err: String(s.error) }, 'relay NATS connection error');
    }
  })().catch((err: unknown) => log.error({ err }, 'watching the NATS connection failed'));

  let published = 0;
  const publish = async (topic: string, body: unknown) => {
    published++;
    nc.publish(topicToSubject(topic), JSON.stringify(body));
    // Resolves once the server has it (PING/PONG after it): the relay's per-device locks rely on that.
    await nc.flush();
  };
  return {
    get published() {
      return published;
    },
    // Not retained (NATS has no such publish): the store is the copy a device reads on connect.
    publishRetained: publish,
    clearRetained: async () => {},
    publish,
    async close() {
      closing = true;
      for (const s of subs) s.unsubscribe();
      await nc.drain().catch(() => nc.close());
      await watching;
    },
  };
}
