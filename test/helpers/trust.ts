// The TLS options a test client needs for a relay it did not start itself (raw MQTT clients in
// the conformance cases, stream clients, which get only a URL): startRelay records each
// relay's CA under its hosts (host:port).

import type { TlsClientOptions } from '@outpost/shared';

const byUrl = new Map<string, TlsClientOptions>();

export function trustRelay(urls: string[], tls: TlsClientOptions): void {
  for (const u of urls) byUrl.set(new URL(u).host, tls);
}

export function trustFor(url: string): TlsClientOptions {
  return byUrl.get(new URL(url).host) ?? {};
}
