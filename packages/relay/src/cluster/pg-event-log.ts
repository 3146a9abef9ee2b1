// The fleet's events across relays sharing a PostgreSQL store. Each relay writes its own events
// to `stream_events`, numbered from `stream_head` in the same transaction (the head's row lock
// makes commit order seq order), and NOTIFYs; every relay (the writer too) reads the new rows
// in seq order and hands them to its fleet stream. So every relay's stream sends the same
// seqs in the same order, and a client can reconnect to any relay with `?since=`.

import pg from 'pg';
import type { FleetEvent, Logger } from '@outpost/shared';

/** A fleet event as the stream sends it: numbered, with the time it happened. */
export type NumberedEvent = FleetEvent & { seq: number; ts: string };
import { guardedInterval, guardedTimeout, runGuarded } from '@outpost/shared';

export const STREAM_CHANNEL = 'outpost_stream';

/** The application name of a relay's listening connection: the roster of live relays (relay-roster.ts). */
export const LISTENER_PREFIX = 'outpost-relay events ';
export const listenerName = (relayId: string) => `${LISTENER_PREFIX}${relayId}`.slice(0, 63);

export interface EventLogOptions {
  url: string;
  /** This relay, so that it can tell its own events from the others'. */
  relayId: string;
  log: Logger;
  /** Events kept in the table for relays that fall behind (default 50,000). */
  keep?: number;
  /** Events waiting to be written while PostgreSQL does not answer; older ones are dropped past it (default 10,000). */
  backlog?: number;
}

export type EventLogListener = (message: NumberedEvent, fromThisRelay: boolean) => void;

interface Row {
  seq: string;
  origin: string;
  message: string;
}

/** How many rows one read takes. */
const READ_BATCH = 2000;

export class PostgresEventLog {
  readonly #opts: EventLogOptions;
  readonly #pool: pg.Pool;
  readonly #listeners: EventLogListener[] = [];
  #listener: pg.Client | undefined;
  /** The last seq handed to the listeners. */
  #last: number;
  #pending: Array<{ origin: string; message: string }> = [];
  #flushing = false;
  #flushSoon: NodeJS.Immediate | NodeJS.Timeout | undefined;
  #reading = false;
  #readAgain = false;
  #closed = false;
  #pruneTimer: NodeJS.Timeout | undefined;
  #reconnectTimer: NodeJS.Timeout | undefined;
  dropped = 0;

  private constructor(opts: EventLogOptions, pool: pg.Pool, head: number) {
    this.#opts = opts;
    this.#pool = pool;
    this.#last = head;
  }

