// outpost-relay deploy NAME[:VERSION] --device DEVICE... [--wait]  (DEVICE: an id or a name)

import { InvalidArgumentError, type Command } from 'commander';
import type { deploymentView } from '../fleet/views.js';
import { relayApi, type ClientOptions, type RelayApi } from './client.js';
import { clientOptions } from './options.js';
import { CliError, RelayUnreachableError, note, print, printJson } from './output.js';
import { collect, parseCountOrPercent, parseDurationOption, parseDurationOrZero, parseGraphOptimization, parseModelRef, parseNonNegativeInt, parseStrategy } from './parse.js';
import { countsText, durationOption, parseLabelsOption, parsePositiveInt, formatLabels, type Labels, type ServingConfig } from '@outpost/shared';
import { countProgress } from './progress.js';
import { rolloutSettled, type DeviceRolloutState } from '../store/records.js';

export type DeploymentView = ReturnType<typeof deploymentView>;

interface ServingFlags {
  maxBatchSize?: number;
  maxQueueDelay?: number;
  maxQueue?: number;
  instances?: number;
  intraOpThreads?: number;
  interOpThreads?: number;
  graphOptimization?: ServingConfig['graphOptimization'];
  executionProvider?: string[];
  warmup?: number;
  selfTest?: 'on' | 'off';
}

/** The deployment's serving settings from the --serving flags; undefined when none was given. */
function parseOnOff(v: string): 'on' | 'off' {
  if (v !== 'on' && v !== 'off') throw new InvalidArgumentError('give on or off');
  return v;
}

function servingConfig(f: ServingFlags): ServingConfig | undefined {
  const s: ServingConfig = {
    ...(f.maxBatchSize !== undefined ? { maxBatchSize: f.maxBatchSize } : {}),
    ...(f.maxQueueDelay !== undefined ? { maxQueueDelayMs: f.maxQueueDelay } : {}),
    ...(f.maxQueue !== undefined ? { maxQueue: f.maxQueue } : {}),
    ...(f.instances !== undefined ? { instances: f.instances } : {}),
    ...(f.intraOpThreads !== undefined ? { intraOpThreads: f.intraOpThreads } : {}),
    ...(f.interOpThreads !== undefined ? { interOpThreads: f.interOpThreads } : {}),
    ...(f.graphOptimization !== undefined ? { graphOptimization: f.graphOptimization } : {}),
    ...(f.executionProvider?.length ? { executionProviders: f.executionProvider } : {}),
    ...(f.warmup !== undefined ? { warmup: f.warmup } : {}),
    ...(f.selfTest === 'off' ? { selfTest: 'off' as const } : {}),
  };
  return Object.keys(s).length > 0 ? s : undefined;
}

export function summarize(d: DeploymentView): string {
  return countsText(d.counts);
}

/**
 * The deployment again; while the relay does not answer (restarting), keeps asking until the
 * deadline, saying so once, and once more when it is back.
 */
