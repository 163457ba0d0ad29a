// Pieces the Cassandra E2EE modules share: deterministic JSON for "same object" comparisons,
// the device-list change rows (bucketed by global position), and helpers for LWT outcomes.

import cassandra from 'cassandra-driver';
import type { JsonValue } from '../../protocol/types.js';
import type { CqlStatement } from './context.js';
import { positionBucket } from './positions.js';

/**
 * JSON with object keys sorted, so "the same object" compares equal as text however the client
 * ordered its keys (the same rule as the SQLite backend, so both agree on what is a conflict).
 */
export function stableJson(value: JsonValue): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
    const obj = v as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(obj)
        .sort()
        .map((k) => [k, obj[k]]),
    );
  });
}

/**
 * Rows recording that `userIds` changed at `pos` (partitioned by positionBucket, the hour of the
 * position, with an index row per non-empty bucket); written in the batch of the change itself.
 */
export function deviceListChangeStatements(pos: number, userIds: Iterable<string>, ownerOnly = false): CqlStatement[] {
  const bucket = positionBucket(pos);
  const out: CqlStatement[] = [];
  for (const userId of new Set(userIds)) {
    out.push({
      query: 'INSERT INTO e2ee_device_list_changes (bucket, stream, user_id, owner_only) VALUES (?, ?, ?, ?)',
      params: [bucket, pos, userId, ownerOnly],
    });
  }
  if (out.length > 0) out.push({ query: 'INSERT INTO e2ee_device_list_buckets (shard, bucket) VALUES (?, ?)', params: [0, bucket] });
  return out;
}

/** Takes back a change row written ahead of a write that then did not happen (its bucket's index row may stay: harmless). */
export function deviceListChangeRemoval(pos: number, userId: string): CqlStatement[] {
  return [{ query: 'DELETE FROM e2ee_device_list_changes WHERE bucket = ? AND stream = ? AND user_id = ?', params: [positionBucket(pos), pos, userId] }];
}

/**
 * A timed-out LWT may or may not have been applied: the caller must read back (at SERIAL) to
 * learn the outcome instead of assuming either.
 */
export function isCasTimeout(err: unknown): boolean {
  const e = err as { code?: number; writeType?: string } | null;
  return (
    e !== null &&
    typeof e === 'object' &&
    (e.code === cassandra.types.responseErrorCodes.writeTimeout || e.code === cassandra.types.responseErrorCodes.readTimeout) &&
    (e.writeType === undefined || e.writeType === 'CAS')
  );
}

export const SERIAL_READ = { consistency: cassandra.types.consistencies.localSerial };

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Runs `fn` over `items` with at most `width` in flight, keeping the results in order. */
export async function mapLimited<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return out;
}

/**
 * Splits statements into logged batches that stay well under the node's batch size limit
 * (batch_size_fail_threshold, 1 MiB on the test node), counting bound strings by length.
 */
export function sizedBatches(statements: CqlStatement[], maxBytes = 256 * 1024): CqlStatement[][] {
  const out: CqlStatement[][] = [];
  let cur: CqlStatement[] = [];
  let size = 0;
  for (const s of statements) {
    let n = 64;
    for (const p of s.params) n += typeof p === 'string' ? p.length * 3 : 8;
    if (cur.length > 0 && size + n > maxBytes) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(s);
    size += n;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}
