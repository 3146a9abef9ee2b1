// One fleet simulator process: K simulated devices on the agent's real code paths (MQTT
// session, reconcile, download with sha256 check, state reports, heartbeats). Devices in this
// process share one onnxruntime session per model file; each still downloads and verifies its
// own copy, as a real device would.

import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { createLogger, probeModel, type HealthMessage } from '@outpost/shared';

import { connect } from '../../packages/agent/dist/connection.js';
import { Reconciler } from '../../packages/agent/dist/reconcile.js';
import { ArtifactCache } from '../../packages/agent/dist/artifact-cache.js';
import { ModelTable } from '../../packages/agent/dist/runtime/model-table.js';
import { ServedModel } from '../../packages/agent/dist/runtime/served-model.js';
import { InferenceEngine } from '../../packages/agent/dist/runtime/inference-engine.js';

/** What enrollment gave a device (the NATS fields only on a NATS cluster). */
export interface SimDevice {
  deviceId: string;
  secret: string;
  mqttUrl: string;
  relayUrl: string;
  mqttUrls?: string[];
  mqttPassword?: string;
  mqttSubscribeQos?: 0 | 1;
}

interface Start {
  devices: SimDevice[];
  heartbeatMs: number;
  dir: string;
  /** 'fixed': MQTT reconnects as agents did before backoff (every 2 s, CONNACK within 10 s). */
  reconnect: 'backoff' | 'fixed';
}

// SIM_LOG_LEVEL=info (with run.ts --sim-log FILE) shows what the simulated agents' connections did.
const log = createLogger({ name: 'sim', level: process.env.SIM_LOG_LEVEL ?? 'silent' });
const engines = new Map<string, Promise<InferenceEngine>>();
let connected = 0;
let connects = 0;
let serving = 0;
let failed = 0;

function health(): HealthMessage {
  return { ts: Date.now(), uptimeS: process.uptime(), cpuPercent: 5, memory: { rssBytes: 60e6, usedBytes: 1e9, totalBytes: 4e9 }, disk: { freeBytes: 1e10, totalBytes: 3e10 }, models: {} };
}

process.once('message', (msg: Start) => {
  for (const d of msg.devices) {
    const seen = new Set<string>();
    const reconciler = new Reconciler({
      cache: new ArtifactCache(join(msg.dir, d.deviceId)),
      table: new ModelTable(),
      log,
      artifactUrl: (sha) => `${d.relayUrl}/v1/artifacts/${sha}`,
      authHeaders: { authorization: `Bearer ${d.secret}` },
      report: (state) => {
        conn.publishReported(state);
        for (const m of state.models) {
          const key = `${m.sha256}:${m.state}`;
          if (seen.has(key)) continue;
          seen.add(key);
          if (m.state === 'serving') serving++;
          if (m.state === 'failed') failed++;
        }
      },
      // One probe and one engine per file in this process; the self-test runs per device.
      load: async (m, file, stats) => {
        let engine = engines.get(m.sha256);
        if (!engine) {
          engine = probeModel(file).then(() => InferenceEngine.start(file));
          engines.set(m.sha256, engine);
        }
        const model = ServedModel.borrow(m, await engine, stats);
        await model.selfTest();
        return model;
      },
    });
    let first = true;
    const conn = connect({
      url: d.mqttUrl,
      ...(d.mqttUrls ? { urls: d.mqttUrls } : {}),
      ...(d.mqttPassword ? { password: d.mqttPassword } : {}),
      ...(d.mqttSubscribeQos === 0 ? { subscribeQos: 0 as const } : {}),
      deviceId: d.deviceId,
      secret: d.secret,
      log,
      agentVersion: 'sim',
      training: false,
      datasets: [],
      onDesired: (desired) => reconciler.setDesired(desired),
      onDesiredJobs: () => {},
      ...(msg.reconnect === 'fixed' ? { reconnect: { baseMs: 2000, maxMs: 2000, jitter: false }, connectTimeoutMs: 10_000 } : {}),
      onConnectionChange: (up) => {
        if (up) connects++;
        if (up && first) {
          first = false;
          connected++;
        }
      },
    });
    // Heartbeats spread over the interval, as a real fleet's would be.
    setTimeout(() => setInterval(() => conn.publishHealth(health()), msg.heartbeatMs), Math.random() * msg.heartbeatMs);
  }
  setInterval(() => process.send!({ connected, connects, serving, failed }), 200);
});

process.on('SIGTERM', () => {
  rmSync((process.env.SIM_DIR ?? '/nonexistent'), { recursive: true, force: true });
  process.exit(0);
});
