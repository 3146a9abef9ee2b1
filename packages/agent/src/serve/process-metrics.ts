// The agent's own process metrics, under the names prom-client's defaults use (so the usual
// dashboards work): CPU, memory, start time. Each is read at scrape time, so nothing runs
// between scrapes. prom-client's defaults would also sample event loop lag every 10 ms, waking
// an idle device 100 times a second; the inference latency histogram already shows a busy loop.

import { Counter, Gauge, type Registry } from './prom.js';

export function registerProcessMetrics(registry: Registry, prefix: string): void {
  const registers = [registry];
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({ name: prefix + name, help, registers, collect() { this.set(read()); } });
  new Counter({
    name: `${prefix}process_cpu_seconds_total`,
    help: 'Total user and system CPU time spent in seconds',
    registers,
    collect() {
      const { user, system } = process.cpuUsage();
      this.reset();
      this.inc((user + system) / 1e6);
    },
  });
  gauge('process_resident_memory_bytes', 'Resident memory size in bytes', () => process.memoryUsage.rss());
  gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds', () => Math.round(Date.now() / 1000 - process.uptime()));
  gauge('nodejs_heap_size_used_bytes', 'V8 heap in use in bytes', () => process.memoryUsage().heapUsed);
  gauge('nodejs_heap_size_total_bytes', 'V8 heap reserved in bytes', () => process.memoryUsage().heapTotal);
  gauge('nodejs_external_memory_bytes', 'Memory of C++ objects bound to JavaScript objects (tensor buffers included) in bytes', () => process.memoryUsage().external);
}
