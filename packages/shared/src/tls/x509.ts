// Certificates and requests for them: ECDSA P-256 keys, the relay's CA, its server
// certificate, device CSRs and the certificates signed from them. Loaded on demand (its own
// entry point, `@outpost/shared/x509`): an agent that is not enrolling or renewing never pays
// for it. @peculiar/x509 resolves its parts through tsyringe, which needs the Reflect polyfill.

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate as NodeCertificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
import { isIP } from 'node:net';
import { normaliseSerial } from './fingerprint.js';

x509.cryptoProvider.set(webcrypto as never);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
/** Subjects and SANs come from our own ids and flags, but are bounded all the same. */
const MAX_NAME = 253;

export interface KeyPair {
  keys: CryptoKeyPair;
  /** The private key as PKCS#8 PEM, for node's tls and the key file. */
  privateKeyPem: string;
}

export async function newKeyPair(): Promise<KeyPair> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { keys, privateKeyPem: toPem(pkcs8, 'PRIVATE KEY') };
}

/** A key pair from its PKCS#8 PEM (the relay's CA key, read back from its file). */
export async function keyPairFromPem(privateKeyPem: string): Promise<KeyPair> {
  const der = createPrivateKey(privateKeyPem).export({ format: 'der', type: 'pkcs8' });
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, true, ['sign']);
  // The public half is derived from the private key's JWK (its x and y).
  const jwk = await webcrypto.subtle.exportKey('jwk', privateKey);
  const publicKey = await webcrypto.subtle.importKey('jwk', { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, ALGORITHM, true, ['verify']);
  return { keys: { privateKey, publicKey } as CryptoKeyPair, privateKeyPem };
}

function toPem(der: Buffer, label: string): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** A positive 128-bit serial, as hex (RFC 5280 wants at most 20 octets, positive). */
function newSerial(): string {
  const bytes = randomBytes(16);
  // Positive, and with no leading zero byte (DER drops it: the serial would read differently).
  bytes[0] = (bytes[0]! & 0x7f) | 0x10;
  return bytes.toString('hex');
}

function cn(value: string): string {
  if (value.length === 0 || value.length > 64 || /[,+="\\<>;#\n\r]/.test(value)) throw new Error(`not a usable certificate name: ${JSON.stringify(value.slice(0, 80))}`);
  return `CN=${value}`;
}

export interface IssuedCertificate {
  pem: string;
  serial: string;
  notAfter: number;
}

/** The relay's own CA: self-signed, for signing server and device certificates only. */
export async function makeCa(keys: KeyPair, commonName: string, lifetimeMs: number, now = Date.now()): Promise<IssuedCertificate> {
  const serial = newSerial();
  const notAfter = now + lifetimeMs;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial,
    name: cn(commonName),
    notBefore: new Date(now - 60_000),
    notAfter: new Date(notAfter),
    keys: keys.keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.keys.publicKey),
    ],
  });
  return { pem: cert.toString('pem') + '\n', serial, notAfter };
}

export interface Issuer {
  certPem: string;
  keys: KeyPair;
}

async function issue(issuer: Issuer, subject: string, publicKey: CryptoKey, lifetimeMs: number, extensions: x509.Extension[], now: number): Promise<IssuedCertificate> {
  const ca = new x509.X509Certificate(issuer.certPem);
  const serial = newSerial();
  // Never past the CA's own end: a client would refuse the chain then anyway.
  const notAfter = Math.min(now + lifetimeMs, ca.notAfter.getTime());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject,
    issuer: ca.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(notAfter),
    publicKey,
    signingKey: issuer.keys.keys.privateKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      await x509.AuthorityKeyIdentifierExtension.create(ca, false),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      ...extensions,
    ],
  });
  return { pem: cert.toString('pem') + '\n', serial, notAfter };
}

