// E2EE key material on Cassandra: device keys, one-time and fallback keys, cross-signing keys,
// signatures. Same results, errors and change records as ../sqlite/e2ee-keys.ts.
//
// Invariants and why:
// - Device keys: the first upload is an LWT insert (INSERT IF NOT EXISTS), so concurrent first
//   uploads on any number of instances give exactly one 'stored'; a different later upload
//   replaces them by compare-and-set (UPDATE IF keys_json = <the value seen>), so each
//   'replaced' really changed them. All writes to the cell are LWTs and bind no null. The
//   device-list change row is written just before the LWT and taken back when the upload
//   changed nothing, so a crash can leave a spurious "changed" but never new keys nobody was
//   told about.
// - A one-time key goes to exactly one claimer: the `claim` cell of a queue row is written only
//   by `UPDATE ... IF key_json != null AND claim = null` with a random token, and a timed-out
//   LWT is resolved by reading the row back at SERIAL. Claims on one instance queue on a local
//   mutex per (user, device, algorithm) so they do not contend in Paxos; instances race in
//   the LWT.
// - Every key ID ever uploaded stays in e2ee_otk_ids (LWT-only: one conditional batch per
//   upload, all or nothing) so a claimed ID cannot come back, with the same or other content.
// - Claims take the oldest key: queue rows are ordered by `ord`, which for a new upload is above
//   every ord already queued for that algorithm. `claimed_below` (a plain cell, only ever a
//   lower bound: a stale or regressed value merely makes a claim scan more) lets a claim skip
//   the device's history of claimed keys instead of reading past all of them.
// - Fallback keys are plain cells: a claim marks the key used, an upload replaces it. A claim
//   racing a replacement can at worst mark the new key used, which makes the client rotate it
//   once more; fallback keys are meant to be handed out repeatedly, so no uniqueness is at stake.
// - One-time and fallback key writes announce ctx.unpositioned({ kind: 'device_keys' }) after
//   they are acknowledged, as the SQLite backend does after COMMIT.

import { randomUUID } from 'node:crypto';
import type cassandra from 'cassandra-driver';
import { dict } from '../../protocol/canonical-json.js';
import type { JsonObject, JsonValue } from '../../protocol/types.js';
import type { ClaimedKey, CrossSigningKeys, OneTimeKeyInput, SignatureInput } from '../e2ee-types.js';
import { StoreConflictError } from '../types.js';
import { applied, jsonParse, num, numOrNull, type CassandraContext, type CqlStatement } from './context.js';
import { chunks, deviceListChangeRemoval, deviceListChangeStatements, isCasTimeout, mapLimited, SERIAL_READ, stableJson } from './e2ee-common.js';
import { KeyedChain } from '../../keyed-chain.js';

const CROSS_SIGNING_TYPES = ['master', 'self_signing', 'user_signing'] as const;
/** Queue rows read per page while looking for an unclaimed key. */
const CLAIM_PAGE = 16;

interface OtkRow {
  algorithm: string;
  keyId: string;
  json: string;
}

export class CassandraE2eeKeys {
  private readonly locks = new KeyedChain();
  /** Last ord handed out here: keeps ords increasing even if the clock steps back. */
  private lastOrd = 0;

  constructor(private readonly ctx: CassandraContext) {}

  // ---- device keys -------------------------------------------------------------------------

