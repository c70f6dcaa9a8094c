// How every admin command reaches the store: load the config, become the service account, then
// open <data_dir>/postern.db. Switching first means the files the command creates belong to the
// account the server runs as, even when an admin runs the CLI as root.

import { join } from 'node:path';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { openSqliteStore } from '../store/sqlite-store.js';
import type { Store } from '../store/store.js';
import { dropPrivileges, prepareDataDir, requireProgramReachable, serviceAccount } from '../util/privileges.js';

/** `use` also gets the loaded config (e.g. `user add` reads [auth] to know which secrets to store). */
export async function withStore<T>(
  configPath: string | undefined,
  use: (store: Store, config: Config) => Promise<T>,
): Promise<T> {
  const { config } = loadConfig(configPath);
  const account = serviceAccount(config);
  requireProgramReachable(account);
  prepareDataDir(config.data_dir, account);
  dropPrivileges(account);
  const store = openSqliteStore(join(config.data_dir, 'postern.db'));
  try {
    return await use(store, config);
  } finally {
    await store.close();
  }
}
