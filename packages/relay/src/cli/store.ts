// outpost-relay store migrate: move a stopped relay's workspace from SQLite (DATA_DIR/relay.db)
// into an empty PostgreSQL database, on the relay host (no running relay involved). The copy
// itself is store/store-migration.ts.

import { Option, type Command } from 'commander';
import { examples } from '@outpost/shared';
import { checkStoreUrl, passwordWarning, redactedUrl } from '../store/store-url.js';
import { defaultDataDir } from './client.js';
import { note, print, printJson, table } from './output.js';
import { countProgress } from './progress.js';

const count = (n: number) => n.toLocaleString('en-US');
const rowCount = (n: number) => `${count(n)} ${n === 1 ? 'row' : 'rows'}`;

export function storeCommand(program: Command): void {
  const store = program
    .command('store')
    .description("the relay's workspace database: move it from SQLite in the data dir to PostgreSQL")
    .addHelpText('after', examples('outpost-relay store migrate --from ~/.outpost/relay --to postgres://outpost@db.internal:5432/outpost'));

  store
    .command('migrate')
    .description("copy a stopped relay's SQLite workspace (DATA_DIR/relay.db) into an empty PostgreSQL database, checked table by table")
    .option('--from <dir>', 'the data dir of the relay to move (env OUTPOST_RELAY_DIR); relay.db there is only read', defaultDataDir())
    .addOption(new Option('--to <url>', 'the PostgreSQL database: postgres://USER@HOST:5432/DB, empty (password from PGPASSWORD or ~/.pgpass, not the command line)').env('OUTPOST_STORE_URL').makeOptionMandatory())
    .option('--json', 'print { from, to, tables: [{ name, rows, checksum }], rows } as JSON')
    .addHelpText('after', `
Stop the relay first: the command refuses a data dir whose relay is running. Every table is
copied in one PostgreSQL transaction, then read back and compared with relay.db (row counts and
a sha256 per table); any difference rolls it all back. The database may have the relay's schema
already but no rows: a database a relay has run on is refused. relay.db is left as it was; TLS
certificates, artifacts and job folders stay in the data dir, so start the relay with the same
--data-dir and --store URL.

Examples:
  PGPASSWORD=… outpost-relay store migrate --from ~/.outpost/relay --to postgres://outpost@db.internal:5432/outpost
  outpost-relay store migrate --from /var/lib/outpost-relay --to postgres://outpost@127.0.0.1/outpost --json
  outpost-relay start --data-dir ~/.outpost/relay --store postgres://outpost@db.internal:5432/outpost    # afterwards
`)
    .action(async (opts: { from: string; to: string; json?: boolean }) => {
      // Checked here, not by commander, whose message would repeat the value (and its password).
      checkStoreUrl(opts.to, '--to');
      const warning = passwordWarning(opts.to, '--to');
      if (warning) note(warning);
      // Loaded here so the other commands start fast.
      const { migrateStore } = await import('../store/store-migration.js');
      let bar: ReturnType<typeof countProgress> | undefined;
      const result = await migrateStore({
        dataDir: opts.from,
        url: opts.to,
        flag: '--to',
        progress: {
          note,
          tableStarted: (name, rows) => (bar = countProgress(name, rows)),
          rowsCopied: (_, done) => bar?.update(done, { detail: 'rows' }),
          tableCopied: (name, rows) => {
            bar?.stop();
            note(`${name}: ${rowCount(rows)}`);
          },
        },
      });
      note(`checked: every table's row count and checksum read back from PostgreSQL match relay.db; committed`);
      if (opts.json) printJson(result);
      else {
        print(table(['TABLE', 'ROWS', 'SHA256'], [...result.tables.map((t) => [t.name, count(t.rows), t.checksum.slice(0, 16)]), ['total', count(result.rows), '']]));
      }
      note(`next: outpost-relay start --data-dir ${opts.from} --store ${redactedUrl(opts.to).replace(/:\*\*\*@/, '@')}`);
    });
}
