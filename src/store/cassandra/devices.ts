// Devices and access tokens (stored by hash only) on Cassandra (tables: migrations/0004-users.ts).
//
// - Only upsertDevice sets `live`: a last-seen or display-name UPDATE that lands after the
//   device was deleted leaves a row without it, which reads as no device (Cassandra has no
//   "update only if present" without an LWT).
// - Tokens are written to `access_tokens` (lookup by hash, every request) and
//   `access_tokens_by_user` (deletion by user or device) in one logged batch.
// - No LWT: token hashes are SHA-256 of random tokens, so the "already exists" check is a read.
// - lookupAccessToken reads the users row for the guest flag (it changes on upgrade), instead
//   of a copy in every token row.

import type cassandra from 'cassandra-driver';
import { StoreConflictError, type AccessTokenInfo, type DeviceRecord, type DeviceStore, type TokenOwner } from '../types.js';
import { textOrNull, storedText } from './accounts.js';
import { numOrNull, type CassandraContext, type CqlStatement } from './context.js';

const COLUMNS = 'user_id, device_id, live, display_name, last_seen_ts, last_seen_ip, last_seen_user_agent';

function toDevice(row: cassandra.types.Row): DeviceRecord {
  return {
    userId: row['user_id'] as string,
    deviceId: row['device_id'] as string,
    displayName: textOrNull(row['display_name']),
    lastSeenTs: numOrNull(row['last_seen_ts']),
    lastSeenIp: textOrNull(row['last_seen_ip']),
    lastSeenUserAgent: textOrNull(row['last_seen_user_agent']),
  };
}

export class CassandraDeviceStore implements DeviceStore {
  /** Touches of one device still waiting to be written collapse into one write of the latest. */
  private readonly pendingTouches = new Map<string, { ts: number; ip: string | null; userAgent: string | null; done: Promise<void> }>();

  constructor(private readonly ctx: CassandraContext) {}

  async upsertDevice(device: { userId: string; deviceId: string; displayName: string | null; ts: number; ip: string | null }): Promise<void> {
    this.ctx.checkOpen();
    // INSERT is an upsert; unset (undefined) columns keep their stored values.
    await this.ctx.execute(
      'INSERT INTO devices (user_id, device_id, live, display_name, last_seen_ts, last_seen_ip) VALUES (?, ?, true, ?, ?, ?)',
      [device.userId, device.deviceId, device.displayName ?? undefined, device.ts, device.ip ?? undefined],
    );
  }

