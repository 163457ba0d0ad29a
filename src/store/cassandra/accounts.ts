// Accounts, profiles and OpenID tokens on Cassandra (tables: migrations/0004-users.ts).
//
// - A user ID is taken exactly once: the claim is an LWT on `user_ids` (the only LWT here);
//   the `users` row itself is written with plain writes, so later profile and password
//   updates never mix with LWT writes on the same cells.
// - A claim whose `users` row never appeared (the creator died between the two writes) is
//   taken over by the next creator once it is older than ORPHAN_CLAIM_MS.
// - Nullable text columns store '' for null (see the migration); the profile API already
//   treats an empty display name or avatar URL as none.

import { randomBytes } from 'node:crypto';
import type cassandra from 'cassandra-driver';
import { StoreConflictError, type AccountStore, type NewUser, type UserRecord } from '../types.js';
import { applied, num, type CassandraContext } from './context.js';
import { KeyedChain } from '../../keyed-chain.js';

/** The columns of `users` that toUser reads (shared with the admin module's listings). */
export const USER_COLUMNS = 'user_id, password_hash, admin, deactivated, created_ts, displayname, avatar_url, is_guest';

export const textOrNull = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
/** '' stands for null in stored text columns. */
export const storedText = (v: string | null): string => v ?? '';

export function toUser(row: cassandra.types.Row): UserRecord {
  return {
    userId: row['user_id'] as string,
    passwordHash: textOrNull(row['password_hash']),
    admin: row['admin'] === true,
    deactivated: row['deactivated'] === true,
    createdTs: num(row['created_ts']),
    displayname: textOrNull(row['displayname']),
    avatarUrl: textOrNull(row['avatar_url']),
    isGuest: row['is_guest'] === true,
  };
}

/** A claim older than this without its users row belongs to a creator that died mid-way. */
const ORPHAN_CLAIM_MS = 60_000;
/** Tokens expiring more than this before the latest issued expiry count as pruned. */
const OPENID_MAX_LIFETIME_MS = 24 * 3600_000;

export class CassandraAccountStore implements AccountStore {
  private readonly chain = new KeyedChain();

  constructor(private readonly ctx: CassandraContext) {}

  async createUser(user: NewUser): Promise<void> {
    this.ctx.checkOpen();
    const owner = randomBytes(12).toString('base64url');
    const rs = await this.ctx.execute('INSERT INTO user_ids (user_id, owner, claimed_ts) VALUES (?, ?, ?) IF NOT EXISTS', [
      user.userId,
      owner,
      Date.now(),
    ]);
    if (!applied(rs)) await this.takeOverOrphan(user.userId, rs.first());
    await this.ctx.execute(
      `INSERT INTO users (${USER_COLUMNS}) VALUES (?, ?, ?, false, ?, ?, '', ?)`,
      [user.userId, storedText(user.passwordHash), user.admin, user.createdTs, storedText(user.displayname), user.isGuest === true],
    );
  }

  /** Throws StoreConflictError unless the existing claim is an orphan this call took over. */
  private async takeOverOrphan(userId: string, claim: cassandra.types.Row | null): Promise<void> {
    const conflict = new StoreConflictError(`user ${userId} already exists`);
    if (!claim || Date.now() - num(claim['claimed_ts']) < ORPHAN_CLAIM_MS) throw conflict;
    const existing = await this.ctx.execute('SELECT user_id FROM users WHERE user_id = ?', [userId]);
    if (existing.rowLength > 0) throw conflict;
    const rs = await this.ctx.execute('UPDATE user_ids SET owner = ?, claimed_ts = ? WHERE user_id = ? IF owner = ?', [
      randomBytes(12).toString('base64url'),
      Date.now(),
      userId,
      claim['owner'] as string,
    ]);
    if (!applied(rs)) throw conflict;
  }

