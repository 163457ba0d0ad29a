// State groups: every stored state (before/after each event, and the room's current state over
// time) is a group. A group is either a snapshot (chain_len 0: all its entries are stored) or its
// prev_group plus a delta (chain_len = prev's + 1). Deltas chain at most SNAPSHOT_INTERVAL - 1
// deep, so reading any group reads one snapshot plus a bounded number of small deltas.
//
// Invariants:
// - Groups are immutable once written; a state that equals an existing group reuses it (an
//   empty delta never creates a group), so a message event costs no state rows at all.
// - Storage is linear in the number of state changes plus one full copy of the state every
//   SNAPSHOT_INTERVAL groups (the same trade Synapse makes). A fully quadratic design would copy
//   the whole state per event; a pure delta chain would make reads linear in the room's age.
// - A delta entry with event_id NULL removes the key (state resolution can drop a key whose
//   every candidate failed auth).

import type { Statement } from './db.js';
import type { StateEntry } from '../types.js';

export type Stmt = (sql: string) => Statement;

/** Snapshot every this many groups along a delta chain. */
export const SNAPSHOT_INTERVAL = 100;

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
  const insertGroup = stmt('INSERT INTO state_groups (room_id, prev_group, chain_len) VALUES (?, ?, ?)');
  const insertEntry = stmt(
    `INSERT INTO state_group_entries (group_id, type, state_key, event_id) VALUES (?, ?, ?, ?)
     ON CONFLICT DO UPDATE SET event_id = excluded.event_id`,
  );
  if (base === null) {
    const id = Number(insertGroup.run(roomId, null, 0).lastInsertRowid);
    for (const c of changes) if (c.eventId !== null) insertEntry.run(id, c.type, c.stateKey, c.eventId);
    return id;
  }
  const row = stmt('SELECT chain_len FROM state_groups WHERE id = ?').get(base) as { chain_len: number } | undefined;
  if (!row) throw new Error(`unknown state group ${base}`);
  if (row.chain_len + 1 >= SNAPSHOT_INTERVAL) {
    const full = readStateGroup(stmt, base);
    for (const c of changes) {
      if (c.eventId === null) full.delete(key(c.type, c.stateKey));
      else full.set(key(c.type, c.stateKey), { type: c.type, stateKey: c.stateKey, eventId: c.eventId });
    }
    const id = Number(insertGroup.run(roomId, base, 0).lastInsertRowid);
    for (const e of full.values()) insertEntry.run(id, e.type, e.stateKey, e.eventId);
    return id;
  }
  const id = Number(insertGroup.run(roomId, base, row.chain_len + 1).lastInsertRowid);
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
