// Which relay runs the work that must run once per workspace: scheduling passes and job
// timeouts, the rollout controller. One relay (SQLite) always leads. Relays sharing a PostgreSQL
// store take turns through a session advisory lock: the holder leads until its connection ends —
// a relay killed with SIGKILL loses its connection, so PostgreSQL frees the lock at once, and a
// follower waiting in pg_advisory_lock gets it at that moment.

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
  /** How often a leader checks its connection, and a follower that lost its own tries again (default 1 s). */
  retryMs?: number;
  /** How long a follower waits in one pg_advisory_lock before it asks again (default 10 s): a dead connection is noticed then. */
  waitMs?: number;
}

/**
 * The holder of LEADER_LOCK on a connection of its own. A follower waits for it in
 * pg_advisory_lock (for at most `waitMs` at a time, then asks again); a leader checks its
 * connection every `retryMs`, and stops leading the moment it fails (PostgreSQL then frees the
 * lock for the others).
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

  /** Resolves once this relay knows whether it leads now; a follower then waits for the lock. */
  async start(): Promise<void> {
    await this.#attempt(true);
    this.#timer = guardedInterval(this.#opts.log, 'the leader lock', this.#opts.retryMs ?? 1000, () => this.#attempt(false));
    // A follower starts waiting for the lock now, not at the first check.
    if (!this.#leading) void this.#attempt(false);
  }

  /** A leader checks its connection; a follower tries at once (`first`) or waits for the lock. */
  async #attempt(first: boolean): Promise<void> {
    if (this.#busy || this.#closed) return;
    this.#busy = true;
    try {
      const client = this.#client ?? (await this.#connect());
      if (this.#leading) {
        await client.query('SELECT 1');
        return;
      }
      if (first) {
        const { rows } = await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1) AS got', [LEADER_LOCK]);
        if (rows[0]?.got && !this.#closed) this.#set(true);
        return;
      }
      // Waits in PostgreSQL until the leader's session ends; lock_timeout ends the wait now and
      // then, so that a connection that died quietly is found out.
      for (;;) {
        try {
          await client.query('SELECT pg_advisory_lock($1)', [LEADER_LOCK]);
          break;
        } catch (err) {
          if ((err as { code?: string }).code !== '55P03' || this.#closed) throw err;
        }
      }
      if (this.#closed) return;
      this.#set(true);
    } catch (err) {
      if (!this.#closed) {
        this.#opts.log.warn({ err }, 'the leader lock: PostgreSQL did not answer; trying again');
        this.#drop();
      }
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
    await client.query(`SET lock_timeout = ${Math.max(1, Math.round(this.#opts.waitMs ?? 10_000))}`);
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
