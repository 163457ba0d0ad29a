// E2EE key material: device keys, one-time and fallback keys, cross-signing keys, signatures.
// Everything that checks-then-writes does so inside one write-queue write: the queue is the only
// writer, so no other write can slip in between the check and the write.

import type { JsonObject, JsonValue } from '../../protocol/types.js';
import type { ClaimedKey, CrossSigningKeys, OneTimeKeyInput, SignatureInput } from '../e2ee-types.js';
import { StoreConflictError } from '../types.js';
import { jsonParse, type SqliteContext } from './context.js';
import { dict } from '../../protocol/canonical-json.js';

const CROSS_SIGNING_TYPES = ['master', 'self_signing', 'user_signing'] as const;

/**
 * JSON with object keys sorted, so "the same object" compares equal as text however the client
 * ordered its keys. Deliberately not canonicalJson: that rejects floats and other values a
 * client may legitimately put into opaque key objects, and this only needs to be deterministic.
 */
export function stableJson(value: JsonValue): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
    const obj = v as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(obj)
        .sort()
        .map((k) => [k, obj[k]]),
    );
  });
}

/** Adds device-list change rows at `pos`; runs inside a queued write. */
export function recordDeviceListChanges(ctx: SqliteContext, pos: number, userIds: Iterable<string>, ownerOnly = false): void {
  const stmt = ctx.stmt('INSERT OR IGNORE INTO e2ee_device_list_changes (stream, user_id, owner_only) VALUES (?, ?, ?)');
  for (const userId of userIds) stmt.run(pos, userId, ownerOnly ? 1 : 0);
}

interface SignatureRow {
  target_user_id: string;
  target_key_id: string;
  signer_user_id: string;
  signer_key_id: string;
  signature: string;
}

export class SqliteE2eeKeys {
  constructor(private readonly ctx: SqliteContext) {}

  // ---- device keys -------------------------------------------------------------------------

  async setDeviceKeys(userId: string, deviceId: string, keys: JsonObject): Promise<'stored' | 'replaced' | 'unchanged'> {
    this.ctx.checkOpen();
    const json = stableJson(keys);
    const current = (): string | undefined =>
      (this.ctx.stmt('SELECT keys_json FROM e2ee_device_keys WHERE user_id = ? AND device_id = ?').get(userId, deviceId) as { keys_json: string } | undefined)
        ?.keys_json;
    // Clients re-upload the same keys often: no stream position is spent on that.
    if (current() === json) return 'unchanged';
    return this.ctx.queue.writeAtPosition((pos) => {
      const raced = current();
      if (raced === json) return 'unchanged' as const;
      if (raced === undefined) {
        this.ctx.stmt('INSERT INTO e2ee_device_keys (user_id, device_id, keys_json) VALUES (?, ?, ?)').run(userId, deviceId, json);
      } else {
        this.ctx.stmt('UPDATE e2ee_device_keys SET keys_json = ? WHERE user_id = ? AND device_id = ?').run(json, userId, deviceId);
      }
      recordDeviceListChanges(this.ctx, pos, [userId]);
      return raced === undefined ? ('stored' as const) : ('replaced' as const);
    }, (res, pos) => (res === 'unchanged' ? null : { kind: 'device_list', stream: pos, userIds: [userId] }));
  }

  async getDeviceKeys(userIds: string[]): Promise<Map<string, Map<string, JsonObject>>> {
    this.ctx.checkOpen();
    const stmt = this.ctx.stmt('SELECT device_id, keys_json FROM e2ee_device_keys WHERE user_id = ? ORDER BY device_id');
    const out = new Map<string, Map<string, JsonObject>>();
    // Every requested user gets an entry, empty if they have no keyed device: /keys/query must
    // answer for each requested user or clients re-query in a tight loop.
    for (const userId of new Set(userIds)) {
      const devices = new Map<string, JsonObject>();
      for (const row of stmt.all(userId) as { device_id: string; keys_json: string }[]) {
        devices.set(row.device_id, jsonParse<JsonObject>(row.keys_json));
      }
      out.set(userId, devices);
    }
    return out;
  }

  // ---- one-time and fallback keys ----------------------------------------------------------

