// Helpers shared by the room modules: bucket arithmetic, paged scans, bounded parallel reads and
// the event row <-> StoredEvent mapping.
//
// Buckets: timeline and state-change rows live in partitions (room_id, streamBucket(stream)):
// the hour a position's clock tick stands for (backfill's negative positions: blocks of 4,096),
// see positionBucket in positions.ts. Topological rows live in (room_id, floor(depth /
// DEPTH_BUCKET)). Either way a quiet room's buckets are sparse; room_buckets lists the non-empty
// ones and every scan walks that list instead of probing bucket numbers.

import type cassandra from 'cassandra-driver';
import type { Pdu } from '../../protocol/types.js';
import type { StoredEvent } from '../types.js';
import { jsonParse, num, type CassandraContext } from './context.js';
import { positionBucket } from './positions.js';

/** Depths per topological bucket. */
export const DEPTH_BUCKET = 1024;
/** room_buckets kinds. */
export const KIND_TIMELINE = 't';
export const KIND_TOPO = 'o';
export const KIND_STATE = 's';

export const MIN = Number.MIN_SAFE_INTEGER;
export const MAX = Number.MAX_SAFE_INTEGER;

/** The partition bucket of a stream position (monotonic in the position). */
export function streamBucket(pos: number): number {
  return positionBucket(pos);
}

export function depthBucket(depth: number): number {
  return Math.floor(depth / DEPTH_BUCKET);
}

/** Rows of a query, page by page (the driver's paging), stopping when the consumer stops. */
export async function* scan(
  ctx: CassandraContext,
  query: string,
  params: unknown[],
  fetchSize = 200,
): AsyncGenerator<cassandra.types.Row> {
  let pageState: string | undefined;
  do {
    const rs = await ctx.execute(query, params, { fetchSize, pageState });
    for (const row of rs.rows) yield row;
    pageState = rs.pageState ?? undefined;
  } while (pageState);
}

/** The room's non-empty buckets of `kind` in [lo, hi], ascending or descending. */
export async function* roomBuckets(
  ctx: CassandraContext,
  roomId: string,
  kind: string,
  lo: number,
  hi: number,
  desc: boolean,
): AsyncGenerator<number> {
  if (lo > hi) return;
  const order = desc ? 'ORDER BY kind DESC, bucket DESC' : 'ORDER BY kind ASC, bucket ASC';
  const q = `SELECT bucket FROM room_buckets WHERE room_id = ? AND kind = ? AND bucket >= ? AND bucket <= ? ${order}`;
  for await (const row of scan(ctx, q, [roomId, kind, lo, hi], 100)) yield num(row['bucket']);
}

/** fn over items with at most `limit` in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Point reads by event ID, in parallel; missing IDs are absent. */
export async function readEventRows(
  ctx: CassandraContext,
  ids: Iterable<string>,
  columns: string,
): Promise<Map<string, cassandra.types.Row>> {
  const unique = [...new Set(ids)];
  const out = new Map<string, cassandra.types.Row>();
  await mapLimit(unique, 64, async (id) => {
    const rs = await ctx.execute(`SELECT ${columns} FROM events WHERE event_id = ?`, [id]);
    const row = rs.first();
    if (row) out.set(id, row);
  });
  return out;
}

export const EVENT_COLUMNS = 'event_id, room_id, stream, pdu_json, redacted_by, txn_device, txn_id, outlier, soft_failed, rejected';

export function toStoredEvent(row: cassandra.types.Row): StoredEvent {
  const txnDevice = row['txn_device'] as string | null;
  const txnId = row['txn_id'] as string | null;
  return {
    eventId: row['event_id'] as string,
    roomId: row['room_id'] as string,
    stream: num(row['stream']),
    pdu: jsonParse<Pdu>(row['pdu_json'] as string),
    redactedBy: (row['redacted_by'] as string | null) ?? null,
    txn: txnDevice !== null && txnDevice !== undefined && txnId !== null && txnId !== undefined ? { deviceId: txnDevice, txnId } : null,
    outlier: row['outlier'] === true,
    softFailed: row['soft_failed'] === true,
    rejected: (row['rejected'] as string | null) ?? null,
  };
}

/** Stored events by ID (missing ones absent), as independent objects. */
export async function getStoredEvents(ctx: CassandraContext, ids: Iterable<string>): Promise<Map<string, StoredEvent>> {
  const rows = await readEventRows(ctx, ids, EVENT_COLUMNS);
  const out = new Map<string, StoredEvent>();
  for (const [id, row] of rows) out.set(id, toStoredEvent(row));
  return out;
}

/** Sorts state entries by (type, state key), the order SQLite returns groups in. */
export function byKey<T extends { type: string; stateKey: string }>(a: T, b: T): number {
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  return a.stateKey < b.stateKey ? -1 : a.stateKey > b.stateKey ? 1 : 0;
}
