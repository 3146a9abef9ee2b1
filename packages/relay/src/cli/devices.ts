// outpost-relay devices list | show DEVICE | label DEVICE k=v... | remove DEVICE | rotate DEVICE | logs DEVICE (in device-logs.ts)
// (DEVICE is an id or a name; the relay resolves it, see fleet/devices.ts)

import { InvalidArgumentError, type Command } from 'commander';
import { examples, formatBytes, formatLabels } from '@outpost/shared';
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
  const devices = program
    .command('devices')
    .description('list and manage enrolled devices')
    .addHelpText('after', examples('outpost-relay devices list', 'outpost-relay devices show dev_1a2b3c4d5e6f', 'outpost-relay devices label dev_1a2b3c4d5e6f zone=a tier-'));

  clientOptions(devices.command('list').description('list devices').addHelpText('after', examples('outpost-relay devices list', 'outpost-relay devices list --json'))).action(async (opts: ClientOptions) => {
    const { devices: list } = await relayApi(opts).request<{ devices: DeviceView[] }>('GET', '/v1/devices');
    if (opts.json) return printJson(list);
    if (list.length === 0) return print('no devices yet: make a token with `outpost-relay tokens enroll` and run `outpost-agent enroll` on a device');
    print(table(['ID', 'NAME', 'ONLINE', 'PROBLEM', 'LAST SEEN', 'LABELS', 'MODELS'], list.map((d) => [d.id, d.name, d.online ? 'yes' : 'no', d.problem?.kind ?? '-', ago(d.lastSeen), formatLabels(d.labels) || '-', modelsCell(d)])));
  });

  clientOptions(
    devices
      .command('show')
      .argument('<device>', 'device id or name')
      .description('show one device')
      .addHelpText('after', `
Examples:
  outpost-relay devices show dev_3f2a9c1b7d0e
  outpost-relay devices show front-door        # by name; a name several devices share lists their ids
`),
  ).action(async (ref: string, opts: ClientOptions) => {
    const d = await relayApi(opts).request<DeviceView>('GET', `/v1/devices/${encodeURIComponent(ref)}`);
    if (opts.json) return printJson(d);
    print(`id         ${d.id}\nname       ${d.name}\nonline     ${d.online ? 'yes' : 'no'} (last seen ${ago(d.lastSeen)})\nlabels     ${formatLabels(d.labels) || '-'}\nenrolled   ${d.createdAt}`);
    if (d.problem) print(`problem    ${d.problem.kind}: ${d.problem.message} (since ${d.problem.since})`);
    if (d.accelerators) print(`compute    accelerators ${d.accelerators.join(',') || '-'} (execution providers ${d.executionProviders?.join(',') || '-'})`);
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
      // An offline device's states are what it said last, not what it does now.
      const state = d.online ? m.state : `last reported ${m.state}, last seen ${d.lastSeen ?? "never"} (${ago(d.lastSeen)})`;
      const on = m.executionProvider && m.state === 'serving' ? ` on ${m.executionProvider}` : '';
      print(`  ${m.name}:${m.version} ${state}${on}${serving}${m.reason ? `: ${m.reason}${m.at ? ` (${new Date(m.at).toISOString()})` : ''}` : ''}${extra}`);
      if (on && m.providersSkipped?.length) print(`    skipped ${m.providersSkipped.map((p) => `${p.provider} (${p.reason})`).join(', ')}`);
      if (stats?.lastError) print(`    last inference error ${new Date(stats.lastError.at).toISOString()}: ${stats.lastError.message}`);
    }
    if (d.follows?.length) {
      print('why');
      for (const f of d.follows) print(`  ${f.model}:${f.version} from ${f.why}`);
    }
  });

  clientOptions(
    devices
      .command('label')
      .argument('<device>', 'device id or name')
      .argument('<labels...>', 'k=v to set, k- to remove')
      .description('set or remove labels on a device')
      .addHelpText('after', `
Examples:
  outpost-relay devices label front-door site=lab camera=rgb
  outpost-relay devices label dev_3f2a9c1b7d0e camera-    # remove the camera label
`),
  ).action(async (ref: string, labels: string[], opts: ClientOptions) => {
    const d = await relayApi(opts).request<DeviceView>('PATCH', `/v1/devices/${encodeURIComponent(ref)}/labels`, { labels: parseLabelChanges(labels) });
    if (opts.json) return printJson(d);
    print(`${d.id}: ${formatLabels(d.labels) || '(no labels)'}`);
  });

  clientOptions(
    devices
      .command('remove')
      .argument('<device>', 'device id or name')
      .description('remove a device; its credentials and certificate stop working at once (it is disconnected)')
      .addHelpText('after', `
Examples:
  outpost-relay devices remove front-door
`),
  ).action(async (ref: string, opts: ClientOptions) => {
    const api = relayApi(opts);
    // Resolved first, so the answer names the id that was removed.
    const { id } = await api.request<DeviceView>('GET', `/v1/devices/${encodeURIComponent(ref)}`);
    await api.request('DELETE', `/v1/devices/${encodeURIComponent(id)}`);
    if (opts.json) return printJson({ removed: id });
    print(`removed ${id}`);
  });

  clientOptions(
    devices
      .command('rotate')
      .argument('<device>', 'device id or name')
      .description('make a device renew its certificate now (with a new key); the current one works until it has')
      .addHelpText('after', `
An offline device renews when it is back. Agents renew by themselves after two thirds of a
certificate's lifetime (outpost-relay start --device-cert-ttl); this is for a key that may have
been copied.

Examples:
  outpost-relay devices rotate front-door
`),
  ).action(async (ref: string, opts: ClientOptions) => {
    const res = await relayApi(opts).request<{ deviceId: string; requestedAt: string }>('POST', `/v1/devices/${encodeURIComponent(ref)}/rotate-certificate`);
    if (opts.json) return printJson(res);
    print(`asked ${res.deviceId} to renew its certificate (it does as soon as it is online)`);
  });

  deviceLogsCommand(devices);
}
