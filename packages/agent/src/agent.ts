// The agent as one started, closeable instance: MQTT session, reconciler, model table,
// inference server and heartbeat. The CLI's `start` and the tests use it.

import { join } from 'node:path';
import { background, cleanUpLeftoverRuns, createLogger, guardedInterval, type DesiredState, type Logger } from '@outpost/shared';
import { readDeviceFile, writeDeviceFile } from './device-file.js';
import { ArtifactCache } from './artifact-cache.js';
import { connect, type Connection } from './connection.js';
import { Reconciler } from './reconcile.js';
import { ModelTable } from './runtime/model-table.js';
import type { SessionSettings } from './runtime/served-model.js';
import { HealthSampler } from './health.js';
import { DEFAULT_MAX_BODY_MEMORY, buildInferenceServer } from './serve/server.js';
import { BodyBudget } from './serve/router.js';
import { InferenceService } from './serve/inference-service.js';
import { openGrpcPort, type GrpcPort } from './serve/grpc-port.js';
import { removeStateFile, writeStateFile } from './state-file.js';
import { AGENT_VERSION } from './version.js';
import { AgentMetrics } from './serve/agent-metrics.js';
import { JobRunner } from './jobs/job-runner.js';
import { LastGood } from './last-good.js';
import { LogRing } from './log-ring.js';
import { DeviceTls } from './device-tls.js';
import type { Server as TlsServer } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { CertificateRenewal } from './certificate-renewal.js';
import { RelayState } from './relay-state.js';
import { detectAccelerators } from './accelerators.js';


export interface AgentOptions {
  dataDir: string;
  host?: string;
  port?: number;
  /** The KServe v2 gRPC port (0 picks a free one); none when not given (the CLI's default is 8001). */
  grpcPort?: number | null;
  /** The gRPC port's largest message (default 4 MiB); each call in flight reserves it from maxBodyMemory. */
  grpcMaxMessageBytes?: number;
  /** False: a gRPC port that cannot be opened is logged and left out, not a failure to start (the CLI's default port). */
  grpcPortRequired?: boolean;
  heartbeatMs?: number;
  /** Require this bearer token on the inference port. */
  inferenceToken?: string;
  /** Serve the inference port over HTTPS with the device's certificate (renewals included). */
  inferenceTls?: boolean;
  /** Largest inference request body; bytes all bodies may hold at once. */
  maxRequestBytes?: number;
  maxBodyMemory?: number;
  session?: SessionSettings;
  /** The device owner's consent to run training jobs. */
  acceptTraining?: boolean;
  /** Local datasets jobs may ask for, by name. */
  datasets?: Record<string, string>;
  /** Accelerators the device has that detection misses (`--accelerator NAME`). */
  accelerators?: string[];
  /** Where detection looks for /dev and /etc (default `/`; tests give a temp dir). */
  acceleratorRoot?: string;
  /** The address the other ranks of an N-node job reach this device at. */
  advertiseAddress?: string;
  log?: Logger;
  /** The recent lines `devices logs` shows; with `log`, the caller tees that logger into it. */
  logRing?: LogRing;
}

export interface Agent {
  deviceId: string;
  httpUrl: string;
  /** host:port of the KServe v2 gRPC port (undefined when it is off). */
  grpcAddress?: string;
  /** Resolves when reconciling has settled (tests). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The device's key and certificate for the inference port. Its name for clients is the device
 * id (a DNS name in the certificate), from the relay's CA; certificates from relays before this
 * one were for clients only, and a renewal (`outpost-relay devices rotate`) brings a new one.
 */
function inferenceCertificate(tls: DeviceTls): { cert: string; key: string } {
  const current = tls.current;
  if (!current?.cert || !current.key) throw new Error('--https needs a device certificate: enroll with a relay that serves TLS (this one was enrolled with --insecure)');
  const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
  if (!(new X509Certificate(current.cert).keyUsage ?? []).includes(SERVER_AUTH)) {
    throw new Error('--https: this device certificate is for clients only (from an older relay): run outpost-relay devices rotate DEVICE on the relay, then start again');
  }
  return { cert: current.cert, key: current.key };
}

export async function createAgent(opts: AgentOptions): Promise<Agent> {
  const ring = opts.logRing ?? new LogRing();
  const log = opts.log ?? createLogger({ name: 'outpost-agent', tee: ring });
  const device = readDeviceFile(opts.dataDir);
  const table = new ModelTable();
  const tls = new DeviceTls(opts.dataDir);
  const cache = new ArtifactCache(join(opts.dataDir, 'models'), () => tls.current);
  let connection: Connection | undefined;
  let httpUrl = '';
  let grpcAddress: string | undefined;
  let closed = false;

  // For `outpost-agent status` and tests. Not after close (the file is removed then), and never
  // a throw out of an event handler: a data dir gone or full costs this file, not the agent.
  const writeState = () => {
    if (closed) return;
    try {
      writeStateFile(opts.dataDir, {
        pid: process.pid,
        deviceId: device.deviceId,
        httpUrl,
        ...(grpcAddress ? { grpcAddress } : {}),
        connected: connection?.connected ?? false,
        updatedAt: new Date().toISOString(),
        models: reconciler.reported.models,
      });
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'agent-state.json could not be written');
    }
  };

