// Server-side room key backup on Cassandra: versions per user and the (encrypted) session keys
// in each. Same results and errors as ../sqlite/e2ee-backup.ts.
//
// Invariants and why:
// - The version row is written only by LWT: creation (IF NOT EXISTS at max + 1, so concurrent
//   creates on any instance get distinct numbers, never reused after deletion), auth-data
//   updates and deletion (IF deleted = false), and every etag/count move (IF etag = the etag the
//   change was computed against). A key write whose etag CAS loses to another instance recounts
//   the version's keys exactly and tries again, so key_count stays exact under that race.
// - Writes of one user run one at a time on this instance (local mutex), so instances race
//   only each other in those LWTs.
// - Keys are partitioned per (user, version, room) with a room index per (user, version): no
//   single partition holds a whole backup. The index row of a room may outlive its last key (a
//   session delete leaves it); readers just find the partition empty.
// - Deleting a version marks it deleted first, then drops its key partitions. Keys written by a
//   put racing the delete may survive as garbage in the dead version; nothing reads them.

import type { JsonObject } from '../../protocol/types.js';
import type { BackupVersion, RoomKeyData, RoomKeyRecord } from '../e2ee-types.js';
import { StoreConflictError } from '../types.js';
import { applied, jsonParse, num, type CassandraContext, type CqlStatement } from './context.js';
import { chunks, mapLimited, SERIAL_READ, sizedBatches } from './e2ee-common.js';
import { KeyedChain } from '../../keyed-chain.js';

interface VersionState {
  version: number;
  algorithm: string;
  authJson: string;
  etag: number;
  count: number;
  deleted: boolean;
}

type KeyRank = Pick<RoomKeyData, 'first_message_index' | 'forwarded_count' | 'is_verified'>;

interface IncomingKey {
  roomId: string;
  sessionId: string;
  rank: KeyRank;
  sessionJson: string;
}

/** Versions are handed out as decimal strings; anything else names no version (as on SQLite). */
function parseVersion(version: string): number | null {
  if (!/^[1-9][0-9]{0,8}$/.test(version)) return null;
  const v = Number(version);
  return v <= 2147483647 ? v : null;
}

/** The spec's rule for which of two copies of a session the backup keeps. */
function isBetter(incoming: KeyRank, existing: KeyRank): boolean {
  if (incoming.is_verified !== existing.is_verified) return incoming.is_verified;
  if (incoming.first_message_index !== existing.first_message_index) return incoming.first_message_index < existing.first_message_index;
  return incoming.forwarded_count < existing.forwarded_count;
}

const VERSION_COLUMNS = 'version, algorithm, auth_data_json, etag, key_count, deleted';

function toState(r: { [k: string]: unknown }): VersionState {
  return {
    version: r['version'] as number,
    algorithm: r['algorithm'] as string,
    authJson: r['auth_data_json'] as string,
    etag: num(r['etag']),
    count: num(r['key_count']),
    deleted: r['deleted'] === true,
  };
}

export class CassandraE2eeBackup {
  private readonly locks = new KeyedChain();

  constructor(private readonly ctx: CassandraContext) {}

