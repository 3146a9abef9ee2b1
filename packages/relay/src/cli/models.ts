// outpost-relay models push FILE --name NAME | list | show NAME[:VERSION] | delete NAME:VERSION | prune

import type { Command } from 'commander';
import { examples, formatBytes, formatSignature, parsePositiveInt, type ModelSignature } from '@outpost/shared';
import { relayApi, type ClientOptions } from './client.js';
import { clientOptions } from './options.js';
import { CliError, print, printJson, table } from './output.js';
import { parseModelRef } from './parse.js';
import { openUpload, uploadFile } from './upload.js';

interface DeletedVersion {
  name: string;
  version: number;
  sha256: string;
  size: number;
  fileRemoved: boolean;
}

interface PruneResult {
  dryRun: boolean;
  keep: number;
  deleted: DeletedVersion[];
  inUse: Array<{ name: string; version: number; deployments: string[] }>;
}

interface ModelVersionView {
  name: string;
  version: number;
  sha256: string;
  size: number;
  signature: ModelSignature;
  createdAt: string;
  created?: boolean;
  lineage: { jobId: string; target: string; metrics: Record<string, { latest: number; best: number }> } | null;
  file: { state: 'ok' | 'missing' } | { state: 'quarantined'; foundAt: string; foundBy: string; actualSha256: string };
  sample: { sha256: string; size: number } | null;
  selfTest: { input: 'sample' | 'synthetic'; ok: boolean; error?: string } | null;
}

function selfTestLine(m: ModelVersionView): string | undefined {
  if (!m.selfTest) return undefined;
  const on = m.selfTest.input === 'sample' ? 'its sample' : 'a synthetic input built from its signature';
  return m.selfTest.ok ? `self-test passed on ${on}` : `self-test FAILED on ${on}: ${m.selfTest.error}`;
}

/** One line for a version whose file the relay cannot serve, or undefined when it can. */
function fileProblem(m: ModelVersionView): string | undefined {
  if (m.file.state === 'quarantined') return `${m.name}:${m.version}: the relay's file failed its sha256 check (found by ${m.file.foundBy}, ${m.file.foundAt}) and is quarantined; push the same file again to restore it: outpost-relay models push FILE --name ${m.name}`;
  if (m.file.state === 'missing') return `${m.name}:${m.version}: the relay has no file for this version; push it again: outpost-relay models push FILE --name ${m.name}`;
  return undefined;
}

function printVersion(m: ModelVersionView): void {
  print(`${m.name}:${m.version}  sha256 ${m.sha256}  ${formatBytes(m.size)}`);
  const problem = fileProblem(m);
  if (problem) print(`  ${problem}`);
  if (m.sample) print(`  sample  ${m.sample.sha256.slice(0, 12)} (${formatBytes(m.sample.size)})`);
  const tested = selfTestLine(m);
  if (tested) print(`  ${tested}`);
  for (const t of m.signature.inputs) print(`  input  ${t.name}: ${t.datatype}[${t.shape.join(',')}]`);
  for (const t of m.signature.outputs) print(`  output ${t.name}: ${t.datatype}[${t.shape.join(',')}]`);
  if (m.lineage) {
    const metrics = Object.entries(m.lineage.metrics).map(([k, v]) => `${k} ${v.latest}`).join(', ');
    print(`  trained by ${m.lineage.jobId} on ${m.lineage.target}${metrics ? ` (${metrics})` : ''}`);
  }
}

