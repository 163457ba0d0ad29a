// Devices and access tokens (stored by hash only).

import { StoreConflictError, type DeviceRecord, type DeviceStore, type TokenOwner, type AccessTokenInfo } from '../types.js';
import type { SqliteContext } from './context.js';

interface DeviceRow {
  user_id: string;
  device_id: string;
  display_name: string | null;
  last_seen_ts: number | null;
  last_seen_ip: string | null;
  last_seen_user_agent: string | null;
}

function toDevice(row: DeviceRow): DeviceRecord {
  return {
    userId: row.user_id,
    deviceId: row.device_id,
    displayName: row.display_name,
    lastSeenTs: row.last_seen_ts,
    lastSeenIp: row.last_seen_ip,
    lastSeenUserAgent: row.last_seen_user_agent,
  };
}

export class SqliteDeviceStore implements DeviceStore {
  /**
   * touchDevice runs on every authenticated request; repeated touches of one device within a
   * batch collapse into one UPDATE carrying the latest values.
   */
  private readonly pendingTouches = new Map<string, { ts: number; ip: string | null; userAgent: string | null; done: Promise<void> }>();

  constructor(private readonly ctx: SqliteContext) {}

  async upsertDevice(device: { userId: string; deviceId: string; displayName: string | null; ts: number; ip: string | null }): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx
        .stmt(
          `INSERT INTO devices (user_id, device_id, display_name, last_seen_ts, last_seen_ip)
           VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (user_id, device_id) DO UPDATE SET
             display_name = COALESCE(excluded.display_name, display_name),
             last_seen_ts = excluded.last_seen_ts,
             last_seen_ip = COALESCE(excluded.last_seen_ip, last_seen_ip)`,
        )
        .run(device.userId, device.deviceId, device.displayName, device.ts, device.ip);
    });
  }

  async getDevice(userId: string, deviceId: string): Promise<DeviceRecord | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT * FROM devices WHERE user_id = ? AND device_id = ?').get(userId, deviceId) as
      | DeviceRow
      | undefined;
    return row ? toDevice(row) : null;
  }

  async listDevices(userId: string): Promise<DeviceRecord[]> {
    this.ctx.checkOpen();
    const rows = this.ctx.stmt('SELECT * FROM devices WHERE user_id = ? ORDER BY device_id').all(userId) as DeviceRow[];
    return rows.map(toDevice);
  }

  async setDeviceDisplayName(userId: string, deviceId: string, displayName: string | null): Promise<boolean> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(() => {
      const res = this.ctx
        .stmt('UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?')
        .run(displayName, userId, deviceId);
      return res.changes > 0;
    });
  }

  async deleteDevice(userId: string, deviceId: string): Promise<boolean> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(() => {
      this.ctx.stmt('DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?').run(userId, deviceId);
      // A device ID can be used again later: the new device must not inherit the old one's peeks.
      this.ctx.stmt('DELETE FROM peeks WHERE user_id = ? AND device_id = ?').run(userId, deviceId);
      const res = this.ctx.stmt('DELETE FROM devices WHERE user_id = ? AND device_id = ?').run(userId, deviceId);
      return res.changes > 0;
    });
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
    entry.done = this.ctx.queue.write(() => {
      // Taken out before running so a touch arriving after this batch queues a fresh write.
      this.pendingTouches.delete(key);
      this.ctx
        .stmt(
          `UPDATE devices SET last_seen_ts = ?, last_seen_ip = ?, last_seen_user_agent = COALESCE(?, last_seen_user_agent)
           WHERE user_id = ? AND device_id = ?`,
        )
        .run(entry.ts, entry.ip, entry.userAgent, userId, deviceId);
    });
    // A failed batch must not leave a dead entry that swallows later touches.
    entry.done.catch(() => {
      if (this.pendingTouches.get(key) === entry) this.pendingTouches.delete(key);
    });
    return entry.done;
  }

  async addAccessToken(tokenHash: string, owner: TokenOwner, ts: number): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      const res = this.ctx
        .stmt(
          `INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts) VALUES (?, ?, ?, ?)
           ON CONFLICT DO NOTHING`,
        )
        .run(tokenHash, owner.userId, owner.deviceId, ts);
      // Never silently re-point an existing token at another owner.
      if (res.changes === 0) throw new StoreConflictError('access token hash already exists');
    });
  }

  async lookupAccessToken(tokenHash: string): Promise<AccessTokenInfo | null> {
    this.ctx.checkOpen();
    // One query per request: the guest flag comes along instead of a second lookup.
    const row = this.ctx
      .stmt(
        `SELECT t.user_id, t.device_id, u.is_guest FROM access_tokens t
         LEFT JOIN users u ON u.user_id = t.user_id WHERE t.token_hash = ?`,
      )
      .get(tokenHash) as { user_id: string; device_id: string; is_guest: number | null } | undefined;
    return row ? { userId: row.user_id, deviceId: row.device_id, isGuest: row.is_guest === 1 } : null;
  }

  async deleteAccessToken(tokenHash: string): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('DELETE FROM access_tokens WHERE token_hash = ?').run(tokenHash);
    });
  }

  async deleteAccessTokensForUser(userId: string, exceptDeviceId?: string): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      if (exceptDeviceId === undefined) {
        this.ctx.stmt('DELETE FROM access_tokens WHERE user_id = ?').run(userId);
      } else {
        this.ctx.stmt('DELETE FROM access_tokens WHERE user_id = ? AND device_id <> ?').run(userId, exceptDeviceId);
      }
    });
  }
}
