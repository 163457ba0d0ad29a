// Opens the configured storage backend: the one place that knows which backends exist.

import type { HearthConfig } from '../config/schema.js';
import type { StoreBackend } from './types.js';

export interface BackendLogger {
  warn: (obj: object, msg: string) => void;
  info: (obj: object, msg: string) => void;
}

export async function openStoreBackend(storage: HearthConfig['storage'], logger: BackendLogger): Promise<StoreBackend> {
  if (storage.backend === 'cassandra') {
    const c = storage.cassandra;
    const { openCassandraStore } = await import('./cassandra/index.js');
    return openCassandraStore({
      contactPoints: c.contact_points,
      localDataCenter: c.local_datacenter,
      keyspace: c.keyspace,
      replicationFactor: c.replication_factor,
      credentials: c.username !== null && c.password !== null ? { username: c.username, password: c.password } : undefined,
      logger,
    });
  }
  const { openSqliteStore } = await import('./sqlite/index.js');
  return openSqliteStore({ path: storage.sqlite.path, synchronous: storage.sqlite.synchronous, logger });
}
