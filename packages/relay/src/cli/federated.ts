// `jobs submit --federated`: the flags of a federated job, the request they make, and how its
// rounds print (`jobs show`, and notes while `--follow` waits).

import { InvalidArgumentError, type Command } from 'commander';
import { parseLabelsOption, parsePositiveInt, type JobSummary, type Labels, type RoundSummary } from '@outpost/shared';
import { CliError, note, print, table } from './output.js';
import { parseCountOrPercent, parseDurationOption, parseModelRef, parseStrategy } from './parse.js';

export interface FederatedFlags {
  federated?: boolean;
  rounds?: number;
  minClients?: number;
  fraction?: number;
  roundDeadline?: number;
  strategy?: 'fedavg' | 'fedprox';
  proximalMu?: number;
  roundAttempts?: number;
  initialModel?: string;
  deploySelector?: Labels;
  deployStrategy?: 'all' | 'rolling';
  deployBatch?: number | string;
  deployCanary?: number | string;
  deployHealthWindow?: number;
}

function parseFraction(v: string): number {
  const n = Number(v);
  if (!(n > 0 && n <= 1)) throw new InvalidArgumentError('use a share above 0 and at most 1 (e.g. 0.5).');
  return n;
}

function parseMu(v: string): number {
  const n = Number(v);
  if (!(v.trim() !== '' && n >= 0 && Number.isFinite(n))) throw new InvalidArgumentError('use a number of at least 0 (e.g. 0.01).');
  return n;
}

function parseAggregation(v: string): 'fedavg' | 'fedprox' {
  if (v === 'fedavg' || v === 'fedprox') return v;
  throw new InvalidArgumentError('use fedavg or fedprox.');
}

export function federatedOptions(cmd: Command): Command {
  return cmd
    .option('--federated', 'train on each selected device from a global model, averaged on the relay each round')
    .option('--rounds <n>', 'federated: how many rounds', parsePositiveInt)
    .option('--min-clients <n>', 'federated: good updates a round needs (it waits for this many free clients)', parsePositiveInt)
    .option('--fraction <f>', 'federated: share of the free clients a round asks (default 1, all)', parseFraction)
    .option('--round-deadline <duration>', 'federated: a round closes at this age with the updates it has (default 10m)', parseDurationOption)
    .option('--strategy <fedavg|fedprox>', 'federated: how updates combine (default fedavg; fedprox passes --proximal-mu to clients)', parseAggregation)
    .option('--proximal-mu <mu>', "federated, fedprox: the proximal term's weight, as OUTPOST_PROXIMAL_MU", parseMu)
    .option('--round-attempts <n>', 'federated: tries of a round with too few good updates before the job fails (default 3)', parsePositiveInt)
    .option('--initial-model <name[:version]>', 'federated: the model version round 1 starts from (OUTPOST_GLOBAL_MODEL)')
    .option('--deploy-selector <k=v,...>', 'federated: roll the final model out to these devices when the job succeeds', parseLabelsOption)
    .option('--deploy-strategy <all|rolling>', 'with --deploy-selector: all at once (default) or in batches', parseStrategy)
    .option('--deploy-batch <n|n%>', 'with --deploy-strategy rolling: devices per batch', parseCountOrPercent)
    .option('--deploy-canary <n>', 'with --deploy-selector: release to the first N devices, then the rest', parseCountOrPercent)
    .option('--deploy-health-window <duration>', 'with --deploy-selector: a device is done once healthy this long (e.g. 30s)', parseDurationOption);
}

const FEDERATED_ONLY: Array<[keyof FederatedFlags, string]> = [
  ['rounds', '--rounds'],
  ['minClients', '--min-clients'],
  ['fraction', '--fraction'],
  ['roundDeadline', '--round-deadline'],
  ['strategy', '--strategy'],
  ['proximalMu', '--proximal-mu'],
  ['roundAttempts', '--round-attempts'],
  ['initialModel', '--initial-model'],
  ['deploySelector', '--deploy-selector'],
  ['deployStrategy', '--deploy-strategy'],
  ['deployBatch', '--deploy-batch'],
  ['deployCanary', '--deploy-canary'],
  ['deployHealthWindow', '--deploy-health-window'],
];

