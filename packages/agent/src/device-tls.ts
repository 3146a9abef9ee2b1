// The device's TLS identity, beside device.json in its data dir: the relay's CA (trusted for
// every connection to the relay), the CA of an external broker's certificate when the relay
// handed one (--mqtt-ca; trusted for MQTT only), and the device's own key (made here, never sent; 0600) and
// certificate (from the relay, subject = device id). A renewal replaces key and certificate
// together, each written whole to a temporary file and renamed, so a crash keeps the old pair.

import { chmodSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClientTls } from '@outpost/shared';

export const CA_FILE = 'ca.crt';
export const CERT_FILE = 'device.crt';
export const KEY_FILE = 'device.key';
export const MQTT_CA_FILE = 'mqtt-ca.crt';

function writeWhole(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

export class DeviceTls {
  readonly #dataDir: string;
  #current: ClientTls | undefined;
  readonly #mqttCa: string | undefined;
  #forMqtt: { from: ClientTls; tls: ClientTls } | undefined;
  readonly #onReplace: Array<(pair: { cert: string; key: string }) => void> = [];
  #onListenerError: ((err: Error) => void) | undefined;

  constructor(dataDir: string) {
    this.#dataDir = dataDir;
    this.#current = DeviceTls.read(dataDir);
    const mqttCa = join(dataDir, MQTT_CA_FILE);
    this.#mqttCa = existsSync(mqttCa) ? readFileSync(mqttCa, 'utf8') : undefined;
  }

  static read(dataDir: string): ClientTls | undefined {
    finishReplace(dataDir);
    const ca = join(dataDir, CA_FILE);
    if (!existsSync(ca)) return undefined;
    const cert = join(dataDir, CERT_FILE);
    const key = join(dataDir, KEY_FILE);
    const pair = existsSync(cert) && existsSync(key) ? { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') } : {};
    return { ca: readFileSync(ca, 'utf8'), ...pair };
  }

  /** Writes what enrollment got: the CA, the broker's CA, and the key and certificate when there are. */
  static write(dataDir: string, tls: ClientTls & { mqttCa?: string }): void {
    if (tls.ca) writeWhole(join(dataDir, CA_FILE), tls.ca, 0o644);
    if (tls.mqttCa) writeWhole(join(dataDir, MQTT_CA_FILE), tls.mqttCa, 0o644);
    else rmSync(join(dataDir, MQTT_CA_FILE), { force: true });
    if (tls.key && tls.cert) {
      writeWhole(join(dataDir, KEY_FILE), tls.key, 0o600);
      writeWhole(join(dataDir, CERT_FILE), tls.cert, 0o644);
    }
  }

  static remove(dataDir: string): void {
    for (const f of [CA_FILE, MQTT_CA_FILE, CERT_FILE, KEY_FILE]) rmSync(join(dataDir, f), { force: true });
  }

  /** A new object on each change, so clients built for the old pair are not reused. */
  get current(): ClientTls | undefined {
    return this.#current;
  }

  /** For MQTT: the same, trusting the broker's own CA too when the relay handed one. */
  get forMqtt(): ClientTls | undefined {
    const current = this.#current;
    if (!current || !this.#mqttCa) return current;
    if (this.#forMqtt?.from !== current) this.#forMqtt = { from: current, tls: { ...current, ca: `${current.ca ?? ''}${this.#mqttCa}` } };
    return this.#forMqtt.tls;
  }

  get hasCertificate(): boolean {
    return Boolean(this.#current?.cert && this.#current.key);
  }

  replace(cert: string, key: string): void {
    // Both written whole under .next names first, then renamed: a crash between the renames
    // is finished by the next read (finishReplace), so the pair on disk always matches.
    writeWhole(join(this.#dataDir, `${KEY_FILE}.next`), key, 0o600);
    writeWhole(join(this.#dataDir, `${CERT_FILE}.next`), cert, 0o644);
    finishReplace(this.#dataDir);
    this.#current = { ...this.#current, cert, key };
    // The new pair is in place whatever a listener does with it.
    for (const listener of this.#onReplace) {
      try {
        listener({ cert, key });
      } catch (err) {
        this.#onListenerError?.(err as Error);
      }
    }
  }

  /** Told of each new key and certificate (the inference port serves them from then on); `onError` of a listener's failure. */
  onReplace(listener: (pair: { cert: string; key: string }) => void, onError?: (err: Error) => void): void {
    this.#onReplace.push(listener);
    if (onError) this.#onListenerError = onError;
  }

}

/** Renames a pair written by `replace` into place (the key first); nothing when there is none. */
function finishReplace(dataDir: string): void {
  const certNext = join(dataDir, `${CERT_FILE}.next`);
  const keyNext = join(dataDir, `${KEY_FILE}.next`);
  // The certificate's .next is renamed last, so while it exists the pair is not in place yet.
  if (!existsSync(certNext)) return;
  if (existsSync(keyNext)) renameSync(keyNext, join(dataDir, KEY_FILE));
  renameSync(certNext, join(dataDir, CERT_FILE));
}
