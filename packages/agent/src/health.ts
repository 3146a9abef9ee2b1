// The heartbeat: uptime, CPU, memory, disk, and per-model request statistics.

import { cpus, freemem, totalmem } from 'node:os';
import { statfs } from 'node:fs/promises';
import type { HealthMessage } from '@outpost/shared';
import type { ModelTable } from './runtime/model-table.js';

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const c of cpus()) {
    idle += c.times.idle;
    total += c.times.user + c.times.nice + c.times.sys + c.times.idle + c.times.irq;
  }
  return { idle, total };
}

export class HealthSampler {
  readonly #dataDir: string;
  readonly #table: ModelTable;
  #lastCpu = cpuTimes();

  constructor(dataDir: string, table: ModelTable) {
    this.#dataDir = dataDir;
    this.#table = table;
  }

  async sample(): Promise<HealthMessage> {
    const now = cpuTimes();
    const total = now.total - this.#lastCpu.total;
    const cpuPercent = total > 0 ? Math.max(0, Math.min(100, (1 - (now.idle - this.#lastCpu.idle) / total) * 100)) : 0;
    this.#lastCpu = now;
    let disk = { freeBytes: 0, totalBytes: 0 };
    try {
      const s = await statfs(this.#dataDir);
      disk = { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
    } catch {
      // statfs is missing on some platforms: report zeros rather than no heartbeat
    }
    const models: HealthMessage['models'] = {};
    for (const m of this.#table.all()) models[m.name] = m.stats.snapshot();
    return {
      ts: Date.now(),
      uptimeS: Math.round(process.uptime()),
      cpuPercent: Math.round(cpuPercent * 10) / 10,
      memory: { rssBytes: process.memoryUsage.rss(), usedBytes: totalmem() - freemem(), totalBytes: totalmem() },
      disk,
      models,
    };
  }
}
