// The --broker flag's NATS URLs, checked before anything heavy loads (the CLI parses them).

/** `nats://HOST:PORT[,nats://…]` (or `tls://`), checked: each a URL with a host. */
export function parseNatsUrls(text: string): string[] {
  const urls = text.split(',').map((u) => u.trim()).filter(Boolean);
  for (const u of urls) {
    const url = URL.canParse(u) ? new URL(u) : undefined;
    if (!url || !['nats:', 'tls:'].includes(url.protocol) || !url.hostname) throw new Error(`--broker ${JSON.stringify(u)} is not a NATS URL: give nats://HOST:4222 (a comma-separated list for a cluster)`);
    if (url.username || url.password) throw new Error(`--broker ${url.protocol}//${url.host}: leave the user out of the URL; the relay's NATS user is in --nats-credentials`);
  }
  if (urls.length === 0) throw new Error('--broker is empty: give nats://HOST:4222[,nats://…]');
  return urls;
}
