// `outpost-relay start --store`: what a person can get wrong gets one line naming the cause
// and the fix, never the password, and leaves nothing behind; a good URL starts the relay on
// PostgreSQL.

import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RELAY_BIN, closedPort, runCli, startRelay, tempDir } from '../helpers/programs.js';
import { createDatabase, POSTGRES_SKIP, startPostgres } from '../helpers/postgres.js';

const start = (dataDir: string, store: string, env: Record<string, string> = {}) =>
  runCli(RELAY_BIN, ['start', '--data-dir', dataDir, '--host', '127.0.0.1', '--http-port', '0', '--mqtt-port', '0', '--store', store], env);

t.test('a --store that is not a PostgreSQL URL is a usage error', async (t) => {
  for (const bad of ['mysql://db/outpost', 'not a url', 'postgres://', `postgres://h/${'x'.repeat(100_000)}`.replace('postgres://h/', 'pg://h/')]) {
    const res = await start(join(tempDir(t, 'relay-parent'), 'relay'), bad);
    t.equal(res.code, 1, `${bad.slice(0, 40)}: refused`);
    t.match(res.stderr, /--store .* is not a PostgreSQL URL: give it as postgres:\/\/USER@HOST:5432\/DB/);
    t.ok(res.stderr.length < 400, 'one short line, however long the value');
  }
});

t.test('a server that is not there: one line with the fix, the password never shown, nothing left', async (t) => {
  const port = await closedPort();
  const dataDir = join(tempDir(t, 'relay-parent'), 'relay');
  const res = await start(dataDir, `postgres://outpost:s3cret-pass@127.0.0.1:${port}/outpost`);
  t.equal(res.code, 1);
  t.match(res.stderr, new RegExp(`^error: cannot open PostgreSQL at postgres://outpost:\\*\\*\\*@127\\.0\\.0\\.1:${port}/outpost: .*ECONNREFUSED.*: check the host and port in --store, and that the server runs$`, 'm'));
  t.notMatch(res.stderr, /s3cret-pass/, 'no password in what it prints');
  t.match(res.stderr, /warning: --store holds a password/, 'and a password on the command line is warned about');
  t.notOk(existsSync(dataDir), 'a first start that failed leaves no data dir');
});

t.test('on a real PostgreSQL: a missing database is named, an existing one serves', async (t) => {
  const cluster = await startPostgres();
  if (!cluster) {
    t.skip(POSTGRES_SKIP, () => {});
    return;
  }
  t.teardown(cluster.stop);
  const missing = new URL(cluster.url);
  missing.pathname = '/no_such_db';
  const res = await start(join(tempDir(t, 'relay-parent'), 'relay'), missing.toString());
  t.equal(res.code, 1);
  t.match(res.stderr, /cannot open PostgreSQL at .*no_such_db: .*: create the database first \(createdb -O USER DB\)/);

  // Through the environment, as a service would pass it: no warning, and the relay runs on it.
  const url = await createDatabase(cluster.url, 'flag_ok');
  const relay = await startRelay(t, { extraArgs: ['--store', url] });
  t.ok(relay.logs.some((l) => l.msg === 'store: PostgreSQL'), 'the log says which store');
  t.equal((await relay.cli('devices', 'list')).code, 0);
  t.notOk(existsSync(join(relay.dataDir, 'relay.db')), 'no SQLite file beside it');
});
