// The relay's TLS material, made on first start and kept in the data dir's tls/ folder:
// its own CA (ECDSA P-256, ten years), a server certificate from it for every name the relay
// is reached by (a year, remade when a name is missing or it nears its end), and device
// certificates signed from their CSRs. Keys are 0600; the CA key never leaves the relay host.

import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { caFingerprint, type Logger } from '@outpost/shared';
import type { IssuedCertificate } from '@outpost/shared/x509';

const DAY = 86_400_000;
const CA_LIFETIME = 3650 * DAY;
const SERVER_LIFETIME = 365 * DAY;
/** A server certificate this close to its end is remade at start. */
const SERVER_RENEW_BEFORE = 30 * DAY;

export interface RelayTlsOptions {
  dataDir: string;
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
  server: { cert: string; key: string };
  /** The HTTP listener's: the operator's when given, else the same as `server`. */
  http: { cert: string; key: string };
  deviceCertTtlMs: number;
  /** Signs a device's CSR; the subject is the device id, whatever the CSR says. */
  issueDeviceCert(csrPem: string, deviceId: string): Promise<IssuedCertificate>;
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

export async function loadRelayTls(opts: RelayTlsOptions): Promise<RelayTls> {
  const x509 = await import('@outpost/shared/x509');
  const dir = join(opts.dataDir, 'tls');
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
    opts.log.info({ caFingerprint: caFingerprint(caPem), file: caCertFile }, 'made the relay CA');
  }
  const issuer = { certPem: caPem, keys: caKeys };

  const serverKeyFile = join(dir, 'server.key');
  const serverCertFile = join(dir, 'server.crt');
  let server: { cert: string; key: string } | undefined;
  if (existsSync(serverKeyFile) && existsSync(serverCertFile)) {
    const cert = readFileSync(serverCertFile, 'utf8');
    const about = x509.describeCertificate(cert);
    const covered = new Set(about.names.map(normaliseName));
    const missing = opts.names.filter((n) => !covered.has(normaliseName(n)));
    const fromThisCa = new X509Certificate(cert).verify(new X509Certificate(caPem).publicKey);
    if (missing.length === 0 && fromThisCa && about.notAfter - Date.now() > SERVER_RENEW_BEFORE) server = { cert, key: readFileSync(serverKeyFile, 'utf8') };
    else opts.log.info({ missing, nearEnd: about.notAfter - Date.now() <= SERVER_RENEW_BEFORE }, 'remaking the server certificate');
  }
  if (!server) {
    const keys = await x509.newKeyPair();
    const issued = await x509.makeServerCert(issuer, keys, opts.names, SERVER_LIFETIME);
    writePrivate(serverKeyFile, keys.privateKeyPem);
    // The chain a client needs: the server's certificate, then the CA's.
    writeFileSync(serverCertFile, issued.pem + caPem, { mode: 0o644 });
    server = { cert: issued.pem + caPem, key: keys.privateKeyPem };
  }
  let http = server;
  if (opts.httpCertFile || opts.httpKeyFile) {
    if (!opts.httpCertFile || !opts.httpKeyFile) throw new Error('--tls-cert and --tls-key go together: give both');
    http = { cert: readOperatorFile(opts.httpCertFile, '--tls-cert'), key: readOperatorFile(opts.httpKeyFile, '--tls-key') };
  }
  return {
    caPem,
    caFingerprint: caFingerprint(caPem),
    server,
    http,
    deviceCertTtlMs: opts.deviceCertTtlMs,
    issueDeviceCert: (csrPem, deviceId) => x509.signDeviceCsr(issuer, csrPem, deviceId, opts.deviceCertTtlMs),
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
