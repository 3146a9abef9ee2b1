// Which relay runs the work that must run once per workspace: scheduling passes and job
// timeouts, the rollout controller, the artifact checks. One relay (SQLite) always leads. Relays
// sharing a PostgreSQL store take turns through a session advisory lock: the holder leads until
// its connection ends — a relay killed with SIGKILL loses its connection, so PostgreSQL frees the
// lock at once and another relay takes it within a retry interval.

import pg from 'pg';
import { guardedInterval, runGuarded, type Logger } from '@outpost/shared';

export type LeadershipListener = (leading: boolean) => void;

export interface Leadership {
  /** True while this relay leads. */
  readonly leading: boolean;
  /** Told each time this relay starts or stops leading. */
  onChange(listener: LeadershipListener): void;
  /** The first attempt: resolves once this relay knows whether it leads. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** The one relay of a SQLite workspace: it leads from its start to its end. */
export class SoleLeadership implements Leadership {
  #leading = false;
  readonly #listeners: LeadershipListener[] = [];
  constructor(private readonly log: Logger) {}
  get leading(): boolean {
    return this.#leading;
  }
  onChange(listener: LeadershipListener): void {
    this.#listeners.push(listener);
  }
  async start(): Promise<void> {
    this.#leading = true;
    for (const l of this.#listeners) runGuarded(this.log, 'starting to lead', () => l(true));
  }
  async close(): Promise<void> {
    this.#leading = false;
  }
}

/** The lock's key: "outpld" in ASCII, beside the migrations' "outpos". */
export const LEADER_LOCK = 0x6f75_7470_6c64;

export interface PostgresLeadershipOptions {
  url: string;
  log: Logger;
  /** How often a follower tries for the lock, and a leader checks its connection (default 1 s). */
  retryMs?: number;
}

/**
 * The holder of LEADER_LOCK on a connection of its own. A follower asks for it every `retryMs`;
 * a leader checks its connection as often, and stops leading the moment it fails (PostgreSQL
 * then frees the lock for the others).
 */
export class PostgresLeadership implements Leadership {
  readonly #opts: PostgresLeadershipOptions;
  readonly #listeners: LeadershipListener[] = [];
  #client: pg.Client | undefined;
  #leading = false;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;
  #closed = false;

  constructor(opts: PostgresLeadershipOptions) {
    this.#opts = opts;
  }

  get leading(): boolean {
    return this.#leading;
  }

  onChange(listener: LeadershipListener): void {
    this.#listeners.push(listener);
  }

  async start(): Promise<void> {
    await this.#attempt();
    this.#timer = guardedInterval(this.#opts.log, 'the leader lock', this.#opts.retryMs ?? 1000, () => this.#attempt());
  }

  async #attempt(): Promise<void> {
    if (this.#busy || this.#closed) return;
    this.#busy = true;
    try {
      const client = this.#client ?? (await this.#connect());
      if (this.#leading) {
        await client.query('SELECT 1');
        return;
      }
      const { rows } = await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1) AS got', [LEADER_LOCK]);
      if (rows[0]?.got && !this.#closed) this.#set(true);
    } catch (err) {
      this.#opts.log.warn({ err }, 'the leader lock: PostgreSQL did not answer; trying again');
      this.#drop();
    } finally {
      this.#busy = false;
    }
  }

  async #connect(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.#opts.url, application_name: 'outpost-relay leader lock', connectionTimeoutMillis: 10_000, keepAlive: true });
    // A connection that fails ends this relay's lead: the lock went with it.
    client.on('error', (err) => {
      this.#opts.log.warn({ err }, 'the leader lock: the connection failed');
      this.#drop(client);
    });
    client.on('end', () => this.#drop(client));
    await client.connect();
    this.#client = client;
    return client;
  }

  #drop(client = this.#client): void {
    if (!client || client !== this.#client) return;
    this.#client = undefined;
    client.end().catch(() => undefined);
    if (this.#leading) this.#set(false);
  }

  #set(leading: boolean): void {
    this.#leading = leading;
    this.#opts.log.info(leading ? 'this relay leads: it runs the job scheduler and the rollouts' : 'this relay no longer leads');
    for (const l of this.#listeners) runGuarded(this.#opts.log, leading ? 'starting to lead' : 'stopping to lead', () => l(leading));
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    const client = this.#client;
    this.#client = undefined;
    this.#leading = false;
    // Ending the session frees the lock for the next relay.
    await client?.end().catch(() => undefined);
  }
}
