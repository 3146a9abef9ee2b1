// CA certificates from a PEM text someone else wrote (an operator's --mqtt-ca file, the
// relay's enrollment answer), written out again from what parsed: only CA certificates pass
// on, never whatever else the text holds. One check for the relay and the agent alike.

import { X509Certificate } from 'node:crypto';

/** Largest PEM text taken: a chain of a few certificates is a few KiB. */
export const MAX_CA_PEM_BYTES = 64 * 1024;

/** The CA certificates in `text` as PEM, or why it is not a set of CA certificates. */
export function caCertificates(text: string): { ok: true; pem: string } | { ok: false; reason: string } {
  if (/PRIVATE KEY-----/.test(text)) return { ok: false, reason: "holds a private key: give a file with the CA's certificate alone (it is handed to every device)" };
  const blocks = text.length <= MAX_CA_PEM_BYTES ? (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) : [];
  if (blocks.length === 0) return { ok: false, reason: 'no PEM certificate in it (-----BEGIN CERTIFICATE-----, at most 64 KiB)' };
  let pem = '';
  for (const block of blocks) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch {
      return { ok: false, reason: 'a certificate in it does not parse' };
    }
    if (!cert.ca) return { ok: false, reason: `${cert.subject.replace(/\n/g, ', ')} is not a CA certificate: give the CA that signed the broker's certificate` };
    pem += cert.toString();
  }
  return { ok: true, pem };
}

/** MQTT URLs that are TLS: the only ones to hand TLS options (MQTT.js turns mqtt:// into TLS when given a certificate). */
export function isTlsBrokerUrl(url: string): boolean {
  return /^(mqtts|wss):/i.test(url);
}
