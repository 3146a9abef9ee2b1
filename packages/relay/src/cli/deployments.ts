// outpost-relay deployments list | show ID

import type { Command } from 'commander';
import { examples, formatLabels } from '@outpost/shared';
import { relayApi, type ClientOptions } from './client.js';
import { summarize, type DeploymentView } from './deploy.js';
import { clientOptions } from './options.js';
import { print, printJson, table } from './output.js';

/** GET /v1/deployments/{id}: a deployment with its rollout explained. */
type DeploymentDetail = Omit<DeploymentView, 'devices'> & {
  stage?: string;
  canary?: string[];
  devices: Array<DeploymentView['devices'][number] & { name: string | null; why?: string; healthWindowLeftMs?: number; executionProvider?: string; providersSkipped?: Array<{ provider: string; reason: string }> }>;
};

export function deploymentsCommand(program: Command): void {
  const deployments = program
    .command('deployments')
    .description('inspect deployments')
    .addHelpText('after', examples('outpost-relay deployments list', 'outpost-relay deployments show dep_1a2b3c4d5e6f', 'outpost-relay deployments rollback dep_1a2b3c4d5e6f'));

  clientOptions(deployments.command('list').description('list deployments, newest first').addHelpText('after', examples('outpost-relay deployments list', 'outpost-relay deployments list --json'))).action(async (opts: ClientOptions) => {
    const { deployments: list } = await relayApi(opts).request<{ deployments: DeploymentView[] }>('GET', '/v1/deployments');
    if (opts.json) return printJson(list);
    if (list.length === 0) return print('no deployments yet: outpost-relay deploy NAME --device ID');
    print(table(['ID', 'MODEL', 'STATE', 'DEVICES', 'CREATED'], list.map((d) => [d.id, `${d.model}:${d.version}`, d.state, summarize(d), d.createdAt])));
  });

  for (const [action, help] of [
    ['cancel', 'stop a rollout where it is: devices serving it keep it, the others go back'],
    ['rollback', 'return every device of the deployment to what it had before'],
  ] as const) {
    clientOptions(deployments.command(action).argument('<id>', 'deployment id').description(help).addHelpText('after', examples(`outpost-relay deployments ${action} dep_1a2b3c4d5e6f`))).action(async (id: string, opts: ClientOptions) => {
      const d = await relayApi(opts).request<DeploymentView>('POST', `/v1/deployments/${encodeURIComponent(id)}/${action}`);
      if (opts.json) return printJson(d);
      print(`${d.id}  ${d.model}:${d.version}  ${d.state}  (${summarize(d)})`);
    });
  }

  clientOptions(deployments
      .command('show')
      .argument('<id>', 'deployment id')
      .description('show a deployment and each device\'s progress')
      .addHelpText('after', examples('outpost-relay deployments show dep_1a2b3c4d5e6f', 'outpost-relay deployments show dep_1a2b3c4d5e6f --json | jq .counts'))).action(
    async (id: string, opts: ClientOptions) => {
      const d = await relayApi(opts).request<DeploymentDetail>('GET', `/v1/deployments/${encodeURIComponent(id)}`);
      if (opts.json) return printJson(d);
      const serving = d.serving ? Object.entries(d.serving).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(',') : String(v)}`).join(' ') : '';
      const s = d.strategy;
      const strategy = s ? `${s.kind}, batch ${s.batch}, canary ${s.canary}, failure threshold ${s.failureThreshold ?? 'none'}, health window ${s.healthWindowMs / 1000}s` : '';
      print(`${d.id}  ${d.model}:${d.version}  ${d.state}  created ${d.createdAt}\nsha256 ${d.sha256}${d.selector ? `\nselector ${formatLabels(d.selector)} (devices that match later join it)` : ''}${serving ? `\nserving ${serving}` : ''}${strategy ? `\nstrategy ${strategy}` : ''}${d.stage ? `\nstage    ${d.stage}${d.canary?.length ? ` (canary: ${d.canary.join(', ')})` : ''}` : ''}\n`);
      const detail = (x: (typeof d.devices)[number]) =>
        [x.reason, x.why, x.healthWindowLeftMs !== undefined ? `${Math.ceil(x.healthWindowLeftMs / 1000)}s of its health window left` : undefined].filter(Boolean).join('; ');
      const provider = (x: (typeof d.devices)[number]) => (x.executionProvider ? `${x.executionProvider}${x.providersSkipped?.length ? ` (skipped ${x.providersSkipped.map((p) => `${p.provider}: ${p.reason}`).join('; ')})` : ''}` : '-');
      print(table(['DEVICE', 'NAME', 'STATE', 'PROVIDER', 'UPDATED', 'WHY'], d.devices.map((x) => [x.deviceId, x.name ?? '-', x.state, provider(x), x.updatedAt, detail(x)])));
    },
  );
}
