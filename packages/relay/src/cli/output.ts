// Output for people and for scripts: `--json` puts machine output on stdout; everything else
// (progress, hints) goes to stderr. Failures are one line and a non-zero exit.

/** An error the CLI reports as one line (`error: …`) and exit status 1. */
export class CliError extends Error {
  override name = 'CliError';

  /** The relay's error code, when the relay refused (OUTPOST_ERR_…): what callers decide on. */
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}

/** The relay did not answer at all (not running, restarting, or the network): worth waiting out. */
export class RelayUnreachableError extends CliError {
  override name = 'RelayUnreachableError';
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function print(line = ''): void {
  process.stdout.write(line + '\n');
}

export function note(line: string): void {
  process.stderr.write(line + '\n');
}

/** A plain text table: header row, then rows, columns padded to the widest cell. */
export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

export function ago(iso: string | null): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}