export function modelsCommand(program: Command): void {
  const models = program
    .command('models')
    .description('push, inspect and delete model versions')
    .addHelpText('after', examples('outpost-relay models push model.onnx --name detector', 'outpost-relay models show detector', 'outpost-relay models prune --keep 5 --dry-run'));

  clientOptions(
    models
      .command('push')
      .argument('<file>', 'an ONNX model file')
      .requiredOption('--name <name>', 'model name; each push of new bytes makes the next version')
      .option('--sample <request.json>', 'a KServe v2 request body ({"inputs": [...]}) that the self-test and warm-up run on, for models whose inputs carry meaning')
      .option('--allow-signature-change', "let this version's inputs or outputs differ from the previous version's")
      .description('register an ONNX file as the next version of a model; the relay loads it and runs it once (on --sample, or a synthetic input)')
      .addHelpText('after', `
Examples:
  outpost-relay models push detector.onnx --name detector
  outpost-relay models push vad.onnx --name vad --sample vad-request.json
  outpost-relay models push detector-v2.onnx --name detector --allow-signature-change`),
  ).action(async (file: string, opts: ClientOptions & { name: string; sample?: string; allowSignatureChange?: boolean }) => {
    const upload = openUpload(file, { what: 'the .onnx file', extension: '.onnx' });
    const sample = opts.sample ? openUpload(opts.sample, { what: 'the sample (a KServe v2 request body)', extension: '.json' }) : undefined;
    const api = relayApi(opts);
    const query = new URLSearchParams();
    if (sample) query.set('sample', (await uploadFile<{ sha256: string }>(api, '/v1/samples', sample, 'uploading the sample')).sha256);
    if (opts.allowSignatureChange) query.set('allowSignatureChange', 'true');
    const q = query.size > 0 ? `?${query}` : '';
    const m = await uploadFile<ModelVersionView>(api, `/v1/models/${encodeURIComponent(opts.name)}/versions${q}`, upload, `uploading ${opts.name}`);
    if (opts.json) return printJson(m);
    if (m.created === false) print(`unchanged: these bytes are already ${m.name}:${m.version}`);
    printVersion(m);
    if (m.selfTest && !m.selfTest.ok) process.stderr.write(`warning: ${m.name}:${m.version} failed its self-test; deploying it needs --self-test off (devices skip the test) or --force (devices run it themselves)\n`);
  });

  clientOptions(models.command('list').description('list models and their latest versions').addHelpText('after', examples('outpost-relay models list', 'outpost-relay models list --json'))).action(async (opts: ClientOptions) => {
    const { models: list } = await relayApi(opts).request<{ models: Array<{ name: string; latestVersion: number; versions: number; updatedAt: string }> }>('GET', '/v1/models');
    if (opts.json) return printJson(list);
    if (list.length === 0) return print('no models yet: outpost-relay models push FILE --name NAME');
    print(table(['NAME', 'LATEST', 'VERSIONS', 'UPDATED'], list.map((m) => [m.name, m.latestVersion, m.versions, m.updatedAt])));
  });

  clientOptions(
    models
      .command('show')
      .argument('<model>', 'NAME or NAME:VERSION')
      .description('show a model\'s versions, or one version')
      .addHelpText('after', examples('outpost-relay models show detector', 'outpost-relay models show detector:3', 'outpost-relay models show detector:latest --json')),
  ).action(
    async (ref: string, opts: ClientOptions) => {
      const { name, version } = parseModelRef(ref);
      const api = relayApi(opts);
      if (version !== undefined || ref.endsWith(':latest')) {
        const m = await api.request<ModelVersionView>('GET', `/v1/models/${encodeURIComponent(name)}/versions/${version ?? 'latest'}`);
        return opts.json ? printJson(m) : printVersion(m);
      }
      const res = await api.request<{ name: string; versions: ModelVersionView[] }>('GET', `/v1/models/${encodeURIComponent(name)}`);
      if (opts.json) return printJson(res);
      print(table(['VERSION', 'SHA256', 'SIZE', 'FILE', 'CREATED', 'SIGNATURE'], res.versions.map((m) => [m.version, m.sha256.slice(0, 12), formatBytes(m.size), m.file.state, m.createdAt, formatSignature(m.signature)])));
      for (const m of res.versions) {
        const problem = fileProblem(m);
        if (problem) print(problem);
      }
    },
  );

  clientOptions(
    models
      .command('delete')
      .argument('<model>', 'NAME:VERSION')
      .description('delete a model version, and its file unless other versions or job outputs have the same bytes; refused while a deployment uses it')
      .addHelpText(
        'after',
        `
A version is in use while a deployment of it is rolling out, or while it is what a device's
desired state names (the newest deployment of the model for that device is one of it).
Deploy another version to those devices, or roll the deployment back, then delete it.
A version number is never given again.
${examples('outpost-relay models delete detector:2', 'outpost-relay models delete detector:2 --json')}`,
      ),
  ).action(async (ref: string, opts: ClientOptions) => {
    const { name, version } = parseModelRef(ref);
    if (version === undefined) throw new CliError(`give the version to delete: ${name}:VERSION (see them with outpost-relay models show ${name})`);
    const d = await relayApi(opts).request<DeletedVersion>('DELETE', `/v1/models/${encodeURIComponent(name)}/versions/${version}`);
    if (opts.json) return printJson(d);
    print(`deleted ${d.name}:${d.version} (${formatBytes(d.size)}${d.fileRemoved ? ', file removed' : ', its file stays: other records have the same bytes'})`);
  });

  clientOptions(
    models
      .command('prune')
      .option('--keep <n>', 'versions to keep per model, newest first (besides those in use)', parsePositiveInt, 3)
      .option('--model <name>', 'only this model')
      .option('--dry-run', 'print what would be deleted, delete nothing')
      .description('delete old versions no deployment uses, keeping the newest N of each model')
      .addHelpText('after', examples('outpost-relay models prune --dry-run', 'outpost-relay models prune --keep 5', 'outpost-relay models prune --model detector --keep 1 --json')),
  ).action(async (opts: ClientOptions & { keep: number; model?: string; dryRun?: boolean }) => {
    const res = await relayApi(opts).request<PruneResult>('POST', '/v1/models/prune', { keep: opts.keep, ...(opts.dryRun ? { dryRun: true } : {}), ...(opts.model ? { model: opts.model } : {}) });
    if (opts.json) return printJson(res);
    const verb = res.dryRun ? 'would delete' : 'deleted';
    if (res.deleted.length === 0) print(`nothing to delete: every model has at most ${res.keep} version${res.keep === 1 ? '' : 's'} besides those in use`);
    else {
      const rows = res.deleted.map((d) => [d.name, d.version, formatBytes(d.size), d.sha256.slice(0, 16), ...(res.dryRun ? [] : [d.fileRemoved ? 'removed' : 'kept (same bytes elsewhere)'])]);
      print(table(['MODEL', 'VERSION', 'SIZE', 'SHA256', ...(res.dryRun ? [] : ['FILE'])], rows));
      const freed = res.deleted.filter((d) => d.fileRemoved).reduce((n, d) => n + d.size, 0);
      print(`${verb} ${res.deleted.length} version${res.deleted.length === 1 ? '' : 's'}${res.dryRun ? '' : `, freed ${formatBytes(freed)}`}`);
    }
    for (const u of res.inUse) print(`kept ${u.name}:${u.version}: in use by ${u.deployments.join(', ')}`);
  });
}
