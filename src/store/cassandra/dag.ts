// The auth chain index on Cassandra: the same chain cover as SQLite (../sqlite/dag.ts explains
// the idea and why it is linear in size), stored for partition reads.
//
// - Every stored, non-rejected state event gets (chain_id, chain_seq) on its events row and a row
//   in auth_chains ((chain_id), seq). It joins the chain of one of its auth events when that auth
//   event is the chain's head and in the same room (so one room's writer is the only writer of a
//   chain), else it starts a chain whose ID is its own stream position (unique without any
//   coordination, backfill's negative positions included).
// - A link (origin chain, origin seq) -> (target chain, target seq) per auth event in another
//   chain: "this event and every later one of its chain reach the target and all below it". Links
//   are stored by origin (walking forward) and by target (room 12's backward walk).
//
// Reads walk links chain by chain (one partition read per chain reached, all chains of a step in
// parallel) and read the answer as seq ranges of auth_chains: the cost follows the number of
// chains involved, not the size of the auth chains.

import { num, numOrNull, type CassandraContext, type CqlStatement } from './context.js';
import { mapLimit, readEventRows, scan } from './rooms-util.js';
import type cassandra from 'cassandra-driver';

interface ChainPos {
  chain: number;
  seq: number;
}

/**
 * The index position and rows for a new state event. `rows` holds the stored auth events
 * (columns room_id, chain_id, chain_seq); auth events not stored (or not indexed) are skipped.
 */
export async function chainIndexStatements(
  ctx: CassandraContext,
  roomId: string,
  eventId: string,
  pos: number,
  authEvents: readonly string[],
  rows: ReadonlyMap<string, cassandra.types.Row>,
): Promise<{ position: ChainPos; statements: CqlStatement[] }> {
  const auths: Array<ChainPos & { roomId: string }> = [];
  for (const id of new Set(authEvents)) {
    const row = rows.get(id);
    const chain = row ? numOrNull(row['chain_id']) : null;
    if (row && chain !== null) auths.push({ chain, seq: num(row['chain_seq']), roomId: row['room_id'] as string });
  }
  const candidates = [...new Set(auths.filter((a) => a.roomId === roomId).map((a) => a.chain))];
  const heads = new Map<number, number>();
  await Promise.all(
    candidates.map(async (chain) => {
      const row = (await ctx.execute('SELECT seq FROM auth_chains WHERE chain_id = ? ORDER BY seq DESC LIMIT 1', [chain])).first();
      if (row) heads.set(chain, num(row['seq']));
    }),
  );
  let mine: ChainPos | undefined;
  for (const a of auths) {
    // Longest chains first: fewer chains mean fewer link walks later.
    if (a.roomId === roomId && heads.get(a.chain) === a.seq && (!mine || a.seq + 1 > mine.seq)) mine = { chain: a.chain, seq: a.seq + 1 };
  }
  mine ??= { chain: pos, seq: 1 };
  const statements: CqlStatement[] = [
    { query: 'INSERT INTO auth_chains (chain_id, seq, event_id, room_id) VALUES (?, ?, ?, ?)', params: [mine.chain, mine.seq, eventId, roomId] },
  ];
  for (const a of auths) {
    if (a.chain === mine.chain) continue;
    statements.push(
      {
        query: 'INSERT INTO auth_chain_links (origin_chain, origin_seq, target_chain, target_seq) VALUES (?, ?, ?, ?)',
        params: [mine.chain, mine.seq, a.chain, a.seq],
      },
      {
        query: 'INSERT INTO auth_chain_links_in (target_chain, target_seq, origin_chain, origin_seq) VALUES (?, ?, ?, ?)',
        params: [a.chain, a.seq, mine.chain, mine.seq],
      },
    );
  }
  return { position: mine, statements };
}

/** Index positions and links for one call, each read once as the walk reaches it. */
class ChainReader {
  private readonly positions = new Map<string, ChainPos | null>();
  private readonly links = new Map<number, ChainPos[][]>();

  constructor(private readonly ctx: CassandraContext) {}

  async loadPositions(ids: Iterable<string>): Promise<void> {
    const want = [...new Set(ids)].filter((id) => !this.positions.has(id));
    const rows = await readEventRows(this.ctx, want, 'event_id, chain_id, chain_seq');
    for (const id of want) {
      const row = rows.get(id);
      const chain = row ? numOrNull(row['chain_id']) : null;
      this.positions.set(id, row && chain !== null ? { chain, seq: num(row['chain_seq']) } : null);
    }
  }

  position(id: string): ChainPos | null {
    return this.positions.get(id) ?? null;
  }

  async loadLinks(chains: Iterable<number>): Promise<void> {
    const want = [...new Set(chains)].filter((c) => !this.links.has(c));
    await mapLimit(want, 32, async (chain) => {
      const byChain: ChainPos[][] = [];
      const q = 'SELECT origin_seq, target_chain, target_seq FROM auth_chain_links WHERE origin_chain = ?';
      for await (const r of scan(this.ctx, q, [chain], 1000)) {
        // Indexed by origin seq: a walk reaching seq s follows the links of every seq <= s.
        (byChain[num(r['origin_seq'])] ??= []).push({ chain: num(r['target_chain']), seq: num(r['target_seq']) });
      }
      this.links.set(chain, byChain);
    });
  }

  /** Links of `chain` with origin seq in (after, upTo]. */
  linksBetween(chain: number, after: number, upTo: number): ChainPos[] {
    const byChain = this.links.get(chain) ?? [];
    const out: ChainPos[] = [];
    const end = Math.min(upTo, byChain.length - 1);
    for (let seq = after + 1; seq <= end; seq++) {
      const l = byChain[seq];
      if (l) out.push(...l);
    }
    return out;
  }
}

