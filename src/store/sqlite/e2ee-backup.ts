// Server-side room key backup: versions per user and the (encrypted) session keys in each.

import type { JsonObject } from '../../protocol/types.js';
import type { BackupVersion, RoomKeyData, RoomKeyRecord } from '../e2ee-types.js';
import { StoreConflictError } from '../types.js';
import { jsonParse, type SqliteContext } from './context.js';

interface VersionRow {
  version: number;
  algorithm: string;
  auth_data_json: string;
  etag: number;
  key_count: number;
}

interface KeyRow {
  room_id: string;
  session_id: string;
  first_message_index: number;
  forwarded_count: number;
  is_verified: number;
  session_data_json: string;
}

const VERSION_COLUMNS = 'version, algorithm, auth_data_json, etag, key_count';
const KEY_COLUMNS = 'room_id, session_id, first_message_index, forwarded_count, is_verified, session_data_json';

/**
 * Versions are stored as integers and handed out as their decimal string. Anything else ("01",
 * "abc", absurdly long) names no version rather than aliasing one.
 */
function parseVersion(version: string): number | null {
  return /^[1-9][0-9]{0,14}$/.test(version) ? Number(version) : null;
}

const toVersion = (r: VersionRow): BackupVersion => ({
  version: String(r.version),
  algorithm: r.algorithm,
  authData: jsonParse<JsonObject>(r.auth_data_json),
  etag: String(r.etag),
  count: r.key_count,
});

const toKey = (r: KeyRow): RoomKeyRecord => ({
  roomId: r.room_id,
  sessionId: r.session_id,
  data: {
    first_message_index: r.first_message_index,
    forwarded_count: r.forwarded_count,
    is_verified: r.is_verified !== 0,
    session_data: jsonParse<JsonObject>(r.session_data_json),
  },
});

type KeyRank = Pick<RoomKeyData, 'first_message_index' | 'forwarded_count' | 'is_verified'>;

/** The spec's rule for which of two copies of a session the backup keeps. */
function isBetter(incoming: KeyRank, existing: KeyRow): boolean {
  const existingVerified = existing.is_verified !== 0;
  if (incoming.is_verified !== existingVerified) return incoming.is_verified;
  if (incoming.first_message_index !== existing.first_message_index) {
    return incoming.first_message_index < existing.first_message_index;
  }
  return incoming.forwarded_count < existing.forwarded_count;
}

/** WHERE clause for the optional room/session filters after (user_id, version). */
function keyFilter(roomId: string | undefined, sessionId: string | undefined): { sql: string; args: string[] } {
  let sql = 'user_id = ? AND version = ?';
  const args: string[] = [];
  if (roomId !== undefined) {
    sql += ' AND room_id = ?';
    args.push(roomId);
  }
  if (sessionId !== undefined) {
    sql += ' AND session_id = ?';
    args.push(sessionId);
  }
  return { sql, args };
}

export class SqliteE2eeBackup {
  constructor(private readonly ctx: SqliteContext) {}

  async createBackupVersion(userId: string, algorithm: string, authData: JsonObject): Promise<string> {
    this.ctx.checkOpen();
    const authJson = JSON.stringify(authData);
    return this.ctx.queue.write(() => {
      // Deleted versions count too: numbers are never reused.
      const row = this.ctx.stmt('SELECT MAX(version) AS v FROM e2ee_backup_versions WHERE user_id = ?').get(userId) as {
        v: number | null;
      };
      const version = (row.v ?? 0) + 1;
      this.ctx
        .stmt('INSERT INTO e2ee_backup_versions (user_id, version, algorithm, auth_data_json) VALUES (?, ?, ?, ?)')
        .run(userId, version, algorithm, authJson);
      return String(version);
    });
  }

  async getBackupVersion(userId: string, version?: string): Promise<BackupVersion | null> {
    this.ctx.checkOpen();
    if (version === undefined) {
      const row = this.ctx
        .stmt(`SELECT ${VERSION_COLUMNS} FROM e2ee_backup_versions WHERE user_id = ? AND deleted = 0 ORDER BY version DESC LIMIT 1`)
        .get(userId) as VersionRow | undefined;
      return row ? toVersion(row) : null;
    }
    const v = parseVersion(version);
    if (v === null) return null;
    const row = this.liveVersion(userId, v);
    return row ? toVersion(row) : null;
  }

  async updateBackupVersion(userId: string, version: string, algorithm: string, authData: JsonObject): Promise<boolean> {
    this.ctx.checkOpen();
    const v = parseVersion(version);
    if (v === null) return false;
    const authJson = JSON.stringify(authData);
    return this.ctx.queue.write(() => {
      const res = this.ctx
        .stmt('UPDATE e2ee_backup_versions SET algorithm = ?, auth_data_json = ? WHERE user_id = ? AND version = ? AND deleted = 0')
        .run(algorithm, authJson, userId, v);
      return res.changes > 0;
    });
  }

