// The relay as one started, closeable instance: store, artifacts, broker, the relay's MQTT
// client, fleet logic and HTTP API, wired together. The CLI's `start` and the tests use it.

import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { ADMIN_TOKEN_FILE, RUNTIME_FILE, type RelayRuntimeFile } from './data-dir.js';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { background, createLogger, isDiskFull, type Logger } from '@outpost/shared';
import { SqliteStore } from './store/sqlite-store.js';
import type { Store } from './store/store.js';
import { FileArtifactStore } from './artifacts/artifact-store.js';
import { DownloadSlots } from './artifacts/download-slots.js';
import { ArtifactChecks } from './artifacts/artifact-checks.js';
import { DiskSpace } from './disk-space.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './broker/embedded-broker.js';
import { connectRelayClient, type RelayClient } from './broker/relay-client.js';
import { connectMosquittoDynsec, type BrokerAccounts } from './broker/mosquitto-dynsec.js';
import type { DeviceLimits } from './broker/device-quotas.js';
import type { PacketLimits } from './broker/packet-guard.js';
import { QuotaEvents } from './fleet/quota-events.js';
import { Presence } from './fleet/presence.js';
import { createDeviceMessageRouter } from './fleet/device-messages.js';
import { DeviceLogRequests } from './fleet/device-logs.js';
import { deviceSecretMatches } from './fleet/enrollment.js';
import { publishDesiredState } from './fleet/desired-state.js';
import { PUBLISH_CONCURRENCY, eachBounded } from './fleet/bounded.js';
import type { FleetContext } from './fleet/context.js';
import { buildApi } from './api/server.js';
import { formatCredential, hashSecret, newSecret } from './auth/secrets.js';
import { FleetEvents } from './fleet/fleet-events.js';
import { HealthHistory } from './fleet/health-history.js';
import { deploymentView, deviceView } from './fleet/views.js';
import { FleetStream } from './stream/fleet-stream.js';
import { RelayMetrics } from './metrics/relay-metrics.js';
import { JobScheduler } from './jobs/scheduler.js';
import type { RunQuotas } from './jobs/run-ingest.js';
import { RolloutController } from './fleet/rollout-controller.js';
import { jobView } from './jobs/job-views.js';

export interface RelayOptions {
  dataDir: string;
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
  /** The MQTT URL handed to enrolling devices, when they cannot use the HTTP host name. */
  advertisedMqttUrl?: string;
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
  log?: Logger;
}

export interface Relay {
  httpUrl: string;
  mqttUrl: string;
  dataDir: string;
  /** The admin token, only on the start that created it (to print it once). */
  newAdminToken?: string;
  store: Store;
  close(): Promise<void>;
}

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

function ensureAdminToken(store: Store, dataDir: string): string | undefined {
  if (store.countApiTokens() > 0) return undefined;
  const id = randomBytes(6).toString('hex');
  const secret = newSecret();
  store.addApiToken({ id, name: 'admin', hash: hashSecret(secret), role: 'admin' });
  const token = formatCredential('opa', id, secret);
  const file = join(dataDir, ADMIN_TOKEN_FILE);
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return token;
}