/**
 * For a set of events: per chain, the highest seq that is in the set's auth chain (the auth
 * chain of an event excludes the event itself, so its own chain counts up to seq - 1).
 */
async function authChainBounds(reader: ChainReader, eventIds: readonly string[]): Promise<Map<number, number>> {
  const include = new Map<number, number>();
  const expanded = new Map<number, number>();
  let todo: ChainPos[] = [];
  const raise = (chain: number, seq: number): void => {
    if ((include.get(chain) ?? 0) < seq) include.set(chain, seq);
  };
  for (const id of eventIds) {
    const pos = reader.position(id);
    if (!pos) continue;
    raise(pos.chain, pos.seq - 1);
    todo.push(pos);
  }
  while (todo.length > 0) {
    await reader.loadLinks(todo.map((p) => p.chain));
    const next: ChainPos[] = [];
    for (const { chain, seq } of todo) {
      const done = expanded.get(chain) ?? 0;
      if (seq <= done) continue;
      expanded.set(chain, seq);
      for (const t of reader.linksBetween(chain, done, seq)) {
        raise(t.chain, t.seq);
        next.push(t);
      }
    }
    todo = next;
  }
  return include;
}

/** Event IDs of `chain` with seq in [from, to], in `roomId`. */
async function chainRange(ctx: CassandraContext, roomId: string, chain: number, from: number, to: number, into: Set<string>): Promise<void> {
  const q = 'SELECT event_id, room_id FROM auth_chains WHERE chain_id = ? AND seq >= ? AND seq <= ?';
  for await (const r of scan(ctx, q, [chain, from, to], 1000)) if (r['room_id'] === roomId) into.add(r['event_id'] as string);
}

/** Events in some set's auth chain but not in every set's (state resolution v2's auth difference). */
export async function authChainDifference(ctx: CassandraContext, roomId: string, sets: readonly (readonly string[])[]): Promise<Set<string>> {
  const out = new Set<string>();
  if (sets.length < 2) return out;
  const reader = new ChainReader(ctx);
  await reader.loadPositions(sets.flat());
  const bounds: Array<Map<number, number>> = [];
  for (const s of sets) bounds.push(await authChainBounds(reader, s));
  const chains = new Set<number>();
  for (const b of bounds) for (const c of b.keys()) chains.add(c);
  const ranges: Array<[number, number, number]> = [];
  for (const c of chains) {
    let lo = Infinity;
    let hi = 0;
    for (const b of bounds) {
      const v = b.get(c) ?? 0;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    if (lo < hi) ranges.push([c, lo + 1, hi]);
  }
  await mapLimit(ranges, 32, ([c, from, to]) => chainRange(ctx, roomId, c, from, to, out));
  return out;
}

/**
 * Room 12 (MSC4297): the conflicted state subgraph of `eventIds`: every event on an auth path
 * from one of them to another, themselves included. Per chain that is a seq range: from the
 * lowest seq that reaches one of them (walking links backwards) up to the highest seq one of
 * them reaches (walking links forwards). The backward walk stays inside the forward ranges.
 */
export async function conflictedSubgraph(ctx: CassandraContext, roomId: string, eventIds: readonly string[]): Promise<Set<string>> {
  const reader = new ChainReader(ctx);
  await reader.loadPositions(eventIds);
  const starts = eventIds.map((id) => reader.position(id)).filter((p): p is ChainPos => p !== null);
  const up = await authChainBounds(reader, eventIds);
  for (const s of starts) if ((up.get(s.chain) ?? 0) < s.seq) up.set(s.chain, s.seq);

  const low = new Map<number, number>();
  const done = new Map<number, number>();
  let todo = new Set<number>();
  for (const s of starts) {
    if (s.seq < (low.get(s.chain) ?? Infinity)) low.set(s.chain, s.seq);
    todo.add(s.chain);
  }
  const into = 'SELECT origin_chain, origin_seq FROM auth_chain_links_in WHERE target_chain = ? AND target_seq >= ? AND target_seq < ?';
  while (todo.size > 0) {
    // One step for every chain whose low mark moved, in parallel; their results feed the next.
    const step: Array<[number, number, number]> = [];
    for (const chain of todo) {
      const from = low.get(chain) as number;
      const before = done.get(chain) ?? Number.MAX_SAFE_INTEGER;
      if (from >= before) continue;
      done.set(chain, from);
      step.push([chain, from, before]);
    }
    todo = new Set<number>();
    const found = await mapLimit(step, 32, async ([chain, from, before]) => {
      const rows: ChainPos[] = [];
      for await (const r of scan(ctx, into, [chain, from, before], 1000)) rows.push({ chain: num(r['origin_chain']), seq: num(r['origin_seq']) });
      return rows;
    });
    for (const r of found.flat()) {
      // Only events the conflicted events reach can be on a path between them.
      if (r.seq > (up.get(r.chain) ?? 0)) continue;
      if (r.seq < (low.get(r.chain) ?? Infinity)) {
        low.set(r.chain, r.seq);
        todo.add(r.chain);
      }
    }
  }
  const out = new Set<string>();
  const ranges: Array<[number, number, number]> = [];
  for (const [chain, from] of low) {
    const to = up.get(chain) ?? 0;
    if (from <= to) ranges.push([chain, from, to]);
  }
  await mapLimit(ranges, 32, ([c, from, to]) => chainRange(ctx, roomId, c, from, to, out));
  return out;
}