  const metrics = new AgentMetrics(() => table.all().map((m) => ({ model: m.name, depth: m.queueDepth })));
  const reconciler = new Reconciler({
    onLoaded: (model, seconds) => metrics.modelLoad.observe({ model }, seconds),
    onBatch: (model, rows) => metrics.batchSize.observe({ model }, rows),
    onThreadLost: (model, err, replacing) => {
      metrics.threadsLost.inc({ model });
      log.error({ model, err, replacing }, replacing ? 'a session thread died; starting another' : 'a session thread died again; the model is not restarted until it is deployed again');
    },
    cache,
    table,
    log,
    session: opts.session,
    artifactUrl: (sha) => `${device.relayUrl}/v1/artifacts/${sha}`,
    // With a certificate the device is known by it; the secret is for relays without TLS.
    authHeaders: tls.hasCertificate ? {} : { authorization: `Bearer ${device.secret}` },
    report: (state) => {
      connection?.publishReported(state);
      writeState();
    },
    lastGood: new LastGood(opts.dataDir),
  });
  // What it served last serves again before the relay answers; desired states wait their turn.
  background(log, 'serving the last served models from the cache', reconciler.restore());

  // An agent killed with job runs going left their processes (and folders) behind: end them.
  const leftovers = await cleanUpLeftoverRuns(join(opts.dataDir, 'jobs'));
  if (leftovers > 0) log.warn({ runs: leftovers }, `ended ${leftovers} job run(s) a previous agent left running, and removed their folders`);
  const jobs = new JobRunner({
    dataDir: opts.dataDir,
    relayUrl: device.relayUrl,
    secret: device.secret,
    tls: () => tls.current,
    acceptTraining: opts.acceptTraining ?? false,
    datasets: opts.datasets ?? {},
    ...(opts.advertiseAddress ? { advertiseAddress: opts.advertiseAddress } : {}),
    log,
    report: (state) => connection?.publishJobsReported(state),
    publishLog: (batch) => connection?.publishJobLog(batch),
  });

