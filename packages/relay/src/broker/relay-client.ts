// The relay's connection to the broker, as a privileged MQTT client. It is the only way the
// relay's logic reaches devices, so the embedded broker can be swapped for Mosquitto or EMQX.

import mqtt, { type MqttClient } from 'mqtt';
import { ALL_DEVICES_FILTER, DEVICE_WRITTEN_LEAVES, TOPIC_ROOT, guarded, trustedCas, type Logger } from '@outpost/shared';

/** The MQTT shared-subscription group of relays that share one workspace. */
export const RELAY_SHARE_GROUP = 'outpost-relays';

/**
 * What the relay subscribes to. One relay: every leaf of every device. Several relays (`shared`):
 * the leaves one relay must handle once go to the group (the broker hands each message to one
 * member); `status` (retained, and rare) and `logs` (answers to a request one relay made) go to
 * every relay: retained messages are never sent to shared subscriptions.
 */
export function relaySubscriptions(shared: boolean): string[] {
  if (!shared) return [ALL_DEVICES_FILTER];
  // `notice` is the relay's own, written back by a device that forges one: every relay checks it
  // against what it stands by (each sees every status, so each marks the same duplicates).
  const everyRelay = new Set(['status', 'logs']);
  return [...DEVICE_WRITTEN_LEAVES.map((leaf) => (everyRelay.has(leaf) ? `${TOPIC_ROOT}/+/${leaf}` : `$share/${RELAY_SHARE_GROUP}/${TOPIC_ROOT}/+/${leaf}`)), `${TOPIC_ROOT}/+/notice`];
}

export interface RelayClientOptions {
  url: string;
  username?: string;
  password?: string;
  /** How the relay trusts the broker (and, with mutual TLS, proves who it is). */
  tls?: BrokerTls;
  log: Logger;
  /** Several relays share the workspace: subscribe as a member of the relays' group (see relaySubscriptions). */
  shared?: boolean;
  /** Called for every message on a device topic. Must not throw. */
  onMessage(topic: string, payload: Buffer): void;
  /**
   * Called on every connect after the first: the broker may have restarted and lost every
   * retained message (Mosquitto without persistence), so the relay publishes its state again.
   */
  onReconnect?(): void;
}

/**
 * The relay's side of TLS to a broker: the CAs it trusts beside the system's roots (its own CA,
 * and --mqtt-ca), and a client certificate whose subject is the MQTT user it connects as (a
 * Mosquitto with `use_identity_as_username` takes the user from it).
 */
export interface BrokerTls {
  ca?: string;
  cert?: string;
  key?: string;
}

/** MQTT.js's TLS options for it (only used for mqtts:// and wss:// URLs). */
export function brokerTlsOptions(t: BrokerTls | undefined): { ca?: string[]; cert?: string; key?: string } {
  if (!t) return {};
  return { ...(t.ca ? { ca: trustedCas(t.ca) } : {}), ...(t.cert && t.key ? { cert: t.cert, key: t.key } : {}) };
}

/** MQTT.js connects again with `client.options`, the same object its TLS stream is built from. */
export function setIdentity(client: MqttClient, pair: { cert: string; key: string }): void {
  Object.assign(client.options, { cert: pair.cert, key: pair.key });
}

export interface RelayClient {
  /** Publishes a retained state message (QoS 1); resolves once the broker has it. */
  publishRetained(topic: string, body: unknown): Promise<void>;
  /** Removes a retained message (an empty retained payload). */
  clearRetained(topic: string): Promise<void>;
  /** Publishes a request that matters only now (QoS 1, not retained); resolves once the broker has it. */
  publish(topic: string, body: unknown): Promise<void>;
  /** Messages published so far. */
  readonly published: number;
  close(): Promise<void>;
}

/** The relay's client of an MQTT broker: what a NATS connection has no use for as well. */
export interface MqttRelayClient extends RelayClient {
  /**
   * Reads every device's retained messages on these leaves again and hands them on as they
   * arrive (several relays: a report that went to a relay which died before it handled it is
   * still the retained one). Resolves once they have come: no retained one for `quietMs`.
   */
  rereadRetained(leaves: string[], quietMs?: number): Promise<number>;
  /** A new client certificate and key, shown from the next connection on (the relay's renewal). */
  setIdentity(pair: { cert: string; key: string }): void;
}

