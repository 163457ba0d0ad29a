// Email addresses on accounts and validation sessions on SQLite (contract:
// src/store/threepid-types.ts). The single write queue makes "find or insert" atomic; expired
// sessions are swept by the writes that open new ones.

import type { AccountThreepid, ThreepidStore, ValidationSession } from '../threepid-types.js';
import type { SqliteContext } from './context.js';

interface SessionRow {
  sid: string;
  medium: string;
  address: string;
  client_secret: string;
  last_send_attempt: number;
  token: string;
  next_link: string | null;
  validated_at: number | null;
  created_at: number;
  expires_at: number;
}

function toSession(r: SessionRow): ValidationSession {
  return {
    sid: r.sid,
    medium: r.medium,
    address: r.address,
    clientSecret: r.client_secret,
    lastSendAttempt: r.last_send_attempt,
    token: r.token,
    nextLink: r.next_link,
    validatedAt: r.validated_at,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
  };
}

export class SqliteThreepidStore implements ThreepidStore {
  constructor(private readonly ctx: SqliteContext) {}

  async addAccountThreepid(userId: string, t: AccountThreepid): Promise<'added' | 'in_use'> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(() => {
      const owner = this.ctx.stmt('SELECT user_id FROM account_threepids WHERE medium = ? AND address = ?').get(t.medium, t.address) as { user_id: string } | undefined;
      if (owner) return owner.user_id === userId ? 'added' : 'in_use';
      this.ctx
        .stmt('INSERT INTO account_threepids (medium, address, user_id, validated_at, added_at) VALUES (?, ?, ?, ?, ?)')
        .run(t.medium, t.address, userId, t.validatedAt, t.addedAt);
      return 'added';
    });
  }

  async removeAccountThreepid(userId: string, medium: string, address: string): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('DELETE FROM account_threepids WHERE medium = ? AND address = ? AND user_id = ?').run(medium, address, userId);
    });
  }

  async listAccountThreepids(userId: string): Promise<AccountThreepid[]> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt('SELECT medium, address, validated_at, added_at FROM account_threepids WHERE user_id = ? ORDER BY medium, address')
      .all(userId) as Array<{ medium: string; address: string; validated_at: number; added_at: number }>;
    return rows.map((r) => ({ medium: r.medium, address: r.address, validatedAt: r.validated_at, addedAt: r.added_at }));
  }

  async userForThreepid(medium: string, address: string): Promise<string | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT user_id FROM account_threepids WHERE medium = ? AND address = ?').get(medium, address) as { user_id: string } | undefined;
    return row?.user_id ?? null;
  }

  async openValidationSession(fresh: ValidationSession, now: number): Promise<ValidationSession> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(() => {
      this.ctx.stmt('DELETE FROM threepid_sessions WHERE expires_at < ?').run(now);
      const existing = this.ctx
        .stmt('SELECT * FROM threepid_sessions WHERE medium = ? AND client_secret = ? AND address = ? AND validated_at IS NULL AND expires_at >= ? ORDER BY created_at LIMIT 1')
        .get(fresh.medium, fresh.clientSecret, fresh.address, now) as SessionRow | undefined;
      if (existing) return toSession(existing);
      this.ctx
        .stmt(
          'INSERT INTO threepid_sessions (sid, medium, address, client_secret, last_send_attempt, token, next_link, validated_at, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(fresh.sid, fresh.medium, fresh.address, fresh.clientSecret, fresh.lastSendAttempt, fresh.token, fresh.nextLink, fresh.validatedAt, fresh.createdAt, fresh.expiresAt);
      return fresh;
    });
  }

  async getValidationSession(sid: string, now: number): Promise<ValidationSession | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT * FROM threepid_sessions WHERE sid = ? AND expires_at >= ?').get(sid, now) as SessionRow | undefined;
    return row ? toSession(row) : null;
  }

  async recordValidationSend(sid: string, send: { lastSendAttempt: number; token: string; nextLink: string | null }): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('UPDATE threepid_sessions SET last_send_attempt = ?, token = ?, next_link = ? WHERE sid = ?').run(send.lastSendAttempt, send.token, send.nextLink, sid);
    });
  }

  async markValidated(sid: string, at: number): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.queue.write(() => {
      this.ctx.stmt('UPDATE threepid_sessions SET validated_at = ? WHERE sid = ? AND validated_at IS NULL').run(at, sid);
    });
  }
}
