// Applies numbered CQL migrations (./migrations) to a keyspace, creating it when asked.
// Two instances may migrate at once: every statement is IF NOT EXISTS, and a version is
// recorded only after all of its statements ran.

import type cassandra from 'cassandra-driver';
import type { CqlMigration } from './migrations/index.js';

const KEYSPACE_RE = /^[a-z][a-z0-9_]{0,47}$/;
/**
 * Schema changes wait for the schema to agree and flush memtables: on a busy node they outlast
 * the driver's 12 s default read timeout (seen starting `bench --cluster` on a loaded node), and
 * a start that gives up half-way must be retried; allow them much longer.
 */
const DDL = { readTimeout: 120_000 };

export function checkKeyspaceName(ks: string): string {
  if (!KEYSPACE_RE.test(ks)) throw new Error(`invalid keyspace name ${JSON.stringify(ks)}: use [a-z][a-z0-9_]{0,47}`);
  return ks;
}

export async function createKeyspace(client: cassandra.Client, ks: string, replicationFactor: number): Promise<void> {
  checkKeyspaceName(ks);
  if (!Number.isInteger(replicationFactor) || replicationFactor < 1) throw new Error('replication factor must be >= 1');
  await client.execute(
    `CREATE KEYSPACE IF NOT EXISTS ${ks} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': ${replicationFactor}}`,
    [],
    DDL,
  );
}

/** Runs the missing migrations on the client's keyspace; returns the versions applied. */
export async function migrate(
  client: cassandra.Client,
  migrations: readonly CqlMigration[],
  log?: { info?: (obj: object, msg: string) => void },
): Promise<number[]> {
  await client.execute(`CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text, applied_ts bigint)`, [], DDL);
  const rs = await client.execute(`SELECT version FROM schema_migrations`);
  const done = new Set(rs.rows.map((r) => r['version'] as number));
  const applied: number[] = [];
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (done.has(m.version)) continue;
    for (const stmt of m.statements) await client.execute(stmt, [], DDL);
    await client.execute(`INSERT INTO schema_migrations (version, name, applied_ts) VALUES (?, ?, ?)`, [m.version, m.name, Date.now()], {
      prepare: true,
    });
    log?.info?.({ version: m.version, name: m.name }, 'cassandra: applied migration');
    applied.push(m.version);
  }
  return applied;
}