  async addOneTimeKeys(userId: string, deviceId: string, keys: OneTimeKeyInput[]): Promise<void> {
    this.ctx.checkOpen();
    // Serialised now: the caller may reuse its objects once the call returns.
    const rows = keys.map((k) => ({ algorithm: k.algorithm, keyId: k.keyId, json: stableJson(k.key) }));
    if (rows.length === 0) return;
    await this.ctx.queue.write(() => {
      const find = this.ctx.stmt(
        'SELECT key_json FROM e2ee_one_time_keys WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = ?',
      );
      const insert = this.ctx.stmt(
        'INSERT INTO e2ee_one_time_keys (user_id, device_id, algorithm, key_id, key_json) VALUES (?, ?, ?, ?, ?)',
      );
      // Claimed rows are still there, so reuse of a handed-out ID is caught too. Throwing rolls
      // back this write's savepoint, which undoes the keys inserted before the offending one.
      for (const r of rows) {
        const existing = find.get(userId, deviceId, r.algorithm, r.keyId) as { key_json: string } | undefined;
        if (existing === undefined) {
          insert.run(userId, deviceId, r.algorithm, r.keyId, r.json);
        } else if (existing.key_json !== r.json) {
          throw new StoreConflictError(`one-time key ${r.algorithm}:${r.keyId} already exists with different content`);
        }
      }
    }, { kind: 'device_keys', userId, deviceId });
  }