  const servingTls = opts.inferenceTls ? inferenceCertificate(tls) : undefined;
  const service = new InferenceService({ table, agentVersion: AGENT_VERSION, reported: () => reconciler.reported, token: opts.inferenceToken, metrics });
  // One budget for the bodies both ports hold: --max-body-memory bounds HTTP and gRPC together.
  const budget = new BodyBudget(opts.maxBodyMemory ?? DEFAULT_MAX_BODY_MEMORY);
  const server = buildInferenceServer({ table, log, agentVersion: AGENT_VERSION, reported: () => reconciler.reported, token: opts.inferenceToken, metrics, maxRequestBytes: opts.maxRequestBytes, budget, tls: servingTls, service });
  let grpcServer: GrpcPort | undefined;
  if (servingTls) {
    // A renewed certificate is served to new connections; open ones keep theirs.
    tls.onReplace(
      (pair) => {
        (server as TlsServer).setSecureContext({ ...pair, minVersion: 'TLSv1.2' });
        grpcServer?.renew(pair);
      },
      (err) => log.error({ err: err.message }, 'the inference port could not take the renewed certificate; it serves the previous one'),
    );
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8000, opts.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const host = opts.host && opts.host !== '0.0.0.0' ? opts.host : '127.0.0.1';
  httpUrl = `${servingTls ? 'https' : 'http'}://${host}:${port}`;
  const grpcPort = opts.grpcPort ?? null;
  if (grpcPort !== null) {
    // grpc-js and the parsed proto load at the port's first connection (grpc-port.ts).
    try {
      grpcServer = await openGrpcPort({ service, log, host: opts.host ?? '0.0.0.0', port: grpcPort, tls: servingTls, maxMessageBytes: opts.grpcMaxMessageBytes, budget });
    } catch (err) {
      if (opts.grpcPortRequired !== false) {
        await new Promise((resolve) => server.close(resolve));
        throw err;
      }
      log.error({ err: (err as Error).message }, 'no gRPC port: serving KServe v2 over HTTP only (choose another with --grpc-port N, or --grpc-port off)');
    }
    if (grpcServer) grpcAddress = `${host.includes(':') ? `[${host}]` : host}:${grpcServer.port}`;
  }

  const renewal = tls.hasCertificate ? new CertificateRenewal({ tls, relayUrl: device.relayUrl, secret: device.secret, log }) : undefined;
  const applyDesired = (desired: DesiredState) => {
    reconciler.setDesired(desired);
    renewal?.requestRenewalIfIssuedBefore(desired.renewCertificateIssuedBefore);
  };
  // The store's copy of both documents, over HTTPS: on each connect and every few minutes.
  const relayState = new RelayState({
    relayUrl: device.relayUrl,
    tls: () => tls.current,
    auth: (): Record<string, string> => (tls.hasCertificate ? {} : { authorization: `Bearer ${device.secret}` }),
    log,
    onDesired: applyDesired,
    onDesiredJobs: (desired) => jobs.setDesired(desired),
  });
  const hardware = await detectAccelerators({ declared: opts.accelerators ?? [], ...(opts.acceleratorRoot ? { root: opts.acceleratorRoot } : {}) });
  log.info({ accelerators: hardware.accelerators, executionProviders: hardware.executionProviders, found: hardware.evidence }, 'accelerators and execution providers');
  for (const u of hardware.unavailable) log.info({ executionProvider: u.name, reason: u.reason }, 'execution provider not available here');
  connection = connect({
    url: device.mqttUrl,
    ...(device.mqttUrls ? { urls: device.mqttUrls } : {}),
    ...(device.mqttPassword ? { password: device.mqttPassword } : {}),
    ...(device.mqttSubscribeQos === 0 ? { subscribeQos: 0 as const } : {}),
    // Kept in device.json, so the next start uses it at once.
    refreshLogin: async () => {
      const login = await relayState.mqttLogin();
      if (login) {
        const { mqttUrls: _u, mqttSubscribeQos: _q, ...rest } = readDeviceFile(opts.dataDir);
        writeDeviceFile(opts.dataDir, { ...rest, mqttPassword: login.password, ...(login.subscribeQos === 0 ? { mqttSubscribeQos: 0 } : {}), ...(login.urls ? { mqttUrl: login.urls[0]!, mqttUrls: login.urls } : {}) });
      }
      return login;
    },
    deviceId: device.deviceId,
    secret: device.secret,
    tls: () => tls.forMqtt,
    log,
    agentVersion: AGENT_VERSION,
    training: opts.acceptTraining ?? false,
    datasets: Object.keys(opts.datasets ?? {}),
    accelerators: hardware.accelerators,
    executionProviders: hardware.executionProviders,
    onDesired: (desired) => relayState.accept('desired', desired.revision) && applyDesired(desired),
    onDesiredJobs: (desired) => relayState.accept('jobs', desired.revision) && jobs.setDesired(desired),
    onSubscribed: () => background(log, 'reading the desired state from the relay', relayState.refresh()),
    onLogsRequest: (request) => {
      for (const part of ring.answer(request)) connection?.publishLogs(part);
    },
    onConnectionChange: () => writeState(),
  });

  const sampler = new HealthSampler(opts.dataDir, table);
  const heartbeat = guardedInterval(log, 'heartbeat', opts.heartbeatMs ?? 10_000, async () => {
    const health = await sampler.sample();
    const certificate = renewal?.state;
    connection?.publishHealth(certificate ? { ...health, certificate } : health);
  });
  writeState();
  log.info({ deviceId: device.deviceId, httpUrl, ...(grpcAddress ? { grpcAddress } : {}), relay: device.relayUrl }, 'agent ready');

  return {
    deviceId: device.deviceId,
    httpUrl,
    ...(grpcAddress ? { grpcAddress } : {}),
    idle: () => reconciler.idle(),
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      relayState.close();
      renewal?.close();
      jobs.close();
      await reconciler.close();
      await connection?.close();
      await Promise.all([new Promise((resolve) => server.close(resolve)), grpcServer?.close()]);
      await table.clear();
      removeStateFile(opts.dataDir);
    },
  };
}
