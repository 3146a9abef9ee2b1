export { createRelay, type Relay, type RelayOptions } from './relay.js';
export { readAdminToken, readRuntimeFile, ADMIN_TOKEN_FILE, RUNTIME_FILE, type RelayRuntimeFile } from './data-dir.js';
export type { Store } from './store/store.js';
