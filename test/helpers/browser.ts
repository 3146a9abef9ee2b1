// Headless Chromium for dashboard tests, trusting exactly one relay's certificate (its key's
// SPKI hash, as Chromium's --ignore-certificate-errors-spki-list takes it), as a person who
// imported the relay's CA would; any other certificate still fails.

import { X509Certificate, createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** base64 sha256 of the relay server certificate's public key. */
export function serverSpki(dataDir: string): string {
  const cert = new X509Certificate(readFileSync(join(dataDir, 'tls/server.crt')));
  return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
}

export function launchBrowser(relay: { dataDir: string; httpUrl: string }): Promise<Browser> {
  const trust = relay.httpUrl.startsWith('https:') && existsSync(join(relay.dataDir, 'tls/server.crt')) ? [`--ignore-certificate-errors-spki-list=${serverSpki(relay.dataDir)}`] : [];
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [...trust, '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