  async createBackupVersion(userId: string, algorithm: string, authData: JsonObject): Promise<string> {
    this.ctx.checkOpen();
    const authJson = JSON.stringify(authData);
    return this.locks.run(userId, async () => {
      for (let attempt = 0; attempt < 20; attempt++) {
        // Deleted versions are kept, so their numbers are never handed out again.
        const top = (await this.ctx.execute('SELECT version FROM e2ee_backup_versions WHERE user_id = ? LIMIT 1', [userId], SERIAL_READ)).first();
        const version = (top === null ? 0 : (top['version'] as number)) + 1;
        const rs = await this.ctx.execute(
          `INSERT INTO e2ee_backup_versions (user_id, ${VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
          [userId, version, algorithm, authJson, 0, 0, false],
        );
        if (applied(rs)) return String(version);
      }
      throw new Error('backup version creation kept racing other instances');
    });
  }

  async getBackupVersion(userId: string, version?: string): Promise<BackupVersion | null> {
    this.ctx.checkOpen();
    let state: VersionState | null;
    if (version === undefined) {
      const rows = await this.ctx.all(`SELECT ${VERSION_COLUMNS} FROM e2ee_backup_versions WHERE user_id = ?`, [userId]);
      const live = rows.map(toState).find((s) => !s.deleted);
      state = live ?? null;
    } else {
      const v = parseVersion(version);
      state = v === null ? null : await this.liveVersion(userId, v);
    }
    if (state === null) return null;
    return {
      version: String(state.version),
      algorithm: state.algorithm,
      authData: jsonParse<JsonObject>(state.authJson),
      etag: String(state.etag),
      count: state.count,
    };
  }

  async updateBackupVersion(userId: string, version: string, algorithm: string, authData: JsonObject): Promise<boolean> {
    this.ctx.checkOpen();
    const v = parseVersion(version);
    if (v === null) return false;
    const authJson = JSON.stringify(authData);
    return this.locks.run(userId, async () => {
      const rs = await this.ctx.execute(
        'UPDATE e2ee_backup_versions SET algorithm = ?, auth_data_json = ? WHERE user_id = ? AND version = ? IF deleted = false',
        [algorithm, authJson, userId, v],
      );
      return applied(rs);
    });
  }

  async deleteBackupVersion(userId: string, version: string): Promise<boolean> {
    this.ctx.checkOpen();
    const v = parseVersion(version);
    if (v === null) return false;
    return this.locks.run(userId, async () => {
      for (;;) {
        const state = await this.liveVersion(userId, v, true);
        if (state === null) return false;
        const rs = await this.ctx.execute(
          'UPDATE e2ee_backup_versions SET deleted = ?, key_count = ?, etag = ? WHERE user_id = ? AND version = ? IF deleted = false AND etag = ?',
          [true, 0, state.etag + 1, userId, v, state.etag],
        );
        if (applied(rs)) break;
      }
      const rooms = await this.rooms(userId, v);
      await this.ctx.batch([
        ...rooms.map((room) => ({ query: 'DELETE FROM e2ee_backup_keys WHERE user_id = ? AND version = ? AND room_id = ?', params: [userId, v, room] })),
        { query: 'DELETE FROM e2ee_backup_rooms WHERE user_id = ? AND version = ?', params: [userId, v] },
      ]);
      return true;
    });
  }

  async putRoomKeys(userId: string, version: string, keys: RoomKeyRecord[]): Promise<{ etag: string; count: number }> {
    this.ctx.checkOpen();
    // Serialised now; of several copies of one session in the call, the best one counts.
    const incoming = new Map<string, IncomingKey>();
    for (const k of keys) {
      const key: IncomingKey = {
        roomId: k.roomId,
        sessionId: k.sessionId,
        rank: {
          first_message_index: k.data.first_message_index,
          forwarded_count: k.data.forwarded_count,
          is_verified: k.data.is_verified === true,
        },
        sessionJson: JSON.stringify(k.data.session_data),
      };
      const id = JSON.stringify([k.roomId, k.sessionId]);
      const prev = incoming.get(id);
      if (prev === undefined || isBetter(key.rank, prev.rank)) incoming.set(id, key);
    }
    return this.locks.run(userId, async () => {
      const v = await this.requireVersion(userId, version);
      const byRoom = new Map<string, IncomingKey[]>();
      for (const k of incoming.values()) byRoom.set(k.roomId, [...(byRoom.get(k.roomId) ?? []), k]);
      const existing = await this.existingRanks(userId, v.version, byRoom);
      const writes: CqlStatement[] = [];
      const rooms = new Set<string>();
      let added = 0;
      for (const k of incoming.values()) {
        const cur = existing.get(JSON.stringify([k.roomId, k.sessionId]));
        if (cur !== undefined && !isBetter(k.rank, cur)) continue;
        if (cur === undefined) added++;
        rooms.add(k.roomId);
        writes.push({
          query: `INSERT INTO e2ee_backup_keys (user_id, version, room_id, session_id, first_message_index, forwarded_count, is_verified, session_data_json)
                  VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          params: [userId, v.version, k.roomId, k.sessionId, k.rank.first_message_index, k.rank.forwarded_count, k.rank.is_verified, k.sessionJson],
        });
      }
      if (writes.length === 0) return { etag: String(v.etag), count: v.count };
      const index = [...rooms].map((room) => ({
        query: 'INSERT INTO e2ee_backup_rooms (user_id, version, room_id) VALUES (?, ?, ?)',
        params: [userId, v.version, room],
      }));
      for (const part of sizedBatches([...index, ...writes])) await this.ctx.batch(part);
      return this.bump(userId, v, v.count + added);
    });
  }

  async getRoomKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<RoomKeyRecord[]> {
    this.ctx.checkOpen();
    const v = parseVersion(version);
    if (v === null || (await this.liveVersion(userId, v)) === null) return [];
    const rooms = roomId !== undefined ? [roomId] : await this.rooms(userId, v);
    const rows = await mapLimited(rooms, 8, (room) =>
      sessionId !== undefined
        ? this.ctx.all(
            `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data_json FROM e2ee_backup_keys
             WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?`,
            [userId, v, room, sessionId],
          )
        : this.ctx.all(
            `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data_json FROM e2ee_backup_keys
             WHERE user_id = ? AND version = ? AND room_id = ?`,
            [userId, v, room],
          ),
    );
    return rows.flat().map((r) => ({
      roomId: r['room_id'] as string,
      sessionId: r['session_id'] as string,
      data: {
        first_message_index: r['first_message_index'] as number,
        forwarded_count: r['forwarded_count'] as number,
        is_verified: r['is_verified'] === true,
        session_data: jsonParse<JsonObject>(r['session_data_json'] as string),
      },
    }));
  }

  async deleteRoomKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<{ etag: string; count: number }> {
    this.ctx.checkOpen();
    return this.locks.run(userId, async () => {
      const v = await this.requireVersion(userId, version);
      const rooms = roomId !== undefined ? [roomId] : await this.rooms(userId, v.version);
      const present = await mapLimited(rooms, 8, async (room) => {
        const rows =
          sessionId !== undefined
            ? await this.ctx.all('SELECT session_id FROM e2ee_backup_keys WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?', [
                userId,
                v.version,
                room,
                sessionId,
              ])
            : await this.ctx.all('SELECT session_id FROM e2ee_backup_keys WHERE user_id = ? AND version = ? AND room_id = ?', [userId, v.version, room]);
        return rows.length;
      });
      const removed = present.reduce((a, b) => a + b, 0);
      if (removed === 0) return { etag: String(v.etag), count: v.count };
      const deletes: CqlStatement[] = [];
      rooms.forEach((room, i) => {
        if (present[i] === 0) return;
        if (sessionId !== undefined) {
          deletes.push({
            query: 'DELETE FROM e2ee_backup_keys WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?',
            params: [userId, v.version, room, sessionId],
          });
        } else {
          deletes.push({ query: 'DELETE FROM e2ee_backup_keys WHERE user_id = ? AND version = ? AND room_id = ?', params: [userId, v.version, room] });
          deletes.push({ query: 'DELETE FROM e2ee_backup_rooms WHERE user_id = ? AND version = ? AND room_id = ?', params: [userId, v.version, room] });
        }
      });
      for (const part of chunks(deletes, 100)) await this.ctx.batch(part);
      return this.bump(userId, v, Math.max(0, v.count - removed));
    });
  }

  // ---- internals ---------------------------------------------------------------------------

  private async liveVersion(userId: string, version: number, serial = false): Promise<VersionState | null> {
    const row = (
      await this.ctx.execute(
        `SELECT ${VERSION_COLUMNS} FROM e2ee_backup_versions WHERE user_id = ? AND version = ?`,
        [userId, version],
        serial ? SERIAL_READ : undefined,
      )
    ).first();
    if (row === null) return null;
    const s = toState(row);
    return s.deleted ? null : s;
  }

  /** The live version (read at SERIAL, LWT-written) or a conflict: nothing to put keys into. */
  private async requireVersion(userId: string, version: string): Promise<VersionState> {
    const v = parseVersion(version);
    const state = v === null ? null : await this.liveVersion(userId, v, true);
    if (state === null) throw new StoreConflictError(`backup version ${version} does not exist`);
    return state;
  }

  private async rooms(userId: string, version: number): Promise<string[]> {
    const rows = await this.ctx.all('SELECT room_id FROM e2ee_backup_rooms WHERE user_id = ? AND version = ?', [userId, version]);
    return rows.map((r) => r['room_id'] as string);
  }

  private async existingRanks(userId: string, version: number, byRoom: Map<string, IncomingKey[]>): Promise<Map<string, KeyRank>> {
    const out = new Map<string, KeyRank>();
    const jobs: Array<[string, string[]]> = [];
    for (const [room, ks] of byRoom) for (const part of chunks(ks.map((k) => k.sessionId), 100)) jobs.push([room, part]);
    const results = await mapLimited(jobs, 8, ([room, ids]) =>
      this.ctx.all(
        `SELECT session_id, first_message_index, forwarded_count, is_verified FROM e2ee_backup_keys
         WHERE user_id = ? AND version = ? AND room_id = ? AND session_id IN ?`,
        [userId, version, room, ids],
      ),
    );
    jobs.forEach(([room], i) => {
      for (const r of results[i]!) {
        out.set(JSON.stringify([room, r['session_id'] as string]), {
          first_message_index: r['first_message_index'] as number,
          forwarded_count: r['forwarded_count'] as number,
          is_verified: r['is_verified'] === true,
        });
      }
    });
    return out;
  }

  /**
   * Moves the etag on and sets the count, by CAS on the etag the change was computed against.
   * Losing the CAS means another instance changed the keys meanwhile: recount exactly and retry.
   */
  private async bump(userId: string, v: VersionState, count: number): Promise<{ etag: string; count: number }> {
    let state = v;
    let next = count;
    for (let attempt = 0; attempt < 20; attempt++) {
      const rs = await this.ctx.execute(
        'UPDATE e2ee_backup_versions SET etag = ?, key_count = ? WHERE user_id = ? AND version = ? IF deleted = false AND etag = ?',
        [state.etag + 1, next, userId, state.version, state.etag],
      );
      if (applied(rs)) return { etag: String(state.etag + 1), count: next };
      const fresh = await this.liveVersion(userId, state.version, true);
      if (fresh === null) throw new StoreConflictError(`backup version ${state.version} was deleted`);
      state = fresh;
      next = await this.recount(userId, state.version);
    }
    throw new Error('backup etag kept racing other instances');
  }

  private async recount(userId: string, version: number): Promise<number> {
    const rooms = await this.rooms(userId, version);
    const counts = await mapLimited(rooms, 8, async (room) => {
      const rs = await this.ctx.execute('SELECT COUNT(*) AS n FROM e2ee_backup_keys WHERE user_id = ? AND version = ? AND room_id = ?', [userId, version, room]);
      return num(rs.first()?.['n'] ?? 0);
    });
    return counts.reduce((a, b) => a + b, 0);
  }
}
