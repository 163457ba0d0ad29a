// Account data, filters and the transaction-response cache on Cassandra (tables:
// migrations/0004-users.ts).
//
// - Account data keeps the latest value per (user, room, type) with the position of its last
//   write, written through writeAtPosition with the same change record as SQLite. Change
//   queries filter the user's one partition by stream (a user has tens of keys, not millions).
// - Writes of one key from this instance are chained, so the value with the higher position is
//   also the one written last (last-write-wins then agrees with the stream order).
// - Filters: random 96-bit IDs, plain inserts (a collision is practically impossible; no LWT).
// - Transaction responses: first wins, so INSERT IF NOT EXISTS (the LWT this module needs).

import { randomBytes } from 'node:crypto';
import type cassandra from 'cassandra-driver';
import type { JsonObject } from '../../protocol/types.js';
import type { AccountDataRecord, UserDataStore } from '../types.js';
import { jsonParse, num, type CassandraContext, type CqlStatement } from './context.js';
import { KeyedChain } from '../../keyed-chain.js';

const toAccountData = (r: cassandra.types.Row): AccountDataRecord => ({
  roomId: r['room_id'] as string,
  type: r['type'] as string,
  content: jsonParse<JsonObject>(r['content_json'] as string),
  stream: num(r['stream']),
});

const byRoomType = (a: AccountDataRecord, b: AccountDataRecord) =>
  a.roomId < b.roomId ? -1 : a.roomId > b.roomId ? 1 : a.type < b.type ? -1 : a.type > b.type ? 1 : 0;

/**
 * Statements removing a deleted room's account data of the given users (a range delete in each
 * user's partition). Account data is keyed by user, so the caller names the users: everyone who
 * ever had a membership in the room is enough, since only they can have written it.
 */
export function roomAccountDataDeletes(roomId: string, userIds: Iterable<string>): CqlStatement[] {
  return [...new Set(userIds)].map((u) => ({ query: 'DELETE FROM account_data WHERE user_id = ? AND room_id = ?', params: [u, roomId] }));
}

export class CassandraUserDataStore implements UserDataStore {
  private readonly chain = new KeyedChain();

  constructor(private readonly ctx: CassandraContext) {}

  async setAccountData(userId: string, roomId: string, type: string, content: JsonObject): Promise<number> {
    this.ctx.checkOpen();
    // Serialised now so later mutation of `content` by the caller cannot leak in.
    const json = JSON.stringify(content);
    return this.chain.run(`${userId}\u0000${roomId}\u0000${type}`, () =>
      this.ctx.writeAtPosition(
        async (pos) => {
          await this.ctx.execute('INSERT INTO account_data (user_id, room_id, type, content_json, stream) VALUES (?, ?, ?, ?, ?)', [
            userId,
            roomId,
            type,
            json,
            pos,
          ]);
          return pos;
        },
        (_r, pos) => ({ kind: 'account_data', stream: pos, userId, roomId, dataType: type }),
      ),
    );
  }

  async getAccountData(userId: string, roomId: string, type: string): Promise<JsonObject | null> {
    this.ctx.checkOpen();
    const row = (
      await this.ctx.execute('SELECT content_json FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?', [userId, roomId, type])
    ).first();
    return row ? jsonParse<JsonObject>(row['content_json'] as string) : null;
  }

  async getAllAccountData(userId: string): Promise<AccountDataRecord[]> {
    this.ctx.checkOpen();
    const rows = await this.ctx.all('SELECT room_id, type, content_json, stream FROM account_data WHERE user_id = ?', [userId]);
    return rows.map(toAccountData).sort(byRoomType);
  }

  async getAccountDataChanges(userId: string, fromExclusive: number, toInclusive: number): Promise<AccountDataRecord[]> {
    this.ctx.checkOpen();
    // Only the latest value of each key is kept, so a key rewritten after `toInclusive` shows up
    // in the later range instead; a sync walking consecutive ranges still sees every final value.
    const rows = await this.ctx.all(
      'SELECT room_id, type, content_json, stream FROM account_data WHERE user_id = ? AND stream > ? AND stream <= ? ALLOW FILTERING',
      [userId, fromExclusive, toInclusive],
    );
    return rows.map(toAccountData).sort((a, b) => a.stream - b.stream);
  }

  async createFilter(userId: string, filterJson: string): Promise<string> {
    this.ctx.checkOpen();
    const filterId = randomBytes(12).toString('base64url');
    await this.ctx.execute('INSERT INTO filters (user_id, filter_id, filter_json) VALUES (?, ?, ?)', [userId, filterId, filterJson]);
    return filterId;
  }

  async getFilter(userId: string, filterId: string): Promise<string | null> {
    this.ctx.checkOpen();
    const row = (await this.ctx.execute('SELECT filter_json FROM filters WHERE user_id = ? AND filter_id = ?', [userId, filterId])).first();
    return row ? (row['filter_json'] as string) : null;
  }

  async getTxnResponse(userId: string, deviceId: string, scope: string, txnId: string): Promise<JsonObject | null> {
    this.ctx.checkOpen();
    const row = (
      await this.ctx.execute('SELECT response_json FROM txn_responses WHERE user_id = ? AND device_id = ? AND scope = ? AND txn_id = ?', [
        userId,
        deviceId,
        scope,
        txnId,
      ])
    ).first();
    return row ? jsonParse<JsonObject>(row['response_json'] as string) : null;
  }

  async putTxnResponse(userId: string, deviceId: string, scope: string, txnId: string, response: JsonObject): Promise<void> {
    this.ctx.checkOpen();
    const json = JSON.stringify(response);
    // First response wins: a retried request must be answered like the original.
    await this.ctx.execute(
      'INSERT INTO txn_responses (user_id, device_id, scope, txn_id, response_json) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS',
      [userId, deviceId, scope, txnId, json],
    );
  }
}
