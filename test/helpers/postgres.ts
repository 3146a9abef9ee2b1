// A private PostgreSQL cluster for the tests: initdb into a fresh temp dir, a free loopback port,
// trust auth on 127.0.0.1 only, its socket in that dir, fsync off. As root it runs as the
// `postgres` user (PostgreSQL refuses to run as root). Debian keeps initdb and pg_ctl in
// /usr/lib/postgresql/<version>/bin, off the PATH; where they are missing, root installs the
// `postgresql` package once (system-package.ts), and otherwise callers skip with POSTGRES_SKIP.

import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { closedPort } from './programs.js';
import { needPackage } from './system-package.js';
import { waitFor } from './wait.js';

/** The line a test skips with when there is no PostgreSQL to run. */
export const POSTGRES_SKIP = 'needs PostgreSQL’s initdb and pg_ctl (apt-get install -y postgresql)';

/** node-postgres, from the relay (its dependency), with just what this helper uses. */
interface PgClient {
  connect(): Promise<void>;
  query(sql: string): Promise<unknown>;
  end(): Promise<void>;
  on(event: 'error', listener: (err: Error) => void): unknown;
}
const relayRequire = createRequire(fileURLToPath(new URL('../../packages/relay/package.json', import.meta.url)));
const { Client } = relayRequire('pg') as { Client: new (config: { connectionString: string; connectionTimeoutMillis?: number }) => PgClient };

/** The folder with initdb and pg_ctl: the newest /usr/lib/postgresql/<version>/bin, else the PATH's. */
function findBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl'))) : [];
  versions.sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
  if (versions[0]) return join(root, versions[0], 'bin');
  const found = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' });
  const initdb = found.status === 0 ? found.stdout.trim() : '';
  if (initdb && existsSync(join(initdb, '..', 'pg_ctl'))) return join(initdb, '..');
  return undefined;
}

let bin: string | undefined | null = null;

/** Where initdb and pg_ctl are (installing them as root, once), or undefined. */
function postgresBin(): string | undefined {
  if (bin !== null) return bin;
  bin = findBin();
  if (!bin) {
    // As root, install the package (telling it to make no cluster of its own, which it would
    // start); needPackage's answer is about the PATH, which Debian's initdb is not on.
    if (process.getuid?.() === 0) {
      mkdirSync('/etc/postgresql-common/createcluster.d', { recursive: true });
      writeFileSync('/etc/postgresql-common/createcluster.d/outpost-tests.conf', 'create_main_cluster = false\n');
    }
    needPackage('initdb', 'postgresql');
    bin = findBin();
  }
  return bin;
}

/** false when PostgreSQL can be run here, else the skip line (for tap's `skip`). */
export function postgresMissing(): false | string {
  return postgresBin() ? false : POSTGRES_SKIP;
}

export interface TestPostgres {
  /** The cluster's superuser on its `postgres` database. */
  url: string;
  stop: () => Promise<void>;
}

/** Starts a private cluster, or resolves undefined when PostgreSQL is not to be had (skip with POSTGRES_SKIP). */
export async function startPostgres(): Promise<TestPostgres | undefined> {
  const dir = postgresBin();
  if (!dir) return undefined;
  const root = process.getuid?.() === 0;
  // PostgreSQL refuses to run as root: as root, its programs run as the `postgres` user, who owns the dir.
  const as = (program: string, args: string[]) => (root ? ['runuser', ['-u', 'postgres', '--', join(dir, program), ...args]] : [join(dir, program), args]) as [string, string[]];
  const base = mkdtempSync(join(tmpdir(), 'outpost-postgres-'));
  if (root) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(base, uid, gid);
  }
  const data = join(base, 'data');
  const logFile = join(base, 'server.log');
  const port = await closedPort();
  let stopped = false;
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', stopNow);
    if (existsSync(join(data, 'postmaster.pid'))) spawnSync(...as('pg_ctl', ['stop', '-D', data, '-m', 'immediate']), { stdio: 'ignore', timeout: 60_000 });
    rmSync(base, { recursive: true, force: true });
  };
  // Should the test process end without stopping it, the cluster goes with it.
  process.on('exit', stopNow);
  try {
    const init = spawnSync(...as('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']), { encoding: 'utf8', timeout: 120_000 });
    if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.error?.message}`);
    // Trust on 127.0.0.1 only: no other host line, and the socket lives in the private dir.
    writeFileSync(join(data, 'pg_hba.conf'), ['local all all trust', 'host all all 127.0.0.1/32 trust', ''].join('\n'));
    const options = ['-c listen_addresses=127.0.0.1', `-c port=${port}`, `-c unix_socket_directories=${base}`, '-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off', '-c max_connections=100'].join(' ');
    const start = spawnSync(...as('pg_ctl', ['start', '-D', data, '-l', logFile, '-W', '-o', options]), { encoding: 'utf8', timeout: 60_000 });
    if (start.status !== 0) throw new Error(`pg_ctl start failed: ${start.stderr || start.error?.message}`);
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const ready = await waitFor(
      `PostgreSQL on port ${port}`,
      async (): Promise<true | { failed: string } | undefined> => {
        const client = new Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
        client.on('error', () => undefined);
        try {
          await client.connect();
          await client.query('SELECT 1');
          return true;
        } catch (err) {
          // A server that failed to start has removed its pid file and said why in its log.
          const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
          if (/FATAL|PANIC/.test(log) && !existsSync(join(data, 'postmaster.pid'))) return { failed: log.trim().split('\n').slice(-5).join(' | ') };
          throw err;
        } finally {
          await client.end().catch(() => undefined);
        }
      },
      30_000,
      100,
    );
    if (ready !== true) throw new Error(`PostgreSQL did not start: ${ready.failed}`);
    return { url, stop: async () => stopNow() };
  } catch (err) {
    stopNow();
    throw err;
  }
}

/** A new, empty database on the cluster at `url`; resolves its URL. `name` must be a plain identifier. */
export async function createDatabase(url: string, name: string, opts: { icuLocale?: string } = {}): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`);
  if (opts.icuLocale !== undefined && !/^[A-Za-z0-9-]+$/.test(opts.icuLocale)) throw new Error(`not an ICU locale: ${opts.icuLocale}`);
  const client = new Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    // A database's name and locale cannot be parameters; both were checked above.
    const locale = opts.icuLocale === undefined ? '' : ` TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '${opts.icuLocale}'`;
    await client.query(`CREATE DATABASE ${name}${locale}`);
  } finally {
    await client.end();
  }
  const next = new URL(url);
  next.pathname = `/${name}`;
  return next.toString();
}
