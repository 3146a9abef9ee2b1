// The store contract (contract.ts) on PostgresStore: one private cluster for the file
// (helpers/postgres.ts), a new database per subtest. Skipped, with one line, where PostgreSQL
// cannot be had.

import t from 'tap';
import { PostgresStore } from '../../packages/relay/dist/store/postgres-store.js';
import { createDatabase, POSTGRES_SKIP, startPostgres } from '../helpers/postgres.js';
import { storeContract } from './contract.js';

const cluster = await startPostgres();
if (!cluster) {
  t.plan(0, POSTGRES_SKIP);
} else {
  t.teardown(cluster.stop);
  let n = 0;
  storeContract(
    'postgres',
    async () => {
      const store = await PostgresStore.open(await createDatabase(cluster.url, `contract_${++n}`));
      return { store, close: () => store.close() };
    }
  );
}
