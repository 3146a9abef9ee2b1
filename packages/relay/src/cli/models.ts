// outpost-relay models push FILE --name NAME | list | show NAME[:VERSION]

import type { Command } from 'commander';
import { formatBytes, formatSignature, type ModelSignature } from '@outpost/shared';
import { relayApi, type ClientOptions } from './client.js';
import { clientOptions } from './options.js';
import { print, printJson, table } from './output.js';
import { parseModelRef } from './parse.js';
import { uploadFile } from './upload.js';

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
  const models = program.command('models').description('push and inspect model versions');

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
    const api = relayApi(opts);
    const query = new URLSearchParams();
    if (opts.sample) query.set('sample', (await uploadFile<{ sha256: string }>(api, '/v1/samples', opts.sample, 'uploading the sample')).sha256);
    if (opts.allowSignatureChange) query.set('allowSignatureChange', 'true');
    const q = query.size > 0 ? `?${query}` : '';
    const m = await uploadFile<ModelVersionView>(api, `/v1/models/${encodeURIComponent(opts.name)}/versions${q}`, file, `uploading ${opts.name}`);
    if (opts.json) return printJson(m);
    if (m.created === false) print(`unchanged: these bytes are already ${m.name}:${m.version}`);
    printVersion(m);
    if (m.selfTest && !m.selfTest.ok) process.stderr.write(`warning: ${m.name}:${m.version} failed its self-test; deploying it needs --self-test off (devices skip the test) or --force (devices run it themselves)\n`);
  });

  clientOptions(models.command('list').description('list models and their latest versions')).action(async (opts: ClientOptions) => {
    const { models: list } = await relayApi(opts).request<{ models: Array<{ name: string; latestVersion: number; versions: number; updatedAt: string }> }>('GET', '/v1/models');
    if (opts.json) return printJson(list);
    if (list.length === 0) return print('no models yet: outpost-relay models push FILE --name NAME');
    print(table(['NAME', 'LATEST', 'VERSIONS', 'UPDATED'], list.map((m) => [m.name, m.latestVersion, m.versions, m.updatedAt])));
  });

  clientOptions(models.command('show').argument('<model>', 'NAME or NAME:VERSION').description('show a model\'s versions, or one version')).action(
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
}
