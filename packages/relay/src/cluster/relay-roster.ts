// Which relays of a workspace are alive, as PostgreSQL sees them: each one's event listener holds
// a connection named after it (pg-event-log.ts). A relay that dies — SIGKILL, a lost host —
// loses that connection, and the others notice at their next look (every 2 s): the leader then
// reads the devices' retained reports again, since some may have gone to the dead relay.

import pg from 'pg';
import { guardedInterval, type Logger } from '@outpost/shared';
import { LISTENER_PREFIX } from './pg-event-log.js';

export interface RelayRosterOptions {
  url: string;
  log: Logger;
  /** Told the relays (by listener name) that were there at the last look and are gone now. */
  onGone(names: string[]): void;
  intervalMs?: number;
}

export class RelayRoster {
  readonly #opts: RelayRosterOptions;
  readonly #pool: pg.Pool;
  #known: Set<string> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(opts: RelayRosterOptions) {
    this.#opts = opts;
    this.#pool = new pg.Pool({ connectionString: opts.url, max: 1, application_name: 'outpost-relay roster', connectionTimeoutMillis: 10_000 });
    this.#pool.on('error', (err) => opts.log.warn({ err }, 'the relay roster: an idle connection failed'));
  }

  start(): void {
    this.#timer = guardedInterval(this.#opts.log, 'looking at the relays of this workspace', this.#opts.intervalMs ?? 2000, () => this.look());
  }

  /** The relays alive now; the ones gone since the last look are told to onGone. */
  async look(): Promise<Set<string>> {
    if (this.#busy) return this.#known ?? new Set();
    this.#busy = true;
    try {
      const { rows } = await this.#pool.query<{ name: string }>("SELECT application_name AS name FROM pg_stat_activity WHERE datname = current_database() AND starts_with(application_name, $1)", [LISTENER_PREFIX]);
      const now = new Set(rows.map((r) => r.name));
      const gone = this.#known ? [...this.#known].filter((n) => !now.has(n)) : [];
      this.#known = now;
      if (gone.length > 0) this.#opts.onGone(gone);
      return now;
    } finally {
      this.#busy = false;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#pool.end().catch(() => undefined);
  }
}
