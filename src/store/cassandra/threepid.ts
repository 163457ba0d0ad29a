// Email addresses on accounts and validation sessions on Cassandra (contract:
// src/store/threepid-types.ts; behaviour as src/store/sqlite/threepid.ts).
//
// An address is claimed in threepid_owners with LWT (INSERT IF NOT EXISTS), then listed under its
// user in account_threepids; removal deletes the listing and releases the claim only if this
// user holds it. Sessions carry a TTL to their expiry (plus an hour, so an expired one is
// still recognised as expired rather than unknown for a while); threepid_session_keys points at
// the live session of (medium, client_secret, address), taken with LWT so two concurrent
// requestTokens share one session.

import type { types } from 'cassandra-driver';
import type { AccountThreepid, ThreepidStore, ValidationSession } from '../threepid-types.js';
import { applied, num, numOrNull, type CassandraContext } from './context.js';

const SESSION_COLUMNS = 'sid, medium, address, client_secret, last_send_attempt, validation_token, next_link, validated_at, created_at, expires_at';

function toSession(r: types.Row): ValidationSession {
  return {
    sid: r.get('sid') as string,
    medium: r.get('medium') as string,
    address: r.get('address') as string,
    clientSecret: r.get('client_secret') as string,
    lastSendAttempt: num(r.get('last_send_attempt')),
    token: r.get('validation_token') as string,
    nextLink: (r.get('next_link') as string | null) ?? null,
    validatedAt: numOrNull(r.get('validated_at')),
    createdAt: num(r.get('created_at')),
    expiresAt: num(r.get('expires_at')),
  };
}

export class CassandraThreepidStore implements ThreepidStore {
  constructor(private readonly ctx: CassandraContext) {}

  async addAccountThreepid(userId: string, t: AccountThreepid): Promise<'added' | 'in_use'> {
    this.ctx.checkOpen();
    const rs = await this.ctx.execute('INSERT INTO threepid_owners (medium, address, user_id, validated_at, added_at) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS', [
      t.medium,
      t.address,
      userId,
      t.validatedAt,
      t.addedAt,
    ]);
    if (!applied(rs)) {
      if (rs.first()?.get('user_id') !== userId) return 'in_use';
      // Its owner adding it again: make sure the listing exists (a crash may have come between).
    }
    await this.ctx.execute('INSERT INTO account_threepids (user_id, medium, address, validated_at, added_at) VALUES (?, ?, ?, ?, ?)', [userId, t.medium, t.address, t.validatedAt, t.addedAt]);
    return 'added';
  }

  async removeAccountThreepid(userId: string, medium: string, address: string): Promise<void> {
    this.ctx.checkOpen();
    await this.ctx.execute('DELETE FROM account_threepids WHERE user_id = ? AND medium = ? AND address = ?', [userId, medium, address]);
    await this.ctx.execute('DELETE FROM threepid_owners WHERE medium = ? AND address = ? IF user_id = ?', [medium, address, userId]);
  }

  async listAccountThreepids(userId: string): Promise<AccountThreepid[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT medium, address, validated_at, added_at FROM account_threepids WHERE user_id = ?', [userId]);
    return rows.map((r) => ({ medium: r.get('medium') as string, address: r.get('address') as string, validatedAt: num(r.get('validated_at')), addedAt: num(r.get('added_at')) }));
  }

  async userForThreepid(medium: string, address: string): Promise<string | null> {
    this.ctx.checkOpen();
    const rs = await this.ctx.execute('SELECT user_id FROM threepid_owners WHERE medium = ? AND address = ?', [medium, address]);
    return (rs.first()?.get('user_id') as string | undefined) ?? null;
  }

  async openValidationSession(fresh: ValidationSession, now: number): Promise<ValidationSession> {
    this.ctx.checkOpen();
    const ttl = ttlOf(fresh, now);
    const key = [fresh.medium, fresh.clientSecret, fresh.address];
    // The session row first: a key must never point at a session that is not there yet.
    await this.insertSession(fresh, ttl);
    for (let attempt = 0; attempt < 3; attempt++) {
      const rs = await this.ctx.execute(`INSERT INTO threepid_session_keys (medium, client_secret, address, sid) VALUES (?, ?, ?, ?) IF NOT EXISTS USING TTL ${ttl}`, [...key, fresh.sid]);
      if (applied(rs)) return fresh;
      const heldSid = rs.first()?.get('sid') as string;
      const held = await this.getValidationSession(heldSid, now);
      if (held && held.validatedAt === null) {
        await this.ctx.execute('DELETE FROM threepid_sessions WHERE sid = ?', [fresh.sid]);
        return held;
      }
      // The key names a validated or expired session: move it to the fresh one, unless another
      // request moved it first (then look again).
      const moved = await this.ctx.execute(`UPDATE threepid_session_keys USING TTL ${ttl} SET sid = ? WHERE medium = ? AND client_secret = ? AND address = ? IF sid = ?`, [fresh.sid, ...key, heldSid]);
      if (applied(moved)) return fresh;
    }
    throw new Error('could not open a validation session: its key kept changing');
  }

  async getValidationSession(sid: string, now: number): Promise<ValidationSession | null> {
    this.ctx.checkOpen();
    const rs = await this.ctx.execute(`SELECT ${SESSION_COLUMNS} FROM threepid_sessions WHERE sid = ?`, [sid]);
    const row = rs.first();
    if (!row) return null;
    const s = toSession(row);
    return s.expiresAt >= now ? s : null;
  }

  async recordValidationSend(sid: string, send: { lastSendAttempt: number; token: string; nextLink: string | null }): Promise<void> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute(`SELECT ${SESSION_COLUMNS} FROM threepid_sessions WHERE sid = ?`, [sid])).first();
    if (!row) return;
    const s = toSession(row);
    // Rewritten whole with the row's TTL: an UPDATE would give the new cells no TTL of their own.
    await this.insertSession({ ...s, ...send }, ttlOf(s, Date.now()));
  }

  async markValidated(sid: string, at: number): Promise<void> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute(`SELECT ${SESSION_COLUMNS} FROM threepid_sessions WHERE sid = ?`, [sid])).first();
    if (!row) return;
    const s = toSession(row);
    if (s.validatedAt !== null) return;
    await this.insertSession({ ...s, validatedAt: at }, ttlOf(s, Date.now()));
  }

  private async insertSession(s: ValidationSession, ttl: number): Promise<void> {
    await this.ctx.execute(`INSERT INTO threepid_sessions (${SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ${ttl}`, [
      s.sid,
      s.medium,
      s.address,
      s.clientSecret,
      s.lastSendAttempt,
      s.token,
      s.nextLink,
      s.validatedAt,
      s.createdAt,
      s.expiresAt,
    ]);
  }
}

/** Seconds the rows live: to the session's expiry plus an hour, at least a minute. */
function ttlOf(s: ValidationSession, now: number): number {
  return Math.max(60, Math.ceil((s.expiresAt - now) / 1000) + 3600);
}