/** The request's `federated` part, or undefined for another job; a flag out of place is an error. */
export function federatedBody(o: FederatedFlags & { nodes: number }): Record<string, unknown> | undefined {
  if (!o.federated) {
    const stray = FEDERATED_ONLY.find(([k]) => o[k] !== undefined);
    if (stray) throw new CliError(`${stray[1]} goes with --federated`);
    return undefined;
  }
  const missing = [['rounds', '--rounds R'], ['minClients', '--min-clients K'], ['initialModel', '--initial-model NAME[:VERSION]']].filter(([k]) => o[k as keyof FederatedFlags] === undefined).map(([, flag]) => flag);
  if (missing.length) throw new CliError(`a federated job needs ${missing.join(', ')}`);
  if (o.nodes !== 1) throw new CliError('a federated job asks --min-clients devices each round: drop --nodes');
  if (!o.deploySelector && (o.deployStrategy || o.deployBatch !== undefined || o.deployCanary !== undefined || o.deployHealthWindow !== undefined)) throw new CliError('--deploy-strategy, --deploy-batch, --deploy-canary and --deploy-health-window go with --deploy-selector');
  if (o.deployBatch !== undefined && o.deployStrategy !== 'rolling') throw new CliError('--deploy-batch goes with --deploy-strategy rolling');
  if (typeof o.deployCanary === 'string') throw new CliError('--deploy-canary takes a number of devices');
  let initialModel: { name: string; version?: number };
  try {
    initialModel = parseModelRef(o.initialModel!);
  } catch (err) {
    throw new CliError(`--initial-model: ${(err as Error).message}`);
  }
  const strategy = {
    ...(o.deployStrategy ? { kind: o.deployStrategy } : {}),
    ...(o.deployBatch !== undefined ? { batch: o.deployBatch } : {}),
    ...(o.deployCanary !== undefined ? { canary: o.deployCanary } : {}),
    ...(o.deployHealthWindow !== undefined ? { healthWindowSeconds: o.deployHealthWindow / 1000 } : {}),
  };
  return {
    rounds: o.rounds,
    minClients: o.minClients,
    initialModel: { name: initialModel.name, ...(initialModel.version !== undefined ? { version: initialModel.version } : {}) },
    ...(o.fraction !== undefined ? { fraction: o.fraction } : {}),
    ...(o.roundDeadline !== undefined ? { roundDeadlineSeconds: o.roundDeadline / 1000 } : {}),
    ...(o.strategy ? { strategy: o.strategy } : {}),
    ...(o.proximalMu !== undefined ? { proximalMu: o.proximalMu } : {}),
    ...(o.roundAttempts !== undefined ? { maxAttempts: o.roundAttempts } : {}),
    ...(o.deploySelector ? { deploy: { selector: o.deploySelector, ...(Object.keys(strategy).length ? { strategy } : {}) } } : {}),
  };
}

export type JobWithRounds = JobSummary & { rounds?: RoundSummary[] };

const shortMetrics = (m: Record<string, number>) =>
  Object.entries(m)
    .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toPrecision(4)}`)
    .join(' ');

/** One line for an attempt that ended (or began). */
export function roundLine(r: RoundSummary, of: number): string {
  const head = `round ${r.round}/${of}${r.attempt > 1 ? ` (attempt ${r.attempt})` : ''}`;
  const dropped = r.dropped.length ? `; dropped ${r.dropped.map((d) => `${d.client} (${d.reason})`).join(', ')}` : '';
  if (r.state === 'running') return `${head}: asked ${r.clients.length} client(s): ${r.clients.map((c) => c.deviceId).join(', ')}`;
  if (r.state === 'aggregated') return `${head}: averaged ${r.participants.length} update(s)${Object.keys(r.metrics).length ? ` (${shortMetrics(r.metrics)})` : ''}${dropped}`;
  return `${head}: ${r.state}${r.error ? `: ${r.error}` : ''}${dropped}`;
}

/** The federated part of `jobs show`. */
export function printFederated(j: JobWithRounds): void {
  const f = j.federated;
  if (!f) return;
  const deadline = `${Math.round(f.roundDeadlineMs / 1000)} s`;
  print(`\nfederated ${f.strategy}${f.strategy === 'fedprox' ? ` (mu ${f.proximalMu})` : ''} from ${f.initialModel.name}:${f.initialModel.version}: ${f.completed} of ${f.rounds} rounds done; at least ${f.minClients} client(s), fraction ${f.fraction}, deadline ${deadline}`);
  if (f.waiting) print(f.waiting);
  const rounds = j.rounds ?? [];
  if (rounds.length === 0) return;
  print(
    table(
      ['ROUND', 'STATE', 'ASKED', 'AVERAGED', 'EXAMPLES', 'DROPPED', 'METRICS'],
      rounds.map((r) => [r.attempt > 1 ? `${r.round}.${r.attempt}` : r.round, r.state, r.clients.length, r.participants.length, r.participants.reduce((n, p) => n + p.numExamples, 0), r.dropped.length, shortMetrics(Object.fromEntries(Object.entries(r.metrics).filter(([k]) => k !== 'num_examples')))]),
    ),
  );
  const dropped = rounds.flatMap((r) => r.dropped.map((d) => `  round ${r.round}${r.attempt > 1 ? `.${r.attempt}` : ''}: ${d.client}: ${d.reason}`));
  if (dropped.length) print(`dropped\n${dropped.join('\n')}`);
  const last = rounds.filter((r) => r.resultSha256).at(-1);
  if (last) print(`global model after round ${last.round}: ${last.resultSha256!.slice(0, 16)}`);
}

/** While following: a note for each attempt that began or ended since the last call. */
export function roundNotes(): (j: JobWithRounds) => void {
  const said = new Map<string, string>();
  return (j) => {
    for (const r of j.rounds ?? []) {
      const key = `${r.round}.${r.attempt}`;
      if (said.get(key) === r.state) continue;
      said.set(key, r.state);
      note(roundLine(r, j.federated?.rounds ?? r.round));
    }
  };
}
