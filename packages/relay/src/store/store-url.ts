// The --store URL: checked before anything opens, and never logged with its password.

/** `postgres://USER:PASS@HOST/DB` as `postgres://USER:***@HOST/DB`. */
export function redactedUrl(url: string): string {
  if (!URL.canParse(url)) return '(not a URL)';
  const u = new URL(url);
  if (u.password) u.password = '***';
  const shown = u.toString();
  return shown.length > 120 ? `${shown.slice(0, 120)}…` : shown;
}

/** A failed connection to --store as one line that names the cause and the fix (never the password). */
export function storeOpenFailure(url: string, err: unknown): Error {
  const e = err as { code?: string; message?: string };
  const where = `PostgreSQL at ${redactedUrl(url)}`;
  const fix =
    e.code === '28P01' || e.code === '28000' ? 'check the user, and its password in PGPASSWORD or ~/.pgpass'
    : e.code === '3D000' ? 'create the database first (createdb -O USER DB)'
    : e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || e.code === 'EHOSTUNREACH' || e.code === 'ETIMEDOUT' ? 'check the host and port in --store, and that the server runs'
    : 'check --store and the server\'s log';
  return Object.assign(new Error(`cannot open ${where}: ${e.message ?? String(err)}: ${fix}`), { code: e.code });
}

/** Refuses what is not a PostgreSQL URL, with the form it takes. */
export function checkStoreUrl(url: string): string {
  const u = URL.canParse(url) ? new URL(url) : undefined;
  if (!u || (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') || !u.hostname) {
    const shown = u ? redactedUrl(url) : url.length > 40 ? `${url.slice(0, 40)}…` : url;
    throw new Error(`--store ${JSON.stringify(shown)} is not a PostgreSQL URL: give it as postgres://USER@HOST:5432/DB (the password in PGPASSWORD or ~/.pgpass), or leave --store out for SQLite in --data-dir`);
  }
  return url;
}
