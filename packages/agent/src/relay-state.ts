// The device's desired state and job list read over HTTP(S) from the relay's store, beside the
// retained MQTT messages (the fast path): on every connect, once the subscriptions stand (so a
// change made after the read arrives over MQTT), and every few minutes. A broker that lost its
// retained messages, a relay restored from a backup, or a broker that keeps none (NATS without
// its streams) then never leaves the device on a wrong version.
//
// Each document carries the time the relay derived it (`revision`): one older than the last
// applied, from either path, changes nothing (a read that crossed a newer MQTT message, or a
// stale retained copy from a broker restored from backup arriving after a fresh read).

import { guardedTimeout, messageParser, tlsFetch, DesiredJobs, DesiredState, MqttLogin, type ClientTls, type Logger } from '@outpost/shared';

/** How often the agent reads when nothing else asks it to: five minutes, a fifth either way. */
const PERIOD_MS = 300_000;
/** The largest document read: a desired state names a few models, a job list a few runs. */
const MAX_BYTES = 1 << 20;
const TIMEOUT_MS = 30_000;
/** An MQTT login: a user JWT of a few KiB and a few URLs. */
const MAX_LOGIN_BYTES = 64 * 1024;

/**
 * The body, read no further than `max` bytes (a length that says more, or a body that goes past
 * it, is cancelled there): the Buffer, or what was wrong with it.
 */
export async function readCapped(res: Response, max: number): Promise<Buffer | string> {
  const length = Number(res.headers.get('content-length') ?? 0);
  if (length > max) {
    await res.body?.cancel();
    return `${length} bytes, over ${max}`;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) {
      await res.body?.cancel().catch(() => undefined);
      return `over ${max} bytes`;
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

const parsers = { desired: messageParser(DesiredState), jobs: messageParser(DesiredJobs) };
const parseLogin = messageParser(MqttLogin);

export interface RelayStateOptions {
  relayUrl: string;
  /** The relay's CA and the device's certificate, read at each request. */
  tls(): ClientTls | undefined;
  /** Headers that say who the device is when it has no certificate (its secret). */
  auth(): Record<string, string>;
  log: Logger;
  onDesired(desired: DesiredState): void;
  onDesiredJobs(jobs: DesiredJobs): void;
  periodMs?: number;
}

type Kind = keyof typeof parsers;

export class RelayState {
  readonly #opts: RelayStateOptions;
  readonly #etags: Partial<Record<Kind, string>> = {};
  readonly #applied: Record<Kind, number> = { desired: 0, jobs: 0 };
  #timer: NodeJS.Timeout | undefined;
  #reading: Promise<void> | undefined;
  #again = false;
  #closed = false;
  /** What the last failed read said, so an outage is logged once, not every period. */
  readonly #lastProblem: Partial<Record<Kind, string>> = {};

  constructor(opts: RelayStateOptions) {
    this.#opts = opts;
    this.#schedule();
  }

  /** Whether a document (from MQTT or a read) is to be applied: not older than the last one. */
  accept(kind: Kind, revision: number): boolean {
    if (revision < this.#applied[kind]) return false;
    this.#applied[kind] = revision;
    return true;
  }

  /** Reads both documents now: one read at a time, and one more when asked meanwhile. */
  refresh(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#reading) {
      this.#again = true;
      return this.#reading;
    }
    this.#reading = (async () => {
      try {
        do {
          this.#again = false;
          await this.#read('desired');
          await this.#read('jobs');
        } while (this.#again && !this.#closed);
      } finally {
        this.#reading = undefined;
      }
    })();
    return this.#reading;
  }

  /**
   * The MQTT login the relay has for this device, when its broker has its own (NATS); undefined
   * when it has none (the secret or certificate is the login).
   */
  async mqttLogin(): Promise<Omit<MqttLogin, 'username'> | undefined> {
    const res = await tlsFetch(this.#opts.tls())(`${this.#opts.relayUrl}/v1/devices/me/mqtt-login`, { headers: this.#opts.auth(), signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (res.status === 404) return void (await res.body?.cancel());
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`the relay answered ${res.status} for the MQTT login`);
    }
    const body = await readCapped(res, MAX_LOGIN_BYTES);
    if (typeof body === 'string') throw new Error(`the MQTT login from the relay is ${body}`);
    const parsed = parseLogin.parse(body);
    if (!parsed.ok) throw new Error(`malformed MQTT login from the relay: ${parsed.reason}`);
    const { username: _username, ...login } = parsed.value;
    return login;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #schedule(): void {
    if (this.#closed) return;
    const period = this.#opts.periodMs ?? PERIOD_MS;
    this.#timer = guardedTimeout(this.#opts.log, 'reading the desired state from the relay', period * (0.8 + Math.random() * 0.4), async () => {
      await this.refresh();
      this.#schedule();
    });
  }

  async #read(kind: Kind): Promise<void> {
    const url = `${this.#opts.relayUrl}/v1/devices/me/${kind}`;
    const etag = this.#etags[kind];
    let problem: string | undefined;
    try {
      const res = await tlsFetch(this.#opts.tls())(url, { headers: { ...this.#opts.auth(), ...(etag ? { 'if-none-match': etag } : {}) }, signal: AbortSignal.timeout(TIMEOUT_MS) });
      if (res.status === 304) return void delete this.#lastProblem[kind];
      // An older relay without the route: MQTT alone, as before.
      if (res.status === 404) return void (await res.body?.cancel());
      if (!res.ok) {
        problem = `the relay answered ${res.status} for ${kind}`;
        await res.body?.cancel();
        return;
      }
      const body = await readCapped(res, MAX_BYTES);
      if (typeof body === 'string') return void (problem = `the relay's ${kind} document is ${body}`);
      const parsed = parsers[kind].parse(body);
      if (!parsed.ok) return void (problem = `malformed ${kind} from the relay ignored: ${parsed.reason}`);
      const doc = parsed.value;
      if (this.#closed || !this.accept(kind, doc.revision)) return;
      this.#etags[kind] = res.headers.get('etag') ?? undefined;
      delete this.#lastProblem[kind];
      if (kind === 'desired') this.#opts.onDesired(doc as DesiredState);
      else this.#opts.onDesiredJobs(doc as DesiredJobs);
    } catch (err) {
      problem = `cannot reach the relay for ${kind} (${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message})`;
    } finally {
      if (problem && problem !== this.#lastProblem[kind]) this.#opts.log.warn({ url }, `${problem}; the MQTT copy stands, reading again later`);
      if (problem) this.#lastProblem[kind] = problem;
    }
  }
}
