// outpost-relay targets list | attach DEVICE --training | detach DEVICE

import type { Command } from 'commander';
import { examples } from '@outpost/shared';
import { relayApi, type ClientOptions } from './client.js';
import { clientOptions } from './options.js';
import { CliError, print, printJson, table } from './output.js';

interface TargetView {
  name: string;
  kind: string;
  deviceName?: string;
  online: boolean;
  deploys: boolean;
  trains: boolean;
  attached: boolean;
  acceptsTraining: boolean;
  datasets: string[];
  /** Absent from relays before accelerators. */
  accelerators?: string[];
  executionProviders?: string[];
  running: string | null;
}

const yesNo = (b: boolean) => (b ? 'yes' : 'no');

function trainsCell(t: TargetView): string {
  if (t.trains) return 'yes';
  if (!t.attached && !t.acceptsTraining) return 'no (not attached; agent does not accept)';
  return t.attached ? 'no (agent does not accept)' : 'no (not attached)';
}

export function targetsCommand(program: Command): void {
  const targets = program
    .command('targets')
    .description('compute targets: the relay host (local) and devices')
    .addHelpText('after', examples('outpost-relay targets list', 'outpost-relay targets attach dev_1a2b3c4d5e6f --training'));

  clientOptions(targets.command('list').description('list targets: kind, online, deploys, trains, datasets, accelerators, execution providers, running').addHelpText('after', examples('outpost-relay targets list', 'outpost-relay targets list --json'))).action(async (opts: ClientOptions) => {
    const { targets: list } = await relayApi(opts).request<{ targets: TargetView[] }>('GET', '/v1/targets');
    if (opts.json) return printJson(list);
    print(
      table(
        ['TARGET', 'KIND', 'ONLINE', 'DEPLOYS', 'TRAINS', 'DATASETS', 'ACCELERATORS', 'PROVIDERS', 'RUNNING'],
        list.map((t) => [t.deviceName ? `${t.name} (${t.deviceName})` : t.name, t.kind, yesNo(t.online), yesNo(t.deploys), trainsCell(t), t.datasets.join(',') || '-', t.accelerators?.join(',') || '-', t.executionProviders?.join(',') || '-', t.running ?? '-']),
      ),
    );
  });

  clientOptions(
    targets
      .command('attach')
      .argument('<device>', 'device id or name')
      .option('--training', 'attach it as a training target')
      .description('attach a device for training (its agent must also run with --accept-training)')
      .addHelpText('after', `
Examples:
  outpost-relay targets attach front-door --training
`),
  ).action(async (id: string, opts: ClientOptions & { training?: boolean }) => {
    if (!opts.training) throw new CliError('say what to attach it for: --training');
    const t = await relayApi(opts).request<TargetView>('POST', `/v1/targets/${encodeURIComponent(id)}/attach`);
    if (opts.json) return printJson(t);
    print(`${t.name} attached for training${t.acceptsTraining ? '' : '; its agent does not accept training yet (outpost-agent start --accept-training)'}`);
  });

  clientOptions(
    targets
      .command('detach')
      .argument('<device>', 'device id or name')
      .description('stop using a device for training')
      .addHelpText('after', `
Examples:
  outpost-relay targets detach front-door
`),
  ).action(async (id: string, opts: ClientOptions) => {
    const t = await relayApi(opts).request<TargetView>('POST', `/v1/targets/${encodeURIComponent(id)}/detach`);
    if (opts.json) return printJson(t);
    print(`${t.name} detached from training`);
  });
}
