// The serial of the certificate a TLS server shows (lower-case hex), read without verifying
// it: which certificate is served is the question, trust is other tests'.

import { connect as tlsConnect } from 'node:tls';

export function servedSerial(url: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false }, () => {
      const serial = socket.getPeerX509Certificate()?.serialNumber.toLowerCase();
      socket.end();
      if (serial) resolve(serial);
      else reject(new Error('no certificate'));
    });
    socket.once('error', reject);
  });
}
