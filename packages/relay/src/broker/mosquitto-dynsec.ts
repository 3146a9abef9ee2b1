// Device accounts on an external Mosquitto, kept by the relay through Mosquitto's dynamic
// security plugin (commands on `$CONTROL/dynamic-security/v1`). Each enrolled device gets a
// Mosquitto client named by its id, with its secret, and a role of its own that allows only
// `outpost/v1/devices/{id}/#`; removing the device deletes both, which also disconnects it.
// Mosquitto stores the password hashed; the relay hands it over once, at enrollment, the only
// time it knows it. One role per device because Mosquitto 2.0.11 (Debian 12) does not expand
// %u in dynamic-security ACLs.
//
// The relay's own MQTT client does not use the admin account: it gets a client of its own,
// `outpost-relay`, with a fresh password at each start and rights on Outpost's topics only.
// (Giving the admin client a role instead would make Mosquitto drop its connection.)

import mqtt, { type MqttClient } from 'mqtt';
import { randomBytes } from 'node:crypto';
import { TOPIC_ROOT, devicePrefix, type Logger } from '@outpost/shared';
import { RELAY_SHARE_GROUP, brokerTlsOptions, setIdentity, type BrokerTls } from './relay-client.js';
import { RELAY_USER } from './relay-user.js';

const COMMANDS = '$CONTROL/dynamic-security/v1';
const RESPONSES = `${COMMANDS}/response`;
/** The client and role the relay's own MQTT client uses: every Outpost topic, nothing else. */
export { RELAY_USER };
const deviceRole = (deviceId: string) => `outpost-device-${deviceId}`;
/** Answers that mean the thing is already as wanted (setup and removal are idempotent). */
const ALREADY = /already exists|not found/i;

/** What a device gives its broker beside its id, when that is not its secret. */
export interface DeviceBrokerLogin {
  password: string;
  /**
   * The QoS the device subscribes with. 0 on NATS: what the relay sends there is a plain NATS
   * publish, delivered at QoS 0 whatever the subscription says, and a QoS 1 subscription would
   * cost a JetStream consumer per device and topic (which a node's death leaves hanging).
   */
  subscribeQos?: 0 | 1;
}

export interface BrokerAccounts {
  /**
   * Creates the device's account; resolves once the broker has it, with the MQTT password to
   * use when it is not the device's secret (a NATS user JWT).
   */
  addDevice(deviceId: string, secret: string): Promise<DeviceBrokerLogin | void>;
  /** A fresh MQTT password for an enrolled device, where the broker has its own (NATS). */
  login?(deviceId: string): Promise<DeviceBrokerLogin>;
  /** The devices among these that have no Mosquitto client (enrolled before dynsec was on). */
  missing?(deviceIds: string[]): Promise<string[]>;
  /** Deletes the device's client (disconnecting it) and role. */
  removeDevice(deviceId: string): Promise<void>;
  /** A new client certificate for the admin connection, from its next connect on (Mosquitto). */
  setIdentity?(pair: { cert: string; key: string }): void;
  close(): Promise<void>;
}

interface Command {
  command: string;
  [key: string]: unknown;
}

interface Response {
  command: string;
  error?: string;
  correlationData?: string;
  data?: { clients?: string[] };
}

const aclsFor = (topic: string) =>
  ['publishClientSend', 'publishClientReceive', 'subscribePattern'].map((acltype) => ({ acltype, topic, allow: true }));

export interface DynsecOptions {
  /** The broker URL without credentials, e.g. mqtt://broker:1883. */
  url: string;
  /** A Mosquitto client with the plugin's admin role (`mosquitto_ctrl dynsec init`). */
  username: string;
  password?: string;
  /** Trust for an mqtts:// broker, and the admin's client certificate (subject = `username`). */
  tls?: BrokerTls;
  log: Logger;
  /** How long to wait for Mosquitto's answer to a command (default 10 s). */
  timeoutMs?: number;
  /**
   * The relay's own client (default `outpost-relay`). Relays sharing one Mosquitto each need
   * their own, with the relay role: each start sets a new password, which would lock the others out.
   */
  relayUsername?: string;
}

/**
 * Mosquitto's accounts: a certificate for the admin connection, a list of its clients, and the
 * credentials for the relay's own MQTT client (the password is new at each start).
 */
export type MosquittoAccounts = BrokerAccounts & Required<Pick<BrokerAccounts, 'setIdentity' | 'missing'>> & { readonly relayUser: { username: string; password: string } };