/** A server certificate for these DNS names and IP addresses (loopback included by the caller). */
export async function makeServerCert(issuer: Issuer, keys: KeyPair, names: string[], lifetimeMs: number, now = Date.now()): Promise<IssuedCertificate> {
  const altNames = names.filter((n) => n.length > 0 && n.length <= MAX_NAME).map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }));
  if (altNames.length === 0) throw new Error('a server certificate needs at least one name or address');
  return issue(
    issuer,
    cn((names.find((n) => !isIP(n)) ?? 'outpost-relay').slice(0, 64)),
    keys.keys.publicKey,
    lifetimeMs,
    [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(altNames, false),
    ],
    now,
  );
}

/** The request a device sends for its certificate: its public key, signed with its private key. */
export async function makeCsr(keys: KeyPair, commonName: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: cn(commonName), keys: keys.keys, signingAlgorithm: ALGORITHM });
  return csr.toString('pem') + '\n';
}

/** Largest CSR accepted: a P-256 one is under 600 bytes as PEM. */
export const MAX_CSR_BYTES = 4096;

/**
 * A client certificate for a device, from its CSR. The CSR must be well formed, signed by the
 * key it carries (so the device holds that key) and P-256; its subject is ignored: the
 * certificate's subject is the device id the relay gives, and nothing else.
 */
export async function signDeviceCsr(issuer: Issuer, csrPem: string, deviceId: string, lifetimeMs: number, now = Date.now()): Promise<IssuedCertificate> {
  // The "_" is what keeps a device's server name from being any real host's (see below).
  if (!/^dev_[0-9a-z]{1,60}$/.test(deviceId)) throw new Error(`not a device id: ${deviceId}`);
  if (typeof csrPem !== 'string' || csrPem.length > MAX_CSR_BYTES) throw new CsrError(`a CSR is at most ${MAX_CSR_BYTES} bytes of PEM`);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    throw new CsrError('the CSR is not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----)');
  }
  const algorithm = csr.publicKey.algorithm as webcrypto.EcKeyAlgorithm;
  if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-256') throw new CsrError('the CSR\'s key must be ECDSA P-256');
  let valid = false;
  try {
    valid = await csr.verify();
  } catch {
    valid = false;
  }
  if (!valid) throw new CsrError('the CSR\'s signature does not match its key');
  const publicKey = await csr.publicKey.export(ALGORITHM, ['verify']);
  // Also a server certificate for the name `deviceId` alone, for the agent's inference port
  // (`outpost-agent start --https`). Device ids contain "_", which no host name may: the
  // certificate can never pass for the relay or any other real host.
  return issue(
    issuer,
    cn(deviceId),
    publicKey,
    lifetimeMs,
    [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: deviceId }], false),
    ],
    now,
  );
}

const clientExtensions = () => [new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true), new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false)];

/**
 * A client certificate for a name the relay itself connects as (its MQTT user on an external
 * broker that takes the identity from the certificate, Mosquitto's `use_identity_as_username`).
 */
export async function makeClientCert(issuer: Issuer, keys: KeyPair, commonName: string, lifetimeMs: number, now = Date.now()): Promise<IssuedCertificate> {
  if (commonName.length === 0 || commonName.length > 64) throw new Error('a client certificate\'s name is 1 to 64 characters');
  return issue(issuer, cn(commonName), keys.keys.publicKey, lifetimeMs, clientExtensions(), now);
}

export class CsrError extends Error {
  override name = 'CsrError';
}

/** The certificate's subject CN, serial (hex, lower case) and end, read with node's own parser. */
export function describeCertificate(pem: string): { commonName: string | undefined; serial: string; notAfter: number; names: string[] } {
  const cert = new NodeCertificate(pem);
  const commonName = /^CN=(.*)$/m.exec(cert.subject)?.[1];
  const names = (cert.subjectAltName ?? '').split(', ').filter(Boolean).map((n) => n.replace(/^(DNS|IP Address):/, ''));
  return { commonName, serial: normaliseSerial(cert.serialNumber), notAfter: Date.parse(cert.validTo), names };
}
