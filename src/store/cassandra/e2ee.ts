// E2eeStore on Cassandra: the device-list change stream, to-device messages and device removal
// here; key material in e2ee-keys.ts, room key backup in e2ee-backup.ts. Same results and change
// records as ../sqlite/e2ee.ts.
//
// Invariants and why:
// - Positions are sparse per-worker clocks (./positions.ts): rows are bucketed by
//   positionBucket (the hour of the position), ranges are "> from", never "from + 1".
// - Device-list changes are rows (bucket, stream, user_id), written at their position through
//   ctx.writeAtPosition in the batch of the change; a bucket index row lets a wide range
//   (/keys/changes from an old token) visit only buckets that hold changes.
// - To-device messages live in per-device partitions bucketed by position, with a per-device
//   index of non-empty buckets. A device's acknowledgement does not delete messages: it raises
//   the device's `acked` watermark (a static cell written USING TIMESTAMP = the acked position,
//   so the highest acknowledgement wins whatever order concurrent acks land in, without an LWT),
//   readers start above it, and a bucket wholly below it (an earlier hour than the watermark's)
//   is dropped with one partition delete. No per-message tombstones, so a device that syncs
//   constantly never reads through a tombstone storm.
// - An acknowledgement moves the watermark to the newest message it covers, not to the
//   acknowledged position itself: like SQLite's delete, it removes the messages that exist and
//   nothing queued later, even when `since` (client-supplied) is above every completed position
//   or another instance is slower to complete a lower position. Reads are bounded by the
//   caller's `upTo` only (as on SQLite), so an idle instance, whose own position lags the
//   cluster watermark its tokens come from, still delivers other instances' messages. What a
//   watermark cannot do is let through a message that completes later at a position below an
//   acknowledged one; tokens at or below the cluster watermark (src/cluster/replication.ts)
//   rule that out.
// - Deleting a device acknowledges everything up to the deletion's position, so a new device
//   reusing the ID sees only messages queued after it.

import { E2eeDelegation } from '../e2ee-delegation.js';
import type { JsonObject } from '../../protocol/types.js';
import type { E2eeStore, ToDeviceInput, ToDeviceMessage } from '../e2ee-types.js';
import { jsonParse, num, numOrNull, type CassandraContext, type CqlStatement } from './context.js';
import { CassandraE2eeBackup } from './e2ee-backup.js';
import { deviceListChangeStatements, mapLimited, sizedBatches } from './e2ee-common.js';
import { CassandraE2eeKeys } from './e2ee-keys.js';
import { positionBucket } from './positions.js';

/** Ranges spanning fewer device-list buckets than this are read without the bucket index. */
const DIRECT_BUCKETS = 4;

interface DeviceIndex {
  acked: number;
  buckets: number[];
}

export class CassandraE2eeStore extends E2eeDelegation<CassandraE2eeKeys, CassandraE2eeBackup> implements E2eeStore {
  constructor(private readonly ctx: CassandraContext) {
    super(new CassandraE2eeKeys(ctx), new CassandraE2eeBackup(ctx));
  }

  // ---- device-list change stream -----------------------------------------------------------

  async markDeviceListChanged(userId: string): Promise<number> {
    this.ctx.checkOpen();
    return this.ctx.writeAtPosition(
      async (pos) => {
        await this.ctx.batch(deviceListChangeStatements(pos, [userId]));
        return pos;
      },
      (_r, pos) => ({ kind: 'device_list', stream: pos, userIds: [userId] }),
    );
  }

  async getDeviceListChanges(fromExclusive: number, toInclusive: number, owner?: string): Promise<string[]> {
    this.ctx.checkOpen();
    if (toInclusive <= fromExclusive) return [];
    const first = positionBucket(fromExclusive);
    const last = positionBucket(toInclusive);
    let buckets: number[];
    if (last - first < DIRECT_BUCKETS) {
      buckets = Array.from({ length: last - first + 1 }, (_, i) => first + i);
    } else {
      const rows = await this.ctx.all('SELECT bucket FROM e2ee_device_list_buckets WHERE shard = ? AND bucket >= ? AND bucket <= ?', [0, first, last]);
      buckets = rows.map((r) => num(r['bucket']));
    }
    const rows = await mapLimited(buckets, 8, (b) =>
      this.ctx.all('SELECT user_id, owner_only FROM e2ee_device_list_changes WHERE bucket = ? AND stream > ? AND stream <= ?', [b, fromExclusive, toInclusive]),
    );
    const users = new Set<string>();
    for (const r of rows.flat()) {
      const userId = r['user_id'] as string;
      if (r['owner_only'] !== true || userId === owner) users.add(userId);
    }
    return [...users].sort();
  }

  // ---- to-device messages ------------------------------------------------------------------

