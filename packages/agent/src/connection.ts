// The agent's MQTT session. On every connect we announce we are online and subscribe to our
// desired state, whose retained copy arrives at once. The last will marks the device offline
// the moment the connection drops. Reconnects are ours, not MQTT.js's fixed period: doubling
// from 1 s to 30 s with jitter, so that a fleet whose relay restarts does not come back in
// lockstep waves that time out and come back again (a reconnect storm).
//
// Two agents with one identity (a copied data dir) take the connection from each other: the
// broker closes the older one without a word (MQTT 3.1.1 has no reason code for it). The relay
// sees it in the agents' instances and says so in a retained notice; an agent whose connection
// closes while the notice stands waits its longest backoff instead of a second, and says why once.

import { X509Certificate, randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { DesiredJobs, DeviceNotice, REPORT_AGAIN, type MqttLogin, isTlsBrokerUrl, LogsRequest, backoffMs, tlsConnectOptions, type ClientTls, type TlsClientOptions, type Backoff, DesiredState, deviceTopic, guarded, messageParser, type DesiredState as Desired, type HealthMessage, type JobLogBatch, type JobsReported, type Logger, type LogsAnswer, type ReportedState, type StatusMessage } from '@outpost/shared';

/** Reconnect delays; MQTT.js's own reconnect (a fixed period) is off. */
const RECONNECT: ReconnectPolicy = { baseMs: 1000, maxMs: 30_000, jitter: true };

export interface ReconnectPolicy extends Backoff {
  /** Off only to measure the old fixed-period behaviour side by side (bench/fleet --storm). */
  jitter: boolean;
}

export interface ConnectionOptions {
  url: string;
  /** More broker nodes, tried in turn when one cannot be reached (a cluster); `url` is among them. */
  urls?: string[];
  /** The MQTT password, when the broker's is not the device secret (a NATS user JWT). */
  password?: string;
  /** QoS of the agent's subscriptions (default 1; 0 on NATS, see DeviceBrokerLogin on the relay). */
  subscribeQos?: 0 | 1;
  /**
   * The broker refused the device's login: asks the relay for a current one (a workspace moved
   * to NATS, a new account key). Resolves with it, or undefined when there is none.
   */
  refreshLogin?(): Promise<BrokerLogin | undefined>;
  deviceId: string;
  secret: string;
  /**
   * The relay's CA and the device's certificate, read again at each connect (a renewal takes
   * effect on the next one).
   */
  tls?(): ClientTls | undefined;
  log: Logger;
  agentVersion: string;
  /** Told to the relay in the status message: consent to training, and local dataset names. */
  training: boolean;
  datasets: string[];
  /** Told to the relay too: accelerators (found and declared) and usable execution providers (accelerators.ts). */
  accelerators?: string[];
  executionProviders?: string[];
  onDesired(desired: Desired): void;
  onDesiredJobs(jobs: DesiredJobs): void;
  /** The relay asks for the agent's recent log lines (answered with publishLogs). */
  onLogsRequest?(request: LogsRequest): void;
  onConnectionChange?(connected: boolean): void;
  /** The subscriptions of a new connection stand: anything the relay changes from now on arrives. */
  onSubscribed?(): void;
  /** Defaults: 1 s doubling to 30 s with jitter, and 30 s for the broker's CONNACK. */
  reconnect?: ReconnectPolicy;
  connectTimeoutMs?: number;
}

/** What the device gives the broker, from the relay (GET /v1/devices/me/mqtt-login). */
export type BrokerLogin = Omit<MqttLogin, 'username'>;

export interface Connection {
  readonly connected: boolean;
  publishReported(state: ReportedState): void;
  publishHealth(health: HealthMessage): void;
  publishJobsReported(state: JobsReported): void;
  publishJobLog(batch: JobLogBatch): void;
  publishLogs(answer: LogsAnswer): void;
  close(): Promise<void>;
}

const parseDesired = messageParser(DesiredState);
const parseDesiredJobs = messageParser(DesiredJobs);
const parseNotice = messageParser(DeviceNotice);

const DUPLICATE_LINE = "another agent is connected with this device's identity (device.json copied?): backing off; stop the other agent or enroll this one as a new device";
const parseLogsRequest = messageParser(LogsRequest);

/** MQTT.js's failover list from broker URLs. */
export function brokerServers(urls: string[]): Array<{ host: string; port: number; protocol: 'mqtt' | 'mqtts' | 'ws' | 'wss' }> {
  return urls.map((u) => {
    const url = new URL(u);
    const protocol = url.protocol.slice(0, -1) as 'mqtt' | 'mqtts' | 'ws' | 'wss';
    return { host: url.hostname, port: Number(url.port || (protocol === 'mqtts' ? 8883 : 1883)), protocol };
  });
}

export function connect(opts: ConnectionOptions): Connection {
  const { deviceId, log } = opts;
  // Each connection has its session: its online message and its will carry it (see StatusMessage).
  let session = Date.now();
  // This process, whatever its connections: another agent with this identity has another one.
  const instance = randomBytes(8).toString('hex');
  const status = (online: boolean): string =>
    JSON.stringify({ online, ts: Date.now(), session, instance, agentVersion: opts.agentVersion, training: opts.training, datasets: opts.datasets, ...(opts.accelerators ? { accelerators: opts.accelerators } : {}), ...(opts.executionProviders ? { executionProviders: opts.executionProviders } : {}) } satisfies StatusMessage);
  const will = () => ({ topic: deviceTopic(deviceId, 'status'), payload: Buffer.from(status(false)), qos: 1 as const, retain: true });
  let lastReported: string | undefined;
  let lastJobsReported: string | undefined;

  // The secret goes too: an external broker (Mosquitto with passwords) knows the device by it,
  // and over TLS the broker was verified first. The embedded broker goes by the certificate.
  // Only for mqtts://: MQTT.js turns a plain mqtt:// URL into TLS when it is given a key and certificate.
  const secure = isTlsBrokerUrl(opts.url);
  // The relay's CA alone (not the system's roots: the secret goes to this broker too), and the
  // certificate while it has not ended (an ended one would only be refused; the secret works).
  const pinned = new WeakMap<ClientTls, { valid: TlsClientOptions; caOnly: TlsClientOptions }>();
  const identity = (): TlsClientOptions => {
    const tls = secure ? opts.tls?.() : undefined;
    if (!tls) return {};
    let both = pinned.get(tls);
    if (!both) {
      both = { valid: tlsConnectOptions({ ...tls, systemRoots: false }), caOnly: tlsConnectOptions({ ca: tls.ca, systemRoots: false }) };
      pinned.set(tls, both);
    }
    return tls.cert && Date.parse(new X509Certificate(tls.cert).validTo) > Date.now() ? both.valid : both.caOnly;
  };
  const client: MqttClient = mqtt.connect(opts.url, {
    clientId: deviceId,
    username: deviceId,
    password: opts.password ?? opts.secret,
    // Each connect takes the next node: a node that died is left for the next one.
    ...(opts.urls && opts.urls.length > 1 ? { servers: brokerServers(opts.urls) } : {}),
    ...identity(),
    clean: true,
    keepalive: 30,
    reconnectPeriod: 0,
    // A relay busy with a whole fleet reconnecting answers late: waiting beats a retry that
    // joins the queue again from its end.
    connectTimeout: opts.connectTimeoutMs ?? 30_000,
    resubscribe: false,
    will: will(),
    // Bounded offline queue: health is state, not history (mqttjs/MQTT.js#607).
    queueQoSZero: false,
    // mqtt-packet otherwise pre-builds a Buffer for every 16-bit number on the first packet:
    // 65,536 objects, about 6 MiB of an idle agent's heap, to save an allocation per packet id.
    writeCache: false,
  });

  let subscribeQos = opts.subscribeQos ?? 1;
  let password = opts.password;
  let failures = 0;
  let retry: NodeJS.Timeout | undefined;
  let closing = false;
  // The relay's duplicate-connection notice, as of this connection: it is retained, so it comes
  // again with each subscribe while it stands (a clear sent while this agent was away does not).
  let duplicate: DeviceNotice | undefined;
  let toldSince: number | undefined;
  // A broker that cannot take the subscriptions now (a NATS cluster electing new stream leaders
  // after a node died) is asked again with backoff on the same connection: connected without
  // them, the agent would hear nothing.
  let subscribeRetry: NodeJS.Timeout | undefined;
  /** The latest reported state and job reports, published again. */
  const reportAgain = () => {
    if (lastReported) client.publish(deviceTopic(deviceId, 'reported'), lastReported, { qos: 1, retain: true });
    if (lastJobsReported) client.publish(deviceTopic(deviceId, 'jobs-reported'), lastJobsReported, { qos: 1, retain: true });
  };
  const subscribe = (attempt: number) => {
    const connection = client.stream;
    client.subscribe([deviceTopic(deviceId, 'desired'), deviceTopic(deviceId, 'jobs'), deviceTopic(deviceId, 'notice'), deviceTopic(deviceId, 'logs-request')], { qos: subscribeQos }, (err) => {
      if (!err) return opts.onSubscribed?.();
      if (closing || client.stream !== connection || !client.connected) return;
      const retryInS = Math.round(backoffMs(attempt, { baseMs: 1000, maxMs: 30_000 }) / 1000);
      if (attempt === 1) log.warn({ err: err.message, retryInS }, 'the broker refused the subscriptions to the desired state; asking again');
      clearTimeout(subscribeRetry);
      subscribeRetry = setTimeout(() => !closing && client.stream === connection && client.connected && subscribe(attempt + 1), retryInS * 1000);
    });
  };
  client.on('connect', () => {
    // A CONNACK that lands after close() began (a stop right at start): the client's stores are
    // closed, and a publish now would throw out of MQTT.js's handler.
    if (closing) return;
    failures = 0;
    duplicate = undefined;
    log.info({ url: opts.urls && opts.urls.length > 1 ? `${(client.options as { protocol?: string }).protocol}://${client.options.host}:${client.options.port}` : opts.url }, 'connected to the relay broker');
    client.publish(deviceTopic(deviceId, 'status'), status(true), { qos: 1, retain: true });
    // Re-send the latest reported state: a restarted broker has lost the retained copy.
    reportAgain();
    subscribe(1);
    opts.onConnectionChange?.(true);
  });
  const jobsTopic = deviceTopic(deviceId, 'jobs');
  const noticeTopic = deviceTopic(deviceId, 'notice');
  const logsRequestTopic = deviceTopic(deviceId, 'logs-request');
  client.on('message', guarded(log, 'handling the desired state', (topic: string, payload: Buffer) => {
    if (topic === noticeTopic) return onNotice(payload);
    if (payload.length === 0) return; // the relay cleared the retained state (device removed)
    if (topic === logsRequestTopic) {
      const request = parseLogsRequest.parse(payload);
      if (request.ok) opts.onLogsRequest?.(request.value);
      else log.warn({ reason: request.reason }, 'malformed logs request ignored');
      return;
    }
    if (topic === jobsTopic) {
      const jobs = parseDesiredJobs.parse(payload);
      if (jobs.ok) opts.onDesiredJobs(jobs.value);
      else log.warn({ reason: jobs.reason }, 'malformed desired jobs ignored');
      return;
    }
    const result = parseDesired.parse(payload);
    if (!result.ok) {
      log.warn({ reason: result.reason }, 'malformed desired state ignored');
      return;
    }
    opts.onDesired(result.value);
  }));
  const onNotice = (payload: Buffer) => {
    if (payload.length === 0) {
      if (duplicate) log.info('the relay no longer sees another agent with this identity');
      duplicate = undefined;
      return;
    }
    const notice = parseNotice.parse(payload);
    if (!notice.ok) return log.warn({ reason: notice.reason }, 'malformed notice ignored');
    if (notice.value.kind === 'duplicate-connection') duplicate = notice.value;
    else if (notice.value.kind === REPORT_AGAIN) reportAgain();
    else log.warn({ kind: notice.value.kind }, `the relay says: ${notice.value.message}`);
  };
  client.on('close', () => {
    // The next CONNECT (MQTT.js builds it from its options) starts a new session, with a will of its own.
    session = Math.max(Date.now(), session + 1);
    client.options.will = will();
    Object.assign(client.options, identity());
    if (failures === 0) opts.onConnectionChange?.(false);
    if (closing) return;
    const policy = opts.reconnect ?? RECONNECT;
    const random = policy.jitter ? Math.random : () => 1;
    // Taken over by the other copy, most likely: come back late, so the two stop flapping the fleet.
    const delay = duplicate ? backoffMs(1, { baseMs: policy.maxMs, maxMs: policy.maxMs }, random) : backoffMs(++failures, policy, random);
    const retryInS = Math.max(1, Math.round(delay / 1000));
    if (duplicate) {
      // Once per episode (the relay's `since`), however often the other copy takes over.
      if (toldSince !== duplicate.since) log.warn({ retryInS }, DUPLICATE_LINE);
      toldSince = duplicate.since;
    }
    // Once per outage, not once per attempt.
    else if (failures === 1) log.warn({ retryInS }, 'relay broker unreachable; retrying with backoff');
    clearTimeout(retry);
    // The stores are kept: QoS 1 job log batches queued while offline go out on reconnect.
    retry = setTimeout(() => {
      if (!closing) client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
    }, delay);
  });
  // One login asked for per refusal, and not more than once every five minutes.
  let loginAskedAt = 0;
  const askLogin = async () => {
    if (!opts.refreshLogin || Date.now() - loginAskedAt < 300_000) return false;
    loginAskedAt = Date.now();
    const login = await opts.refreshLogin();
    if (!login || login.password === password) return false;
    password = login.password;
    subscribeQos = login.subscribeQos ?? 1;
    Object.assign(client.options, { password: login.password }, login.urls?.length ? { servers: brokerServers(login.urls) } : {});
    log.info('the relay handed this device a new MQTT login: connecting with it');
    return true;
  };
  client.on('error', (err) => {
    const code = (err as { code?: number }).code;
    if (code === 4 || code === 5) {
      void askLogin()
        .catch((e: unknown) => (log.warn({ err: (e as Error).message }, 'could not ask the relay for an MQTT login'), false))
        .then((renewed) => {
          if (!renewed) log.error(`the relay refused this device's ${!password && opts.tls?.()?.cert ? 'certificate' : 'credentials'}: it may have been removed; enroll again`);
        });
    } else log.warn({ err: err.message }, 'mqtt error');
  });

  return {
    get connected() {
      return client.connected;
    },
    publishReported(state) {
      lastReported = JSON.stringify(state);
      if (client.connected) client.publish(deviceTopic(deviceId, 'reported'), lastReported, { qos: 1, retain: true });
    },
    publishHealth(health) {
      if (client.connected) client.publish(deviceTopic(deviceId, 'health'), JSON.stringify(health), { qos: 0 });
    },
    publishJobsReported(state) {
      lastJobsReported = JSON.stringify(state);
      if (client.connected) client.publish(deviceTopic(deviceId, 'jobs-reported'), lastJobsReported, { qos: 1, retain: true });
    },
    publishJobLog(batch) {
      // QoS 1: MQTT.js queues it while reconnecting (its queue is in memory: a crash loses it).
      client.publish(deviceTopic(deviceId, 'job-log'), JSON.stringify(batch), { qos: 1 });
    },
    publishLogs(answer) {
      // An answer is for a caller waiting now: not queued while offline (the relay has given up by then).
      if (client.connected) client.publish(deviceTopic(deviceId, 'logs'), JSON.stringify(answer), { qos: 1 });
    },
    async close() {
      closing = true;
      clearTimeout(subscribeRetry);
      clearTimeout(retry);
      // A clean shutdown says offline itself; the will covers crashes.
      if (client.connected) {
        await new Promise<void>((resolve) => client.publish(deviceTopic(deviceId, 'status'), status(false), { qos: 1, retain: true }, () => resolve()));
      }
      await client.endAsync();
    },
  };
}
