// State groups: every stored state (before/after each event, and the room's current state over
// time) is a group. A group is either a snapshot (chain_len 0: all its entries are stored) or its
// prev_group plus a delta (chain_len = prev's + 1).
//
// When to snapshot: once the delta rows piled on the last snapshot reach half that snapshot's
// size (and at least SNAPSHOT_MIN_DELTA). So:
// - reading any group reads one snapshot plus at most max(SNAPSHOT_MIN_DELTA, size / 2) delta
//   rows: bounded by 1.5x the size of the answer (plus a constant), never by the room's age;
// - storage is linear: each snapshot of S rows is paid for by at least S / 2 delta rows since the
//   previous one, so every state change costs O(1) rows amortised. A fixed snapshot interval
//   (Synapse: every 100 groups) would cost size / 100 rows per change: quadratic in the end.
//
// Invariants:
// - Groups are immutable once written; a state that equals an existing group reuses it (an
//   empty delta never creates a group), so a message event costs no state rows at all.
// - A delta entry with event_id NULL removes the key (state resolution can drop a key whose
//   every candidate failed auth).

import type { Statement } from './db.js';
import type { StateEntry } from '../types.js';

export type Stmt = (sql: string) => Statement;

/** Delta rows a snapshot may carry before a new one is written, at least (small states). */
export const SNAPSHOT_MIN_DELTA = 100;

/** A change to a state: eventId null removes the key. */
export interface StateChange {
  type: string;
  stateKey: string;
  eventId: string | null;
}

const key = (type: string, stateKey: string): string => `${type}\u0000${stateKey}`;

/** The full state of `group` as a map from `type\0stateKey` to event ID. Throws for unknown groups. */
export function readStateGroup(stmt: Stmt, group: number): Map<string, StateEntry> {
  // Walks from the group back to its snapshot; `n` orders the rows so newer deltas win.
  const rows = stmt(
    `WITH RECURSIVE chain(id, prev, len, n) AS (
       SELECT id, prev_group, chain_len, 0 FROM state_groups WHERE id = ?
       UNION ALL
       SELECT g.id, g.prev_group, g.chain_len, chain.n + 1 FROM state_groups g JOIN chain ON g.id = chain.prev WHERE chain.len > 0
     )
     SELECT chain.n AS n, e.type AS type, e.state_key AS state_key, e.event_id AS event_id
     FROM chain LEFT JOIN state_group_entries e ON e.group_id = chain.id ORDER BY chain.n DESC`,
  ).all(group) as { n: number; type: string | null; state_key: string | null; event_id: string | null }[];
  if (rows.length === 0) throw new Error(`unknown state group ${group}`);
  const out = new Map<string, StateEntry>();
  for (const r of rows) {
    if (r.type === null || r.state_key === null) continue;
    const k = key(r.type, r.state_key);
    if (r.event_id === null) out.delete(k);
    else out.set(k, { type: r.type, stateKey: r.state_key, eventId: r.event_id });
  }
  return out;
}

/**
 * The group for `base` with `changes` applied (base null: the empty state). Reuses `base` when
 * nothing changes. Returns the group ID.
 */
export function createStateGroup(stmt: Stmt, roomId: string, base: number | null, changes: readonly StateChange[]): number {
  if (base !== null && changes.length === 0) return base;
  const insertGroup = stmt(
    'INSERT INTO state_groups (room_id, prev_group, chain_len, snapshot_size, delta_rows) VALUES (?, ?, ?, ?, ?)',
  );
  const insertEntry = stmt(
    `INSERT INTO state_group_entries (group_id, type, state_key, event_id) VALUES (?, ?, ?, ?)
     ON CONFLICT DO UPDATE SET event_id = excluded.event_id`,
  );
  const snapshot = (prev: number | null, entries: Iterable<StateEntry>): number => {
    const list = [...entries];
    const id = Number(insertGroup.run(roomId, prev, 0, list.length, 0).lastInsertRowid);
    for (const e of list) insertEntry.run(id, e.type, e.stateKey, e.eventId);
    return id;
  };
  if (base === null) {
    const full = new Map<string, StateEntry>();
    for (const c of changes) if (c.eventId !== null) full.set(key(c.type, c.stateKey), { type: c.type, stateKey: c.stateKey, eventId: c.eventId });
    return snapshot(null, full.values());
  }
  const row = stmt('SELECT chain_len, snapshot_size, delta_rows FROM state_groups WHERE id = ?').get(base) as
    | { chain_len: number; snapshot_size: number; delta_rows: number }
    | undefined;
  if (!row) throw new Error(`unknown state group ${base}`);
  const deltaRows = row.delta_rows + changes.length;
  if (deltaRows > Math.max(SNAPSHOT_MIN_DELTA, row.snapshot_size / 2)) {
    const full = readStateGroup(stmt, base);
    for (const c of changes) {
      if (c.eventId === null) full.delete(key(c.type, c.stateKey));
      else full.set(key(c.type, c.stateKey), { type: c.type, stateKey: c.stateKey, eventId: c.eventId });
    }
    return snapshot(base, full.values());
  }
  const id = Number(insertGroup.run(roomId, base, row.chain_len + 1, row.snapshot_size, deltaRows).lastInsertRowid);
  for (const c of changes) insertEntry.run(id, c.type, c.stateKey, c.eventId);
  return id;
}

/** Changes that turn state `from` into state `to`. */
export function diffStates(from: ReadonlyMap<string, StateEntry>, to: ReadonlyMap<string, StateEntry>): StateChange[] {
  const out: StateChange[] = [];
  for (const [k, e] of to) if (from.get(k)?.eventId !== e.eventId) out.push({ type: e.type, stateKey: e.stateKey, eventId: e.eventId });
  for (const [k, e] of from) if (!to.has(k)) out.push({ type: e.type, stateKey: e.stateKey, eventId: null });
  return out;
}