  async getUser(userId: string): Promise<UserRecord | null> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute(`SELECT ${USER_COLUMNS} FROM users WHERE user_id = ?`, [userId])).first();
    return row ? toUser(row) : null;
  }

  async setPasswordHash(userId: string, passwordHash: string): Promise<void> {
    this.ctx.checkOpen();
    // Only for existing users: an UPDATE of a missing row would create a half row.
    if (!(await this.exists(userId))) return;
    await this.ctx.execute('UPDATE users SET password_hash = ? WHERE user_id = ?', [storedText(passwordHash), userId]);
  }

  async deactivateUser(userId: string): Promise<void> {
    this.ctx.checkOpen();
    if (!(await this.exists(userId))) return;
    await this.ctx.execute(`UPDATE users SET deactivated = true, password_hash = '' WHERE user_id = ?`, [userId]);
  }

  async setProfile(userId: string, profile: { displayname?: string | null; avatarUrl?: string | null }): Promise<void> {
    this.ctx.checkOpen();
    const { displayname, avatarUrl } = profile;
    if (displayname === undefined && avatarUrl === undefined) return;
    if (!(await this.exists(userId))) return;
    // undefined binds as "unset": the column is left alone.
    await this.ctx.execute('UPDATE users SET displayname = ?, avatar_url = ? WHERE user_id = ?', [
      displayname === undefined ? undefined : storedText(displayname),
      avatarUrl === undefined ? undefined : storedText(avatarUrl),
      userId,
    ]);
  }

  async countUsers(): Promise<number> {
    this.ctx.checkOpen();
    // A full scan, like the admin listing: cheap at the sizes one homeserver has.
    const row = (await this.ctx.execute('SELECT COUNT(*) AS n FROM users')).first();
    return row ? num(row['n']) : 0;
  }

  async upgradeGuest(userId: string, passwordHash: string): Promise<boolean> {
    this.ctx.checkOpen();
    // One upgrade at a time per user on this instance, so two of them cannot both succeed here.
    return this.chain.run(userId, async () => {
      const user = await this.getUser(userId);
      if (!user || !user.isGuest || user.deactivated) return false;
      await this.ctx.execute('UPDATE users SET is_guest = false, password_hash = ? WHERE user_id = ?', [storedText(passwordHash), userId]);
      return true;
    });
  }

  async markErased(userId: string, stream: number): Promise<number> {
    this.ctx.checkOpen();
    // One erasure at a time per user on this instance; the first recorded position stands.
    return this.chain.run(userId, async () => {
      const row = (await this.ctx.execute('SELECT user_id, erased_at_stream FROM users WHERE user_id = ?', [userId])).first();
      if (!row) return stream;
      if (row['erased_at_stream'] !== null && row['erased_at_stream'] !== undefined) return num(row['erased_at_stream']);
      await this.ctx.execute('UPDATE users SET erased_at_stream = ? WHERE user_id = ?', [stream, userId]);
      return stream;
    });
  }

  async getErasures(userIds: string[]): Promise<Map<string, number>> {
    this.ctx.checkOpen();
    const out = new Map<string, number>();
    // One partition read per user (no multi-partition IN); callers cache the answers.
    const rows = await Promise.all(
      [...new Set(userIds)].map(async (id) => (await this.ctx.execute('SELECT user_id, erased_at_stream FROM users WHERE user_id = ?', [id])).first()),
    );
    for (const r of rows) {
      const at = r?.['erased_at_stream'];
      if (r && at !== null && at !== undefined) out.set(r['user_id'] as string, num(at));
    }
    return out;
  }

  async addOpenIdToken(tokenHash: string, userId: string, expiresTs: number): Promise<void> {
    this.ctx.checkOpen();
    // Rows expire by themselves a day after the token does (at least an hour from now).
    const ttl = Math.max(3600, Math.ceil((expiresTs - Date.now() + OPENID_MAX_LIFETIME_MS) / 1000));
    await this.ctx.execute('INSERT INTO openid_tokens (token_hash, user_id, expires_ts) VALUES (?, ?, ?) USING TTL ?', [
      tokenHash,
      userId,
      expiresTs,
      ttl,
    ]);
    // Pruning is logical: a token is dead once a token expiring a day after it was issued.
    const high = await this.highExpiry();
    if (high === null || expiresTs > high) {
      await this.ctx.execute(`INSERT INTO openid_meta (name, max_expires) VALUES ('high', ?)`, [expiresTs]);
    }
  }

  async lookupOpenIdToken(tokenHash: string, now: number): Promise<string | null> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute('SELECT user_id, expires_ts FROM openid_tokens WHERE token_hash = ?', [tokenHash])).first();
    if (!row) return null;
    const expires = num(row['expires_ts']);
    if (expires <= now) return null;
    const high = await this.highExpiry();
    if (high !== null && expires < high - OPENID_MAX_LIFETIME_MS) return null;
    return row['user_id'] as string;
  }

  private async highExpiry(): Promise<number | null> {
    const row = (await this.ctx.execute(`SELECT max_expires FROM openid_meta WHERE name = 'high'`)).first();
    return row ? num(row['max_expires']) : null;
  }

  private async exists(userId: string): Promise<boolean> {
    return (await this.ctx.execute('SELECT user_id FROM users WHERE user_id = ?', [userId])).rowLength > 0;
  }
}