/** Connects as the plugin's admin and sets up the relay's own client (see above). */
export async function connectMosquittoDynsec(opts: DynsecOptions): Promise<MosquittoAccounts> {
  if (opts.username === RELAY_USER) throw new Error(`the dynamic-security admin must not be named "${RELAY_USER}": the relay makes that client for itself`);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const client: MqttClient = await mqtt
    .connectAsync(opts.url, {
      clientId: `outpost-relay-dynsec-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
      username: opts.username,
      password: opts.password,
      ...brokerTlsOptions(opts.tls),
      clean: true,
      reconnectPeriod: 1000,
      resubscribe: false,
    })
    .catch((err: Error) => {
      throw new Error(`cannot connect to Mosquitto at ${opts.url} as "${opts.username}" (the plugin's admin): ${err.message}`);
    });
  const waiting = new Map<string, (r: Response) => void>();
  client.on('message', (topic, payload) => {
    if (topic !== RESPONSES) return;
    let responses: Response[] = [];
    try {
      responses = (JSON.parse(payload.toString()) as { responses?: Response[] }).responses ?? [];
    } catch {
      opts.log.warn('Mosquitto dynamic-security answer is not JSON; ignored');
    }
    for (const r of responses) {
      const settle = r.correlationData !== undefined ? waiting.get(r.correlationData) : undefined;
      settle?.(r);
    }
  });
  const subscribe = () => client.subscribeAsync(RESPONSES, { qos: 1 });
  client.on('connect', () => void subscribe().catch((err: Error) => opts.log.error({ err: err.message }, 'cannot subscribe to Mosquitto dynamic-security answers')));
  const granted = await subscribe().catch(() => []);
  if (granted.length === 0 || (granted[0]!.qos as number) === 128) {
    await client.endAsync();
    throw new Error(`the MQTT user "${opts.username}" may not use Mosquitto's dynamic security plugin: give it the plugin's admin role (mosquitto_ctrl dynsec init)`);
  }

  let next = 0;
  /** Sends commands in one message; resolves with each one's answer. */
  async function run(commands: Command[]): Promise<Response[]> {
    const base = `${++next}`;
    const answers = commands.map(
      (_, i) =>
        new Promise<Response>((resolve, reject) => {
          const id = `${base}.${i}`;
          const timer = setTimeout(() => {
            waiting.delete(id);
            reject(new Error(`Mosquitto did not answer "${commands[i]!.command}" within ${timeoutMs} ms: is the dynamic security plugin loaded?`));
          }, timeoutMs);
          waiting.set(id, (r) => {
            clearTimeout(timer);
            waiting.delete(id);
            resolve(r);
          });
        }),
    );
    const payload = JSON.stringify({ commands: commands.map((c, i) => ({ ...c, correlationData: `${base}.${i}` })) });
    await client.publishAsync(COMMANDS, payload, { qos: 1 }).catch((err: Error) => {
      // Nothing will answer: settle each command now, as failed.
      commands.forEach((c, i) => waiting.get(`${base}.${i}`)?.({ command: c.command, error: `not sent (${err.message})` }));
    });
    return Promise.all(answers);
  }
  /** Runs commands and throws on the first error that is not "already exists" / "not found". */
  async function apply(commands: Command[], what: string): Promise<void> {
    const errors = (await run(commands)).map((r) => r.error ?? '');
    const failed = errors.findIndex((e) => e !== '' && !ALREADY.test(e));
    if (failed >= 0) throw new Error(`Mosquitto refused to ${what}: ${commands[failed]!.command}: ${errors[failed]}`);
  }

  /**
   * A client with this password and a role of its own on `topic`. One that exists already (an
   * earlier relay start; a device removed while Mosquitto was away) gets the new password, and
   * the role in case it was taken.
   */
  const ensureClient = (username: string, password: string, rolename: string, topic: string, what: string) =>
    apply(
      [
        { command: 'createRole', rolename, acls: aclsFor(topic) },
        { command: 'createClient', username, password, roles: [{ rolename }] },
        { command: 'modifyClient', username, password, roles: [{ rolename }] },
      ],
      what,
    );

  const relayUser = { username: opts.relayUsername ?? RELAY_USER, password: randomBytes(24).toString('base64url') };
  try {
    await ensureClient(relayUser.username, relayUser.password, RELAY_USER, `${TOPIC_ROOT}/#`, "set up the relay's own client");
    // Relays sharing a workspace subscribe as a shared-subscription group, which Mosquitto's
    // ACL checks under its own $share/… name (added to roles made before it, too).
    await apply([{ command: 'addRoleACL', rolename: RELAY_USER, acltype: 'subscribePattern', topic: `$share/${RELAY_SHARE_GROUP}/${TOPIC_ROOT}/#`, allow: true }], 'let the relay subscribe as a group');
  } catch (err) {
    await client.endAsync();
    throw err;
  }
  opts.log.info({ url: opts.url }, 'device accounts kept on Mosquitto (dynamic security)');

  return {
    relayUser,
    addDevice: (deviceId, secret) => ensureClient(deviceId, secret, deviceRole(deviceId), `${devicePrefix(deviceId)}#`, `create device ${deviceId}'s account`),
    async missing(deviceIds) {
      const [answer] = await run([{ command: 'listClients', verbose: false }]);
      if (answer!.error) throw new Error(`Mosquitto refused to list its clients: ${answer!.error}`);
      const known = new Set(answer!.data?.clients ?? []);
      return deviceIds.filter((id) => !known.has(id));
    },
    async removeDevice(deviceId) {
      await apply(
        [
          { command: 'deleteClient', username: deviceId },
          { command: 'deleteRole', rolename: deviceRole(deviceId) },
        ],
        `delete device ${deviceId}'s account`,
      );
    },
    setIdentity: (pair) => setIdentity(client, pair),
    async close() {
      for (const settle of [...waiting.values()]) settle({ command: '', error: 'the relay is closing' });
      await client.endAsync();
    },
  };
}
