// The --store URL: checked before anything opens, and never logged with its password.

/** `postgres://USER:PASS@HOST/DB` as `postgres://USER:***@HOST/DB`. */
export function redactedUrl(url: string): string {
  if (!URL.canParse(url)) return '(not a URL)';
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

/** Refuses what is not a PostgreSQL URL, with the form it takes. */
export function checkStoreUrl(url: string): string {
  const u = URL.canParse(url) ? new URL(url) : undefined;
  if (!u || (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') || !u.hostname) {
    throw new Error(`--store ${JSON.stringify(redactedUrl(url))} is not a PostgreSQL URL: give it as postgres://USER@HOST:5432/DB (the password in PGPASSWORD or ~/.pgpass), or leave --store out for SQLite in --data-dir`);
  }
  return url;
}
