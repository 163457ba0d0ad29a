// Storage contract for per-user data (account data, filters, transaction responses).
// Same rules as src/store/types.ts, which composes it into Store: async, concurrent-safe,
// writes resolve after commit, stream positions come from the one global sequence and are
// completed before the write resolves; returned objects are the caller's.

import type { JsonObject } from '../protocol/types.js';

// ---------------------------------------------------------------------------------------------
// Per-user data

export interface AccountDataRecord {
  /** '' for global account data. */
  roomId: string;
  type: string;
  content: JsonObject;
  stream: number;
}

export interface UserDataStore {
  /** Stores account data (roomId '' = global); returns its stream position, completed before resolve. */
  setAccountData(userId: string, roomId: string, type: string, content: JsonObject): Promise<number>;
  getAccountData(userId: string, roomId: string, type: string): Promise<JsonObject | null>;
  /** All account data of the user (global and per room). */
  getAllAccountData(userId: string): Promise<AccountDataRecord[]>;
  /** Account data changed in (fromExclusive, toInclusive]. */
  getAccountDataChanges(userId: string, fromExclusive: number, toInclusive: number): Promise<AccountDataRecord[]>;

  /** Stores the filter JSON text exactly as given; returns a new filter ID (never starts with '{'). */
  createFilter(userId: string, filterJson: string): Promise<string>;
  getFilter(userId: string, filterId: string): Promise<string | null>;

  /** Generic idempotency cache for non-event client requests (e.g. sendToDevice). */
  getTxnResponse(userId: string, deviceId: string, scope: string, txnId: string): Promise<JsonObject | null>;
  /** The first response stored for a key wins; later puts for it are ignored. */
  putTxnResponse(userId: string, deviceId: string, scope: string, txnId: string, response: JsonObject): Promise<void>;
}