  async getDevice(userId: string, deviceId: string): Promise<DeviceRecord | null> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute(`SELECT ${COLUMNS} FROM devices WHERE user_id = ? AND device_id = ?`, [userId, deviceId])).first();
    return row && row['live'] === true ? toDevice(row) : null;
  }

  async listDevices(userId: string): Promise<DeviceRecord[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all(`SELECT ${COLUMNS} FROM devices WHERE user_id = ?`, [userId]);
    return rows.filter((r) => r['live'] === true).map(toDevice);
  }

  async setDeviceDisplayName(userId: string, deviceId: string, displayName: string | null): Promise<boolean> {
    this.ctx.checkOpen();
    if ((await this.getDevice(userId, deviceId)) === null) return false;
    await this.ctx.execute('UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?', [storedText(displayName), userId, deviceId]);
    return true;
  }

  async deleteDevice(userId: string, deviceId: string): Promise<boolean> {
    this.ctx.checkOpen();
    const existed = (await this.getDevice(userId, deviceId)) !== null;
    const tokens = await this.ctx.all('SELECT token_hash FROM access_tokens_by_user WHERE user_id = ? AND device_id = ?', [userId, deviceId]);
    const stmts: CqlStatement[] = tokens.map((t) => ({ query: 'DELETE FROM access_tokens WHERE token_hash = ?', params: [t['token_hash']] }));
    stmts.push({ query: 'DELETE FROM access_tokens_by_user WHERE user_id = ? AND device_id = ?', params: [userId, deviceId] });
    // A device ID can be used again later: the new device must not inherit the old one's peeks.
    stmts.push({ query: 'DELETE FROM peeks WHERE user_id = ? AND device_id = ?', params: [userId, deviceId] });
    stmts.push({ query: 'DELETE FROM devices WHERE user_id = ? AND device_id = ?', params: [userId, deviceId] });
    await this.batchChunks(stmts);
    return existed;
  }

  async touchDevice(userId: string, deviceId: string, ts: number, ip: string | null, userAgent: string | null = null): Promise<void> {
    this.ctx.checkOpen();
    const key = `${userId}\u0000${deviceId}`;
    const queued = this.pendingTouches.get(key);
    if (queued) {
      queued.ts = ts;
      queued.ip = ip;
      queued.userAgent = userAgent ?? queued.userAgent;
      return queued.done;
    }
    const entry: { ts: number; ip: string | null; userAgent: string | null; done: Promise<void> } = { ts, ip, userAgent, done: Promise.resolve() };
    this.pendingTouches.set(key, entry);
    // Written on the next turn, so the touches of one burst of requests become one write.
    entry.done = new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      this.pendingTouches.delete(key);
      await this.ctx.execute(
        'UPDATE devices SET last_seen_ts = ?, last_seen_ip = ?, last_seen_user_agent = ? WHERE user_id = ? AND device_id = ?',
        [entry.ts, storedText(entry.ip), entry.userAgent ?? undefined, userId, deviceId],
      );
    });
    entry.done.catch(() => {
      if (this.pendingTouches.get(key) === entry) this.pendingTouches.delete(key);
    });
    return entry.done;
  }

  async addAccessToken(tokenHash: string, owner: TokenOwner, ts: number): Promise<void> {
    this.ctx.checkOpen();
    const existing = await this.ctx.execute('SELECT user_id FROM access_tokens WHERE token_hash = ?', [tokenHash]);
    // Never silently re-point an existing token at another owner.
    if (existing.rowLength > 0) throw new StoreConflictError('access token hash already exists');
    await this.ctx.batch([
      {
        query: 'INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts) VALUES (?, ?, ?, ?)',
        params: [tokenHash, owner.userId, owner.deviceId, ts],
      },
      {
        query: 'INSERT INTO access_tokens_by_user (user_id, device_id, token_hash) VALUES (?, ?, ?)',
        params: [owner.userId, owner.deviceId, tokenHash],
      },
    ]);
  }

  async lookupAccessToken(tokenHash: string): Promise<AccessTokenInfo | null> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute('SELECT user_id, device_id FROM access_tokens WHERE token_hash = ?', [tokenHash])).first();
    if (!row) return null;
    const userId = row['user_id'] as string;
    const user = (await this.ctx.execute('SELECT is_guest FROM users WHERE user_id = ?', [userId])).first();
    return { userId, deviceId: row['device_id'] as string, isGuest: user?.['is_guest'] === true };
  }

  async deleteAccessToken(tokenHash: string): Promise<void> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute('SELECT user_id, device_id FROM access_tokens WHERE token_hash = ?', [tokenHash])).first();
    if (!row) return;
    await this.ctx.batch([
      { query: 'DELETE FROM access_tokens WHERE token_hash = ?', params: [tokenHash] },
      {
        query: 'DELETE FROM access_tokens_by_user WHERE user_id = ? AND device_id = ? AND token_hash = ?',
        params: [row['user_id'], row['device_id'], tokenHash],
      },
    ]);
  }

  async deleteAccessTokensForUser(userId: string, exceptDeviceId?: string): Promise<void> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT device_id, token_hash FROM access_tokens_by_user WHERE user_id = ?', [userId]);
    const stmts: CqlStatement[] = [];
    for (const r of rows) {
      if (r['device_id'] === exceptDeviceId) continue;
      stmts.push({ query: 'DELETE FROM access_tokens WHERE token_hash = ?', params: [r['token_hash']] });
      stmts.push({
        query: 'DELETE FROM access_tokens_by_user WHERE user_id = ? AND device_id = ? AND token_hash = ?',
        params: [userId, r['device_id'], r['token_hash']],
      });
    }
    await this.batchChunks(stmts);
  }

  /** Logged batches of bounded size (a user may hold many tokens). */
  private async batchChunks(stmts: CqlStatement[]): Promise<void> {
    for (let i = 0; i < stmts.length; i += 100) await this.ctx.batch(stmts.slice(i, i + 100));
  }
}
