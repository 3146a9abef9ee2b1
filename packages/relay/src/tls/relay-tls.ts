// The relay's TLS material, made on first start and kept in the data dir's tls/ folder:
// its own CA (ECDSA P-256, ten years), a server certificate from it for every name the relay
// is reached by (a year, remade when a name is missing or it nears its end), and device
// certificates signed from their CSRs. Keys are 0600; the CA key never leaves the relay host.

import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { caFingerprint, type Logger } from '@outpost/shared';
import type { IssuedCertificate, Issuer } from '@outpost/shared/x509';

const DAY = 86_400_000;
const CA_LIFETIME = 3650 * DAY;
const SERVER_LIFETIME = 365 * DAY;
/** The relay's own client certificates for an external broker: remade by the daily check at a third left. */
export const RELAY_CLIENT_LIFETIME = 90 * DAY;
/** A server certificate this close to its end is remade (at start, and by the daily check). */
const SERVER_RENEW_BEFORE = 30 * DAY;

export interface RelayTlsOptions {
  dataDir: string;
  /** Where the CA's key and certificate are (default DATA_DIR/tls): shared by the relays of one workspace. */
  caDir?: string;
  /** Every name and address the server certificate must cover. */
  names: string[];
  /** A certificate and key the operator brings for the HTTP side (PEM file paths). */
  httpCertFile?: string;
  httpKeyFile?: string;
  /** Lifetime of device certificates. */
  deviceCertTtlMs: number;
  log: Logger;
}

export interface RelayTls {
  caPem: string;
  /** sha256 of the CA's DER, base64url: what enrollment tokens carry. */
  caFingerprint: string;
  /** Our server certificate (with the CA after it) and key: the MQTT listener's. */
  readonly server: KeyAndCert;
  /** The HTTP listener's: the operator's when given, else the same as `server`. */
  readonly http: KeyAndCert;
  deviceCertTtlMs: number;
  /** Signs a device's CSR; the subject is the device id, whatever the CSR says. */
  issueDeviceCert(csrPem: string, deviceId: string): Promise<IssuedCertificate>;
  /** A client certificate (90 days) and a new key for a name the relay connects as (an external broker's user). */
  issueClientCert(commonName: string): Promise<KeyAndCert & { notAfter: number }>;
  /**
   * Remakes the server certificate when it nears its end (or lacks a name), and reads the
   * operator's --tls-cert/--tls-key files again. What changed goes to `apply` (the listeners'
   * `setSecureContext`) before it is kept: when `apply` throws, nothing is, and the next call
   * tries again. An operator pair that does not load is not taken (its error is returned);
   * the relay's own certificate is renewed all the same.
   */
  refresh(apply: (next: { server: KeyAndCert; http: KeyAndCert }) => void): Promise<{ changed: boolean; operatorError?: Error }>;
}

export interface KeyAndCert {
  cert: string;
  key: string;
}

/** The relay CA from the data dir's tls/ folder, made on first use. */
export interface RelayCa {
  pem: string;
  fingerprint: string;
  issuer: Issuer;
  dir: string;
}

/** What node's TLS servers (and `setSecureContext`) take for a pair: TLS 1.2 at least. */
export function serverContextOptions(pair: KeyAndCert, ca?: string): { cert: string; key: string; ca?: string; minVersion: 'TLSv1.2' } {
  return { cert: pair.cert, key: pair.key, ...(ca ? { ca } : {}), minVersion: 'TLSv1.2' };
}

function writePrivate(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600);
}

