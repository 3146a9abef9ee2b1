// Converges what this agent serves towards the relay's desired state. Level-triggered: it
// compares desired with actual each time, so a lost or repeated message costs nothing.
// Per model: download (the model, and its sample when it has one) → verify sha256 → probe in a
// child process → load → self-test (on the sample, or a synthetic input) → swap. The old version
// keeps serving until the new one is loaded; if the new one fails, the old one stays.

import { readFile } from 'node:fs/promises';
import { backoffMs, parseSample, probeModel, servingKey, type DesiredModel, type DesiredState, type Logger, type ReportedModel, type ReportedState } from '@outpost/shared';
import { DownloadError, type ArtifactCache } from './artifact-cache.js';
import type { ModelTable } from './runtime/model-table.js';
import { ServedModel, type SessionSettings } from './runtime/served-model.js';
import type { ModelStats } from './runtime/model-stats.js';
import type { LastGood } from './last-good.js';

export interface ReconcilerOptions {
  cache: ArtifactCache;
  table: ModelTable;
  artifactUrl(sha256: string): string;
  authHeaders: Record<string, string>;
  log: Logger;
  /** The agent's serving defaults (e.g. `--threads`); a deployment's own settings win. */
  session?: SessionSettings;
  /** Hears the rows of every inference run, per model (batch sizes for /metrics). */
  onBatch?(model: string, rows: number): void;
  /** A model's session thread died; `replacing`: another is starting in its place. */
  onThreadLost?(model: string, err: Error, replacing: boolean): void;
  /** Called with the whole reported state after every change. */
  report(state: ReportedState): void;
  /**
   * Turns a verified file into a model ready to serve. Default: probe it in a child process,
   * load it, run the self-test (on the version's sample when `sampleFile` is given). (The fleet
   * simulator shares one session per file instead.)
   */
  load?(m: DesiredModel, file: string, stats: ModelStats | undefined, sampleFile?: string): Promise<ServedModel>;
  /** Called when a version has been loaded and swapped in. */
  onLoaded?(model: string, seconds: number): void;
  /** Where the last version served per model is kept, to serve it again at start. */
  lastGood?: LastGood;
  /**
   * First delay before a download that failed for a passing reason (the relay restarting, the
   * network) is tried again; it doubles with each failure in a row, up to a minute (default 1 s).
   */
  retryDelayMs?: number;
}

export class Reconciler {
  readonly #opts: ReconcilerOptions;
  readonly #reported = new Map<string, ReportedModel>();
  /** What was last tried per model name: sha256 and serving settings. */
  readonly #attempted = new Map<string, string>();
  #desired: DesiredState | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;
  #revision = 0;
  /** What each serving version's self-test ran on (reported with it). */
  readonly #selfTests = new Map<string, NonNullable<ReportedModel['selfTest']>>();
  /** Models whose download failed for a passing reason: failures in a row, and the retry's timer. */
  readonly #retries = new Map<string, { failures: number; timer: NodeJS.Timeout; key: string }>();

  constructor(opts: ReconcilerOptions) {
    this.#opts = opts;
  }

