// outpost-relay deploy NAME[:VERSION] --device ID... [--wait]

import type { Command } from 'commander';
import type { deploymentView } from '../fleet/views.js';
import { relayApi, type ClientOptions, type RelayApi } from './client.js';
import { clientOptions } from './options.js';
import { CliError, note, print, printJson } from './output.js';
import { collect, parseDurationOption, parseModelRef } from './parse.js';
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
      const done = d.devices.filter((x) => x.state === 'serving' || x.state === 'failed' || x.state === 'superseded').length;
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
      .option('--wait', 'wait until every device serves it; exit 1 if any fails')
      .option('--timeout <duration>', 'how long --wait waits', parseDurationOption, 10 * 60_000)
      .description('send a model version to devices'),
  ).action(async (ref: string, opts: ClientOptions & { device: string[]; wait?: boolean; timeout: number }) => {
    const { name, version } = parseModelRef(ref);
    if (opts.device.length === 0) throw new CliError('name at least one device: --device ID (see outpost-relay devices list)');
    const api = relayApi(opts);
    let d = await api.request<DeploymentView>('POST', '/v1/deployments', { model: name, version, devices: opts.device });
    if (!opts.json) note(`deployment ${d.id}: ${d.model}:${d.version} to ${d.devices.length} device(s)`);
    if (opts.wait) d = await waitForDeployment(api, d.id, opts.timeout);
    if (opts.json) printJson(d);
    else {
      print(`${d.id}  ${d.model}:${d.version}  ${d.state}  (${summarize(d)})`);
      for (const x of d.devices.filter((x) => x.state === 'failed')) print(`  ${x.deviceId} failed: ${x.reason}`);
    }
    if (opts.wait && d.state === 'failed') throw new CliError(`deployment ${d.id} failed on ${d.devices.filter((x) => x.state === 'failed').length} device(s)`);
  });
}
