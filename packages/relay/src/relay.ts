// The relay as one started, closeable instance: store, artifacts, broker, the relay's MQTT
// client, fleet logic and HTTP API, wired together. The CLI's `start` and the tests use it.

import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { ADMIN_TOKEN_FILE, RUNTIME_FILE, type RelayRuntimeFile } from './data-dir.js';
import { join, resolve } from 'node:path';
import type { Server as TlsServer } from 'node:tls';
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { OutpostError, REPORT_AGAIN, background, caCertificates, deviceTopic, createLogger, isTlsBrokerUrl, guardedInterval, isDiskFull, type Logger } from '@outpost/shared';
import { StartUndo } from './start-undo.js';
import { RELAY_DEFAULTS } from './config.js';
import { listenFailure } from './listen-failure.js';
import { SqliteStore } from './store/sqlite-store.js';
import { PostgresStore } from './store/postgres-store.js';
import { redactedUrl, storeOpenFailure } from './store/store-url.js';
import type { Store } from './store/store.js';
import { FileArtifactStore } from './artifacts/artifact-store.js';
import { ArtifactChecks } from './artifacts/artifact-checks.js';
import { DiskSpace } from './disk-space.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './broker/embedded-broker.js';
import { connectRelayClient, type BrokerTls, type MqttRelayClient, type RelayClient } from './broker/relay-client.js';
import { RELAY_USER, connectMosquittoDynsec, type BrokerAccounts } from './broker/mosquitto-dynsec.js';
import { connectNats, NATS_CREDENTIALS_FILE } from './broker/nats-broker.js';
import type { DeviceLimits } from './broker/device-quotas.js';
import type { PacketLimits } from './broker/packet-guard.js';
import { QuotaEvents } from './fleet/quota-events.js';
import { Presence } from './fleet/presence.js';
import { DuplicateConnections, clearSettledDuplicates } from './fleet/duplicate-connections.js';
import { createDeviceMessageRouter } from './fleet/device-messages.js';
import { DeviceLogRequests } from './fleet/device-logs.js';
import { deviceSecretMatches } from './fleet/enrollment.js';
import { publishDesiredState } from './fleet/desired-state.js';
import { markSilentDevicesOffline } from './fleet/silence.js';
import { PUBLISH_CONCURRENCY, eachBounded } from './fleet/bounded.js';
import { Slots } from './fleet/slots.js';
import type { FleetContext } from './fleet/context.js';
import { buildApi } from './api/server.js';
import type { RouteAccess } from './api/access.js';
import { ApiTokens } from './auth/api-tokens.js';
import { AuditLog } from './auth/audit.js';
import { formatCredential, hashSecret, newSecret } from './auth/secrets.js';
import { FleetEvents } from './fleet/fleet-events.js';
import { HealthHistory } from './fleet/health-history.js';
import { deploymentView, deviceView } from './fleet/views.js';
import { FleetStream } from './stream/fleet-stream.js';
import { RelayMetrics } from './metrics/relay-metrics.js';
import { JobScheduler } from './jobs/scheduler.js';
import type { RunQuotas } from './jobs/run-ingest.js';
import { RolloutController } from './fleet/rollout-controller.js';
import { federatedView, jobView } from './jobs/job-views.js';
import { RELAY_CLIENT_LIFETIME, loadRelayTls, serverContextOptions, type RelayTls } from './tls/relay-tls.js';
import { advertisedNames } from './tls/advertised-names.js';
import { certificateStands } from './fleet/device-certificates.js';
import { PostgresLeadership, SoleLeadership, type Leadership } from './cluster/leadership.js';
import { PostgresEventLog } from './cluster/pg-event-log.js';
import { RelayRoster } from './cluster/relay-roster.js';