function readOperatorFile(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

/** The relay CA in `dir` (DATA_DIR/tls, or --ca-dir), made on first use. */
export async function loadRelayCa(dataDir: string, log: Logger, caDir?: string): Promise<RelayCa> {
  const x509 = await import('@outpost/shared/x509');
  const dir = caDir ?? join(dataDir, 'tls');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const caKeyFile = join(dir, 'ca.key');
  const caCertFile = join(dir, 'ca.crt');
  let caKeys;
  let caPem: string;
  if (existsSync(caKeyFile) && existsSync(caCertFile)) {
    chmodSync(caKeyFile, 0o600);
    caKeys = await x509.keyPairFromPem(readFileSync(caKeyFile, 'utf8'));
    caPem = readFileSync(caCertFile, 'utf8');
  } else {
    caKeys = await x509.newKeyPair();
    caPem = (await x509.makeCa(caKeys, 'Outpost relay CA', CA_LIFETIME)).pem;
    // The key first: a start that dies between the two makes a new CA next time, never a
    // certificate without its key.
    writePrivate(caKeyFile, caKeys.privateKeyPem);
    writeFileSync(caCertFile, caPem, { mode: 0o644 });
    log.info({ caFingerprint: caFingerprint(caPem), file: caCertFile }, 'made the relay CA');
  }
  return { pem: caPem, fingerprint: caFingerprint(caPem), issuer: { certPem: caPem, keys: caKeys }, dir };
}

/** A server certificate (with the CA after it: the chain a client needs) and its new key. */
export async function issueServerCert(ca: RelayCa, names: string[], lifetimeMs = SERVER_LIFETIME): Promise<KeyAndCert & { notAfter: number }> {
  const x509 = await import('@outpost/shared/x509');
  const keys = await x509.newKeyPair();
  const issued = await x509.makeServerCert(ca.issuer, keys, names, lifetimeMs);
  return { cert: issued.pem + ca.pem, key: keys.privateKeyPem, notAfter: issued.notAfter };
}

/** A client certificate for a name (not a device: those come from CSRs) and its new key. */
export async function issueClientCert(ca: RelayCa, commonName: string, lifetimeMs = SERVER_LIFETIME): Promise<KeyAndCert & { notAfter: number }> {
  const x509 = await import('@outpost/shared/x509');
  const keys = await x509.newKeyPair();
  const issued = await x509.makeClientCert(ca.issuer, keys, commonName, lifetimeMs);
  return { cert: issued.pem + ca.pem, key: keys.privateKeyPem, notAfter: issued.notAfter };
}

export async function loadRelayTls(opts: RelayTlsOptions): Promise<RelayTls> {
  const x509 = await import('@outpost/shared/x509');
  const ca = await loadRelayCa(opts.dataDir, opts.log, opts.caDir);
  // The server certificate is this relay's own (its names), beside a copy of the CA's
  // certificate for CLI commands on this host (data-dir.ts CA_CERT_FILE).
  const own = join(opts.dataDir, 'tls');
  mkdirSync(own, { recursive: true, mode: 0o700 });
  if (opts.caDir) writeFileSync(join(own, 'ca.crt'), ca.pem, { mode: 0o644 });
  const serverKeyFile = join(own, 'server.key');
  const serverCertFile = join(own, 'server.crt');

  /** The stored server certificate while it is good for every name and not near its end; else a new one. */
  const serverCert = async (): Promise<KeyAndCert> => {
    if (existsSync(serverKeyFile) && existsSync(serverCertFile)) {
      const cert = readFileSync(serverCertFile, 'utf8');
      const about = x509.describeCertificate(cert);
      const covered = new Set(about.names.map(normaliseName));
      const missing = opts.names.filter((n) => !covered.has(normaliseName(n)));
      const fromThisCa = new X509Certificate(cert).verify(new X509Certificate(ca.pem).publicKey);
      const nearEnd = about.notAfter - Date.now() <= SERVER_RENEW_BEFORE;
      if (missing.length === 0 && fromThisCa && !nearEnd) return { cert, key: readFileSync(serverKeyFile, 'utf8') };
      opts.log.info({ missing, nearEnd }, 'remaking the server certificate');
    }
    const made = await issueServerCert(ca, opts.names);
    writePrivate(serverKeyFile, made.key);
    writeFileSync(serverCertFile, made.cert, { mode: 0o644 });
    return { cert: made.cert, key: made.key };
  };
  const operatorCert = (): KeyAndCert | undefined => {
    if (!opts.httpCertFile && !opts.httpKeyFile) return undefined;
    if (!opts.httpCertFile || !opts.httpKeyFile) throw new Error('--tls-cert and --tls-key go together: give both');
    return { cert: readOperatorFile(opts.httpCertFile, '--tls-cert'), key: readOperatorFile(opts.httpKeyFile, '--tls-key') };
  };

  let server = await serverCert();
  let http = operatorCert() ?? server;
  return {
    caPem: ca.pem,
    caFingerprint: ca.fingerprint,
    get server() {
      return server;
    },
    get http() {
      return http;
    },
    deviceCertTtlMs: opts.deviceCertTtlMs,
    issueDeviceCert: (csrPem, deviceId) => x509.signDeviceCsr(ca.issuer, csrPem, deviceId, opts.deviceCertTtlMs),
    issueClientCert: (commonName) => issueClientCert(ca, commonName, RELAY_CLIENT_LIFETIME),
    async refresh(apply) {
      const nextServer = await serverCert();
      let nextHttp = http === server ? nextServer : http;
      let operatorError: Error | undefined;
      try {
        const operator = operatorCert();
        if (operator) {
          // A pair that does not go together would fail every handshake: check it loads first.
          createSecureContext(operator);
          nextHttp = operator;
        }
      } catch (err) {
        operatorError = err as Error;
      }
      const changed = nextServer.cert !== server.cert || nextHttp.cert !== http.cert || nextHttp.key !== http.key;
      if (changed) apply({ server: nextServer, http: nextHttp });
      server = nextServer;
      http = nextHttp;
      return { changed, ...(operatorError ? { operatorError } : {}) };
    },
  };
}

/** Node prints IPv6 SANs in full (0:0:0:0:0:0:0:1); compare them in one form. */
function normaliseName(name: string): string {
  if (!name.includes(':')) return name.toLowerCase();
  try {
    return new URL(`http://[${name}]/`).hostname;
  } catch {
    return name.toLowerCase();
  }
}