  async deleteBackupVersion(userId: string, version: string): Promise<boolean> {
    this.ctx.checkOpen();
    const v = parseVersion(version);
    if (v === null) return false;
    return this.ctx.queue.write(() => {
      const res = this.ctx
        .stmt('UPDATE e2ee_backup_versions SET deleted = 1, key_count = 0, etag = etag + 1 WHERE user_id = ? AND version = ? AND deleted = 0')
        .run(userId, v);
      if (res.changes === 0) return false;
      this.ctx.stmt('DELETE FROM e2ee_backup_keys WHERE user_id = ? AND version = ?').run(userId, v);
      return true;
    });
  }

  async putRoomKeys(userId: string, version: string, keys: RoomKeyRecord[]): Promise<{ etag: string; count: number }> {
    this.ctx.checkOpen();
    const incoming = keys.map((k) => ({
      roomId: k.roomId,
      sessionId: k.sessionId,
      rank: {
        first_message_index: k.data.first_message_index,
        forwarded_count: k.data.forwarded_count,
        is_verified: k.data.is_verified === true,
      } satisfies KeyRank,
      sessionJson: JSON.stringify(k.data.session_data),
    }));
    return this.ctx.queue.write(() => {
      const v = this.requireVersion(userId, version);
      const find = this.ctx.stmt(
        `SELECT ${KEY_COLUMNS} FROM e2ee_backup_keys WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?`,
      );
      const upsert = this.ctx.stmt(
        `INSERT INTO e2ee_backup_keys (user_id, version, ${KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT DO UPDATE SET first_message_index = excluded.first_message_index,
           forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified,
           session_data_json = excluded.session_data_json`,
      );
      let added = 0;
      let changed = false;
      for (const k of incoming) {
        const existing = find.get(userId, v.version, k.roomId, k.sessionId) as KeyRow | undefined;
        if (existing !== undefined && !isBetter(k.rank, existing)) continue;
        upsert.run(
          userId,
          v.version,
          k.roomId,
          k.sessionId,
          k.rank.first_message_index,
          k.rank.forwarded_count,
          k.rank.is_verified ? 1 : 0,
          k.sessionJson,
        );
        if (existing === undefined) added++;
        changed = true;
      }
      return this.bump(userId, v, changed, added);
    });
  }

  async getRoomKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<RoomKeyRecord[]> {
    this.ctx.checkOpen();
    const v = parseVersion(version);
    if (v === null || this.liveVersion(userId, v) === undefined) return [];
    const { sql, args } = keyFilter(roomId, sessionId);
    const rows = this.ctx
      .stmt(`SELECT ${KEY_COLUMNS} FROM e2ee_backup_keys WHERE ${sql} ORDER BY room_id, session_id`)
      .all(userId, v, ...args) as KeyRow[];
    return rows.map(toKey);
  }

  async deleteRoomKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<{ etag: string; count: number }> {
    this.ctx.checkOpen();
    const { sql, args } = keyFilter(roomId, sessionId);
    return this.ctx.queue.write(() => {
      const v = this.requireVersion(userId, version);
      const res = this.ctx.stmt(`DELETE FROM e2ee_backup_keys WHERE ${sql}`).run(userId, v.version, ...args);
      return this.bump(userId, v, res.changes > 0, -res.changes);
    });
  }

  private liveVersion(userId: string, version: number): VersionRow | undefined {
    return this.ctx
      .stmt(`SELECT ${VERSION_COLUMNS} FROM e2ee_backup_versions WHERE user_id = ? AND version = ? AND deleted = 0`)
      .get(userId, version) as VersionRow | undefined;
  }

  /** Inside a queued write: the live version, or a conflict (nothing to put keys into). */
  private requireVersion(userId: string, version: string): VersionRow {
    const v = parseVersion(version);
    const row = v === null ? undefined : this.liveVersion(userId, v);
    if (row === undefined) throw new StoreConflictError(`backup version ${version} does not exist`);
    return row;
  }

  /** Moves the etag on when the keys changed and keeps key_count in step; returns both. */
  private bump(userId: string, v: VersionRow, changed: boolean, countDelta: number): { etag: string; count: number } {
    if (!changed) return { etag: String(v.etag), count: v.key_count };
    const etag = v.etag + 1;
    const count = v.key_count + countDelta;
    this.ctx
      .stmt('UPDATE e2ee_backup_versions SET etag = ?, key_count = ? WHERE user_id = ? AND version = ?')
      .run(etag, count, userId, v.version);
    return { etag: String(etag), count };
  }
}
