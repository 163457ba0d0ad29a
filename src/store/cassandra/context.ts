// What the Cassandra domain modules share: one driver client on the store's keyspace, the
// position allocator, and the hooks that let derived data (push actions, relations, search)
// be written in the same logged batch as the event that causes it.
//
// Rules every module keeps (see ../../../../shared/notes/cassandra.md for why):
// - Never bind null: pass `undefined` (the driver sends "unset", no tombstone). A column that
//   must read as "no value" uses a sentinel ('' or -1) or its row is absent.
// - No queue tables and no delete-heavy partitions; TTLs only for ephemeral data.
// - Lightweight transactions (IF ...) only where uniqueness demands it (user IDs, aliases,
//   txn IDs, one-time key claims, room ownership) and never mixed with plain writes on the
//   same cells. One exception: a fenced write's txn row (events.ts step 4a) is a plain write
//   in its event's batch, on a cell no LWT has written (a claim left by an unfenced writer is
//   taken over with an LWT instead); only purges delete it, with IF EXISTS, once the room is gone.
// - Every partition is bounded: per-room event data is bucketed by stream position.
// - Stream-positioned writes go through `writeAtPosition`, so the watermark and the change
//   records (the completion hook) stay exactly as on SQLite.

import type cassandra from 'cassandra-driver';
import { parseTrustedJson } from '../../protocol/canonical-json.js';
import type { ChangeDescriber, UnpositionedChange } from '../change-types.js';
import type { PersistEventInput, RoomRecord } from '../types.js';

export interface CqlStatement {
  query: string;
  params: unknown[];
}

/**
 * Derived rows written atomically (same logged batch) with an accepted event. Registered by the
 * modules that own the derived tables; the room module calls every hook on each persistEvent.
 */
export interface EventWriteHook {
  /** Statements for an accepted event (not outlier, soft-failed, rejected or backfilled) at `pos`. */
  forEvent(input: PersistEventInput, pos: number, room: RoomRecord): CqlStatement[] | Promise<CqlStatement[]>;
  /** Statements for a redaction of `targetEventId` that takes effect at `pos`. */
  forRedaction?(roomId: string, targetEventId: string, pos: number): CqlStatement[] | Promise<CqlStatement[]>;
}

export interface CassandraContext {
  readonly client: cassandra.Client;
  /** Runs one prepared statement (consistency LOCAL_QUORUM, serial LOCAL_SERIAL). */
  execute(query: string, params?: unknown[], opts?: cassandra.QueryOptions): Promise<cassandra.types.ResultSet>;
  /** All rows of a prepared query, following paging. */
  all(query: string, params?: unknown[], opts?: cassandra.QueryOptions): Promise<cassandra.types.Row[]>;
  /** A logged batch: all of it is applied eventually, or none (not isolated from readers). */
  batch(statements: CqlStatement[], opts?: cassandra.QueryOptions): Promise<void>;
  /**
   * Reserves a stream position, runs `write(pos)`, then completes the position with its change
   * record (or abandons it if the write throws). Resolves once the watermark has reached `pos`.
   */
  writeAtPosition<T>(write: (pos: number) => Promise<T>, describe?: ChangeDescriber<T>): Promise<T>;
  /**
   * Resolves while this instance's worker lease is fresh (renewing it first if needed); throws
   * once it is lost. Called right before a positioned write's final mutation (positions.ts).
   */
  confirmLease?(): Promise<void>;
  /** Tells the unpositioned-change listener (read model) about a committed unpositioned write. */
  unpositioned(change: UnpositionedChange): void;
  /** The completed position (readers never read above it). */
  currentPosition(): number;
  /** Hooks run by the room module inside persistEvent (see EventWriteHook). */
  readonly eventHooks: EventWriteHook[];
  /** Throws StoreClosedError (so the calling async method rejects) once the store is closed. */
  checkOpen(): void;
}

export class StoreClosedError extends Error {
  constructor() {
    super('store is closed');
    this.name = 'StoreClosedError';
  }
}

/** Stored JSON comes back with null-prototype objects, like request bodies. */
export function jsonParse<T>(text: string): T {
  return parseTrustedJson<T>(text);
}

/** bigint/counter columns arrive as driver Longs; positions and timestamps fit in a double. */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v !== null && typeof v === 'object' && 'toNumber' in v && typeof (v as { toNumber: unknown }).toNumber === 'function') {
    return (v as { toNumber(): number }).toNumber();
  }
  throw new TypeError(`not a number column: ${String(v)}`);
}

/** `num` for nullable columns. */
export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : num(v);
}

/** Whether a conditional (IF ...) statement or batch was applied. */
export function applied(rs: cassandra.types.ResultSet): boolean {
  const row = rs.first();
  return row !== null && row['[applied]'] === true;
}
