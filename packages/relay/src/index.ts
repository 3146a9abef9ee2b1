export { createRelay, readAdminToken, ADMIN_TOKEN_FILE, RUNTIME_FILE, type Relay, type RelayOptions, type RelayRuntimeFile } from './relay.js';
export type { Store } from './store/store.js';