  async setDeviceKeys(userId: string, deviceId: string, keys: JsonObject): Promise<'stored' | 'replaced' | 'unchanged'> {
    this.ctx.checkOpen();
    const json = stableJson(keys);
    const rs = await this.ctx.execute('SELECT keys_json FROM e2ee_device_keys WHERE user_id = ? AND device_id = ?', [userId, deviceId]);
    // Clients re-upload the same keys often: that costs one read and no stream position.
    if (rs.first()?.['keys_json'] === json) return 'unchanged';
    return this.ctx.writeAtPosition(
      async (pos) => {
        // The change row goes first: a crash after the LWT must not leave new keys that nobody
        // is told about (other users could not encrypt to the device). An upload that turns out
        // to change nothing takes its change row back; a crash before that leaves a spurious
        // "changed", which only costs a re-query.
        await this.ctx.batch(deviceListChangeStatements(pos, [userId]));
        const ins = await this.ctx.execute(
          'INSERT INTO e2ee_device_keys (user_id, device_id, keys_json) VALUES (?, ?, ?) IF NOT EXISTS',
          [userId, deviceId, json],
        );
        if (applied(ins)) return 'stored' as const;
        // Replacement is compare-and-set against the value seen, so every write that reports
        // 'replaced' really changed the keys, and a concurrent writer is retried against the new
        // value (never a blind overwrite, never a null bound: no tombstones).
        let current = ins.first()?.['keys_json'] as string | undefined;
        for (let attempt = 0; attempt < 8 && typeof current === 'string' && current !== json; attempt++) {
          const upd = await this.ctx.execute(
            'UPDATE e2ee_device_keys SET keys_json = ? WHERE user_id = ? AND device_id = ? IF keys_json = ?',
            [json, userId, deviceId, current],
          );
          if (applied(upd)) return 'replaced' as const;
          current = upd.first()?.['keys_json'] as string | undefined;
        }
        if (current !== json) throw new Error('device keys: replacement kept losing to concurrent uploads');
        await this.ctx.batch(deviceListChangeRemoval(pos, userId));
        return 'unchanged' as const;
      },
      (res, pos) => (res === 'unchanged' ? null : { kind: 'device_list', stream: pos, userIds: [userId] }),
    );
  }

  async getDeviceKeys(userIds: string[]): Promise<Map<string, Map<string, JsonObject>>> {
    this.ctx.checkOpen();
    const users = [...new Set(userIds)];
    const rows = await mapLimited(users, 32, (u) =>
      this.ctx.all('SELECT device_id, keys_json FROM e2ee_device_keys WHERE user_id = ?', [u]),
    );
    // Every requested user gets an entry, empty when no device has keys (as on SQLite).
    const out = new Map<string, Map<string, JsonObject>>();
    users.forEach((u, i) => {
      const devices = new Map<string, JsonObject>();
      for (const r of rows[i]!) devices.set(r['device_id'] as string, jsonParse<JsonObject>(r['keys_json'] as string));
      out.set(u, devices);
    });
    return out;
  }

  // ---- one-time keys -----------------------------------------------------------------------