  /** Connects, and listens from the head on: the events written before are not handed on. */
  static async open(opts: EventLogOptions): Promise<PostgresEventLog> {
    const pool = new pg.Pool({ connectionString: opts.url, max: 2, application_name: 'outpost-relay event log', connectionTimeoutMillis: 10_000 });
    pool.on('error', (err) => opts.log.warn({ err }, 'the event log: an idle connection failed'));
    try {
      const { rows } = await pool.query<{ seq: string }>('SELECT seq FROM stream_head WHERE id = 1');
      const log = new PostgresEventLog(opts, pool, Number(rows[0]!.seq));
      await log.#listen();
      log.#pruneTimer = guardedInterval(opts.log, 'pruning the event log', 30_000, () => log.#prune());
      return log;
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
  }

  /** The last seq handed on: where this relay's stream starts. */
  get head(): number {
    return this.#last;
  }

  onMessage(listener: EventLogListener): void {
    this.#listeners.push(listener);
  }

  /** Writes one of this relay's events; events of one turn of the event loop go in one transaction. */
  publish(event: FleetEvent): void {
    if (this.#closed) return;
    const backlog = this.#opts.backlog ?? 10_000;
    if (this.#pending.length >= backlog) {
      this.#pending.shift();
      if (this.dropped++ % 1000 === 0) this.#opts.log.warn({ dropped: this.dropped }, 'the event log: PostgreSQL is behind; dropping the oldest waiting events');
    }
    this.#pending.push({ origin: this.#opts.relayId, message: JSON.stringify({ ...event, ts: new Date().toISOString() }) });
    this.#scheduleFlush(0);
  }

  #scheduleFlush(delayMs: number): void {
    if (this.#flushSoon || this.#flushing || this.#closed) return;
    const run = () => {
      this.#flushSoon = undefined;
      void this.#flush();
    };
    this.#flushSoon = delayMs === 0 ? setImmediate(run) : guardedTimeout(this.#opts.log, 'writing fleet events', delayMs, run);
  }

  async #flush(): Promise<void> {
    if (this.#pending.length === 0 || this.#closed) return;
    this.#flushing = true;
    const batch = this.#pending.splice(0, 1000);
    let client: pg.PoolClient | undefined;
    try {
      client = await this.#pool.connect();
      await client.query('BEGIN');
      const { rows } = await client.query<{ seq: string }>('UPDATE stream_head SET seq = seq + $1 WHERE id = 1 RETURNING seq', [batch.length]);
      const last = Number(rows[0]!.seq);
      const first = last - batch.length + 1;
      await client.query('INSERT INTO stream_events (seq, origin, message) SELECT * FROM unnest($1::bigint[], $2::text[], $3::json[])', [
        batch.map((_, i) => first + i),
        batch.map((b) => b.origin),
        batch.map((b) => b.message),
      ]);
      await client.query(`SELECT pg_notify('${STREAM_CHANNEL}', $1)`, [String(last)]);
      await client.query('COMMIT');
      client.release();
    } catch (err) {
      await client?.query('ROLLBACK').catch(() => undefined);
      client?.release(err as Error);
      // Kept, in order, for the next try.
      this.#pending.unshift(...batch);
      this.#opts.log.warn({ err, waiting: this.#pending.length }, 'the event log: could not write fleet events; trying again');
      this.#flushing = false;
      this.#scheduleFlush(500);
      return;
    }
    this.#flushing = false;
    if (this.#pending.length > 0) this.#scheduleFlush(0);
  }

  async #listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#opts.url, application_name: listenerName(this.#opts.relayId), connectionTimeoutMillis: 10_000, keepAlive: true });
    const lost = (err?: Error) => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      client.end().catch(() => undefined);
      if (this.#closed) return;
      this.#opts.log.warn({ err }, 'the event log: lost the listening connection; connecting again');
      this.#reconnectTimer = guardedTimeout(this.#opts.log, 'listening for fleet events', 1000, () => this.#listen().catch((e: unknown) => lost(e as Error)));
    };
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', () => this.#read());
    this.#listener = client;
    await client.connect();
    await client.query(`LISTEN ${STREAM_CHANNEL}`);
    // What was written while this relay was not listening.
    this.#read();
  }

  /** Hands on every row after the last one handed on, in seq order; one read at a time. */
  #read(): void {
    if (this.#reading) {
      this.#readAgain = true;
      return;
    }
    this.#reading = true;
    void (async () => {
      try {
        do {
          this.#readAgain = false;
          for (;;) {
            const { rows } = await this.#pool.query<Row>('SELECT seq, origin, message::text AS message FROM stream_events WHERE seq > $1 ORDER BY seq LIMIT $2', [this.#last, READ_BATCH]);
            for (const row of rows) this.#handOn(row);
            if (rows.length < READ_BATCH || this.#closed) break;
          }
        } while (this.#readAgain && !this.#closed);
      } catch (err) {
        if (!this.#closed) this.#opts.log.warn({ err }, 'the event log: could not read fleet events; reading again on the next one');
      } finally {
        this.#reading = false;
      }
    })();
  }

  #handOn(row: Row): void {
    const seq = Number(row.seq);
    if (seq <= this.#last) return;
    if (seq > this.#last + 1) this.#opts.log.warn({ from: this.#last + 1, to: seq - 1 }, 'the event log: events pruned before this relay read them; stream clients get a snapshot when they reconnect');
    this.#last = seq;
    let message: NumberedEvent;
    try {
      message = { ...(JSON.parse(row.message) as Omit<NumberedEvent, 'seq'>), seq } as NumberedEvent;
    } catch {
      return;
    }
    const mine = row.origin === this.#opts.relayId;
    for (const l of this.#listeners) runGuarded(this.#opts.log, 'handing on a fleet event', () => l(message, mine));
  }

  async #prune(): Promise<void> {
    await this.#pool.query('DELETE FROM stream_events WHERE seq <= (SELECT seq FROM stream_head WHERE id = 1) - $1', [this.#opts.keep ?? 50_000]);
  }

  /** Writes what is waiting (for a while), then stops. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#flushSoon) {
      clearImmediate(this.#flushSoon as NodeJS.Immediate);
      clearTimeout(this.#flushSoon as NodeJS.Timeout);
      this.#flushSoon = undefined;
    }
    const deadline = Date.now() + 2000;
    while ((this.#pending.length > 0 || this.#flushing) && Date.now() < deadline) {
      if (!this.#flushing) await this.#flush();
      else await new Promise((r) => setImmediate(r));
    }
    this.#closed = true;
    clearInterval(this.#pruneTimer);
    clearTimeout(this.#reconnectTimer);
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => undefined);
    await this.#pool.end().catch(() => undefined);
  }
}
