// The TLS options a test client needs for a relay it did not start itself (raw MQTT clients in
// the conformance cases, stream clients, which get only a URL): startRelay records each
// relay's CA under its hosts (host:port).

const byUrl = new Map<string, { ca?: string[] }>();

export function trustRelay(urls: string[], tls: { ca?: string[] }): void {
  for (const u of urls) byUrl.set(new URL(u).host, tls);
}

export function trustFor(url: string): { ca?: string[] } {
  return byUrl.get(new URL(url).host) ?? {};
}