export interface RelayOptions {
  dataDir: string;
  /**
   * The store, made by the caller (a test, an embedding program), who also closes it. Without
   * it: PostgreSQL at `storeUrl`, else SQLite in `dataDir`.
   */
  store?: Store;
  /** postgres://USER@HOST:PORT/DB (the password from PGPASSWORD or ~/.pgpass, or in the URL). */
  storeUrl?: string;
  /**
   * Where artifacts (models, bundles, job outputs) are kept (default DATA_DIR/artifacts): a
   * shared filesystem when several relays serve one workspace.
   */
  artifactsDir?: string;
  /**
   * Where the relay CA's key and certificate are kept (default DATA_DIR/tls): the same folder
   * (shared, or a copy) for every relay of one workspace, so that all of them are one CA.
   */
  caDir?: string;
  /** Interface to listen on (HTTP and embedded MQTT). */
  host?: string;
  httpPort?: number;
  mqttPort?: number;
  /** An external broker to use instead of the embedded one, e.g. mqtt://user:pass@host:1883. */
  mqttUrl?: string;
  /**
   * With `mqttUrl`: keep device accounts on that Mosquitto through its dynamic security plugin
   * (the URL's user needs the plugin's admin role). Without it, the external broker must
   * authenticate devices by its own means.
   */
  mosquittoDynsec?: boolean;
  /**
   * The MQTT URL handed to enrolling devices, when they cannot use the HTTP host name; a
   * comma-separated list for a cluster (agents fail over through them).
   */
  advertisedMqttUrl?: string;
  /**
   * A NATS cluster whose nodes speak MQTT to devices (`--broker nats://…`), instead of an MQTT
   * broker: the relay speaks NATS, devices MQTT to the nodes in `advertisedMqttUrl`.
   */
  natsUrls?: string[];
  /** The relay's NATS keys and users (`broker nats-config` writes it; default DATA_DIR/nats-credentials.json). */
  natsCredentialsFile?: string;
  /** On NATS: how long a device may be silent before the leader marks it offline (default 90 s). */
  deviceSilenceMs?: number;
  /**
   * A PEM file with the CA an external broker's server certificate comes from, when not the
   * relay's own (`outpost-relay ca issue --server`) or a public one: trusted by the relay and
   * handed to devices at enrollment.
   */
  mqttCaFile?: string;
  maxModelBytes?: number;
  /** Per-device quotas of the embedded broker (rate, retained bytes, subscriptions, strikes). */
  deviceLimits?: Partial<DeviceLimits>;
  /** Log lines and metric points one job run may send. */
  runQuotas?: Partial<RunQuotas>;
  /** Packet limits of the embedded broker before authentication. */
  packetLimits?: Partial<PacketLimits>;
  /** Bound on artifact downloads served at once; the rest wait their turn, then get 503 + Retry-After. */
  maxDownloads?: number;
  /** How long a download waits for a free slot before it is answered 503 (default 10 s). */
  downloadWaitMs?: number;
  /** Datasets on the relay host, by name, for jobs on `local`. */
  datasets?: Record<string, string>;
  /** Time between checks of every stored file against its sha256 (default 6 h; 0 = off). */
  artifactCheckIntervalMs?: number;
  /** Delay before the first of those checks after start (default 30 s). */
  artifactFirstCheckMs?: number;
  /** How long a device marked duplicate-connection must go without a takeover to be unmarked (default 2 min). */
  duplicateClearMs?: number;
  /** Plain HTTP and MQTT, no TLS (the demo on 127.0.0.1; tests about it). Logged as a warning. */
  insecure?: boolean;
  /** More names or addresses the server certificate covers (beside the host's own). */
  advertiseHosts?: string[];
  /** A certificate and key (PEM files) the operator brings for the HTTP side. */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** Lifetime of device certificates (default 30 days). */
  deviceCertTtlMs?: number;
  /** Time between checks of the server certificate's end and the --tls-cert files (default a day). */
  tlsRefreshIntervalMs?: number;
  log?: Logger;
}

export interface Relay {
  httpUrl: string;
  mqttUrl: string;
  dataDir: string;
  /** The relay CA's certificate and fingerprint; undefined with --insecure. */
  ca?: { pem: string; fingerprint: string };
  /** The admin token, only on the start that created it (to print it once). */
  newAdminToken?: string;
  store: Store;
  /** Every HTTP route and who may call it (the role table, as registered). */
  routes: readonly RouteAccess[];
  /**
   * Remakes the server certificate if it nears its end and reads --tls-cert/--tls-key again,
   * and serves what changed to new connections (the daily check; `start` runs it on SIGHUP).
   * Resolves true when a certificate changed.
   */
  reloadTls(): Promise<boolean>;
  close(): Promise<void>;
}

