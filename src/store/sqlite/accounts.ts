// Users and profiles.

import { StoreConflictError, type AccountStore, type NewUser, type UserRecord } from '../types.js';
import type { SqliteContext } from './context.js';

/** A row of `users`, as read by every store that lists accounts. */
export interface UserRow {
  user_id: string;
  password_hash: string | null;
  admin: number;
  deactivated: number;
  created_ts: number;
  displayname: string | null;
  avatar_url: string | null;
  is_guest: number;
}

export const toUser = (row: UserRow): UserRecord => ({
  userId: row.user_id,
  passwordHash: row.password_hash,
  admin: row.admin !== 0,
  deactivated: row.deactivated !== 0,
  createdTs: row.created_ts,
  displayname: row.displayname,
  avatarUrl: row.avatar_url,
  isGuest: row.is_guest !== 0,
});

export class SqliteAccountStore implements AccountStore {
  constructor(private readonly ctx: SqliteContext) {}

  async createUser(user: NewUser): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      const res = this.ctx
        .stmt(
          `INSERT INTO users (user_id, password_hash, admin, deactivated, created_ts, displayname, avatar_url, is_guest)
           VALUES (?, ?, ?, 0, ?, ?, NULL, ?) ON CONFLICT DO NOTHING`,
        )
        .run(user.userId, user.passwordHash, user.admin ? 1 : 0, user.createdTs, user.displayname, user.isGuest ? 1 : 0);
      if (res.changes === 0) throw new StoreConflictError(`user ${user.userId} already exists`);
    });
  }

  async getUser(userId: string): Promise<UserRecord | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT * FROM users WHERE user_id = ?').get(userId) as UserRow | undefined;
    return row ? toUser(row) : null;
  }

  async setPasswordHash(userId: string, passwordHash: string): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('UPDATE users SET password_hash = ? WHERE user_id = ?').run(passwordHash, userId);
    });
  }

  async deactivateUser(userId: string): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = ?').run(userId);
    });
  }

  async setProfile(userId: string, profile: { displayname?: string | null; avatarUrl?: string | null }): Promise<void> {
    this.ctx.checkOpen();
    // Two fixed statements instead of building SQL: undefined means "leave alone".
    const { displayname, avatarUrl } = profile;
    if (displayname === undefined && avatarUrl === undefined) return;
    await this.ctx.queue.write(() => {
      if (displayname !== undefined) {
        this.ctx.stmt('UPDATE users SET displayname = ? WHERE user_id = ?').run(displayname, userId);
      }
      if (avatarUrl !== undefined) {
        this.ctx.stmt('UPDATE users SET avatar_url = ? WHERE user_id = ?').run(avatarUrl, userId);
      }
    });
  }

  async countUsers(): Promise<number> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT COUNT(*) AS n FROM users').get() as { n: number };
    return row.n;
  }

  async upgradeGuest(userId: string, passwordHash: string): Promise<boolean> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(() => {
      const res = this.ctx
        .stmt('UPDATE users SET is_guest = 0, password_hash = ? WHERE user_id = ? AND is_guest = 1 AND deactivated = 0')
        .run(passwordHash, userId);
      return res.changes > 0;
    });
  }

  async markErased(userId: string, stream: number): Promise<number> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(() => {
      this.ctx.stmt('UPDATE users SET erased_at_stream = ? WHERE user_id = ? AND erased_at_stream IS NULL').run(stream, userId);
      const row = this.ctx.stmt('SELECT erased_at_stream FROM users WHERE user_id = ?').get(userId) as { erased_at_stream: number | null } | undefined;
      return row?.erased_at_stream ?? stream;
    });
  }

  async getErasures(userIds: string[]): Promise<Map<string, number>> {
    this.ctx.checkOpen();
    const out = new Map<string, number>();
    if (userIds.length === 0) return out;
    // One statement for any number of users: the IDs travel as one JSON array parameter.
    const rows = this.ctx
      .stmt('SELECT user_id, erased_at_stream FROM users WHERE erased_at_stream IS NOT NULL AND user_id IN (SELECT value FROM json_each(?))')
      .all(JSON.stringify([...new Set(userIds)])) as { user_id: string; erased_at_stream: number }[];
    for (const r of rows) out.set(r.user_id, r.erased_at_stream);
    return out;
  }

  async addOpenIdToken(tokenHash: string, userId: string, expiresTs: number): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      // Tokens live minutes; pruning on issue keeps the table as small as the live set.
      this.ctx.stmt('DELETE FROM openid_tokens WHERE expires_ts < ?').run(expiresTs - OPENID_MAX_LIFETIME_MS);
      this.ctx.stmt('INSERT INTO openid_tokens (token_hash, user_id, expires_ts) VALUES (?, ?, ?)').run(tokenHash, userId, expiresTs);
    });
  }

  async lookupOpenIdToken(tokenHash: string, now: number): Promise<string | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT user_id FROM openid_tokens WHERE token_hash = ? AND expires_ts > ?').get(tokenHash, now) as
      | { user_id: string }
      | undefined;
    return row?.user_id ?? null;
  }
}

/** Rows older than this before a new token's expiry are surely expired (lifetimes are far shorter). */
const OPENID_MAX_LIFETIME_MS = 24 * 3600_000;
