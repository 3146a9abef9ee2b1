// outpost-relay deploy NAME[:VERSION] --device ID... [--wait]

import type { Command } from 'commander';
import type { deploymentView } from '../fleet/views.js';
import { relayApi, type ClientOptions, type RelayApi } from './client.js';
import { clientOptions } from './options.js';
import { CliError, note, print, printJson } from './output.js';
import { collect, parseDurationOption, parseLabelsOption, parseModelRef } from './parse.js';
import { formatLabels, type Labels } from '@outpost/shared';
import { countProgress } from './progress.js';

export type DeploymentView = ReturnType<typeof deploymentView>;

export function summarize(d: DeploymentView): string {
  return Object.entries(d.counts)
    .map(([state, n]) => `${n} ${state}`)
    .join(', ');
}

/** Polls a deployment until no device is pending; fails when any device failed. */
export async function waitForDeployment(api: RelayApi, id: string, timeoutMs: number, pollMs = 300): Promise<DeploymentView> {
  const deadline = Date.now() + timeoutMs;
  let d = await api.request<DeploymentView>('GET', `/v1/deployments/${id}`);
  const bar = countProgress(`deploying ${d.model}:${d.version}`, d.devices.length);
  try {
    while (d.state === 'in-progress') {
      const done = d.devices.filter((x) => x.state !== 'pending' && x.state !== 'downloading' && x.state !== 'loading').length;
      bar.update(done, { detail: summarize(d) });
      if (Date.now() > deadline) throw new CliError(`timed out waiting for ${id} (${summarize(d)}): see outpost-relay deployments show ${id}`);
      await new Promise((r) => setTimeout(r, pollMs));
      d = await api.request<DeploymentView>('GET', `/v1/deployments/${id}`);
    }
    bar.update(d.devices.length, { detail: summarize(d) });
  } finally {
    bar.stop();
  }
  return d;
}

export function deployCommand(program: Command): void {
  clientOptions(
    program
      .command('deploy')
      .argument('<model>', 'NAME or NAME:VERSION (default: the latest version)')
      .option('--device <id>', 'a device to deploy to (repeat for several)', collect, [])
      .option('--selector <k=v,...>', 'every device with these labels, now and later (instead of --device)', parseLabelsOption)
      .option('--wait', 'wait until every device serves it; exit 1 if any fails')
      .option('--timeout <duration>', 'how long --wait waits', parseDurationOption, 10 * 60_000)
      .description('send a model version to devices'),
  ).action(async (ref: string, opts: ClientOptions & { device: string[]; selector?: Labels; wait?: boolean; timeout: number }) => {
    const { name, version } = parseModelRef(ref);
    if (opts.device.length === 0 && !opts.selector) throw new CliError('name at least one device (--device ID, see outpost-relay devices list) or a selector (--selector k=v)');
    if (opts.device.length > 0 && opts.selector) throw new CliError('use --device or --selector, not both');
    const api = relayApi(opts);
    const target = opts.selector ? { selector: opts.selector } : { devices: opts.device };
    let d = await api.request<DeploymentView>('POST', '/v1/deployments', { model: name, version, ...target });
    if (!opts.json) note(`deployment ${d.id}: ${d.model}:${d.version} to ${d.devices.length} device(s)${d.selector ? ` matching ${formatLabels(d.selector)} (and any that match later)` : ''}`);
    if (opts.wait) d = await waitForDeployment(api, d.id, opts.timeout);
    if (opts.json) printJson(d);
    else {
      print(`${d.id}  ${d.model}:${d.version}  ${d.state}  (${summarize(d)})`);
      for (const x of d.devices.filter((x) => x.state === 'failed')) print(`  ${x.deviceId} failed: ${x.reason}`);
    }
    if (opts.wait && d.state === 'failed') throw new CliError(`deployment ${d.id} failed on ${d.devices.filter((x) => x.state === 'failed').length} device(s)`);
  });
}
