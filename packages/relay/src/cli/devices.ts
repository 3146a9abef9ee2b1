// outpost-relay devices list | show ID | label ID k=v... | remove ID | logs ID (in device-logs.ts)

import { InvalidArgumentError, type Command } from 'commander';
import { formatBytes, formatLabels } from '@outpost/shared';
import type { deviceView } from '../fleet/views.js';
import { relayApi, type ClientOptions } from './client.js';
import { clientOptions } from './options.js';
import { ago, print, printJson, table } from './output.js';
import { deviceLogsCommand } from './device-logs.js';

export type DeviceView = ReturnType<typeof deviceView> & { follows?: Array<{ model: string; deploymentId: string; version: number; why: string }> };

function modelsCell(d: DeviceView): string {
  return d.models.map((m) => `${m.name}:${m.version} ${m.state}`).join(', ') || '-';
}

/** `k=v` sets a label, `k-` removes it. */
export function parseLabelChanges(args: string[]): Record<string, string | null> {
  const changes: Record<string, string | null> = {};
  for (const arg of args.flatMap((a) => a.split(','))) {
    if (arg.endsWith('-') && !arg.includes('=')) changes[arg.slice(0, -1)] = null;
    else {
      const eq = arg.indexOf('=');
      if (eq <= 0) throw new InvalidArgumentError(`"${arg}" is not key=value (or key- to remove a label).`);
      changes[arg.slice(0, eq)] = arg.slice(eq + 1);
    }
  }
  return changes;
}

export function devicesCommand(program: Command): void {
  const devices = program.command('devices').description('list and manage enrolled devices');

  clientOptions(devices.command('list').description('list devices')).action(async (opts: ClientOptions) => {
    const { devices: list } = await relayApi(opts).request<{ devices: DeviceView[] }>('GET', '/v1/devices');
    if (opts.json) return printJson(list);
    if (list.length === 0) return print('no devices yet: make a token with `outpost-relay tokens enroll` and run `outpost-agent enroll` on a device');
    print(table(['ID', 'NAME', 'ONLINE', 'LAST SEEN', 'LABELS', 'MODELS'], list.map((d) => [d.id, d.name, d.online ? 'yes' : 'no', ago(d.lastSeen), formatLabels(d.labels) || '-', modelsCell(d)])));
  });

  clientOptions(devices.command('show').argument('<id>', 'device id').description('show one device')).action(async (id: string, opts: ClientOptions) => {
    const d = await relayApi(opts).request<DeviceView>('GET', `/v1/devices/${encodeURIComponent(id)}`);
    if (opts.json) return printJson(d);
    print(`id         ${d.id}\nname       ${d.name}\nonline     ${d.online ? 'yes' : 'no'} (last seen ${ago(d.lastSeen)})\nlabels     ${formatLabels(d.labels) || '-'}\nenrolled   ${d.createdAt}`);
    if (d.health) {
      const h = d.health;
      print(`health     cpu ${h.cpuPercent.toFixed(0)}%, memory ${formatBytes(h.memory.usedBytes)}/${formatBytes(h.memory.totalBytes)}, disk free ${formatBytes(h.disk.freeBytes)}, agent up ${Math.round(h.uptimeS)}s`);
    }
    print('models');
    if (d.models.length === 0) print('  (none)');
    for (const m of d.models) {
      const stats = d.health?.models[m.name];
      const serving = m.serving && m.serving.version !== m.version ? ` (serving v${m.serving.version})` : '';
      const extra = stats ? `, ${stats.requests} requests, ${stats.errors} errors, p50 ${stats.p50Ms ?? '-'} ms` : '';
      print(`  ${m.name}:${m.version} ${m.state}${serving}${m.reason ? `: ${m.reason}` : ''}${extra}`);
    }
    if (d.follows?.length) {
      print('why');
      for (const f of d.follows) print(`  ${f.model}:${f.version} from ${f.why}`);
    }
  });

  clientOptions(
    devices.command('label').argument('<id>', 'device id').argument('<labels...>', 'k=v to set, k- to remove').description('set or remove labels on a device'),
  ).action(async (id: string, labels: string[], opts: ClientOptions) => {
    const d = await relayApi(opts).request<DeviceView>('PATCH', `/v1/devices/${encodeURIComponent(id)}/labels`, { labels: parseLabelChanges(labels) });
    if (opts.json) return printJson(d);
    print(`${d.id}: ${formatLabels(d.labels) || '(no labels)'}`);
  });

  clientOptions(devices.command('remove').argument('<id>', 'device id').description('remove a device; its credentials stop working at once')).action(
    async (id: string, opts: ClientOptions) => {
      await relayApi(opts).request('DELETE', `/v1/devices/${encodeURIComponent(id)}`);
      if (opts.json) return printJson({ removed: id });
      print(`removed ${id}`);
    },
  );

  deviceLogsCommand(devices);
}