/** The fix for a failed first connection, from what failed. */
function brokerHint(err: Error, opts: RelayClientOptions): string {
  const text = `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`;
  if (/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|self-signed|unable to (verify|get)/i.test(text)) {
    return "the broker's certificate is not from the relay's CA or a public one: issue it with outpost-relay ca issue --server HOST, or trust its CA with --mqtt-ca FILE";
  }
  if (/ERR_TLS_CERT_ALTNAME_INVALID|altnames/i.test(text)) return "the broker's certificate does not name the host in --mqtt-url: use the name it has, or issue one for this name";
  if (/certificate required/i.test(text)) {
    return opts.tls?.cert ? 'the broker refused the certificate the relay showed' : 'the broker requires a client certificate, and a relay with --insecure has none to show: run the relay with TLS';
  }
  return 'check --mqtt-url (mqtt://USER:PASS@HOST:PORT) and that the broker runs';
}

export async function connectRelayClient(opts: RelayClientOptions): Promise<MqttRelayClient> {
  const { log } = opts;
  const client: MqttClient = mqtt.connect(opts.url, {
    clientId: `outpost-relay-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
    username: opts.username,
    password: opts.password,
    ...brokerTlsOptions(opts.tls),
    clean: true,
    reconnectPeriod: 1000,
    // Subscriptions are made on every connect below, so MQTT.js must not replay its own copy.
    resubscribe: false,
  });
  let connects = 0;
  client.on('connect', () => {
    // With a clean session the broker forgets subscriptions on every reconnect (mqttjs/MQTT.js#895).
    client.subscribe(relaySubscriptions(opts.shared ?? false), { qos: 1 }, (err) => {
      if (err) log.error({ err: err.message }, 'relay could not subscribe to device topics');
    });
    if (connects++ > 0) {
      log.info('relay mqtt client reconnected: publishing every desired state and job again');
      opts.onReconnect?.();
    }
  });
  let retainedSeen = 0;
  client.on('message', guarded(log, 'handling a device message', (topic: string, payload: Buffer, packet: { retain?: boolean }) => {
    if (packet.retain) retainedSeen++;
    opts.onMessage(topic, payload);
  }));
  let closing = false;
  // Closing races packets still in flight (a PUBACK for a message that came in meanwhile is
  // "write after end"): nothing is lost that the relay still needs, so not an error then.
  client.on('error', (err) => (closing ? log.debug : log.error).call(log, { err: err.message }, 'relay mqtt client error'));
  client.on('offline', () => log.warn('relay mqtt client offline; reconnecting'));

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      // No retrying in the background: the start that asked for this client fails now.
      client.end(true);
      reject(new Error(`cannot connect to the MQTT broker at ${opts.url}: ${err.message}: ${brokerHint(err, opts)}`));
    };
    client.once('error', onError);
    client.once('connect', () => {
      client.off('error', onError);
      resolve();
    });
  });

  let published = 0;
  const publish = (topic: string, payload: string, retain = true) =>
    new Promise<void>((resolve, reject) => {
      published++;
      client.publish(topic, payload, { qos: 1, retain }, (err) => (err ? reject(err) : resolve()));
    });

  return {
    get published() {
      return published;
    },
    publishRetained: (topic, body) => publish(topic, JSON.stringify(body)),
    clearRetained: (topic) => publish(topic, ''),
    publish: (topic, body) => publish(topic, JSON.stringify(body), false),
    setIdentity: (pair) => setIdentity(client, pair),
    async rereadRetained(leaves, quietMs = 1000) {
      // A subscription of its own (not the group's): the broker sends it the retained messages.
      const filters = leaves.map((leaf) => `${TOPIC_ROOT}/+/${leaf}`);
      const before = retainedSeen;
      await client.subscribeAsync(filters, { qos: 1 });
      try {
        // Live messages come twice meanwhile (here and to the group): handling one again changes nothing.
        const deadline = Date.now() + 30_000;
        for (let last = -1; retainedSeen !== last && Date.now() < deadline; ) {
          last = retainedSeen;
          await new Promise((r) => setTimeout(r, quietMs));
        }
      } finally {
        await client.unsubscribeAsync(filters).catch(() => undefined);
      }
      return retainedSeen - before;
    },
    close: () => {
      closing = true;
      return client.endAsync().then(() => undefined);
    },
  };
}