  async addOneTimeKeys(userId: string, deviceId: string, keys: OneTimeKeyInput[]): Promise<void> {
    this.ctx.checkOpen();
    // Serialised now (the caller may reuse its objects); duplicates within the call obey the
    // same rule as against stored keys.
    const wanted = new Map<string, OtkRow>();
    for (const k of keys) {
      const row = { algorithm: k.algorithm, keyId: k.keyId, json: stableJson(k.key) };
      const id = `${k.algorithm}\u0000${k.keyId}`;
      const prev = wanted.get(id);
      if (prev !== undefined && prev.json !== row.json) {
        throw new StoreConflictError(`one-time key ${k.algorithm}:${k.keyId} given twice with different content`);
      }
      wanted.set(id, row);
    }
    if (wanted.size === 0) return;
    await this.locks.run(`${userId}\u0000${deviceId}`, async () => {
      let pending = [...wanted.values()];
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt >= 8) throw new Error('one-time key upload kept racing other uploads');
        const ords = await this.nextOrds(userId, deviceId, pending);
        // One partition (user, device): a single conditional batch, applied whole or not at all.
        const rs = await this.ctx.client.batch(
          pending.map((k, i) => ({
            query: `INSERT INTO e2ee_otk_ids (user_id, device_id, algorithm, key_id, key_json, ord) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
            params: [userId, deviceId, k.algorithm, k.keyId, k.json, ords[i]!],
          })),
          { prepare: true, logged: true },
        );
        if (applied(rs)) {
          await this.enqueue(userId, deviceId, pending.map((k, i) => ({ ...k, ord: ords[i]! })));
          break;
        }
        const existing = await this.registered(userId, deviceId, pending);
        const same: Array<OtkRow & { ord: number }> = [];
        for (const k of pending) {
          const e = existing.get(`${k.algorithm}\u0000${k.keyId}`);
          if (e === undefined) continue;
          if (e.json !== k.json) throw new StoreConflictError(`one-time key ${k.algorithm}:${k.keyId} already exists with different content`);
          same.push({ ...k, ord: e.ord });
        }
        // Re-queue what is already registered: repairs a queue row lost to a crash between the
        // registry batch and the queue write. Only key_json is written, never `claim`, so a
        // claimed key stays claimed.
        await this.enqueue(userId, deviceId, same);
        pending = pending.filter((k) => !existing.has(`${k.algorithm}\u0000${k.keyId}`));
      }
    });
    this.ctx.unpositioned({ kind: 'device_keys', userId, deviceId });
  }

  async countOneTimeKeys(userId: string, deviceId: string): Promise<Record<string, number>> {
    this.ctx.checkOpen();
    const algs = await this.ctx.all('SELECT algorithm, claimed_below FROM e2ee_otk_algs WHERE user_id = ? AND device_id = ?', [userId, deviceId]);
    const counts = await mapLimited(algs, 8, async (a) => {
      const rows = await this.ctx.all(
        'SELECT key_json, claim FROM e2ee_otk_queue WHERE user_id = ? AND device_id = ? AND algorithm = ? AND ord >= ?',
        [userId, deviceId, a['algorithm'], numOrNull(a['claimed_below']) ?? 0],
      );
      return rows.filter((r) => r['claim'] === null && r['key_json'] !== null).length;
    });
    const out: Record<string, number> = dict();
    algs.forEach((a, i) => {
      if (counts[i]! > 0) out[a['algorithm'] as string] = counts[i]!;
    });
    return out;
  }

  async claimOneTimeKey(userId: string, deviceId: string, algorithm: string): Promise<ClaimedKey | null> {
    this.ctx.checkOpen();
    const result = await this.locks.run(`${userId}\u0000${deviceId}\u0000${algorithm}`, async () => {
      return (await this.claimQueued(userId, deviceId, algorithm)) ?? (await this.claimFallback(userId, deviceId, algorithm));
    });
    this.ctx.unpositioned({ kind: 'device_keys', userId, deviceId });
    return result;
  }

  private async claimQueued(userId: string, deviceId: string, algorithm: string): Promise<ClaimedKey | null> {
    const alg = (
      await this.ctx.execute('SELECT claimed_below FROM e2ee_otk_algs WHERE user_id = ? AND device_id = ? AND algorithm = ?', [
        userId,
        deviceId,
        algorithm,
      ])
    ).first();
    if (alg === null) return null;
    const from = numOrNull(alg['claimed_below']) ?? 0;
    let pageState: string | undefined;
    do {
      const rs = await this.ctx.execute(
        'SELECT ord, key_id, key_json, claim FROM e2ee_otk_queue WHERE user_id = ? AND device_id = ? AND algorithm = ? AND ord >= ?',
        [userId, deviceId, algorithm, from],
        { fetchSize: CLAIM_PAGE, pageState },
      );
      for (const r of rs.rows) {
        if (r['claim'] !== null || r['key_json'] === null) continue;
        const ord = num(r['ord']);
        const keyId = r['key_id'] as string;
        if (!(await this.tryClaim(userId, deviceId, algorithm, ord, keyId))) continue;
        // Every row below this one was seen claimed (or lost to another claimer just now).
        if (ord > from) {
          await this.ctx.execute('UPDATE e2ee_otk_algs SET claimed_below = ? WHERE user_id = ? AND device_id = ? AND algorithm = ?', [
            ord,
            userId,
            deviceId,
            algorithm,
          ]);
        }
        return { algorithm, keyId, key: jsonParse<JsonValue>(r['key_json'] as string), fallback: false };
      }
      pageState = rs.pageState ?? undefined;
    } while (pageState);
    return null;
  }

  /** The LWT that makes a claim exclusive; true when this call won the key. */
  private async tryClaim(userId: string, deviceId: string, algorithm: string, ord: number, keyId: string): Promise<boolean> {
    const token = randomUUID();
    const where = [userId, deviceId, algorithm, ord, keyId];
    try {
      const rs = await this.ctx.execute(
        'UPDATE e2ee_otk_queue SET claim = ? WHERE user_id = ? AND device_id = ? AND algorithm = ? AND ord = ? AND key_id = ? IF key_json != null AND claim = null',
        [token, ...where],
      );
      return applied(rs);
    } catch (err) {
      if (!isCasTimeout(err)) throw err;
      // Unknown outcome: whoever's token is in the cell (read at SERIAL, which completes any
      // in-progress Paxos round) owns the key.
      const back = await this.ctx.execute(
        'SELECT claim FROM e2ee_otk_queue WHERE user_id = ? AND device_id = ? AND algorithm = ? AND ord = ? AND key_id = ?',
        where,
        SERIAL_READ,
      );
      return back.first()?.['claim'] === token;
    }
  }

  private async claimFallback(userId: string, deviceId: string, algorithm: string): Promise<ClaimedKey | null> {
    const fb = (
      await this.ctx.execute('SELECT key_id, key_json, used FROM e2ee_fallback_keys WHERE user_id = ? AND device_id = ? AND algorithm = ?', [
        userId,
        deviceId,
        algorithm,
      ])
    ).first();
    if (fb === null || fb['key_id'] === null || fb['key_json'] === null) return null;
    if (fb['used'] !== true) {
      await this.ctx.execute('UPDATE e2ee_fallback_keys SET used = ? WHERE user_id = ? AND device_id = ? AND algorithm = ?', [
        true,
        userId,
        deviceId,
        algorithm,
      ]);
    }
    return { algorithm, keyId: fb['key_id'] as string, key: jsonParse<JsonValue>(fb['key_json'] as string), fallback: true };
  }

  /** Ords for new queue rows: increasing in upload order and above every queued ord. */
  private async nextOrds(userId: string, deviceId: string, rows: OtkRow[]): Promise<number[]> {
    const algs = [...new Set(rows.map((r) => r.algorithm))];
    const tops = await mapLimited(algs, 8, async (a) => {
      const r = (
        await this.ctx.execute(
          'SELECT ord FROM e2ee_otk_queue WHERE user_id = ? AND device_id = ? AND algorithm = ? ORDER BY ord DESC LIMIT 1',
          [userId, deviceId, a],
        )
      ).first();
      return r === null ? 0 : num(r['ord']);
    });
    // Microseconds of the wall clock keep ords roughly comparable across instances.
    const base = Math.max(Date.now() * 1000, this.lastOrd + 1, ...tops.map((t) => t + 1));
    this.lastOrd = base + rows.length - 1;
    return rows.map((_r, i) => base + i);
  }

  private async enqueue(userId: string, deviceId: string, rows: Array<OtkRow & { ord: number }>): Promise<void> {
    if (rows.length === 0) return;
    const statements: CqlStatement[] = [];
    for (const a of new Set(rows.map((r) => r.algorithm))) {
      statements.push({ query: 'INSERT INTO e2ee_otk_algs (user_id, device_id, algorithm) VALUES (?, ?, ?)', params: [userId, deviceId, a] });
    }
    for (const r of rows) {
      statements.push({
        query: 'INSERT INTO e2ee_otk_queue (user_id, device_id, algorithm, ord, key_id, key_json) VALUES (?, ?, ?, ?, ?, ?)',
        params: [userId, deviceId, r.algorithm, r.ord, r.keyId, r.json],
      });
    }
    for (const part of chunks(statements, 200)) await this.ctx.batch(part);
  }

  /** Registry entries (read at SERIAL: LWT-written) of the given keys that exist. */
  private async registered(userId: string, deviceId: string, rows: OtkRow[]): Promise<Map<string, { json: string; ord: number }>> {
    const out = new Map<string, { json: string; ord: number }>();
    const byAlg = new Map<string, string[]>();
    for (const r of rows) byAlg.set(r.algorithm, [...(byAlg.get(r.algorithm) ?? []), r.keyId]);
    for (const [alg, ids] of byAlg) {
      for (const part of chunks(ids, 100)) {
        const rs: cassandra.types.ResultSet = await this.ctx.execute(
          'SELECT key_id, key_json, ord FROM e2ee_otk_ids WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id IN ?',
          [userId, deviceId, alg, part],
          SERIAL_READ,
        );
        for (const r of rs.rows) out.set(`${alg}\u0000${r['key_id'] as string}`, { json: r['key_json'] as string, ord: num(r['ord']) });
      }
    }
    return out;
  }

  // ---- fallback keys -----------------------------------------------------------------------

  async setFallbackKey(userId: string, deviceId: string, algorithm: string, keyId: string, key: JsonValue): Promise<void> {
    this.ctx.checkOpen();
    const json = stableJson(key);
    await this.locks.run(`${userId}\u0000${deviceId}\u0000${algorithm}`, async () => {
      const cur = (
        await this.ctx.execute('SELECT key_id, key_json FROM e2ee_fallback_keys WHERE user_id = ? AND device_id = ? AND algorithm = ?', [
          userId,
          deviceId,
          algorithm,
        ])
      ).first();
      // The very same key again (a retried upload) is not a new key: keep its `used` flag.
      if (cur !== null && cur['key_id'] === keyId && cur['key_json'] === json) return;
      await this.ctx.execute(
        'UPDATE e2ee_fallback_keys SET key_id = ?, key_json = ?, used = ? WHERE user_id = ? AND device_id = ? AND algorithm = ?',
        [keyId, json, false, userId, deviceId, algorithm],
      );
    });
    this.ctx.unpositioned({ kind: 'device_keys', userId, deviceId });
  }

  async getUnusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT algorithm, key_id, used FROM e2ee_fallback_keys WHERE user_id = ? AND device_id = ?', [userId, deviceId]);
    return rows.filter((r) => r['key_id'] !== null && r['used'] !== true).map((r) => r['algorithm'] as string);
  }

  // ---- cross-signing -----------------------------------------------------------------------

  async getCrossSigningKeys(userId: string): Promise<CrossSigningKeys> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT key_type, key_json FROM e2ee_cross_signing_keys WHERE user_id = ?', [userId]);
    const out: CrossSigningKeys = {};
    for (const r of rows) {
      const type = r['key_type'] as keyof CrossSigningKeys;
      if ((CROSS_SIGNING_TYPES as readonly string[]).includes(type)) out[type] = jsonParse<JsonObject>(r['key_json'] as string);
    }
    return out;
  }

  async setCrossSigningKeys(userId: string, keys: CrossSigningKeys): Promise<void> {
    this.ctx.checkOpen();
    const given: { type: string; json: string }[] = [];
    for (const type of CROSS_SIGNING_TYPES) {
      const key = keys[type];
      if (key !== undefined) given.push({ type, json: stableJson(key) });
    }
    const changed = async () => {
      const rows = await this.ctx.all('SELECT key_type, key_json FROM e2ee_cross_signing_keys WHERE user_id = ?', [userId]);
      const stored = new Map(rows.map((r) => [r['key_type'] as string, r['key_json'] as string]));
      return given.filter((k) => stored.get(k.type) !== k.json);
    };
    // Identical re-uploads change nothing and must not mark the user changed again.
    if ((await changed()).length === 0) return;
    await this.ctx.writeAtPosition(
      async (pos) => {
        const diff = await changed();
        if (diff.length === 0) return false;
        await this.ctx.batch([
          ...diff.map((k) => ({
            query: 'INSERT INTO e2ee_cross_signing_keys (user_id, key_type, key_json) VALUES (?, ?, ?)',
            params: [userId, k.type, k.json],
          })),
          // Only the owner can read their user-signing key: a change of that key alone
          // concerns nobody else.
          ...deviceListChangeStatements(pos, [userId], diff.every((k) => k.type === 'user_signing')),
        ]);
        return true;
      },
      (res, pos) => (res ? { kind: 'device_list', stream: pos, userIds: [userId] } : null),
    );
  }

  // ---- signatures --------------------------------------------------------------------------

  async addSignatures(signatures: SignatureInput[]): Promise<void> {
    this.ctx.checkOpen();
    const sigs: SignatureInput[] = signatures.map((s) => ({
      targetUserId: s.targetUserId,
      targetKeyId: s.targetKeyId,
      signerUserId: s.signerUserId,
      signerKeyId: s.signerKeyId,
      signature: s.signature,
    }));
    const differing = async () => {
      const stored = new Set((await this.getSignatures(sigs.map((s) => s.targetUserId))).map(sigKey));
      return sigs.filter((s) => !stored.has(sigKey(s)));
    };
    if ((await differing()).length === 0) return;
    await this.ctx.writeAtPosition(
      async (pos) => {
        const diff = await differing();
        const targets = [...new Set(diff.map((s) => s.targetUserId))];
        const statements: CqlStatement[] = diff.map((s) => ({
          query: `INSERT INTO e2ee_signatures (target_user_id, target_key_id, signer_user_id, signer_key_id, signature)
                  VALUES (?, ?, ?, ?, ?)`,
          params: [s.targetUserId, s.targetKeyId, s.signerUserId, s.signerKeyId, s.signature],
        }));
        await this.ctx.batch([...statements, ...deviceListChangeStatements(pos, targets)]);
        return targets;
      },
      (userIds, pos) => ({ kind: 'device_list', stream: pos, userIds }),
    );
  }

  async getSignatures(targetUserIds: string[]): Promise<SignatureInput[]> {
    this.ctx.checkOpen();
    const users = [...new Set(targetUserIds)];
    const rows = await mapLimited(users, 32, (u) =>
      this.ctx.all(
        'SELECT target_user_id, target_key_id, signer_user_id, signer_key_id, signature FROM e2ee_signatures WHERE target_user_id = ?',
        [u],
      ),
    );
    return rows.flat().map((r) => ({
      targetUserId: r['target_user_id'] as string,
      targetKeyId: r['target_key_id'] as string,
      signerUserId: r['signer_user_id'] as string,
      signerKeyId: r['signer_key_id'] as string,
      signature: r['signature'] as string,
    }));
  }

  /** Statements removing a device's one-time and fallback keys (for deleteDeviceE2ee). */
  async deviceKeyDeletions(userId: string, deviceId: string): Promise<CqlStatement[]> {
    const algs = await this.ctx.all('SELECT algorithm FROM e2ee_otk_algs WHERE user_id = ? AND device_id = ?', [userId, deviceId]);
    return [
      ...algs.map((a) => ({
        query: 'DELETE FROM e2ee_otk_queue WHERE user_id = ? AND device_id = ? AND algorithm = ?',
        params: [userId, deviceId, a['algorithm']],
      })),
      { query: 'DELETE FROM e2ee_otk_algs WHERE user_id = ? AND device_id = ?', params: [userId, deviceId] },
      { query: 'DELETE FROM e2ee_otk_ids WHERE user_id = ? AND device_id = ?', params: [userId, deviceId] },
      { query: 'DELETE FROM e2ee_fallback_keys WHERE user_id = ? AND device_id = ?', params: [userId, deviceId] },
      { query: 'DELETE FROM e2ee_signatures WHERE target_user_id = ? AND target_key_id = ?', params: [userId, deviceId] },
    ];
  }
}

function sigKey(s: SignatureInput): string {
  return JSON.stringify([s.targetUserId, s.targetKeyId, s.signerUserId, s.signerKeyId, s.signature]);
}
