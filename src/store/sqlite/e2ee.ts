// E2eeStore on SQLite: the device-list change stream, to-device messages and device removal
// here; key material in e2ee-keys.ts, room key backup in e2ee-backup.ts.

import { E2eeDelegation } from '../e2ee-delegation.js';
import type { JsonObject } from '../../protocol/types.js';
import type { E2eeStore, ToDeviceInput, ToDeviceMessage } from '../e2ee-types.js';
import { jsonParse, type SqliteContext } from './context.js';
import { SqliteE2eeBackup } from './e2ee-backup.js';
import { recordDeviceListChanges, SqliteE2eeKeys } from './e2ee-keys.js';

export class SqliteE2eeStore extends E2eeDelegation<SqliteE2eeKeys, SqliteE2eeBackup> implements E2eeStore {
  constructor(private readonly ctx: SqliteContext) {
    super(new SqliteE2eeKeys(ctx), new SqliteE2eeBackup(ctx));
  }

  // ---- device-list change stream -----------------------------------------------------------

  async markDeviceListChanged(userId: string): Promise<number> {
    this.ctx.checkOpen();
    return this.ctx.queue.writeAtPosition((pos) => {
      recordDeviceListChanges(this.ctx, pos, [userId]);
      return pos;
    }, (_r, pos) => ({ kind: 'device_list', stream: pos, userIds: [userId] }));
  }

  async getDeviceListChanges(fromExclusive: number, toInclusive: number, owner?: string): Promise<string[]> {
    this.ctx.checkOpen();
    if (toInclusive <= fromExclusive) return [];
    const rows = this.ctx
      .stmt(
        `SELECT DISTINCT user_id FROM e2ee_device_list_changes
         WHERE stream > ? AND stream <= ? AND (owner_only = 0 OR user_id = ?) ORDER BY user_id`,
      )
      .all(fromExclusive, toInclusive, owner ?? null) as { user_id: string }[];
    return rows.map((r) => r.user_id);
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
    return this.ctx.queue.writeAtPosition((pos) => {
      const insert = this.ctx.stmt(
        `INSERT INTO e2ee_to_device (user_id, device_id, stream, seq, type, sender, content_json)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const [seq, m] of rows.entries()) insert.run(m.userId, m.deviceId, pos, seq, m.type, m.sender, m.contentJson);
      return pos;
    }, (_r, pos) => ({ kind: 'to_device', stream: pos, targets: rows.map((m) => ({ userId: m.userId, deviceId: m.deviceId })) }));
  }

  async getToDevice(userId: string, deviceId: string, upTo: number, limit: number): Promise<ToDeviceMessage[]> {
    this.ctx.checkOpen();
    const n = Math.floor(limit);
    if (!(n > 0)) return [];
    // A limit may end inside the messages of one position; callers that acknowledge by position
    // must then lower their bound (see src/sync/device-source.ts) rather than ack past them.
    const rows = this.ctx
      .stmt(
        `SELECT stream, type, sender, content_json FROM e2ee_to_device
         WHERE user_id = ? AND device_id = ? AND stream <= ? ORDER BY stream, seq LIMIT ?`,
      )
      .all(userId, deviceId, upTo, n) as { stream: number; type: string; sender: string; content_json: string }[];
    return rows.map((r) => ({ stream: r.stream, type: r.type, sender: r.sender, content: jsonParse<JsonObject>(r.content_json) }));
  }

  async ackToDevice(userId: string, deviceId: string, upTo: number): Promise<void> {
    this.ctx.checkOpen();
    // Called on every /sync with a since token; most find nothing to delete, and those should
    // not wait for (or add to) a write batch.
    const pending = this.ctx
      .stmt('SELECT 1 FROM e2ee_to_device WHERE user_id = ? AND device_id = ? AND stream <= ? LIMIT 1')
      .get(userId, deviceId, upTo);
    if (pending === undefined) return;
    await this.ctx.queue.write(() => {
      this.ctx.stmt('DELETE FROM e2ee_to_device WHERE user_id = ? AND device_id = ? AND stream <= ?').run(userId, deviceId, upTo);
    });
  }

  async deleteDeviceE2ee(userId: string, deviceId: string): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.writeAtPosition((pos) => {
      const byDevice = ['e2ee_device_keys', 'e2ee_one_time_keys', 'e2ee_fallback_keys', 'e2ee_to_device'];
      for (const table of byDevice) {
        this.ctx.stmt(`DELETE FROM ${table} WHERE user_id = ? AND device_id = ?`).run(userId, deviceId);
      }
      // Signatures on the deleted device's keys go too: a later device reusing the ID has other
      // keys, and old signatures must not appear attached to them.
      this.ctx.stmt('DELETE FROM e2ee_signatures WHERE target_user_id = ? AND target_key_id = ?').run(userId, deviceId);
      recordDeviceListChanges(this.ctx, pos, [userId]);
    }, (_r, pos) => ({ kind: 'device_list', stream: pos, userIds: [userId] }));
  }
}