export async function createRelay(opts: RelayOptions): Promise<Relay> {
  const log = opts.log ?? createLogger({ name: 'outpost-relay' });
  const host = opts.host ?? '0.0.0.0';
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  chmodSync(opts.dataDir, 0o700);

  const store = new SqliteStore(privateFile(join(opts.dataDir, 'relay.db')));
  // SQLite makes its -wal and -shm files with the database's mode; older data dirs made them 0644.
  for (const extra of ['relay.db-wal', 'relay.db-shm']) if (existsSync(join(opts.dataDir, extra))) chmodSync(join(opts.dataDir, extra), 0o600);
  const artifacts = new FileArtifactStore(join(opts.dataDir, 'artifacts'));
  if (artifacts.leftoverUploads > 0) log.info({ files: artifacts.leftoverUploads }, `removed ${artifacts.leftoverUploads} half-sent upload(s) a previous run left in artifacts/.staging`);
  const disk = new DiskSpace(opts.dataDir, log);
  const artifactChecks = new ArtifactChecks({ store: artifacts, log, intervalMs: opts.artifactCheckIntervalMs ?? 6 * 3600_000, firstPassMs: opts.artifactFirstCheckMs });
  const newAdminToken = ensureAdminToken(store, opts.dataDir);
  // Statuses are retained only in the broker; until a device says otherwise it is offline.
  for (const d of store.listDevices()) if (d.online) store.setDeviceOnline(d.id, false, d.lastSeen ?? Date.now());

  const events = new FleetEvents(log);
  const history = new HealthHistory(store, log);
  const quota = new QuotaEvents(events, log);
  const ctxBase = { store, log, now: Date.now, events, history, quota, presence: new Presence() };
  const stream = new FleetStream({
    snapshot: () => ({
      devices: store.listDevices().map(deviceView),
      deployments: store.activeDeployments(20).map(deploymentView),
      jobs: [...store.jobsInState('queued'), ...store.jobsInState('running'), ...store.listJobs(20).filter((j) => j.state !== 'queued' && j.state !== 'running')].map((j) =>
        jobView(j, store.jobMetricSummary(j.id), store.jobOutputs(j.id)),
      ),
    }),
  });
  events.on((e) => stream.publish(e));
  let broker: EmbeddedBroker | undefined;
  let mqttConnectUrl: string;
  let username: string | undefined;
  let password: string | undefined;
  if (opts.mqttUrl) {
    const url = new URL(opts.mqttUrl);
    username = decodeURIComponent(url.username) || undefined;
    password = decodeURIComponent(url.password) || undefined;
    url.username = '';
    url.password = '';
    mqttConnectUrl = url.toString().replace(/\/$/, '');
  } else {
    username = 'outpost-relay';
    password = newSecret();
    broker = await startEmbeddedBroker({
      host,
      port: opts.mqttPort ?? 1883,
      log: log.child({ part: 'broker' }),
      relayUsername: username,
      relayPassword: password,
      authenticateDevice: (id, secret) => deviceSecretMatches(store, id, secret),
      deviceLimits: opts.deviceLimits,
      packetLimits: opts.packetLimits,
      onQuota: (deviceId, name, action, detail) => quota.exceeded(deviceId, name, action, detail),
    });
    mqttConnectUrl = `mqtt://${urlHost(host)}:${broker.port}`;
  }

  let route: (topic: string, payload: Buffer) => void = () => {};
  let republish: () => void = () => {};
  let mqtt: RelayClient;
  let accounts: BrokerAccounts | undefined;
  try {
    if (opts.mosquittoDynsec) {
      if (!opts.mqttUrl || !username) throw new Error('--mosquitto-dynsec needs --mqtt-url with the user that has the plugin\'s admin role: mqtt://USER:PASS@host:port');
      accounts = await connectMosquittoDynsec({ url: mqttConnectUrl, username, password, log: log.child({ part: 'broker-accounts' }) });
      // The relay's own client uses the account made for it, not the plugin's admin.
      ({ username, password } = accounts.relayUser);
    }
    mqtt = await connectRelayClient({ url: mqttConnectUrl, username, password, log, onMessage: (t, p) => route(t, p), onReconnect: () => republish() });
  } catch (err) {
    await accounts?.close();
    await broker?.close();
    store.close();
    throw err;
  }
  const deviceLogs = new DeviceLogRequests({ publish: (topic, body) => mqtt.publish(topic, body), online: (id) => store.getDevice(id)?.online ?? false });
  events.on((e) => deviceLogs.onFleetEvent(e));
  const ctx: FleetContext = { ...ctxBase, mqtt, deviceLogs, artifactFile: (sha256) => artifacts.fileState(sha256), disconnectDevice: broker ? (id) => broker.disconnect(id) : undefined, brokerAccounts: accounts };
  const scheduler = new JobScheduler({ ctx, artifacts, workRoot: join(opts.dataDir, 'jobs'), localDatasets: opts.datasets, maxOutputBytes: opts.maxModelBytes, runQuotas: opts.runQuotas });
  ctx.jobs = scheduler;
  const router = createDeviceMessageRouter(ctx);
  route = router.route;
  const downloads = new DownloadSlots(opts.maxDownloads ?? 64);
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
  });

  if (accounts) {
    // Devices enrolled before --mosquitto-dynsec cannot connect: their secrets exist only hashed.
    const missing = await accounts.missing(store.listDevices().map((d) => d.id));
    if (missing.length > 0) log.warn({ devices: missing }, `${missing.length} device(s) have no Mosquitto account and cannot connect: enroll them again (outpost-relay tokens enroll, outpost-agent enroll)`);
  }
  // Retained desired states may have died with a previous broker: publish them all again, at
  // start and whenever the relay's broker connection is new.
  const publishFleet = () => eachBounded(store.listDevices().map((d) => d.id), PUBLISH_CONCURRENCY, (id) => publishDesiredState(ctx, id));
  await publishFleet();
  republish = () => background(log, 'publishing the fleet again after a reconnect', Promise.all([publishFleet(), scheduler.republish()]));
  await scheduler.start();
  // Staged rollouts pick up where they were (a relay killed mid-rollout resumes it).
  const rollouts = new RolloutController(ctx);
  rollouts.evaluate();

  const mqttPublicPort = broker?.port ?? Number(new URL(mqttConnectUrl).port || 1883);
  const api = await buildApi({
    ctx,
    artifacts,
    artifactChecks,
    disk,
    log,
    maxModelBytes: opts.maxModelBytes ?? 2 * 1024 ** 3,
    downloads,
    downloadWaitMs: opts.downloadWaitMs ?? 10_000,
    metrics,
    stream,
    scheduler,
    localDatasets: opts.datasets ?? {},
    mqttUrlFor: (requestHost) => {
      if (opts.advertisedMqttUrl) return opts.advertisedMqttUrl;
      if (!broker) return mqttConnectUrl;
      const h = requestHost ?? urlHost(host);
      return `mqtt://${h}:${mqttPublicPort}`;
    },
  });
  await api.listen({ host, port: opts.httpPort ?? 8080 });
  artifactChecks.start();
  const address = api.server.address();
  const httpPort = typeof address === 'object' && address ? address.port : opts.httpPort;
  const httpUrl = `http://${urlHost(host)}:${httpPort}`;

  const runtime: RelayRuntimeFile = { httpUrl, mqttUrl: mqttConnectUrl, pid: process.pid };
  try {
    writeFileSync(join(opts.dataDir, RUNTIME_FILE), JSON.stringify(runtime, null, 2) + '\n', { mode: 0o600 });
  } catch (err) {
    if (!isDiskFull(err)) throw err;
    // CLI commands on this host then need --relay-url; the relay itself serves as ever.
    log.warn({ err }, `could not write ${RUNTIME_FILE}: the disk is full`);
  }
  log.info({ httpUrl, mqttUrl: mqttConnectUrl, dataDir: opts.dataDir, embeddedBroker: Boolean(broker) }, 'relay ready');

  let closed = false;
  return {
    httpUrl,
    mqttUrl: mqttConnectUrl,
    dataDir: opts.dataDir,
    newAdminToken,
    store,
    async close() {
      if (closed) return;
      closed = true;
      scheduler.close();
      rollouts.close();
      artifactChecks.close();
      disk.close();
      deviceLogs.close();
      await api.close();
      await mqtt.close();
      await accounts?.close();
      await broker?.close();
      history.close();
      store.close();
      rmSync(join(opts.dataDir, RUNTIME_FILE), { force: true });
    },
  };
}