  get reported(): ReportedState {
    return { revision: this.#revision, models: [...this.#reported.values()] };
  }

  /** Takes a new desired state; reconciling starts now, or right after the pass under way. */
  setDesired(desired: DesiredState): void {
    this.#desired = desired;
    this.#kick();
  }

  /**
   * Serves, from the cache, what this device served last (last-good.json), before any desired
   * state arrives: a device that restarts keeps serving while the relay is away or an update is
   * half done. Desired states that arrive meanwhile are reconciled right after.
   */
  restore(): Promise<void> {
    const { lastGood, cache, table, log } = this.#opts;
    const entries = lastGood?.entries() ?? [];
    // Until each is back, it is loading: not ready, and its requests get 503 saying so.
    for (const m of entries) this.#set(this.#entry(m, 'loading', 'serving the last served version from the cache'));
    const run = (async () => {
      for (const m of entries) {
        if (this.#closed) break;
        try {
          const file = await cache.verified(m.sha256);
          if (!file) {
            this.#reported.delete(m.name);
            log.warn({ model: m.name, version: m.version }, 'the last served version is not in the cache (or failed its sha256): waiting for the relay');
            continue;
          }
          const sampleFile = m.sample ? await cache.verified(m.sample.sha256) : undefined;
          if (m.sample && !sampleFile) {
            this.#reported.delete(m.name);
            log.warn({ model: m.name, version: m.version }, "the last served version's sample is not in the cache: waiting for the relay");
            continue;
          }
          await table.swap(await (this.#opts.load ?? this.#loadModel)(m, file, undefined, sampleFile));
          this.#attempted.set(m.name, this.#attemptKey(m));
          this.#set(this.#entry(m, 'serving'));
          log.info({ model: m.name, version: m.version }, 'serving the last served version from the cache');
        } catch (err) {
          this.#reported.delete(m.name);
          log.warn({ model: m.name, version: m.version, err: (err as Error).message }, 'the last served version did not load from the cache');
        }
      }
    })();
    this.#running = run.finally(() => {
      this.#running = undefined;
      if (this.#again) this.#kick();
    });
    return this.#running;
  }

  /** Resolves when no pass is running or queued (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const r of this.#retries.values()) clearTimeout(r.timer);
    await this.idle();
  }

  #kick(): void {
    if (this.#closed) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          await this.#pass();
        } catch (err) {
          this.#opts.log.error({ err }, 'reconcile pass failed');
        }
      } while (this.#again && !this.#closed);
      this.#running = undefined;
    })();
  }

  #set(entry: ReportedModel): void {
    this.#reported.set(entry.name, entry);
    this.#revision++;
    this.#opts.report(this.reported);
  }

  async #pass(): Promise<void> {
    const desired = this.#desired;
    if (!desired) return;
    const { table, cache, log } = this.#opts;
    const wanted = new Set(desired.models.map((m) => m.name));

    for (const name of [...this.#reported.keys()]) {
      if (wanted.has(name)) continue;
      await table.remove(name);
      this.#opts.lastGood?.forget(name);
      this.#reported.delete(name);
      this.#revision++;
      this.#opts.report(this.reported);
      log.info({ model: name }, 'model no longer desired: unloaded');
    }
    for (const m of desired.models) {
      if (this.#closed || this.#desired !== desired) return; // a newer desired state is waiting
      const serving = table.get(m.name);
      const current = this.#reported.get(m.name);
      if (serving?.sha256 === m.sha256 && serving.servingKey === servingKey(this.#settingsFor(m))) {
        if (current?.sha256 !== m.sha256 || current.state !== 'serving' || current.servingKey !== servingKey(m.serving)) this.#set(this.#entry(m, 'serving'));
        continue;
      }
      // A version that failed to load is not tried again until the desired state changes it
      // (another version, other serving settings, or the same one deployed again); one whose
      // download is waiting out its backoff is tried when its timer fires.
      if (current?.sha256 === m.sha256 && current.state === 'failed' && this.#attempted.get(m.name) === this.#attemptKey(m)) continue;
      if (this.#retries.get(m.name)?.key === this.#attemptKey(m)) continue;
      await this.#install(m);
    }
    // Files that may be needed again stay: the desired ones, the ones serving, and each model's
    // last served version (a restart may need it before its replacement serves).
    const keep = new Set<string>([...desired.models.flatMap((m) => (m.sample ? [m.sha256, m.sample.sha256] : [m.sha256])), ...table.all().map((s) => s.sha256), ...(this.#opts.lastGood?.shas() ?? [])]);
    await cache.prune(keep);
  }

  /** The deployment's serving settings over the agent's defaults. */
  #settingsFor(m: DesiredModel): SessionSettings {
    return { ...this.#opts.session, ...m.serving };
  }

  #entry(m: DesiredModel, state: ReportedModel['state'], reason?: string): ReportedModel {
    const serving = this.#opts.table.get(m.name);
    return {
      name: m.name,
      version: m.version,
      sha256: m.sha256,
      servingKey: servingKey(m.serving),
      state,
      ...(reason ? { reason: reason.slice(0, 2000), at: Date.now() } : {}),
      ...(state === 'serving' && serving?.sha256 === m.sha256 && this.#selfTests.has(m.name) ? { selfTest: this.#selfTests.get(m.name)! } : {}),
      ...(serving ? { serving: { version: serving.version, sha256: serving.sha256 } } : {}),
      ...(state === 'serving' && serving?.sha256 === m.sha256 ? providerReport(serving) : {}),
    };
  }

  #loadModel = async (m: DesiredModel, file: string, stats: ModelStats | undefined, sampleFile?: string): Promise<ServedModel> => {
    // onnxruntime can crash its process on a hostile file: try it in a child process first.
    const signature = await probeModel(file);
    // The sample is checked against the signature before anything runs on it.
    let sample;
    if (sampleFile) {
      try {
        sample = parseSample(await readFile(sampleFile, 'utf8'), signature);
      } catch (err) {
        throw new Error(`the version's sample does not fit the model: ${(err as Error).message}`, { cause: err });
      }
    }
    const settings = this.#settingsFor(m);
    const model = await ServedModel.load(m, file, settings, stats, {
      onBatch: (rows) => this.#opts.onBatch?.(m.name, rows),
      onThreadLost: (err, replacing) => this.#opts.onThreadLost?.(m.name, err, replacing),
    });
    const tested = settings.selfTest === 'off' ? 'off' : await model.selfTest(sample);
    this.#selfTests.set(m.name, tested);
    // Warm-up only saves the first request some time: it never costs a model its deployment,
    // and a model no input was given for is not run on made-up data.
    if (tested !== 'off' || sample) {
      try {
        await model.warmUp(sample);
      } catch (err) {
        this.#opts.log.warn({ model: m.name, version: m.version, err: (err as Error).message }, 'warm-up failed; the model serves without it');
      }
    }
    return model;
  };

  #attemptKey(m: DesiredModel): string {
    return `${m.deploymentId}:${m.sha256}:${servingKey(this.#settingsFor(m))}`;
  }

  async #install(m: DesiredModel): Promise<void> {
    const { table, cache, log } = this.#opts;
    const started = Date.now();
    this.#attempted.set(m.name, this.#attemptKey(m));
    try {
      this.#set(this.#entry(m, 'downloading'));
      const file = await cache.ensure(this.#opts.artifactUrl(m.sha256), m.sha256, this.#opts.authHeaders);
      const sampleFile = m.sample ? await cache.ensure(this.#opts.artifactUrl(m.sample.sha256), m.sample.sha256, this.#opts.authHeaders) : undefined;
      this.#set(this.#entry(m, 'loading'));
      const loadStarted = performance.now();
      const model = await (this.#opts.load ?? this.#loadModel)(m, file, table.get(m.name)?.stats, sampleFile);
      await table.swap(model);
      this.#opts.lastGood?.record(m);
      this.#opts.onLoaded?.(m.name, (performance.now() - loadStarted) / 1000);
      if (model.providersSkipped.length) log.warn({ model: m.name, version: m.version, executionProvider: model.executionProvider, skipped: model.providersSkipped.map((p) => `${p.provider}: ${p.reason}`).join('; ') }, `execution providers skipped; serving on ${model.executionProvider}`);
      this.#set(this.#entry(m, 'serving'));
      this.#retries.delete(m.name);
      log.info({ model: m.name, version: m.version, ms: Date.now() - started }, 'model serving');
    } catch (err) {
      const reason = (err as Error).message;
      if (err instanceof DownloadError && err.retryable) {
        // Not the model's failure: it stays `downloading` (a rollout does not count it) and is
        // tried again with backoff.
        const seconds = this.#retryLater(m);
        this.#set(this.#entry(m, 'downloading', `${reason}; retrying in ${seconds} s`));
        log.warn({ model: m.name, version: m.version, reason, retryInS: seconds }, 'model download interrupted; retrying');
        return;
      }
      this.#retries.delete(m.name);
      this.#set(this.#entry(m, 'failed', reason));
      log.warn({ model: m.name, version: m.version, reason }, 'model install failed; the previous version keeps serving');
    }
  }

  /** Schedules the next try of a model's download; returns its delay in seconds. */
  #retryLater(m: DesiredModel): number {
    const before = this.#retries.get(m.name);
    clearTimeout(before?.timer);
    const failures = (before?.failures ?? 0) + 1;
    const delay = backoffMs(failures, { baseMs: this.#opts.retryDelayMs ?? 1000, maxMs: 60_000 });
    const timer = setTimeout(() => {
      const r = this.#retries.get(m.name);
      if (r) r.key = ''; // due: the next pass tries it
      this.#kick();
    }, delay);
    timer.unref();
    this.#retries.set(m.name, { failures, timer, key: this.#attemptKey(m) });
    return Math.max(1, Math.round(delay / 1000));
  }
}

/** The execution provider a served model got, and the ones skipped before it (bounded as ReportedModel's are). */
function providerReport(model: ServedModel): Pick<ReportedModel, 'executionProvider' | 'providersSkipped'> {
  const skipped = model.providersSkipped.slice(0, 8).map((p) => ({ provider: p.provider, reason: p.reason.slice(0, 500) }));
  return { executionProvider: model.executionProvider, ...(skipped.length ? { providersSkipped: skipped } : {}) };
}
