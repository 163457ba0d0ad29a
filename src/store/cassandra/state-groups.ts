// State groups on Cassandra: every stored state (before/after each event, the room's current
// state over time) is an immutable group, either a snapshot or its base group plus a delta.
//
// Each group row carries its chain: the IDs from its snapshot up to itself. Reading a group is
// one read of that row plus one partition read per chain member, all in parallel (no walking
// hop by hop). A new snapshot is written once the deltas stacked on the last one reach half its
// size (at least SNAPSHOT_MIN_DELTA rows, as on SQLite: storage stays linear in the number of
// changes) or the chain reaches MAX_CHAIN groups (bounds the reads per group).
//
// Group IDs come from the event's stream position (pos * 4 + k, k = 1..3: an event creates at
// most three groups), so they are unique across instances without any coordination. (They stay
// below 2^53 while positions stay below 2^51: about 17 years of the 2025 position clock.) Group rows
// are written before the event's batch; until that batch lands nothing refers to them, so a
// failed write leaves only unreferenced rows, never a visible half-state.
//
// Invariants: groups never change once written; an empty change list reuses the base group;
// a delta entry with event_id '' removes the key.

import type { StateEntry, StateKeyRef } from '../types.js';
import { num, type CassandraContext, type CqlStatement } from './context.js';
import { byKey, mapLimit } from './rooms-util.js';

export const SNAPSHOT_MIN_DELTA = 100;
export const MAX_CHAIN = 32;
const REMOVED = '';

/** A change to a state: eventId null removes the key. */
export interface StateChange {
  type: string;
  stateKey: string;
  eventId: string | null;
}

interface GroupMeta {
  chain: number[];
  snapshotSize: number;
  deltaRows: number;
}

const key = (type: string, stateKey: string): string => `${type}\u0000${stateKey}`;

async function readMeta(ctx: CassandraContext, group: number): Promise<GroupMeta> {
  const row = (await ctx.execute('SELECT chain, snapshot_size, delta_rows FROM state_groups WHERE group_id = ?', [group])).first();
  if (!row) throw new Error(`unknown state group ${group}`);
  return {
    chain: (row['chain'] as unknown[]).map(num),
    snapshotSize: row['snapshot_size'] as number,
    deltaRows: row['delta_rows'] as number,
  };
}

async function readEntries(ctx: CassandraContext, group: number): Promise<StateChange[]> {
  const rows = await ctx.all('SELECT type, state_key, event_id FROM state_group_entries WHERE group_id = ?', [group]);
  return rows.map((r) => {
    const eventId = r['event_id'] as string;
    return { type: r['type'] as string, stateKey: r['state_key'] as string, eventId: eventId === REMOVED ? null : eventId };
  });
}

function applyChanges(into: Map<string, StateEntry>, changes: readonly StateChange[]): void {
  for (const c of changes) {
    if (c.eventId === null) into.delete(key(c.type, c.stateKey));
    else into.set(key(c.type, c.stateKey), { type: c.type, stateKey: c.stateKey, eventId: c.eventId });
  }
}

/** The full state of a stored group. Throws for unknown groups. */
export async function readStateGroup(ctx: CassandraContext, group: number): Promise<Map<string, StateEntry>> {
  const meta = await readMeta(ctx, group);
  const parts = await mapLimit(meta.chain, 16, (g) => readEntries(ctx, g));
  const out = new Map<string, StateEntry>();
  for (const p of parts) applyChanges(out, p);
  return out;
}

export async function stateGroupEntries(ctx: CassandraContext, group: number): Promise<StateEntry[]> {
  return [...(await readStateGroup(ctx, group)).values()].sort(byKey);
}

interface PendingGroup extends GroupMeta {
  id: number;
  roomId: string;
  entries: StateChange[];
}

/**
 * Groups created while persisting one event (at most three), held until `write()`; later ones
 * may build on earlier ones.
 */
export class GroupBuilder {
  private readonly pending = new Map<number, PendingGroup>();
  private k = 0;

  constructor(
    private readonly ctx: CassandraContext,
    private readonly roomId: string,
    private readonly pos: number,
  ) {}

  private nextId(): number {
    if (++this.k > 3) throw new Error('more than three state groups for one event');
    return this.pos * 4 + this.k;
  }

  private async meta(group: number): Promise<GroupMeta> {
    return this.pending.get(group) ?? readMeta(this.ctx, group);
  }

  private async full(group: number): Promise<Map<string, StateEntry>> {
    const p = this.pending.get(group);
    if (!p) return readStateGroup(this.ctx, group);
    const parts = await mapLimit(p.chain, 16, (g) => (g === p.id ? Promise.resolve(p.entries) : this.pendingOrStored(g)));
    const out = new Map<string, StateEntry>();
    for (const part of parts) applyChanges(out, part);
    return out;
  }

  private async pendingOrStored(group: number): Promise<StateChange[]> {
    return this.pending.get(group)?.entries ?? readEntries(this.ctx, group);
  }

  /** The group for `base` with `changes` applied (base null: the empty state). */
  async create(base: number | null, changes: readonly StateChange[]): Promise<number> {
    if (base !== null && changes.length === 0) return base;
    const snapshot = (entries: Iterable<StateEntry>): number => {
      const id = this.nextId();
      const list = [...entries].map((e) => ({ ...e }));
      this.pending.set(id, { id, roomId: this.roomId, chain: [id], snapshotSize: list.length, deltaRows: 0, entries: list });
      return id;
    };
    if (base === null) {
      const full = new Map<string, StateEntry>();
      applyChanges(full, changes);
      return snapshot(full.values());
    }
    const meta = await this.meta(base);
    const deltaRows = meta.deltaRows + changes.length;
    if (deltaRows > Math.max(SNAPSHOT_MIN_DELTA, meta.snapshotSize / 2) || meta.chain.length >= MAX_CHAIN) {
      const full = await this.full(base);
      applyChanges(full, changes);
      return snapshot(full.values());
    }
    const id = this.nextId();
    // Later entries for the same key win (a Map keeps the last).
    const dedup = new Map<string, StateChange>();
    for (const c of changes) dedup.set(key(c.type, c.stateKey), { ...c });
    this.pending.set(id, {
      id,
      roomId: this.roomId,
      chain: [...meta.chain, id],
      snapshotSize: meta.snapshotSize,
      deltaRows,
      entries: [...dedup.values()],
    });
    return id;
  }

  /** Writes the pending groups: entries first, then the row that makes each group readable. */
  async write(): Promise<void> {
    await Promise.all(
      [...this.pending.values()].map(async (g) => {
        const inserts: CqlStatement[] = g.entries.map((e) => ({
          query: 'INSERT INTO state_group_entries (group_id, type, state_key, event_id) VALUES (?, ?, ?, ?)',
          params: [g.id, e.type, e.stateKey, e.eventId ?? REMOVED],
        }));
        // One partition per group: unlogged chunks are applied as single mutations.
        for (let i = 0; i < inserts.length; i += 200) {
          await this.ctx.batch(inserts.slice(i, i + 200), { logged: false });
        }
        await this.ctx.execute(
          'INSERT INTO state_groups (group_id, room_id, chain, snapshot_size, delta_rows) VALUES (?, ?, ?, ?, ?)',
          [g.id, g.roomId, g.chain, g.snapshotSize, g.deltaRows],
        );
      }),
    );
  }
}

export function removalChanges(removed: readonly StateKeyRef[]): StateChange[] {
  return removed.map((e) => ({ type: e.type, stateKey: e.stateKey, eventId: null }));
}