/** The CA certificates in an --mqtt-ca file (shared/tls/ca-certificates.ts checks them). */
function readMqttCa(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`--mqtt-ca ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  const cas = caCertificates(text);
  if (!cas.ok) throw new Error(`--mqtt-ca ${file}: ${cas.reason}`);
  return cas.pem;
}

/** The schemes MQTT.js connects with that name a broker by host and port. */
const MQTT_URL_SCHEMES = new Set(['mqtt:', 'mqtts:', 'ws:', 'wss:']);

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * The file, made (or kept) readable by the relay's user alone: the database holds token and
 * secret hashes and job env values, which must not rely on the data dir's mode alone.
 */
function privateFile(file: string): string {
  if (!existsSync(file)) writeFileSync(file, '', { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}

/** The store the options name: PostgreSQL at --store, else SQLite in the data dir. */
async function openStore(opts: RelayOptions, log: Logger): Promise<Store> {
  if (opts.storeUrl) {
    const store = await PostgresStore.open(opts.storeUrl, { log: log.child({ part: 'store' }) }).catch((err: unknown) => {
      throw storeOpenFailure(opts.storeUrl!, err);
    });
    log.info({ store: redactedUrl(opts.storeUrl) }, 'store: PostgreSQL');
    return store;
  }
  const store = new SqliteStore(privateFile(join(opts.dataDir, 'relay.db')));
  // SQLite makes its -wal and -shm files with the database's mode; older data dirs made them 0644.
  for (const extra of ['relay.db-wal', 'relay.db-shm']) if (existsSync(join(opts.dataDir, extra))) chmodSync(join(opts.dataDir, extra), 0o600);
  return store;
}

/**
 * Makes the admin token on the first start that gets this far: the file first, then the
 * database row, so that a start which fails (or dies) in between leaves no token anyone
 * lacks the file of, and the next start makes and prints one.
 */
async function ensureAdminToken(store: Store, dataDir: string): Promise<string | undefined> {
  if ((await store.tokens.count()) > 0) return undefined;
  const id = randomBytes(6).toString('hex');
  const secret = newSecret();
  const token = formatCredential('opa', id, secret);
  const file = join(dataDir, ADMIN_TOKEN_FILE);
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  let made: boolean;
  try {
    // A unit: two relays starting on one empty database make one admin token between them.
    made = await store.transaction(async (tx) => {
      if ((await tx.tokens.count()) > 0) return false;
      await tx.tokens.add({ id, name: 'admin', hash: hashSecret(secret), role: 'admin' });
      return true;
    });
  } catch (err) {
    rmSync(file, { force: true });
    throw err;
  }
  if (!made) rmSync(file, { force: true });
  return made ? token : undefined;
}

/**
 * Runs what makes or opens the folder a flag names, so that a folder it cannot use fails the
 * start with the flag and the fix, not a bare ENOTDIR (errors about other paths pass as they are).
 */
function inFlagDir<T>(flag: string, dir: string | undefined, make: () => T): T {
  const named = (err: unknown): never => {
    const e = err as NodeJS.ErrnoException;
    if (!dir || !e.code || !(e.path?.startsWith(dir) || e.path?.startsWith(resolve(dir)))) throw err;
    throw new Error(`${flag} ${dir}: cannot use it (${e.code} on ${e.path}): give a folder this relay's user can create and write`);
  };
  try {
    const made = make();
    return (made instanceof Promise ? made.catch(named) : made) as T;
  } catch (err) {
    return named(err);
  }
}

/** A name for this relay among those sharing its workspace: the host, the process and a random part. */
function newRelayId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/**
 * Starts a relay, or fails having closed again whatever it opened (ports, connections, timers)
 * and removed the files this start made, with one line that says what failed.
 */
export async function createRelay(opts: RelayOptions): Promise<Relay> {
  const log = opts.log ?? createLogger({ name: 'outpost-relay' });
  const undo = new StartUndo(log);
  try {
    return await startRelay(opts, log, undo);
  } catch (err) {
    await undo.run();
    throw err;
  }
}