  async queueToDevice(messages: ToDeviceInput[]): Promise<number> {
    this.ctx.checkOpen();
    const rows = messages.map((m) => ({
      userId: m.userId,
      deviceId: m.deviceId,
      type: m.type,
      sender: m.sender,
      contentJson: JSON.stringify(m.content),
    }));
    return this.ctx.writeAtPosition(
      async (pos) => {
        const bucket = positionBucket(pos);
        const index = new Map<string, CqlStatement>();
        const inserts: CqlStatement[] = [];
        for (const [seq, m] of rows.entries()) {
          index.set(JSON.stringify([m.userId, m.deviceId]), {
            query: 'INSERT INTO e2ee_to_device_index (user_id, device_id, bucket) VALUES (?, ?, ?)',
            params: [m.userId, m.deviceId, bucket],
          });
          inserts.push({
            query: `INSERT INTO e2ee_to_device (user_id, device_id, bucket, stream, seq, type, sender, content_json)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
            params: [m.userId, m.deviceId, bucket, pos, seq, m.type, m.sender, m.contentJson],
          });
        }
        // Index rows first: a fan-out too large for one batch is split, and every message
        // written must already be findable. Should a later part fail, the position is
        // abandoned but the earlier parts stay: a partial delivery, never a lost index.
        for (const part of sizedBatches([...index.values(), ...inserts])) await this.ctx.batch(part);
        return pos;
      },
      (_r, pos) => ({ kind: 'to_device', stream: pos, targets: rows.map((m) => ({ userId: m.userId, deviceId: m.deviceId })) }),
    );
  }

  async getToDevice(userId: string, deviceId: string, upTo: number, limit: number): Promise<ToDeviceMessage[]> {
    this.ctx.checkOpen();
    const n = Math.floor(limit);
    if (!(n > 0)) return [];
    const hi = upTo;
    const idx = await this.deviceIndex(userId, deviceId);
    if (hi <= idx.acked) return [];
    const out: ToDeviceMessage[] = [];
    // A limit may end inside the messages of one position; callers that acknowledge by position
    // lower their bound for that (see src/sync/device-source.ts), as on SQLite.
    for (const b of idx.buckets) {
      if (b < positionBucket(idx.acked) || b > positionBucket(hi)) continue;
      const rs = await this.ctx.execute(
        `SELECT stream, type, sender, content_json FROM e2ee_to_device
         WHERE user_id = ? AND device_id = ? AND bucket = ? AND stream > ? AND stream <= ? LIMIT ?`,
        [userId, deviceId, b, idx.acked, hi, n - out.length],
      );
      for (const r of rs.rows) {
        out.push({
          stream: num(r['stream']),
          type: r['type'] as string,
          sender: r['sender'] as string,
          content: jsonParse<JsonObject>(r['content_json'] as string),
        });
      }
      if (out.length >= n) break;
    }
    return out;
  }

  async ackToDevice(userId: string, deviceId: string, upTo: number): Promise<void> {
    this.ctx.checkOpen();
    const idx = await this.deviceIndex(userId, deviceId);
    // Called on every /sync with a since token; most have nothing to acknowledge and write nothing.
    if (upTo <= idx.acked) return;
    const first = positionBucket(idx.acked);
    const last = positionBucket(upTo);
    const candidates = idx.buckets.filter((b) => b >= first && b <= last).reverse();
    let newest: number | null = null;
    for (const b of candidates) {
      const row = (
        await this.ctx.execute(
          `SELECT stream FROM e2ee_to_device WHERE user_id = ? AND device_id = ? AND bucket = ? AND stream > ? AND stream <= ?
           ORDER BY stream DESC LIMIT 1`,
          [userId, deviceId, b, idx.acked, upTo],
        )
      ).first();
      if (row !== null) {
        newest = num(row['stream']);
        break;
      }
    }
    if (newest === null) return;
    await this.ctx.execute('UPDATE e2ee_to_device_index USING TIMESTAMP ? SET acked = ? WHERE user_id = ? AND device_id = ?', [
      newest,
      newest,
      userId,
      deviceId,
    ]);
    // Buckets are monotone in position: every position of an earlier bucket is below `newest`.
    const covered = positionBucket(newest);
    await this.ctx.batch(this.bucketDrops(userId, deviceId, idx.buckets.filter((b) => b < covered)));
  }

  private async deviceIndex(userId: string, deviceId: string): Promise<DeviceIndex> {
    const rows = await this.ctx.all('SELECT bucket, acked FROM e2ee_to_device_index WHERE user_id = ? AND device_id = ?', [userId, deviceId]);
    let acked = 0;
    const buckets: number[] = [];
    for (const r of rows) {
      acked = Math.max(acked, numOrNull(r['acked']) ?? 0);
      const b = numOrNull(r['bucket']);
      if (b !== null) buckets.push(b);
    }
    return { acked, buckets: buckets.sort((a, b) => a - b) };
  }

  private bucketDrops(userId: string, deviceId: string, buckets: number[]): CqlStatement[] {
    return buckets.flatMap((b) => [
      { query: 'DELETE FROM e2ee_to_device WHERE user_id = ? AND device_id = ? AND bucket = ?', params: [userId, deviceId, b] },
      { query: 'DELETE FROM e2ee_to_device_index WHERE user_id = ? AND device_id = ? AND bucket = ?', params: [userId, deviceId, b] },
    ]);
  }

  async deleteDeviceE2ee(userId: string, deviceId: string): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.writeAtPosition(
      async (pos) => {
        const [keyDeletions, idx] = await Promise.all([this.keys.deviceKeyDeletions(userId, deviceId), this.deviceIndex(userId, deviceId)]);
        await this.ctx.execute('UPDATE e2ee_to_device_index USING TIMESTAMP ? SET acked = ? WHERE user_id = ? AND device_id = ?', [
          pos,
          pos,
          userId,
          deviceId,
        ]);
        await this.ctx.batch([...deviceListChangeStatements(pos, [userId]), ...keyDeletions, ...this.bucketDrops(userId, deviceId, idx.buckets)]);
        // Device keys are LWT-written (first upload wins), so they are removed by LWT too; last,
        // so a crash before it leaves keys with the change already announced (a retry removes them).
        await this.ctx.execute('DELETE FROM e2ee_device_keys WHERE user_id = ? AND device_id = ? IF EXISTS', [userId, deviceId]);
      },
      (_r, pos) => ({ kind: 'device_list', stream: pos, userIds: [userId] }),
    );
  }
}
