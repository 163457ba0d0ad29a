// Which builds can read a Cassandra keyspace's data (docs/deploy.md, "Upgrades"): a node refuses
// to start, loudly, rather than serve from rows it cannot read or have older nodes choke on rows
// it writes.
//
// DATA_FORMAT is raised only when a build starts writing rows that older builds cannot read:
//   0  every build before this check;
//   1  federation_outbox rows of kind `pdu_ref` (the row names the event, which the sender reads
//      back from events: federation-queue.ts). A build at format 0 fails on every such row, so
//      its federation sender stops for that destination.
//
// Invariants:
// - data_format (migration 0026) holds the highest format any build has started on the keyspace.
//   A build finding it above its own DATA_FORMAT refuses to start (it cannot read what a newer
//   build wrote); otherwise it raises the row to its own before it writes anything.
// - Worker lease owners carry the format (`f<format>.<uuid>`); builds before this check wrote a
//   bare UUID. A build refuses to start while a live worker lease (TTL'd, renewed every second)
//   is held by an older format: that worker could not read what this one is about to write.
//   Revoked leases (`revoked:<owner>`) and owners of no known shape are not workers.
// - The check runs before this node claims its own worker lease. Two nodes starting at once may
//   both pass; a format-0 build, which has no check, starting after a newer one is not refused
//   (docs/deploy.md: stop every older worker first).

import { randomUUID } from 'node:crypto';
import type cassandra from 'cassandra-driver';

export const DATA_FORMAT = 1;

const OWNER = /^f(\d{1,6})\.[0-9a-f-]{36}$/;
const BARE_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class DataFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataFormatError';
  }
}

/** A new worker lease owner token for this build. */
export function workerLeaseOwner(): string {
  return `f${DATA_FORMAT}.${randomUUID()}`;
}

/** The data format of the build that holds a worker lease under `owner`; null: not a worker's lease. */
export function formatOfOwner(owner: string): number | null {
  const m = OWNER.exec(owner);
  if (m) return Number(m[1]);
  return BARE_UUID.test(owner) ? 0 : null;
}

/** Refuses (DataFormatError) a keyspace this build cannot share, else records its format there. */
export async function checkDataFormat(client: cassandra.Client, log?: { info?: (obj: object, msg: string) => void }): Promise<void> {
  const row = (await client.execute('SELECT format FROM data_format WHERE id = 0', [], { prepare: true })).first();
  const recorded = row ? Number(row['format']) : 0;
  if (recorded > DATA_FORMAT) {
    throw new DataFormatError(
      `this keyspace holds data of format ${recorded}, written by a newer Hearth; this build reads format ${DATA_FORMAT} at most. ` +
        'Run the newer build (docs/deploy.md, Upgrades); refusing to start rather than misread its rows.',
    );
  }
  const leases = await client.execute('SELECT id, owner FROM worker_leases', [], { prepare: true });
  for (const r of leases.rows) {
    const owner = r['owner'] as string | null;
    const format = owner === null ? null : formatOfOwner(owner);
    if (format !== null && format < DATA_FORMAT) {
      throw new DataFormatError(
        `worker ID ${String(r['id'])} is held by a live older Hearth (data format ${format}) that cannot read what this build writes (format ${DATA_FORMAT}). ` +
          'Stop every older worker first (docs/deploy.md, Upgrades); a crashed one\'s lease lapses within 10 s.',
      );
    }
  }
  if (recorded < DATA_FORMAT) {
    // Raised only: two builds starting at once leave the higher format.
    const rs = row
      ? await client.execute('UPDATE data_format SET format = ? WHERE id = 0 IF format < ?', [DATA_FORMAT, DATA_FORMAT], { prepare: true })
      : await client.execute('INSERT INTO data_format (id, format) VALUES (0, ?) IF NOT EXISTS', [DATA_FORMAT], { prepare: true });
    if (rs.first()?.['[applied]'] === false) return checkDataFormat(client, log);
    log?.info?.({ from: recorded, to: DATA_FORMAT }, 'cassandra: keyspace data format raised');
  }
}
