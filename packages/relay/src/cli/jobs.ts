// outpost-relay jobs submit DIR … | score MODEL … | list | show ID | logs ID [--follow] | cancel ID | outputs ID | download ID [FILE]

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ACCELERATOR_PATTERN, examples, formatBytes, packBundle, type JobSummary } from '@outpost/shared';
import { relayApi, type ClientOptions, type RelayApi } from './client.js';
import { clientOptions } from './options.js';
import { CliError, note, print, printJson, table } from './output.js';
import { parseDurationOption, parseModelRef, parseNonNegativeInt } from './parse.js';
import { InvalidArgumentError } from 'commander';

function parseOutputFormat(v: string): 'jsonl' | 'csv' {
  if (v === 'jsonl' || v === 'csv') return v;
  throw new InvalidArgumentError('use jsonl or csv.');
}
import { UnsafeOutputPath, checkTarget, downloadOutput, outputFile, printablePath, type JobOutput } from './job-outputs.js';
import { openUpload, uploadFile } from './upload.js';
import { federatedBody, federatedOptions, printFederated, roundNotes, type FederatedFlags, type JobWithRounds } from './federated.js';

const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);

function collectEnv(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new CliError(`--env ${value}: use KEY=VALUE`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** `--require NAME`, repeatable: an accelerator name as agents report them. */
function collectRequire(value: string, previous: string[] = []): string[] {
  if (!new RegExp(ACCELERATOR_PATTERN).test(value)) throw new InvalidArgumentError("use an accelerator name as devices report it (lower-case letters, digits, '_', '-'), e.g. cuda.");
  return previous.includes(value) ? previous : [...previous, value];
}

interface LogLine {
  seq: number;
  rank: number;
  stream: string;
  text: string;
}

/**
 * Prints a job's logs from the start; with `follow`, until the job ends. Returns the job.
 * With `toStderr` (for --json) every line goes to stderr, keeping stdout for the JSON.
 */
async function printLogs(api: RelayApi, id: string, follow: boolean, multiRank: boolean, toStderr = false, onJob?: (j: JobWithRounds) => void): Promise<JobSummary> {
  let after = 0;
  let polled = 0;
  const write = (lines: LogLine[]) => {
    for (const l of lines) {
      (toStderr || l.stream === 'stderr' ? process.stderr : process.stdout).write(`${multiRank ? `[${l.rank}] ` : ''}${l.text}\n`);
      after = l.seq;
    }
  };
  for (;;) {
    const page = await api.request<{ state: string; lines: LogLine[] }>('GET', `/v1/jobs/${id}/logs?after=${after}&limit=5000`);
    write(page.lines);
    if (page.lines.length === 5000) continue;
    if (!follow || TERMINAL.has(page.state)) {
      // One more page: lines that arrived with the final state.
      write((await api.request<{ lines: LogLine[] }>('GET', `/v1/jobs/${id}/logs?after=${after}&limit=5000`)).lines);
      const done = await api.request<JobWithRounds>('GET', `/v1/jobs/${id}`);
      onJob?.(done);
      return done;
    }
    // A federated job's rounds, looked at about once a second.
    if (onJob && Date.now() - polled > 1000) {
      polled = Date.now();
      onJob(await api.request<JobWithRounds>('GET', `/v1/jobs/${id}`));
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

interface MetricPoint {
  rank: number;
  name: string;
  value: number;
}

/** A scoring job's result per device: the latest records, failures and throughput each rank reported. */
async function printScores(api: RelayApi, j: JobSummary, toStderr = false): Promise<void> {
  const { points } = await api.request<{ points: MetricPoint[] }>('GET', `/v1/jobs/${j.id}/metrics`);
  const byRank = new Map<number, Record<string, number>>();
  for (const p of points) byRank.set(p.rank, { ...byRank.get(p.rank), [p.name]: p.value });
  const rows = j.runs.map((r) => {
    const m = byRank.get(r.rank) ?? {};
    const out = j.outputs.find((o) => o.rank === r.rank);
    return [r.target, r.state, m.records ?? '', m.failures ?? '', m.records_per_s ?? '', out ? `${printablePath(out.path)} (${formatBytes(out.size)})` : '', r.error ?? ''];
  });
  const text = `\nscored ${j.score!.model}:${j.score!.version} per device\n${table(['DEVICE', 'STATE', 'RECORDS', 'FAILED', 'RECORDS/S', 'PREDICTIONS', 'ERROR'], rows)}`;
  if (toStderr) process.stderr.write(`${text}\n`);
  else print(text);
}

function printJob(j: JobWithRounds): void {
  print(`${j.id}  ${j.state}  on ${j.target}${j.nodes > 1 ? ` (${j.nodes} nodes)` : ''}\ncommand  ${j.command}\ncreated  ${j.createdAt}${j.startedAt ? `  started ${j.startedAt}` : ''}${j.finishedAt ? `  finished ${j.finishedAt}` : ''}`);
  if (j.require?.length) print(`requires ${j.require.join(', ')}`);
  if (j.waiting) print(`${j.waiting}`);
  if (j.error) print(`error    ${j.error}`);
  if (j.runs.length) {
    print('\nruns');
    print(table(['RANK', 'TARGET', 'STATE', 'EXIT', 'ERROR'], j.runs.map((r) => [r.rank, r.target, r.state, r.exitCode, r.error])));
  }
  const metrics = Object.entries(j.metrics);
  if (metrics.length) {
    print('\nmetrics');
    print(table(['NAME', 'LATEST', 'BEST', 'STEP'], metrics.map(([name, m]) => [name, m.latest, m.best, m.step])));
  }
  if (j.outputs.length) {
    print('\noutputs');
    print(table(['RANK', 'PATH', 'SIZE', 'SHA256'], j.outputs.map((o) => [o.rank, printablePath(o.path), formatBytes(o.size), o.sha256.slice(0, 16)])));
  }
  printFederated(j);
  if (j.model) print(`\nregistered model ${j.model.name}:${j.model.version}${j.model.deploymentId ? `, rolled out in ${j.model.deploymentId}` : ''}`);
}

export function jobsCommand(program: Command): void {
  const jobs = program
    .command('jobs')
    .description('run training jobs on local or on devices')
    .addHelpText(
      'after',
      examples(
        'outpost-relay jobs submit ./trainer --target local --command "node train.js" --follow',
        'outpost-relay jobs list',
        'outpost-relay jobs score classifier --target site=lab --dataset frames --follow',
        'outpost-relay jobs download job_1a2b3c4d5e6f -o ./results',
      ),
    );

  clientOptions(
    federatedOptions(jobs
      .command('submit'))
      .argument('<dir>', 'the folder to send (the bundle); the command runs inside it')
      .requiredOption('--target <target>', 'local, a device (id or name), or a selector k=v,... (with --nodes)')
      .requiredOption('--command <command>', 'the shell command to run, e.g. "node train.js"')
      .option('--nodes <n>', 'run on N matching devices at once (OUTPOST_RANK, OUTPOST_WORLD_SIZE; MASTER_ADDR and MASTER_PORT are rank 0\'s)', (v) => Number(v), 1)
      .option('--env <KEY=VALUE>', 'an environment variable for the job (repeat for several)', collectEnv)
      .option('--dataset <name>', 'a dataset on the target, mounted at OUTPOST_DATA_DIR')
      .option('--require <accelerator>', 'run only on devices that report this accelerator (e.g. cuda; see targets list); the job waits until one is free (repeat for several)', collectRequire)
      .option('--timeout <duration>', 'kill the job after this long (e.g. 30m)', parseDurationOption)
      .option('--rendezvous-timeout <duration>', 'with --nodes: how long the ranks wait to reach rank 0 (MASTER_ADDR:MASTER_PORT) before the job fails (default 1m)', parseDurationOption)
      .option('--register-model <name>', 'register an output file as the next version of this model')
      .option('--output <file>', 'with --register-model: the file, relative to OUTPOST_OUTPUT_DIR')
      .option('--follow', 'stream the logs until the job ends; exit 1 unless it succeeds')
      .description('pack a folder and run a command from it on a target, or rounds of federated training on devices')
      .addHelpText(
        'after',
        examples(
          'outpost-relay jobs submit examples/classifier --target local --command "node train.js" --register-model classifier --output model.onnx --follow',
          'outpost-relay jobs submit ./trainer --target site=lab --nodes 2 --dataset images --command "python3 train.py" --env EPOCHS=20 --timeout 30m',
          'outpost-relay jobs submit ./trainer --target site=lab --require cuda --command "python3 train.py --device cuda"',
          'outpost-relay jobs submit examples/federated --federated --target pool=edge --rounds 5 --min-clients 2 --initial-model fed-classifier --dataset local --command "node train.js" --follow',
          'outpost-relay jobs submit examples/federated --federated --target pool=edge --rounds 10 --min-clients 3 --fraction 0.5 --round-deadline 5m --strategy fedprox --proximal-mu 0.01 --initial-model fed-classifier:1 --dataset local --command "node train.js" --deploy-selector pool=edge --deploy-strategy rolling --deploy-batch 25%',
        ),
      ),
  ).action(async (dir: string, opts: ClientOptions & FederatedFlags & { target: string; command: string; nodes: number; env?: Record<string, string>; dataset?: string; require?: string[]; timeout?: number; rendezvousTimeout?: number; registerModel?: string; output?: string; follow?: boolean }) => {
    if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new CliError(`${dir} is not a folder`);
    if (!Number.isInteger(opts.nodes) || opts.nodes < 1) throw new CliError('--nodes takes a whole number of at least 1');
    const federated = federatedBody(opts);
    // A federated job registers its averaged model.onnx: --output is not needed.
    if (federated && opts.output && opts.output !== 'model.onnx') throw new CliError('a federated job registers its averaged model.onnx: drop --output');
    if (!federated && Boolean(opts.registerModel) !== Boolean(opts.output)) throw new CliError('--register-model NAME and --output FILE go together');
    const api = relayApi(opts);
    const tmp = mkdtempSync(join(tmpdir(), 'outpost-bundle-'));
    let bundle: { sha256: string; size: number; files: number };
    try {
      const file = join(tmp, 'bundle.tar.gz');
      await packBundle(dir, file);
      bundle = await uploadFile(api, '/v1/bundles', openUpload(file, { what: 'the bundle' }), 'uploading bundle');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    const job = await api.request<JobSummary>('POST', '/v1/jobs', {
      bundleSha256: bundle.sha256,
      target: opts.target,
      command: opts.command,
      ...(opts.nodes > 1 ? { nodes: opts.nodes } : {}),
      env: opts.env ?? {},
      ...(opts.dataset ? { dataset: opts.dataset } : {}),
      ...(opts.require ? { require: opts.require } : {}),
      ...(opts.timeout ? { timeoutSeconds: opts.timeout / 1000 } : {}),
      ...(opts.rendezvousTimeout ? { rendezvousTimeoutSeconds: opts.rendezvousTimeout / 1000 } : {}),
      ...(opts.registerModel ? { registerModel: { name: opts.registerModel, output: opts.output ?? 'model.onnx' } } : {}),
      ...(federated ? { federated } : {}),
    });
    if (!opts.follow) return opts.json ? printJson(job) : print(job.id);
    note(`job ${job.id} ${job.state} on ${job.target} (bundle ${formatBytes(bundle.size)}, ${bundle.files} files)`);
    const done = await printLogs(api, job.id, true, opts.nodes > 1 || Boolean(federated), opts.json, federated ? roundNotes() : undefined);
    if (opts.json) printJson(done);
    else note(`job ${done.id} ${done.state}${done.error ? `: ${done.error}` : ''}${done.model ? `; registered ${done.model.name}:${done.model.version}${done.model.deploymentId ? ` and rolling it out (${done.model.deploymentId})` : ''}` : ''}`);
    if (done.state !== 'succeeded') process.exitCode = 1;
  });

  clientOptions(
    jobs
      .command('score')
      .argument('<model>', 'NAME or NAME:VERSION (default: the latest)')
      .requiredOption('--target <target>', 'a device (id or name), or every device matching k=v,...')
      .requiredOption('--dataset <name>', "the local dataset to score on each device: .npy or raw tensor files, or .jsonl lines of KServe requests")
      .option('--require <accelerator>', 'score only on devices that report this accelerator (e.g. cuda; repeat for several)', collectRequire)
      .option('--output-format <format>', 'jsonl (default: a line per record with its outputs or error) or csv (a row per record)', parseOutputFormat)
      .option('--timeout <duration>', 'stop scoring after this long (e.g. 1h)', parseDurationOption)
      .option('--follow', 'wait until every device is done and print what each scored; exit 1 unless the job succeeds')
      .description("run a model over every record of a dataset on the devices that hold it (the agent's runtime, no code to write); the predictions come back as job outputs")
      .addHelpText(
        'after',
        examples(
          'outpost-relay jobs score classifier --target site=lab --dataset camera-frames --follow',
          'outpost-relay jobs score classifier:3 --target gateway-7 --dataset readings --output-format csv',
          'outpost-relay jobs download job_1a2b3c4d5e6f -o ./predictions     # predictions.jsonl per device',
        ),
      ),
  ).action(async (ref: string, opts: ClientOptions & { target: string; dataset: string; require?: string[]; outputFormat?: 'jsonl' | 'csv'; timeout?: number; follow?: boolean }) => {
    const { name, version } = parseModelRef(ref);
    const api = relayApi(opts);
    const job = await api.request<JobSummary>('POST', '/v1/jobs/score', {
      model: name,
      ...(version ? { version } : {}),
      target: opts.target,
      dataset: opts.dataset,
      ...(opts.require ? { require: opts.require } : {}),
      ...(opts.outputFormat ? { outputFormat: opts.outputFormat } : {}),
      ...(opts.timeout ? { timeoutSeconds: opts.timeout / 1000 } : {}),
    });
    if (!opts.follow) return opts.json ? printJson(job) : print(job.id);
    note(`job ${job.id}: scoring ${job.score!.model}:${job.score!.version} on ${job.nodes} device(s) with dataset ${opts.dataset}`);
    const done = await printLogs(api, job.id, true, true, true);
    if (opts.json) printJson(done);
    else {
      await printScores(api, done);
      note(`job ${done.id} ${done.state}${done.error ? `: ${done.error}` : ''}; download the predictions: outpost-relay jobs download ${done.id}`);
    }
    if (done.state !== 'succeeded') process.exitCode = 1;
  });

  clientOptions(jobs.command('list').description('list jobs, newest first').addHelpText('after', examples('outpost-relay jobs list', 'outpost-relay jobs list --json'))).action(async (opts: ClientOptions) => {
    const { jobs: list } = await relayApi(opts).request<{ jobs: JobSummary[] }>('GET', '/v1/jobs');
    if (opts.json) return printJson(list);
    if (list.length === 0) return print('no jobs yet: outpost-relay jobs submit DIR --target local --command "..."');
    print(table(['ID', 'STATE', 'TARGET', 'COMMAND', 'CREATED'], list.map((j) => [j.id, j.state, j.nodes > 1 ? `${j.target} ×${j.nodes}` : j.target, j.command.length > 40 ? `${j.command.slice(0, 39)}…` : j.command, j.createdAt])));
  });

  clientOptions(
    jobs
      .command('show')
      .argument('<id>', 'job id')
      .description('state, runs, latest and best metrics, outputs')
      .addHelpText('after', examples('outpost-relay jobs show job_1a2b3c4d5e6f', 'outpost-relay jobs show job_1a2b3c4d5e6f --json | jq .metrics')),
  ).action(async (id: string, opts: ClientOptions) => {
    const api = relayApi(opts);
    const j = await api.request<JobSummary>('GET', `/v1/jobs/${encodeURIComponent(id)}`);
    if (opts.json) return printJson(j);
    printJob(j);
    if (j.score) await printScores(api, j);
  });

  clientOptions(
    jobs
      .command('logs')
      .argument('<id>', 'job id')
      .option('--follow', 'keep printing until the job ends')
      .description('print a job\'s output')
      .addHelpText('after', examples('outpost-relay jobs logs job_1a2b3c4d5e6f', 'outpost-relay jobs logs job_1a2b3c4d5e6f --follow')),
  ).action(
    async (id: string, opts: ClientOptions & { follow?: boolean }) => {
      const api = relayApi(opts);
      const j = await api.request<JobSummary>('GET', `/v1/jobs/${encodeURIComponent(id)}`);
      const done = await printLogs(api, j.id, Boolean(opts.follow), j.nodes > 1);
      if (opts.follow && done.state !== 'succeeded') process.exitCode = 1;
    },
  );

  clientOptions(
    jobs
      .command('cancel')
      .argument('<id>', 'job id')
      .description('stop a job: its whole process tree is killed on every target')
      .addHelpText('after', examples('outpost-relay jobs cancel job_1a2b3c4d5e6f')),
  ).action(async (id: string, opts: ClientOptions) => {
    const j = await relayApi(opts).request<JobSummary>('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`);
    if (opts.json) return printJson(j);
    print(`${j.id} ${j.state}`);
  });

  clientOptions(
    jobs
      .command('outputs')
      .argument('<id>', 'job id')
      .description('list the files a job wrote to OUTPOST_OUTPUT_DIR: rank, path, size, sha256')
      .addHelpText('after', examples('outpost-relay jobs outputs job_1a2b3c4d5e6f', 'outpost-relay jobs outputs job_1a2b3c4d5e6f --json')),
  ).action(async (id: string, opts: ClientOptions) => {
    const j = await relayApi(opts).request<JobSummary>('GET', `/v1/jobs/${encodeURIComponent(id)}`);
    if (opts.json) return printJson(j.outputs);
    if (j.outputs.length === 0) return print(`${j.id} has no outputs${TERMINAL.has(j.state) ? '' : ` yet (it is ${j.state})`}: a job's files in OUTPOST_OUTPUT_DIR are kept`);
    print(table(['RANK', 'PATH', 'SIZE', 'SHA256'], j.outputs.map((o) => [o.rank, printablePath(o.path), formatBytes(o.size), o.sha256])));
  });

  clientOptions(
    jobs
      .command('download')
      .argument('<id>', 'job id')
      .argument('[file]', 'one output path (as jobs outputs lists it); default: every output')
      .option('-o, --output-dir <dir>', 'the folder to write into (made if missing)', '.')
      .option('--rank <n>', 'only the outputs of this rank', parseNonNegativeInt)
      .option('--force', 'overwrite files that exist')
      .description('fetch a job\'s outputs (mode 0600; each checked against its sha256); outputs of several ranks go in rank-N/')
      .addHelpText(
        'after',
        examples('outpost-relay jobs download job_1a2b3c4d5e6f', 'outpost-relay jobs download job_1a2b3c4d5e6f model.onnx -o ./models', 'outpost-relay jobs download job_1a2b3c4d5e6f --rank 1 -o ./rank1 --force'),
      ),
  ).action(async (id: string, file: string | undefined, opts: ClientOptions & { outputDir: string; rank?: number; force?: boolean }) => {
    const api = relayApi(opts);
    const j = await api.request<JobSummary>('GET', `/v1/jobs/${encodeURIComponent(id)}`);
    const chosen = (j.outputs as JobOutput[]).filter((o) => (file === undefined || o.path === file) && (opts.rank === undefined || o.rank === opts.rank));
    if (chosen.length === 0) {
      const what = [file === undefined ? 'outputs' : `output ${file}`, opts.rank === undefined ? '' : ` of rank ${opts.rank}`].join('');
      throw new CliError(`${j.id} has no ${what}: see what it has with outpost-relay jobs outputs ${j.id}`);
    }
    const byRank = new Set(chosen.map((o) => o.rank)).size > 1;
    // Every target is checked before a byte is fetched: a refused path costs only that file.
    const planned: Array<{ output: JobOutput; target: string }> = [];
    const refused: string[] = [];
    for (const output of chosen) {
      try {
        const target = outputFile(opts.outputDir, output.path, byRank ? output.rank : undefined);
        checkTarget(target, Boolean(opts.force));
        planned.push({ output, target });
      } catch (err) {
        if (!(err instanceof UnsafeOutputPath)) throw err;
        refused.push(err.message);
      }
    }
    const written: Array<JobOutput & { file: string }> = [];
    for (const { output, target } of planned) {
      await downloadOutput(api, output, opts.outputDir, target, Boolean(opts.force));
      written.push({ ...output, file: target });
      if (!opts.json) print(target);
    }
    if (opts.json) printJson(written);
    else note(`${written.length} file${written.length === 1 ? '' : 's'}, ${formatBytes(written.reduce((n, o) => n + o.size, 0))}, sha256 checked`);
    if (refused.length) {
      for (const r of refused.slice(0, -1)) note(`error: ${r}`);
      throw new CliError(`${refused.at(-1)!}${refused.length > 1 ? ` (${refused.length} refused in all)` : ''}`);
    }
  });
}
