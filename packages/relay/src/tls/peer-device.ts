// The device a TLS connection's client certificate names. The certificate was checked against
// the relay's CA (and its dates) in the handshake; whether it still stands (the device exists,
// the serial is current) is the caller's question (fleet/device-certificates.ts).

import type { TLSSocket } from 'node:tls';
import { normaliseSerial } from '@outpost/shared';

const DEVICE_ID = /^dev_[0-9a-f]{12}$/;

/** Undefined when no certificate came (plain TCP, or none sent); why it is refused when it is bad. */
export function peerDevice(socket: TLSSocket | undefined): { deviceId: string; serial: string } | { refused: string } | undefined {
  if (!socket || typeof socket.getPeerCertificate !== 'function') return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  if (!socket.authorized) return { refused: `certificate not accepted (${String(socket.authorizationError)})` };
  const cn = cert.subject?.CN;
  if (typeof cn !== 'string' || !DEVICE_ID.test(cn)) return { refused: 'the certificate names no device' };
  return { deviceId: cn, serial: normaliseSerial(cert.serialNumber) };
}
