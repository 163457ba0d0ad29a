// Account data, filters and the generic transaction-response cache.

import { randomBytes } from 'node:crypto';
import type { JsonObject } from '../../protocol/types.js';
import type { AccountDataRecord, UserDataStore } from '../types.js';
import { jsonParse, type SqliteContext } from './context.js';

interface AccountDataRow {
  room_id: string;
  type: string;
  content_json: string;
  stream: number;
}

const toAccountData = (r: AccountDataRow): AccountDataRecord => ({
  roomId: r.room_id,
  type: r.type,
  content: jsonParse<JsonObject>(r.content_json),
  stream: r.stream,
});

export class SqliteUserDataStore implements UserDataStore {
  constructor(private readonly ctx: SqliteContext) {}

  async setAccountData(userId: string, roomId: string, type: string, content: JsonObject): Promise<number> {
    this.ctx.checkOpen();
    // Serialised before queueing so later mutation of `content` by the caller cannot leak in.
    const json = JSON.stringify(content);
    return this.ctx.queue.writeAtPosition((pos) => {
      this.ctx
        .stmt(
          `INSERT INTO account_data (user_id, room_id, type, content_json, stream) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT DO UPDATE SET content_json = excluded.content_json, stream = excluded.stream`,
        )
        .run(userId, roomId, type, json, pos);
      return pos;
    }, (_r, pos) => ({ kind: 'account_data', stream: pos, userId, roomId, dataType: type }));
  }

  async getAccountData(userId: string, roomId: string, type: string): Promise<JsonObject | null> {
    this.ctx.checkOpen();
    const row = this.ctx
      .stmt('SELECT content_json FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?')
      .get(userId, roomId, type) as { content_json: string } | undefined;
    return row ? jsonParse<JsonObject>(row.content_json) : null;
  }

  async getAllAccountData(userId: string): Promise<AccountDataRecord[]> {
    this.ctx.checkOpen();
    const rows = this.ctx
      .stmt('SELECT room_id, type, content_json, stream FROM account_data WHERE user_id = ? ORDER BY room_id, type')
      .all(userId) as AccountDataRow[];
    return rows.map(toAccountData);
  }

  async getAccountDataChanges(userId: string, fromExclusive: number, toInclusive: number): Promise<AccountDataRecord[]> {
    this.ctx.checkOpen();
    // Only the latest value of each key is kept, so a key rewritten after `toInclusive` shows up
    // in the later range instead; a sync walking consecutive ranges still sees every final value.
    const rows = this.ctx
      .stmt(
        `SELECT room_id, type, content_json, stream FROM account_data
         WHERE user_id = ? AND stream > ? AND stream <= ? ORDER BY stream`,
      )
      .all(userId, fromExclusive, toInclusive) as AccountDataRow[];
    return rows.map(toAccountData);
  }

  async createFilter(userId: string, filterJson: string): Promise<string> {
    this.ctx.checkOpen();
    return this.ctx.queue.write(() => {
      // Random IDs rather than a per-user counter: no read-modify-write, and the same scheme works
      // on backends without atomic counters. 96 bits make a collision practically impossible,
      // and the loop guards against it anyway.
      for (;;) {
        const filterId = randomBytes(12).toString('base64url');
        const res = this.ctx
          .stmt('INSERT INTO filters (user_id, filter_id, filter_json) VALUES (?, ?, ?) ON CONFLICT DO NOTHING')
          .run(userId, filterId, filterJson);
        if (res.changes > 0) return filterId;
      }
    });
  }

  async getFilter(userId: string, filterId: string): Promise<string | null> {
    this.ctx.checkOpen();
    const row = this.ctx.stmt('SELECT filter_json FROM filters WHERE user_id = ? AND filter_id = ?').get(userId, filterId) as
      | { filter_json: string }
      | undefined;
    return row ? row.filter_json : null;
  }

  async getTxnResponse(userId: string, deviceId: string, scope: string, txnId: string): Promise<JsonObject | null> {
    this.ctx.checkOpen();
    const row = this.ctx
      .stmt('SELECT response_json FROM txn_responses WHERE user_id = ? AND device_id = ? AND scope = ? AND txn_id = ?')
      .get(userId, deviceId, scope, txnId) as { response_json: string } | undefined;
    return row ? jsonParse<JsonObject>(row.response_json) : null;
  }

  async putTxnResponse(userId: string, deviceId: string, scope: string, txnId: string, response: JsonObject): Promise<void> {
    this.ctx.checkOpen();
    const json = JSON.stringify(response);
    await this.ctx.queue.write(() => {
      // First response wins: a retried request must be answered like the original.
      this.ctx
        .stmt(
          `INSERT INTO txn_responses (user_id, device_id, scope, txn_id, response_json) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT DO NOTHING`,
        )
        .run(userId, deviceId, scope, txnId, json);
    });
  }
}
