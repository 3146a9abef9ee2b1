// A PostgreSQL URL (--store, and `store migrate --to`): checked before anything opens, and never
// logged with its password. `flag` names the option the URL came from in what is printed.

/** `postgres://USER:PASS@HOST/DB` as `postgres://USER:***@HOST/DB`. */
export function redactedUrl(url: string): string {
  if (!URL.canParse(url)) return '(not a URL)';
  const u = new URL(url);
  if (u.password) u.password = '***';
  const shown = u.toString();
  return shown.length > 120 ? `${shown.slice(0, 120)}…` : shown;
}

/** A failed connection to the URL as one line that names the cause and the fix (never the password). */
export function storeOpenFailure(url: string, err: unknown, flag = '--store'): Error {
  const e = err as { code?: string; message?: string };
  const where = `PostgreSQL at ${redactedUrl(url)}`;
  const fix =
    e.code === '28P01' || e.code === '28000' ? 'check the user, and its password in PGPASSWORD or ~/.pgpass'
    : e.code === '3D000' ? 'create the database first (createdb -O USER DB)'
    : e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || e.code === 'EHOSTUNREACH' || e.code === 'ETIMEDOUT' ? `check the host and port in ${flag}, and that the server runs`
    : `check ${flag} and the server's log`;
  return Object.assign(new Error(`cannot open ${where}: ${e.message ?? String(err)}: ${fix}`), { code: e.code });
}

/** Refuses what is not a PostgreSQL URL, with the form it takes. */
export function checkStoreUrl(url: string, flag = '--store'): string {
  const u = URL.canParse(url) ? new URL(url) : undefined;
  if (!u || (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') || !u.hostname) {
    const shown = u ? redactedUrl(url) : url.length > 40 ? `${url.slice(0, 40)}…` : url;
    const otherwise = flag === '--store' ? ', or leave --store out for SQLite in --data-dir' : '';
    throw new Error(`${flag} ${JSON.stringify(shown)} is not a PostgreSQL URL: give it as postgres://USER@HOST:5432/DB (the password in PGPASSWORD or ~/.pgpass)${otherwise}`);
  }
  return url;
}

/**
 * The warning for a password written in the URL on the command line (other users of the host
 * read it in the process list); none when the URL came from OUTPOST_STORE_URL or has no password.
 */
export function passwordWarning(url: string, flag: string): string | undefined {
  if (url === process.env.OUTPOST_STORE_URL || !URL.canParse(url) || !new URL(url).password) return undefined;
  return `warning: ${flag} holds a password, which other users of this host can read in the process list: put it in PGPASSWORD or ~/.pgpass, or pass the URL in OUTPOST_STORE_URL`;
}