async function pollThroughRestarts(api: RelayApi, id: string, last: DeploymentView, deadline: number): Promise<DeploymentView> {
  let away = false;
  for (;;) {
    try {
      const d = await api.request<DeploymentView>('GET', `/v1/deployments/${id}`);
      if (away) note(`the relay is back; still waiting for ${id}`);
      return d;
    } catch (err) {
      if (!(err instanceof RelayUnreachableError)) throw err;
      if (Date.now() > deadline) throw new CliError(`timed out waiting for ${id} (${summarize(last)}); the relay has not answered since: ${err.message}`);
      if (!away) note(`${err.message.replace(/: is it running\?.*$/, '')}; it may be restarting: waiting for it (the rollout goes on without this command)`);
      away = true;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** Polls a deployment until no device is pending; fails when any device failed. */
export async function waitForDeployment(api: RelayApi, id: string, timeoutMs: number, pollMs = 300): Promise<DeploymentView> {
  const deadline = Date.now() + timeoutMs;
  let d = await api.request<DeploymentView>('GET', `/v1/deployments/${id}`);
  const bar = countProgress(`deploying ${d.model}:${d.version}`, d.devices.length);
  try {
    while (d.state === 'in-progress') {
      const done = d.devices.filter((x) => rolloutSettled(x.state as DeviceRolloutState, d.strategy?.healthWindowMs ?? 0)).length;
      bar.update(done, { detail: summarize(d) });
      if (Date.now() > deadline) throw new CliError(`timed out waiting for ${id} (${summarize(d)}): see outpost-relay deployments show ${id}`);
      await new Promise((r) => setTimeout(r, pollMs));
      d = await pollThroughRestarts(api, id, d, deadline);
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
      .option('--device <device>', 'a device to deploy to, by id or name (repeat for several)', collect, [])
      .option('--selector <k=v,...>', 'every device with these labels, now and later (instead of --device)', parseLabelsOption)
      .option('--strategy <all|rolling>', 'all devices at once (default), or in batches', parseStrategy)
      .option('--batch <n|n%>', 'with --strategy rolling: devices per batch (default 1)', parseCountOrPercent)
      .option('--canary <n>', 'release to the first N devices, then the rest', (v) => parseCountOrPercent(v) as number)
      .option('--failure-threshold <n|n%>', 'failed devices tolerated before the rollout stops and rolls back (staged default: 0)', parseCountOrPercent)
      .option('--health-window <duration>', 'a device counts as done after serving and staying healthy this long (e.g. 30s)', parseDurationOption)
      .option('--max-batch-size <n>', 'serving: merge concurrent requests into batches of up to N rows (dynamic batching; default 1, off)', parsePositiveInt)
      .option('--max-queue-delay <duration>', 'serving: how long a request may wait for a fuller batch (default 0, e.g. 2ms)', parseDurationOrZero)
      .option('--max-queue <n>', 'serving: requests waiting per model before new ones get 429 (default 64)', parsePositiveInt)
      .option('--instances <n>', 'serving: inference runs under way at once per model (default 1; one per core it may use)', parsePositiveInt)
      .option('--intra-op-threads <n>', 'serving: onnxruntime threads within an operator (default 1)', parsePositiveInt)
      .option('--inter-op-threads <n>', 'serving: onnxruntime threads across operators (default 1)', parsePositiveInt)
      .option('--graph-optimization <level>', 'serving: disabled, basic, extended or all (default all)', parseGraphOptimization)
      .option('--execution-provider <name>', 'serving: an onnxruntime execution provider, in order of preference (repeat; default cpu)', collect)
      .option('--warmup <n>', "serving: warm-up runs at load, on the version's sample or a synthetic input (default 1)", parseNonNegativeInt)
      .option('--self-test <on|off>', "serving: off skips the run on the version's sample (or a synthetic input) before a device serves it, for a model no sample can exercise", parseOnOff)
      .option('--allow-empty', 'with --selector: create the deployment although no device matches yet (it waits for devices)')
      .option('--force', 'deploy a version that failed its self-test at push: devices run the test themselves (a canary catches a failure)')
      .option('--wait', 'wait until the rollout ends, with progress; exit 1 if it fails or rolls back')
      .addOption(durationOption('--timeout <duration>', 'how long --wait waits', parseDurationOption, 10 * 60_000))
      .description('send a model version to devices')
      .addHelpText('after', `
Examples:
  outpost-relay deploy linear --device front-door --wait
  outpost-relay deploy linear:2 --device dev_3f2a9c1b7d0e --device back-yard
  outpost-relay deploy linear --selector site=lab --strategy rolling --batch 25% --health-window 30s
`),
  ).action(async (ref: string, opts: ClientOptions & ServingFlags & { device: string[]; selector?: Labels; allowEmpty?: boolean; force?: boolean; wait?: boolean; timeout: number; strategy?: 'all' | 'rolling'; batch?: number | string; canary?: number; failureThreshold?: number | string; healthWindow?: number }) => {
    const { name, version } = parseModelRef(ref);
    if (opts.device.length === 0 && !opts.selector) throw new CliError('name at least one device (--device ID or NAME, see outpost-relay devices list) or a selector (--selector k=v)');
    if (opts.device.length > 0 && opts.selector) throw new CliError('use --device or --selector, not both');
    const api = relayApi(opts);
    const target = opts.selector ? { selector: opts.selector } : { devices: opts.device };
    if (opts.batch !== undefined && opts.strategy !== 'rolling') throw new CliError('--batch goes with --strategy rolling');
    if (typeof opts.canary === 'string') throw new CliError('--canary takes a number of devices');
    const strategy = {
      ...(opts.strategy ? { kind: opts.strategy } : {}),
      ...(opts.batch !== undefined ? { batch: opts.batch } : {}),
      ...(opts.canary !== undefined ? { canary: opts.canary } : {}),
      ...(opts.failureThreshold !== undefined ? { failureThreshold: opts.failureThreshold } : {}),
      ...(opts.healthWindow !== undefined ? { healthWindowSeconds: opts.healthWindow / 1000 } : {}),
    };
    const serving = servingConfig(opts);
    const created = await api.request<DeploymentView & { notice?: string }>('POST', '/v1/deployments', { model: name, version, ...target, ...(Object.keys(strategy).length ? { strategy } : {}), ...(serving ? { serving } : {}), ...(opts.allowEmpty ? { allowEmpty: true } : {}), ...(opts.force ? { force: true } : {}) });
    let d: DeploymentView = created;
    // The relay picked a version for us (the newest was rolled back): always said, also with --json.
    if (created.notice) note(created.notice);
    if (!opts.json) note(`deployment ${d.id}: ${d.model}:${d.version} to ${d.devices.length} device(s)${d.selector ? ` matching ${formatLabels(d.selector)} (and any that match later)` : ''}`);
    if (d.state === 'waiting-for-devices' && !opts.json) note(`no device matches yet: the deployment waits for devices with ${formatLabels(d.selector ?? {})}`);
    if (opts.wait && d.state !== 'waiting-for-devices') d = await waitForDeployment(api, d.id, opts.timeout);
    if (opts.json) printJson(d);
    else {
      print(`${d.id}  ${d.model}:${d.version}  ${d.state}  (${summarize(d)})`);
      for (const x of d.devices.filter((x) => x.state === 'failed')) print(`  ${x.deviceId} failed: ${x.reason}`);
    }
    if (opts.wait && d.state === 'failed') throw new CliError(`deployment ${d.id} failed on ${d.devices.filter((x) => x.state === 'failed').length} device(s)`);
    if (opts.wait && d.state === 'rolled-back') throw new CliError(`deployment ${d.id} was rolled back: ${d.devices.filter((x) => x.reason).map((x) => `${x.deviceId}: ${x.reason}`).join('; ') || 'see outpost-relay deployments show ' + d.id}`);
  });
}