  async countOneTimeKeys(userId: string, deviceId: string): Promise<Record<string, number>> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt(
        `SELECT algorithm, COUNT(*) AS n FROM e2ee_one_time_keys
         WHERE user_id = ? AND device_id = ? AND claimed = 0 GROUP BY algorithm ORDER BY algorithm`,
      )
      .all(userId, deviceId) as { algorithm: string; n: number }[];
    const out: Record<string, number> = dict();
    for (const r of rows) out[r.algorithm] = r.n;
    return out;
  }

  async claimOneTimeKey(userId: string, deviceId: string, algorithm: string): Promise<ClaimedKey | null> {
    this.ctx.checkOpen();
    // Select and mark in one queued write: two concurrent claims run one after the other in the
    // single writer, so the second sees the first one's key as claimed.
    return this.ctx.queue.write((): ClaimedKey | null => {
      const otk = this.ctx
        .stmt(
          `SELECT id, key_id, key_json FROM e2ee_one_time_keys
           WHERE user_id = ? AND device_id = ? AND algorithm = ? AND claimed = 0 ORDER BY id LIMIT 1`,
        )
        .get(userId, deviceId, algorithm) as { id: number; key_id: string; key_json: string } | undefined;
      if (otk !== undefined) {
        this.ctx.stmt('UPDATE e2ee_one_time_keys SET claimed = 1 WHERE id = ?').run(otk.id);
        return { algorithm, keyId: otk.key_id, key: jsonParse<JsonValue>(otk.key_json), fallback: false };
      }
      const fb = this.ctx
        .stmt('SELECT key_id, key_json, used FROM e2ee_fallback_keys WHERE user_id = ? AND device_id = ? AND algorithm = ?')
        .get(userId, deviceId, algorithm) as { key_id: string; key_json: string; used: number } | undefined;
      if (fb === undefined) return null;
      if (fb.used === 0) {
        this.ctx
          .stmt('UPDATE e2ee_fallback_keys SET used = 1 WHERE user_id = ? AND device_id = ? AND algorithm = ?')
          .run(userId, deviceId, algorithm);
      }
      return { algorithm, keyId: fb.key_id, key: jsonParse<JsonValue>(fb.key_json), fallback: true };
    }, { kind: 'device_keys', userId, deviceId });
  }

  async setFallbackKey(userId: string, deviceId: string, algorithm: string, keyId: string, key: JsonValue): Promise<void> {
    this.ctx.checkOpen();
    const json = stableJson(key);
    await this.ctx.queue.write(() => {
      const existing = this.ctx
        .stmt('SELECT key_id, key_json FROM e2ee_fallback_keys WHERE user_id = ? AND device_id = ? AND algorithm = ?')
        .get(userId, deviceId, algorithm) as { key_id: string; key_json: string } | undefined;
      // Re-uploading the very same key (a retried /keys/upload) is not a new key: if it was
      // handed out meanwhile, calling it unused again would stop the client from rotating it.
      if (existing !== undefined && existing.key_id === keyId && existing.key_json === json) return;
      this.ctx
        .stmt(
          `INSERT INTO e2ee_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used) VALUES (?, ?, ?, ?, ?, 0)
           ON CONFLICT DO UPDATE SET key_id = excluded.key_id, key_json = excluded.key_json, used = 0`,
        )
        .run(userId, deviceId, algorithm, keyId, json);
    }, { kind: 'device_keys', userId, deviceId });
  }

  async getUnusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt('SELECT algorithm FROM e2ee_fallback_keys WHERE user_id = ? AND device_id = ? AND used = 0 ORDER BY algorithm')
      .all(userId, deviceId) as { algorithm: string }[];
    return rows.map((r) => r.algorithm);
  }

  // ---- cross-signing -----------------------------------------------------------------------

  async getCrossSigningKeys(userId: string): Promise<CrossSigningKeys> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt('SELECT key_type, key_json FROM e2ee_cross_signing_keys WHERE user_id = ?')
      .all(userId) as { key_type: keyof CrossSigningKeys; key_json: string }[];
    const out: CrossSigningKeys = {};
    for (const r of rows) out[r.key_type] = jsonParse<JsonObject>(r.key_json);
    return out;
  }

  async setCrossSigningKeys(userId: string, keys: CrossSigningKeys): Promise<void> {
    this.ctx.checkOpen();
    const given: { type: string; json: string }[] = [];
    for (const type of CROSS_SIGNING_TYPES) {
      const key = keys[type];
      if (key !== undefined) given.push({ type, json: stableJson(key) });
    }
    const find = () => this.ctx.stmt('SELECT key_json FROM e2ee_cross_signing_keys WHERE user_id = ? AND key_type = ?');
    const differs = (k: { type: string; json: string }) =>
      (find().get(userId, k.type) as { key_json: string } | undefined)?.key_json !== k.json;
    // Clients repeat identical uploads (no UIA is needed for them); those change nothing and
    // must not put the user into everyone's device_lists.changed again.
    if (!given.some(differs)) return;
    await this.ctx.queue.writeAtPosition((pos) => {
      const changed = given.filter(differs);
      if (changed.length === 0) return false;
      const upsert = this.ctx.stmt(
        `INSERT INTO e2ee_cross_signing_keys (user_id, key_type, key_json) VALUES (?, ?, ?)
         ON CONFLICT DO UPDATE SET key_json = excluded.key_json`,
      );
      for (const k of changed) upsert.run(userId, k.type, k.json);
      // Only the owner can read their user-signing key: a change of that key alone concerns
      // nobody else (room-mates, other servers).
      recordDeviceListChanges(this.ctx, pos, [userId], changed.every((k) => k.type === 'user_signing'));
      return true;
    }, (res, pos) => (res ? { kind: 'device_list', stream: pos, userIds: [userId] } : null));
  }

  async addSignatures(signatures: SignatureInput[]): Promise<void> {
    this.ctx.checkOpen();
    const sigs: SignatureInput[] = signatures.map((s) => ({
      targetUserId: s.targetUserId,
      targetKeyId: s.targetKeyId,
      signerUserId: s.signerUserId,
      signerKeyId: s.signerKeyId,
      signature: s.signature,
    }));
    const find = () =>
      this.ctx.stmt(
        `SELECT signature FROM e2ee_signatures
         WHERE target_user_id = ? AND target_key_id = ? AND signer_user_id = ? AND signer_key_id = ?`,
      );
    const differs = (s: SignatureInput) =>
      (find().get(s.targetUserId, s.targetKeyId, s.signerUserId, s.signerKeyId) as { signature: string } | undefined)?.signature !==
      s.signature;
    if (!sigs.some(differs)) return;
    await this.ctx.queue.writeAtPosition((pos) => {
      const upsert = this.ctx.stmt(
        `INSERT INTO e2ee_signatures (target_user_id, target_key_id, signer_user_id, signer_key_id, signature)
         VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET signature = excluded.signature`,
      );
      const targets = new Set<string>();
      for (const s of sigs) {
        if (!differs(s)) continue;
        upsert.run(s.targetUserId, s.targetKeyId, s.signerUserId, s.signerKeyId, s.signature);
        targets.add(s.targetUserId);
      }
      recordDeviceListChanges(this.ctx, pos, targets);
      return [...targets];
    }, (userIds, pos) => ({ kind: 'device_list', stream: pos, userIds }));
  }

  async getSignatures(targetUserIds: string[]): Promise<SignatureInput[]> {
    this.ctx.checkOpen();
    const stmt = this.ctx.stmt(
      `SELECT target_user_id, target_key_id, signer_user_id, signer_key_id, signature FROM e2ee_signatures
       WHERE target_user_id = ? ORDER BY target_key_id, signer_user_id, signer_key_id`,
    );
    const out: SignatureInput[] = [];
    for (const userId of new Set(targetUserIds)) {
      for (const r of stmt.all(userId) as SignatureRow[]) {
        out.push({
          targetUserId: r.target_user_id,
          targetKeyId: r.target_key_id,
          signerUserId: r.signer_user_id,
          signerKeyId: r.signer_key_id,
          signature: r.signature,
        });
      }
    }
    return out;
  }
}
