// Prometheus metrics of the relay (prom-client, on a registry of its own so several relays can
// live in one process). Gauges are read from their source at scrape time.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Store } from '../store/store.js';
import type { Slots } from '../fleet/slots.js';

export interface RelayMetricsSources {
  store: Store;
  downloads: Slots;
  streamClients(): number;
  mqttMessagesIn(): number;
  mqttMessagesRejected(): number;
  mqttMessagesOut(): number;
  /** Device quota events by `quota action`. */
  quotaEvents(): Map<string, number>;
  /** Bytes held by MQTT connections that have not authenticated yet (embedded broker). */
  preAuthBytes(): number;
  /** Whether the last write that failed for want of space has not been followed by free space. */
  diskFull(): boolean;
  /** Whether this relay leads its workspace (runs the scheduler and the rollouts). */
  leading(): boolean;
}

export class RelayMetrics {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;

  constructor(src: RelayMetricsSources) {
    const registry = this.registry;
    collectDefaultMetrics({ register: registry, prefix: 'outpost_relay_' });
    new Gauge({
      name: 'outpost_devices',
      help: 'Enrolled devices, by online state',
      labelNames: ['online'],
      registers: [registry],
      async collect() {
        const { online, total } = await src.store.devices.count();
        this.set({ online: 'true' }, online);
        this.set({ online: 'false' }, total - online);
      },
    });
    new Gauge({
      name: 'outpost_deployments',
      help: 'Deployments, by state',
      labelNames: ['state'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const [state, n] of Object.entries(await src.store.deployments.countByState())) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'outpost_artifact_downloads',
      help: 'Artifact downloads being served, and waiting for a slot',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        this.set({ state: 'active' }, src.downloads.active);
        this.set({ state: 'waiting' }, src.downloads.waiting);
      },
    });
    new Gauge({
      name: 'outpost_stream_clients',
      help: 'Connected fleet stream (WebSocket) clients',
      registers: [registry],
      collect() {
        this.set(src.streamClients());
      },
    });
    new Counter({
      name: 'outpost_mqtt_messages_in_total',
      help: 'MQTT messages the relay received on device topics',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(src.mqttMessagesIn());
      },
    });
    new Counter({
      name: 'outpost_mqtt_messages_rejected_total',
      help: 'Device messages dropped as malformed',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(src.mqttMessagesRejected());
      },
    });
    new Counter({
      name: 'outpost_mqtt_messages_out_total',
      help: 'MQTT messages the relay published',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(src.mqttMessagesOut());
      },
    });
    new Counter({
      name: 'outpost_device_quota_events_total',
      help: 'Device messages, subscriptions and connections refused for a quota, by quota and action',
      labelNames: ['quota', 'action'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [key, n] of src.quotaEvents()) {
          const [quota, action] = key.split(' ') as [string, string];
          this.inc({ quota, action }, n);
        }
      },
    });
    new Gauge({
      name: 'outpost_mqtt_preauth_bytes',
      help: 'Bytes sent by MQTT connections that have not authenticated yet (bounded by the broker)',
      registers: [registry],
      collect() {
        this.set(src.preAuthBytes());
      },
    });
    new Gauge({
      name: 'outpost_relay_disk_full',
      help: "1 while the relay's data dir is out of space (new work is refused with 507), else 0",
      registers: [registry],
      collect() {
        this.set(src.diskFull() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'outpost_relay_leading',
      help: '1 while this relay leads its workspace (runs the job scheduler and staged rollouts), else 0; one relay of a workspace at a time',
      registers: [registry],
      collect() {
        this.set(src.leading() ? 1 : 0);
      },
    });
    this.httpDuration = new Histogram({
      name: 'outpost_http_request_duration_seconds',
      help: 'HTTP API latency',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: [registry],
    });
  }
}
