// A real Cassandra for the specs that need one: scripts/cassandra.sh starts a single node
// (installing JDK 17, Maven and the cassandra-all jars where missing) on a loopback port, once
// per machine; later calls find it running. If it cannot start, the calling hook throws and
// its tests fail loudly: they are never skipped. It is left running for the next test run;
// `npm run services:stop` stops it.
//
// Each caller gets its own keyspace, so suites (and concurrent test runs) never share data.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import cassandra from 'cassandra-driver';

const SCRIPT = fileURLToPath(new URL('../../../scripts/cassandra.sh', import.meta.url));

let address: Promise<string> | undefined;

/** Schema changes flush memtables: on a loaded 2-core machine they outlast the driver's 12 s default. */
const DDL_TIMEOUT_MS = 120_000;

/** host:port of the test node (starts it on first call). */
export function startCassandra(): Promise<string> {
  address ??= (async () => {
    try {
      const { stdout } = await promisify(execFile)(SCRIPT, ['start'], { encoding: 'utf8', timeout: 600_000 });
      const line = stdout.trim().split('\n').pop() ?? '';
      if (!/^[\d.]+:\d+$/.test(line)) throw new Error(`scripts/cassandra.sh start printed no address: ${stdout}`);
      return line;
    } catch (err) {
      address = undefined;
      const e = err as { stderr?: string; message: string };
      throw new Error(`could not start Cassandra with ${SCRIPT}: ${e.stderr || e.message}`);
    }
  })();
  return address;
}

/** A keyspace name no other suite uses. */
export function freshKeyspace(label: string): string {
  return `t_${label.replace(/[^a-z0-9]/g, '').slice(0, 20)}_${randomBytes(5).toString('hex')}`;
}

/** A plain client (no keyspace) on the test node, for setup and assertions. */
export async function cassandraClient(addr: string, keyspace?: string): Promise<cassandra.Client> {
  const c = new cassandra.Client({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace });
  await c.connect();
  return c;
}

/** Empties every table of the keyspace that holds a row (cheaper than recreating the schema). */
export async function truncateKeyspace(client: cassandra.Client, keyspace: string): Promise<void> {
  const rs = await client.execute(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?`, [keyspace], { prepare: true });
  for (const row of rs.rows) {
    const table = row['table_name'] as string;
    if (table === 'schema_migrations') continue;
    const probe = await client.execute(`SELECT * FROM ${keyspace}.${table} LIMIT 1`);
    if (probe.rowLength > 0) await client.execute(`TRUNCATE ${keyspace}.${table}`, [], { readTimeout: DDL_TIMEOUT_MS });
  }
}

export async function dropKeyspace(client: cassandra.Client, keyspace: string): Promise<void> {
  await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`, [], { readTimeout: DDL_TIMEOUT_MS });
}