async function startRelay(opts: RelayOptions, log: Logger, undo: StartUndo): Promise<Relay> {
  const host = opts.host ?? RELAY_DEFAULTS.host;
  const madeDir = mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  // A first start that fails leaves no data dir: a later one with the same --data-dir starts clean.
  if (madeDir) undo.add('the new data dir', () => rmSync(madeDir, { recursive: true, force: true }));
  chmodSync(opts.dataDir, 0o700);

  const store = opts.store ?? (await openStore(opts, log));
  if (!opts.store) undo.add('the database', () => store.close());
  let tls: RelayTls | undefined;
  if (opts.insecure) {
    if (opts.tlsCertFile || opts.tlsKeyFile) throw new Error('--tls-cert and --tls-key need TLS: leave out --insecure');
    log.warn('running with --insecure: plain HTTP and MQTT, so tokens, device secrets and models cross the network readable by anyone on it');
  } else {
    tls = await inFlagDir('--ca-dir', opts.caDir, () => loadRelayTls({ dataDir: opts.dataDir, caDir: opts.caDir, names: advertisedNames(host, opts.advertiseHosts), httpCertFile: opts.tlsCertFile, httpKeyFile: opts.tlsKeyFile, deviceCertTtlMs: opts.deviceCertTtlMs ?? RELAY_DEFAULTS.deviceCertTtlMs, log }));
  }
  // This relay among several, the same on each start: for what it keeps apart from the others.
  const instance = createHash('sha256').update(`${hostname()}:${resolve(opts.dataDir)}`).digest('hex').slice(0, 12);
  // Relays sharing an artifacts dir stage uploads apart: each clears its own staging at start.
  const artifacts = inFlagDir('--artifacts-dir', opts.artifactsDir, () => new FileArtifactStore(opts.artifactsDir ?? join(opts.dataDir, 'artifacts'), opts.artifactsDir ? { staging: `.staging-${instance}` } : {}));
  if (artifacts.leftoverUploads > 0) log.info({ files: artifacts.leftoverUploads }, `removed ${artifacts.leftoverUploads} half-sent upload(s) a previous run left in artifacts/.staging`);
  const disk = new DiskSpace(opts.dataDir, log);
  undo.add('the disk space checks', () => disk.close());
  const artifactChecks = new ArtifactChecks({ store: artifacts, log, intervalMs: opts.artifactCheckIntervalMs ?? RELAY_DEFAULTS.artifactCheckIntervalMs, firstPassMs: opts.artifactFirstCheckMs });
  // Statuses are retained only in the broker; until a device says otherwise it is offline.
  for (const d of await store.devices.list()) if (d.online) await store.devices.setOnline(d.id, false, d.lastSeen ?? Date.now());

  const events = new FleetEvents(log);
  // Relays sharing a PostgreSQL store are one workspace: one of them leads (the scheduler, the
  // rollouts), and each one's fleet events reach every stream, numbered once in the store.
  const relayId = newRelayId();
  const leadership: Leadership = opts.storeUrl ? new PostgresLeadership({ url: opts.storeUrl, log: log.child({ part: 'leader' }) }) : new SoleLeadership(log);
  undo.add('the leader lock', () => leadership.close());
  const eventLog = opts.storeUrl ? await PostgresEventLog.open({ url: opts.storeUrl, relayId, log: log.child({ part: 'event-log' }) }) : undefined;
  if (eventLog) undo.add('the event log', () => eventLog.close());
  const history = new HealthHistory(store, log);
  undo.add('the health history', () => history.close());
  const quota = new QuotaEvents(events, log);
  const duplicates = new DuplicateConnections(opts.duplicateClearMs ?? RELAY_DEFAULTS.duplicateClearMs);
  const audit = new AuditLog(store);
  const ctxBase = { store, log, now: Date.now, events, history, quota, presence: new Presence(), duplicates, audit };
  const stream = new FleetStream({
    startSeq: eventLog?.head,
    snapshot: async () => {
      const [devices, deployments, queued, running, recent] = await Promise.all([store.devices.list(), store.deployments.active(20), store.jobs.inState('queued'), store.jobs.inState('running'), store.jobs.list(20)]);
      const jobs = [...queued, ...running, ...recent.filter((j) => j.state !== 'queued' && j.state !== 'running')];
      return {
        devices: devices.map((d) => deviceView(d, duplicates.problem(d.id, Date.now()))),
        deployments: deployments.map(deploymentView),
        // A federated job's progress counts its rounds (how many were averaged).
        jobs: await Promise.all(jobs.map(async (j) => jobView(j, await store.jobs.metricSummary(j.id), await store.jobs.outputs(j.id), federatedView(j, j.spec.federated ? await store.rounds.list(j.id) : [], null)))),
      };
    },
    onSnapshotError: (err) => log.error({ err }, 'could not read the fleet for a stream snapshot'),
  });
  if (eventLog) {
    events.onLocal((e) => eventLog.publish(e));
    eventLog.onMessage((message, mine) => {
      stream.deliver(message);
      if (!mine) events.receive(message);
    });
  } else {
    events.on((e) => stream.publish(e));
  }
  let broker: EmbeddedBroker | undefined;
  let mqttConnectUrl: string;
  let username: string | undefined;
  let password: string | undefined;
  const mqttCa = opts.mqttCaFile ? readMqttCa(opts.mqttCaFile) : undefined;
  const advertisedMqtt = (opts.advertisedMqttUrl ?? '').split(',').map((u) => u.trim()).filter(Boolean);
  const nats = opts.natsUrls?.length
    ? await connectNats({
        servers: opts.natsUrls,
        advertisedMqtt,
        credentialsFile: opts.natsCredentialsFile ?? join(opts.dataDir, NATS_CREDENTIALS_FILE),
        conflicts: { mqttUrl: opts.mqttUrl, mosquittoDynsec: opts.mosquittoDynsec },
        store,
        name: `outpost-relay ${instance}`,
        log,
        onMessage: (t, p) => route(t, p),
        onReconnect: () => republish(),
      })
    : undefined;
  if (nats) undo.add('the NATS connections', () => nats.close());
  if (mqttCa && !isTlsBrokerUrl((nats ? advertisedMqtt[0] : opts.mqttUrl) ?? '')) throw new Error('--mqtt-ca is for an external broker over TLS: give --mqtt-url mqtts://… (or wss://) too');
  if (nats) {
    mqttConnectUrl = advertisedMqtt[0]!;
  } else if (opts.mqttUrl) {
    const url = URL.canParse(opts.mqttUrl) ? new URL(opts.mqttUrl) : undefined;
    if (!url || !MQTT_URL_SCHEMES.has(url.protocol) || !url.hostname) throw new Error(`--mqtt-url ${JSON.stringify(opts.mqttUrl)} is not a broker URL: give it as mqtt://USER:PASS@HOST:PORT (or mqtts://, ws://, wss://)`);
    username = decodeURIComponent(url.username) || undefined;
    password = decodeURIComponent(url.password) || undefined;
    url.username = '';
    url.password = '';
    mqttConnectUrl = url.toString().replace(/\/$/, '');
  } else {
    username = 'outpost-relay';
    password = newSecret();
    const mqttPort = opts.mqttPort ?? (tls ? RELAY_DEFAULTS.mqttPortTls : RELAY_DEFAULTS.mqttPortPlain);
    broker = await startEmbeddedBroker({
      host,
      port: mqttPort,
      log: log.child({ part: 'broker' }),
      relayUsername: username,
      relayPassword: password,
      authenticateDevice: (id, secret) => deviceSecretMatches(store, id, secret),
      tls: tls && { cert: tls.server.cert, key: tls.server.key, ca: tls.caPem },
      deviceCertificate: (id, serial) => certificateStands(store, id, serial),
      deviceLimits: opts.deviceLimits,
      packetLimits: opts.packetLimits,
      onQuota: (deviceId, name, action, detail) => quota.exceeded(deviceId, name, action, detail),
    }).catch((err: unknown) => {
      throw listenFailure(err, { service: 'MQTT', host, port: mqttPort, flag: '--mqtt-port', orElse: 'or use a broker that runs already with --mqtt-url' });
    });
    const started = broker;
    undo.add('the embedded broker', () => started.close());
    mqttConnectUrl = `${tls ? 'mqtts' : 'mqtt'}://${urlHost(host)}:${broker.port}`;
  }
  // Over TLS to a broker: trust the relay's CA and --mqtt-ca, and show a certificate naming the
  // MQTT user (Mosquitto's use_identity_as_username). Only for TLS URLs: MQTT.js would turn an
  // mqtt:// URL into TLS when handed a certificate.
  // Each such certificate is remade by the daily check when a third of its life is left.
  const identities: Array<{ name: string; notAfter: number; set?: (pair: { cert: string; key: string }) => void }> = [];
  const brokerTls = async (user: string | undefined): Promise<{ tls?: BrokerTls; identity?: (typeof identities)[number] }> => {
    if (!isTlsBrokerUrl(mqttConnectUrl)) return {};
    const ca = [tls?.caPem, mqttCa].filter(Boolean).join('') || undefined;
    if (!tls || broker) return { tls: { ca } };
    const name = user ?? RELAY_USER;
    const made = await tls.issueClientCert(name);
    const identity = { name, notAfter: made.notAfter };
    identities.push(identity);
    return { tls: { ca, cert: made.cert, key: made.key }, identity };
  };
  const renewBrokerIdentities = async () => {
    for (const identity of identities) {
      if (!tls || !identity.set || identity.notAfter - Date.now() > RELAY_CLIENT_LIFETIME / 3) continue;
      const made = await tls.issueClientCert(identity.name);
      identity.set(made);
      identity.notAfter = made.notAfter;
      log.info({ user: identity.name, expiresAt: new Date(made.notAfter).toISOString() }, "renewed the relay's client certificate for the broker");
    }
  };

  let route: (topic: string, payload: Buffer) => void = () => {};
  let republish: () => void = () => {};
  let accounts: BrokerAccounts | undefined = nats?.accounts;
  if (opts.mosquittoDynsec) {
    if (!opts.mqttUrl || !username) throw new Error('--mosquitto-dynsec needs --mqtt-url with the user that has the plugin\'s admin role: mqtt://USER:PASS@host:port (over mutual TLS, mqtts://USER@host:port)');
    const admin = await brokerTls(username);
    const made = await connectMosquittoDynsec({ url: mqttConnectUrl, username, password, tls: admin.tls, log: log.child({ part: 'broker-accounts' }), relayUsername: opts.storeUrl ? `${RELAY_USER}-${instance}` : undefined });
    undo.add('the broker accounts connection', () => made.close());
    if (admin.identity) admin.identity.set = (pair) => made.setIdentity(pair);
    accounts = made;
    // The relay's own client uses the account made for it, not the plugin's admin.
    ({ username, password } = made.relayUser);
  }
  // Several relays on one external broker: each device message goes to one of them.
  const sharedBroker = Boolean(opts.storeUrl && (opts.mqttUrl || nats));
  let mqtt: RelayClient;
  let mqttClient: MqttRelayClient | undefined;
  if (nats) mqtt = nats.client;
  else {
    const own = await brokerTls(username);
    const client = await connectRelayClient({ url: mqttConnectUrl, username, password, tls: own.tls, log, shared: sharedBroker, onMessage: (t, p) => route(t, p), onReconnect: () => republish() });
    undo.add("the relay's MQTT client", () => client.close());
    if (own.identity) own.identity.set = (pair) => client.setIdentity(pair);
    mqtt = mqttClient = client;
  }
  const deviceLogs = new DeviceLogRequests({ publish: (topic, body) => mqtt.publish(topic, body), online: async (id) => (await store.devices.get(id))?.online ?? false });
  events.on((e) => deviceLogs.onFleetEvent(e));
  undo.add('the requests waiting for device logs', () => deviceLogs.close());
  const ctx: FleetContext = { ...ctxBase, mqtt, deviceLogs, tls, artifactFile: (sha256) => artifacts.fileState(sha256), disconnectDevice: broker ? (id) => broker.disconnect(id) : undefined, brokerAccounts: accounts };
  const scheduler = new JobScheduler({ ctx, artifacts, workRoot: join(opts.dataDir, 'jobs'), localDatasets: opts.datasets, maxOutputBytes: opts.maxModelBytes, runQuotas: opts.runQuotas });
  undo.add('the job scheduler', () => scheduler.close());
  const router = createDeviceMessageRouter(ctx, scheduler);
  route = router.route;
  const downloads = new Slots(opts.maxDownloads ?? RELAY_DEFAULTS.maxDownloads);
  const metrics = new RelayMetrics({
    store,
    downloads,
    streamClients: () => stream.clients,
    mqttMessagesIn: () => router.stats.received,
    mqttMessagesRejected: () => router.stats.rejected,
    mqttMessagesOut: () => mqtt.published,
    quotaEvents: () => quota.counts,
    preAuthBytes: () => broker?.preAuthBytes ?? 0,
    diskFull: () => disk.full,
    leading: () => leadership.leading,
  });

  if (accounts) {
    // Devices enrolled before --mosquitto-dynsec cannot connect: their secrets exist only hashed.
    const missing = (await accounts.missing?.((await store.devices.list()).map((d) => d.id))) ?? [];
    if (missing.length > 0) log.warn({ devices: missing }, `${missing.length} device(s) have no Mosquitto account and cannot connect: enroll them again (outpost-relay tokens enroll, outpost-agent enroll)`);
  }
  const mqttPublicPort = broker?.port ?? Number(new URL(mqttConnectUrl).port || 1883);
  // Made now (it hears heartbeats from here on), started once the ports are taken.
  const rollouts = new RolloutController(ctx);
  undo.add('the rollouts', () => rollouts.close());
  const { app: api, routes } = await buildApi({
    ctx,
    artifacts,
    artifactChecks,
    disk,
    log,
    maxModelBytes: opts.maxModelBytes ?? RELAY_DEFAULTS.maxModelBytes,
    downloads,
    downloadWaitMs: opts.downloadWaitMs ?? RELAY_DEFAULTS.downloadWaitMs,
    metrics,
    stream,
    scheduler,
    rollouts,
    localDatasets: opts.datasets ?? {},
    tokens: new ApiTokens(store),
    audit,
    mqttCa,
    mqttUrlsFor: (requestHost) => {
      if (advertisedMqtt.length) return advertisedMqtt;
      if (!broker) return [mqttConnectUrl];
      const h = requestHost ?? urlHost(host);
      return [`${tls ? 'mqtts' : 'mqtt'}://${h}:${mqttPublicPort}`];
    },
  });
  undo.add('the HTTP API', () => api.close());
  // The ports come first, the work after: a start that finds its port taken has started no job
  // and no rollout. Requests that arrive meanwhile wait until the start is done (the job queue,
  // the rollouts and the admin token are not there yet), or fail with it.
  let startDone!: (ok: boolean) => void;
  const startOutcome = new Promise<boolean>((resolve) => (startDone = resolve));
  undo.add('the requests waiting for the start', () => startDone(false));
  api.addHook('onRequest', async () => {
    if (!(await startOutcome)) throw new OutpostError('OUTPOST_ERR_INTERNAL', 'the relay failed to start; its log says why');
  });
  const httpPortWanted = opts.httpPort ?? RELAY_DEFAULTS.httpPort;
  await api.listen({ host, port: httpPortWanted }).catch((err: unknown) => {
    throw listenFailure(err, { service: 'HTTP', host, port: httpPortWanted, flag: '--http-port' });
  });

  // Retained desired states may have died with a previous broker: publish them all again, at
  // start and whenever the relay's broker connection is new.
  const publishFleet = async () => eachBounded((await store.devices.list()).map((d) => d.id), PUBLISH_CONCURRENCY, (id) => publishDesiredState(ctx, id));
  await publishFleet();
  republish = () => background(log, 'publishing the fleet again after a reconnect', Promise.all([publishFleet(), scheduler.republish()]));
  // The leader schedules jobs and runs staged rollouts; they pick up where they were (a relay
  // killed mid-rollout, here or another one, is resumed). Changes of lead run one after another.
  let leadChange = Promise.resolve();
  // A report a dead relay took from the group and never handled is still the retained one: the
  // leader reads them all again when it takes the lead, and when another relay is gone. NATS
  // keeps no retained copy the relay can read: the leader asks every device to report again.
  const askReports = async () => {
    const ids = (await store.devices.list()).map((d) => d.id);
    await eachBounded(ids, PUBLISH_CONCURRENCY, (id) => mqtt.publish(deviceTopic(id, 'notice'), { kind: REPORT_AGAIN, since: Date.now(), message: 'send your reported state again' }));
    return ids.length;
  };
  const rereadReports = (why: string) =>
    background(log, "reading the devices' reports again", (mqttClient ? mqttClient.rereadRetained(['reported', 'jobs-reported']) : askReports()).then((n) => log.info({ messages: n, why }, mqttClient ? "read the devices' retained reports again" : 'asked every device to report again')));
  const roster = sharedBroker && opts.storeUrl ? new RelayRoster({ url: opts.storeUrl, log: log.child({ part: 'roster' }), onGone: (names) => leadership.leading && rereadReports(`gone: ${names.join(', ')}`) }) : undefined;
  if (roster) undo.add('the relay roster', () => roster.close());
  const lead = async (leading: boolean) => {
    if (leading) {
      await scheduler.start();
      rollouts.start();
      // On NATS even one relay: reports sent while no relay listened were dropped (no retained copy).
      if (sharedBroker || nats) rereadReports('this relay took the lead');
    } else {
      await rollouts.close();
      await scheduler.follow();
    }
  };
  leadership.onChange((leading) => {
    leadChange = leadChange.then(() => lead(leading)).catch((err: unknown) => log.error({ err }, leading ? 'could not take up the lead' : 'could not hand over the lead'));
  });
  await leadership.start();
  await leadChange;
  roster?.start();
  // Jobs queued through another relay are announced by its events; look now and then as well,
  // in case an event was missed while the store did not answer.
  const leaderTimer = eventLog ? guardedInterval(log, 'scheduling queued jobs', 2000, () => leadership.leading && scheduler.tick()) : undefined;
  undo.add('the leader timer', () => clearInterval(leaderTimer));
  // A NATS node that dies sends no wills: the leader marks devices silent for too long offline.
  const silenceMs = opts.deviceSilenceMs ?? RELAY_DEFAULTS.deviceSilenceMs;
  events.on((e) => {
    if (e.type === 'device.status' && e.silent) ctxBase.presence.forget(e.deviceId);
  });
  const silenceTimer = nats ? guardedInterval(log, 'marking silent devices offline', Math.min(15_000, Math.max(500, silenceMs / 3)), () => leadership.leading && markSilentDevicesOffline(ctx, silenceMs)) : undefined;
  undo.add('the silence timer', () => clearInterval(silenceTimer));
  // A duplicate-connection mark ends with no message to announce it: look every second.
  const duplicateTimer = guardedInterval(log, 'clearing duplicate-connection marks', 1000, () => clearSettledDuplicates(ctx));
  undo.add('the duplicate-connection timer', () => clearInterval(duplicateTimer));
  const reloadTls = async (): Promise<boolean> => {
    if (!tls) throw new Error('this relay runs with --insecure: it has no certificates to reload');
    const { changed, operatorError } = await tls.refresh((next) => {
      (api.server as unknown as TlsServer).setSecureContext(serverContextOptions(next.http, tls!.caPem));
      broker?.setCertificate(next.server);
    });
    if (changed) log.info('serving the new server certificate to new connections');
    if (operatorError) throw new Error(`--tls-cert/--tls-key not taken, the served pair kept: ${operatorError.message}`);
    return changed;
  };
  const tlsTimer = guardedInterval(log, 'checking the server certificate', opts.tlsRefreshIntervalMs ?? RELAY_DEFAULTS.tlsRefreshIntervalMs, async () => {
    await renewBrokerIdentities();
    if (tls) await reloadTls();
  });
  undo.add('the server certificate check', () => clearInterval(tlsTimer));

  artifactChecks.start();
  undo.add('the artifact checks', () => artifactChecks.close());
  const address = api.server.address();
  const httpPort = typeof address === 'object' && address ? address.port : opts.httpPort;
  const httpUrl = `${tls ? 'https' : 'http'}://${urlHost(host)}:${httpPort}`;

  const runtime: RelayRuntimeFile = { httpUrl, mqttUrl: mqttConnectUrl, pid: process.pid };
  try {
    writeFileSync(join(opts.dataDir, RUNTIME_FILE), JSON.stringify(runtime, null, 2) + '\n', { mode: 0o600 });
  } catch (err) {
    if (!isDiskFull(err)) throw err;
    // CLI commands on this host then need --relay-url; the relay itself serves as ever.
    log.warn({ err }, `could not write ${RUNTIME_FILE}: the disk is full`);
  }
  undo.add(RUNTIME_FILE, () => rmSync(join(opts.dataDir, RUNTIME_FILE), { force: true }));
  // Last, so that a start which failed before leaves no token behind; the next one prints it.
  const newAdminToken = await ensureAdminToken(store, opts.dataDir);
  startDone(true);
  log.info({ httpUrl, mqttUrl: mqttConnectUrl, dataDir: opts.dataDir, embeddedBroker: Boolean(broker), caFingerprint: tls?.caFingerprint, relayId, leading: leadership.leading }, 'relay ready');

  let closed = false;
  return {
    httpUrl,
    mqttUrl: mqttConnectUrl,
    dataDir: opts.dataDir,
    ca: tls && { pem: tls.caPem, fingerprint: tls.caFingerprint },
    newAdminToken,
    store,
    routes,
    reloadTls,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(tlsTimer);
      clearInterval(leaderTimer);
      clearInterval(silenceTimer);
      await scheduler.close();
      await rollouts.close();
      await leadership.close();
      await roster?.close();
      clearInterval(duplicateTimer);
      artifactChecks.close();
      disk.close();
      deviceLogs.close();
      await api.close();
      await mqtt.close();
      await accounts?.close();
      await broker?.close();
      // Messages already taken in are handled before the store goes, for a few seconds; the
      // rest are dropped (devices send their state again when they reconnect).
      await router.close(5000);
      await eventLog?.close();
      await history.close();
      if (!opts.store) await store.close();
      rmSync(join(opts.dataDir, RUNTIME_FILE), { force: true });
    },
  };
}
