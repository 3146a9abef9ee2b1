// Which store the tests' relays run on: SQLite in their data dir (the default), or PostgreSQL
// with OUTPOST_TEST_STORE=postgres (CI runs the suite both ways): then one private cluster per
// test file, and one database per relay data dir, so a relay restarted on its data dir finds
// its workspace again.

import { createDatabase, POSTGRES_SKIP, startPostgres, type TestPostgres } from './postgres.js';

export const TEST_STORE: 'sqlite' | 'postgres' = process.env.OUTPOST_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite';

let cluster: Promise<TestPostgres> | undefined;
const databases = new Map<string, Promise<string>>();

/** The environment that points a relay started on `dataDir` at its store (none for SQLite). */
export async function storeEnv(dataDir: string): Promise<Record<string, string>> {
  if (TEST_STORE === 'sqlite') return {};
  // Stopped when the test process exits (helpers/postgres.ts).
  cluster ??= startPostgres().then((c) => {
    if (!c) throw new Error(`OUTPOST_TEST_STORE=postgres ${POSTGRES_SKIP}`);
    return c;
  });
  let url = databases.get(dataDir);
  if (!url) {
    const name = `relay_${databases.size + 1}`;
    url = cluster.then((c) => createDatabase(c.url, name));
    databases.set(dataDir, url);
  }
  return { OUTPOST_STORE_URL: await url };
}
