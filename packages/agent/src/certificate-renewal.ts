// Renews the device certificate before it ends: once two thirds of its lifetime have passed
// (or the relay asks, `devices rotate`), with a new key made here and a CSR sent over mutual
// TLS with the current certificate (with the device's secret, when that certificate has ended). Serving and the MQTT session go on; the next connection
// uses the new pair. A failure (relay away, clock off) is retried with backoff and shown in
// health, long before the certificate ends. The wall clock is looked at again at least every
// 30 s (sooner when renewal is due sooner), so a clock that jumps is caught up with instead
// of trusted to one long timer.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { backoffMs, guardedTimeout, isErrorBody, tlsFetch, type ClientTls, type Logger } from '@outpost/shared';
import type { DeviceTls } from './device-tls.js';

const CHECK_MS = 30_000;
const RETRY = { baseMs: 5_000, maxMs: 300_000 };

export interface CertificateState {
  expiresAt: number;
  renewAt: number;
  lastError?: string;
}

export class CertificateRenewal {
  readonly #tls: DeviceTls;
  readonly #relayUrl: string;
  readonly #secret: string;
  readonly #log: Logger;
  readonly #checkMs: number;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #failures = 0;
  #nextTry = 0;
  #lastError: string | undefined;
  #renewing: Promise<void> | undefined;
  /** A certificate issued before this (ms) is renewed at once (the relay's `devices rotate`). */
  #issuedBefore = 0;

  constructor(opts: { tls: DeviceTls; relayUrl: string; secret: string; log: Logger; checkMs?: number }) {
    this.#tls = opts.tls;
    this.#relayUrl = opts.relayUrl;
    this.#secret = opts.secret;
    this.#log = opts.log;
    this.#checkMs = opts.checkMs ?? CHECK_MS;
    this.#schedule();
  }

  get state(): CertificateState | undefined {
    const times = this.#times();
    return times && { ...times, ...(this.#lastError ? { lastError: this.#lastError } : {}) };
  }

  #times(): { issuedAt: number; expiresAt: number; renewAt: number } | undefined {
    const pem = this.#tls.current?.cert;
    if (!pem) return undefined;
    const cert = new X509Certificate(pem);
    // Certificates are dated a minute early against clock skew: that minute is not lifetime.
    const issuedAt = Date.parse(cert.validFrom) + 60_000;
    const expiresAt = Date.parse(cert.validTo);
    return { issuedAt, expiresAt, renewAt: issuedAt + ((expiresAt - issuedAt) * 2) / 3 };
  }

  /** From the desired state: renew now if this certificate is older than the relay wants. */
  requestRenewalIfIssuedBefore(ms: number | undefined): void {
    if (ms === undefined || ms <= this.#issuedBefore) return;
    this.#issuedBefore = ms;
    void this.check();
  }

  /** The next look: when renewal or the next retry is due, but never later than checkMs. */
  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    const times = this.#times();
    const due = times ? Math.max(times.renewAt, this.#nextTry) - Date.now() : this.#checkMs;
    const wait = Math.min(Math.max(due, 0), this.#checkMs);
    this.#timer = guardedTimeout(this.#log, 'checking the device certificate', wait, () => this.check().finally(() => this.#schedule()));
  }

  /** Renews when due and not waiting out a failure; resolves when that attempt is over. */
  check(now = Date.now()): Promise<void> {
    const times = this.#times();
    if (!times || this.#renewing) return this.#renewing ?? Promise.resolve();
    // Certificates carry whole seconds: one issued in the second of the request is not older than it.
    const forced = times.issuedAt + 1000 <= this.#issuedBefore;
    if ((now < times.renewAt && !forced) || now < this.#nextTry) return Promise.resolve();
    this.#renewing = this.#renew()
      .then(() => {
        this.#failures = 0;
        this.#nextTry = 0;
        this.#lastError = undefined;
      })
      .catch((err: Error) => {
        this.#failures++;
        const delay = backoffMs(this.#failures, RETRY, Math.random);
        this.#nextTry = Date.now() + delay;
        this.#lastError = err.message.slice(0, 500);
        this.#log.warn({ err: this.#lastError, retryInS: Math.round(delay / 1000), expiresAt: new Date(times.expiresAt).toISOString() }, 'could not renew the device certificate; retrying');
      })
      .finally(() => (this.#renewing = undefined));
    return this.#renewing;
  }

  #caOnlyFor: { from: ClientTls | undefined; tls: ClientTls } | undefined;

  /** The relay's CA without the device's certificate: one object per set, so one dispatcher (and its sockets), not one per try. */
  #caOnly(current: ClientTls | undefined): ClientTls {
    if (!this.#caOnlyFor || this.#caOnlyFor.from !== current) this.#caOnlyFor = { from: current, tls: { ca: current?.ca } };
    return this.#caOnlyFor.tls;
  }

  async #renew(): Promise<void> {
    const x509 = await import('@outpost/shared/x509');
    const keys = await x509.newKeyPair();
    const csr = await x509.makeCsr(keys, 'outpost-device');
    const ask = async (withSecret: boolean): Promise<Response> => {
      const current = this.#tls.current;
      try {
        // With the secret, the relay is still verified against its CA; only the client certificate stays home.
        return await tlsFetch(withSecret ? this.#caOnly(current) : current)(`${this.#relayUrl}/v1/devices/me/certificate`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(withSecret ? { authorization: `Bearer ${this.#secret}` } : {}) },
          body: JSON.stringify({ csr }),
          signal: AbortSignal.timeout(30_000),
        });
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause;
        throw new Error(`cannot reach the relay at ${this.#relayUrl} (${cause?.code ?? (err as Error).message})`);
      }
    };
    // A certificate that ended while the device was away (or was replaced) cannot renew itself:
    // the device's secret can, so a device offline past its certificate's end comes back.
    const expired = (this.#times()?.expiresAt ?? 0) <= Date.now();
    let res = await ask(expired);
    if (res.status === 401 && !expired) {
      await res.body?.cancel();
      res = await ask(true);
    }
    const body = (await res.json().catch(() => undefined)) as unknown;
    if (!res.ok) throw new Error(isErrorBody(body) ? `${body.error.code}: ${body.error.message}` : `the relay answered ${res.status}`);
    const cert = (body as { certificate?: unknown }).certificate;
    if (typeof cert !== 'string' || cert.length > 16_384) throw new Error('the relay sent no certificate');
    // Checked before it replaces the one that works: it must be for this key and from the relay's CA.
    const parsed = new X509Certificate(cert);
    if (!parsed.checkPrivateKey(createPrivateKey(keys.privateKeyPem))) throw new Error('the relay sent a certificate for another key');
    if (this.#tls.current?.ca && !parsed.verify(new X509Certificate(this.#tls.current.ca).publicKey)) throw new Error("the relay sent a certificate its CA did not issue");
    this.#tls.replace(cert, keys.privateKeyPem);
    this.#log.info({ expiresAt: new Date(Date.parse(parsed.validTo)).toISOString() }, 'device certificate renewed');
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }
}
