// The store contract (contract.ts) on SqliteStore: a fresh database file per subtest, in a temp
// dir removed when the subtest ends.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../packages/relay/dist/store/sqlite-store.js';
import { storeContract } from './contract.js';

storeContract(
  'sqlite',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-store-contract-'));
    const store = new SqliteStore(join(dir, 'relay.db'));
    return {
      store,
      close: async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
);
