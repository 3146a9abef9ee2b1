// The rules of a federated round, pure so they are unit-tested: which clients a round asks
// (as Flower samples them: a fraction of those available, at least the minimum), and when a
// round is over: every selected client answered, or the deadline passed with at least
// `minClients` good updates; with fewer, the round is tried again. Clients that failed, sent an
// update that was refused, or had not answered by the deadline are dropped, each with why.

export interface SelectOptions {
  /** Share of the available clients to ask (0 < fraction ≤ 1). */
  fraction: number;
  minClients: number;
}

/**
 * The clients a round asks, or null when fewer than `minClients` are available (the round
 * waits for more). `random` in [0, 1) makes the sample; tests pass a seeded one.
 */
export function selectClients(available: readonly string[], o: SelectOptions, random: () => number): string[] | null {
  if (available.length < o.minClients) return null;
  const n = Math.min(available.length, Math.max(o.minClients, Math.ceil(available.length * o.fraction)));
  // A partial Fisher–Yates shuffle: the first n of a uniform permutation.
  const pool = [...available];
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, n).sort();
}

export type ClientAnswer =
  /** A checked update, weighted by its examples. */
  | { kind: 'update'; numExamples: number }
  /** The update came but was refused (wrong shape, NaN, …). */
  | { kind: 'refused'; reason: string }
  /** The client's run failed or it left (went offline, detached). */
  | { kind: 'failed'; reason: string };

export interface RoundState {
  selected: readonly string[];
  answers: ReadonlyMap<string, ClientAnswer>;
  deadlinePassed: boolean;
  minClients: number;
}

export interface Dropped {
  client: string;
  reason: string;
}

export type RoundVerdict =
  | { kind: 'wait' }
  /** Average these clients' updates; the others are dropped. */
  | { kind: 'aggregate'; clients: string[]; dropped: Dropped[] }
  /** Too few good updates: the round is run again. */
  | { kind: 'retry'; reason: string; dropped: Dropped[] };

export function roundVerdict(s: RoundState): RoundVerdict {
  const good: string[] = [];
  const dropped: Dropped[] = [];
  let waiting = 0;
  for (const client of s.selected) {
    const a = s.answers.get(client);
    if (!a) {
      waiting++;
      if (s.deadlinePassed) dropped.push({ client, reason: 'no update by the round deadline' });
    } else if (a.kind === 'update') good.push(client);
    else dropped.push({ client, reason: a.kind === 'refused' ? `update refused: ${a.reason}` : a.reason });
  }
  // Everyone answered, or the deadline came: the round is over one way or the other.
  if (waiting > 0 && !s.deadlinePassed) return { kind: 'wait' };
  if (good.length >= s.minClients && good.length > 0) return { kind: 'aggregate', clients: good, dropped };
  return { kind: 'retry', reason: `${good.length} good update${good.length === 1 ? '' : 's'} of ${s.selected.length} asked; the round needs ${s.minClients}`, dropped };
}
