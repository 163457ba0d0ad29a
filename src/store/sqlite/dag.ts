// The room DAG in SQLite: prev_events edges, auth_events edges and the auth chain index.
//
// Auth chain index (a chain cover, after the design in Synapse's
// docs/auth_chain_difference_algorithm.md): every stored, non-rejected state event gets a
// position (chain_id, chain_seq). A new event joins the chain of one of its auth events when that
// auth event is the chain's current head, otherwise it starts a new chain; so within a chain a
// higher seq always reaches every lower seq through auth edges. For each auth event in another
// chain, one link row (origin chain, origin seq) -> (target chain, target seq) is stored: "this
// event, and every later event of its chain, reaches the target and everything below it".
//
// Why this shape: storage is one position per state event plus at most one link per auth edge
// (auth_events is capped at 10), i.e. linear. Storing each event's whole auth chain would be
// quadratic. Answering "auth chain of a set" walks links chain by chain (each chain's links are
// visited once, in seq ranges) instead of walking events, and the difference of several sets is
// then a set of per-chain seq ranges read straight off the (chain_id, chain_seq) index.
//
// Links are not pruned when another link already implies them; that costs a few rows, never
// correctness.

import type { Stmt } from './state-groups.js';

/**
 * prev_events edges. Auth edges need no table: the PDU holds them, and the auth chain index is
 * what answers questions about auth chains.
 */
export function writePrevEdges(stmt: Stmt, roomId: string, eventId: string, prevEvents: readonly string[]): void {
  const prev = stmt('INSERT INTO event_edges (event_id, prev_id, room_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
  for (const id of prevEvents) prev.run(eventId, id, roomId);
}

interface ChainPos {
  chain_id: number;
  chain_seq: number;
}

function chainOf(stmt: Stmt, eventId: string): ChainPos | undefined {
  return stmt('SELECT chain_id, chain_seq FROM events WHERE event_id = ? AND chain_id IS NOT NULL').get(eventId) as ChainPos | undefined;
}

/** Gives a just-inserted state event its chain position and links. Auth events not stored yet are skipped. */
export function indexAuthChain(stmt: Stmt, eventId: string, authEvents: readonly string[]): void {
  const auths: ChainPos[] = [];
  for (const id of authEvents) {
    const pos = chainOf(stmt, id);
    if (pos) auths.push(pos);
  }
  const headSeq = stmt('SELECT MAX(chain_seq) AS m FROM events WHERE chain_id = ?');
  let mine: ChainPos | undefined;
  for (const a of auths) {
    const head = (headSeq.get(a.chain_id) as { m: number | null }).m;
    // Longest chains first: fewer chains mean fewer link walks later.
    if (head === a.chain_seq && (!mine || a.chain_seq + 1 > mine.chain_seq)) mine = { chain_id: a.chain_id, chain_seq: a.chain_seq + 1 };
  }
  if (!mine) {
    const row = stmt('SELECT MAX(chain_id) AS m FROM events WHERE chain_id IS NOT NULL').get() as { m: number | null };
    mine = { chain_id: (row.m ?? 0) + 1, chain_seq: 1 };
  }
  stmt('UPDATE events SET chain_id = ?, chain_seq = ? WHERE event_id = ?').run(mine.chain_id, mine.chain_seq, eventId);
  const link = stmt(
    `INSERT INTO auth_chain_links (origin_chain, origin_seq, target_chain, target_seq) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
  );
  for (const a of auths) if (a.chain_id !== mine.chain_id) link.run(mine.chain_id, mine.chain_seq, a.chain_id, a.chain_seq);
}

const BATCH = 500;

function placeholders(n: number): string {
  return new Array<string>(n).fill('?').join(', ');
}

/**
 * Reads the index for one auth chain difference: chain positions and links are fetched in
 * batches (IN lists) as the walk reaches them, then walked in memory, so a 10,000-event state
 * costs a few dozen queries rather than one per event and link.
 */
class ChainReader {
  private readonly positions = new Map<string, ChainPos | null>();
  private readonly links = new Map<number, ChainPos[][]>();

  constructor(private readonly stmt: Stmt) {}

  loadPositions(ids: Iterable<string>): void {
    const want = [...new Set(ids)].filter((id) => !this.positions.has(id));
    for (let i = 0; i < want.length; i += BATCH) {
      const chunk = want.slice(i, i + BATCH);
      const rows = this.stmt(
        `SELECT event_id, chain_id, chain_seq FROM events WHERE event_id IN (${placeholders(chunk.length)}) AND chain_id IS NOT NULL`,
      ).all(...chunk) as Array<ChainPos & { event_id: string }>;
      for (const id of chunk) this.positions.set(id, null);
      for (const r of rows) this.positions.set(r.event_id, { chain_id: r.chain_id, chain_seq: r.chain_seq });
    }
  }

  position(id: string): ChainPos | null {
    return this.positions.get(id) ?? null;
  }

  loadLinks(chains: Iterable<number>): void {
    const want = [...new Set(chains)].filter((c) => !this.links.has(c));
    for (let i = 0; i < want.length; i += BATCH) {
      const chunk = want.slice(i, i + BATCH);
      for (const c of chunk) this.links.set(c, []);
      const rows = this.stmt(
        `SELECT origin_chain, origin_seq, target_chain, target_seq FROM auth_chain_links WHERE origin_chain IN (${placeholders(chunk.length)})`,
      ).all(...chunk) as { origin_chain: number; origin_seq: number; target_chain: number; target_seq: number }[];
      for (const r of rows) {
        const byChain = this.links.get(r.origin_chain) as ChainPos[][];
        // Indexed by origin seq: a walk reaching seq s follows the links of every seq <= s.
        (byChain[r.origin_seq] ??= []).push({ chain_id: r.target_chain, chain_seq: r.target_seq });
      }
    }
  }

  hasLinks(chain: number): boolean {
    return this.links.has(chain);
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
function authChainBounds(reader: ChainReader, eventIds: readonly string[]): Map<number, number> {
  const include = new Map<number, number>();
  const expanded = new Map<number, number>();
  let todo: ChainPos[] = [];
  const raise = (chain: number, seq: number): void => {
    if ((include.get(chain) ?? 0) < seq) include.set(chain, seq);
  };
  for (const id of eventIds) {
    const pos = reader.position(id);
    if (!pos) continue;
    raise(pos.chain_id, pos.chain_seq - 1);
    todo.push(pos);
  }
  while (todo.length > 0) {
    reader.loadLinks(todo.filter((p) => !reader.hasLinks(p.chain_id)).map((p) => p.chain_id));
    const next: ChainPos[] = [];
    for (const { chain_id, chain_seq } of todo) {
      const done = expanded.get(chain_id) ?? 0;
      if (chain_seq <= done) continue;
      expanded.set(chain_id, chain_seq);
      for (const t of reader.linksBetween(chain_id, done, chain_seq)) {
        raise(t.chain_id, t.chain_seq);
        next.push(t);
      }
    }
    todo = next;
  }
  return include;
}

/** Events in some set's auth chain but not in every set's (state resolution v2's auth difference). */
export function authChainDifference(stmt: Stmt, roomId: string, sets: readonly (readonly string[])[]): Set<string> {
  const out = new Set<string>();
  if (sets.length < 2) return out;
  const reader = new ChainReader(stmt);
  reader.loadPositions(sets.flat());
  const bounds = sets.map((s) => authChainBounds(reader, s));
  const chains = new Set<number>();
  for (const b of bounds) for (const c of b.keys()) chains.add(c);
  const range = stmt(
    'SELECT event_id FROM events WHERE chain_id = ? AND chain_seq > ? AND chain_seq <= ? AND room_id = ?',
  );
  for (const c of chains) {
    let lo = Infinity;
    let hi = 0;
    for (const b of bounds) {
      const v = b.get(c) ?? 0;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    if (lo >= hi) continue;
    for (const r of range.all(c, lo, hi, roomId) as { event_id: string }[]) out.add(r.event_id);
  }
  return out;
}

/**
 * Room 12 (MSC4297): the conflicted state subgraph of `eventIds`: every event on an auth path
 * from one of them to another, themselves included. Per chain that is a seq range: from the
 * lowest seq that reaches one of them (walking links backwards) up to the highest seq one of
 * them reaches (walking links forwards). The backward walk stays inside the forward ranges.
 */
export function conflictedSubgraph(stmt: Stmt, roomId: string, eventIds: readonly string[]): Set<string> {
  const reader = new ChainReader(stmt);
  reader.loadPositions(eventIds);
  const starts = eventIds.map((id) => reader.position(id)).filter((p): p is ChainPos => p !== null);
  const up = authChainBounds(reader, eventIds);
  for (const s of starts) if ((up.get(s.chain_id) ?? 0) < s.chain_seq) up.set(s.chain_id, s.chain_seq);

  const low = new Map<number, number>();
  const done = new Map<number, number>();
  const todo = new Set<number>();
  for (const s of starts) {
    if (s.chain_seq < (low.get(s.chain_id) ?? Infinity)) low.set(s.chain_id, s.chain_seq);
    todo.add(s.chain_id);
  }
  const into = stmt(
    `SELECT origin_chain, origin_seq FROM auth_chain_links WHERE target_chain = ? AND target_seq >= ? AND target_seq < ?`,
  );
  while (todo.size > 0) {
    const chain = todo.values().next().value as number;
    todo.delete(chain);
    const from = low.get(chain) as number;
    const before = done.get(chain) ?? Number.MAX_SAFE_INTEGER;
    if (from >= before) continue;
    done.set(chain, from);
    for (const r of into.all(chain, from, before) as { origin_chain: number; origin_seq: number }[]) {
      // Only events the conflicted events reach can be on a path between them.
      if (r.origin_seq > (up.get(r.origin_chain) ?? 0)) continue;
      if (r.origin_seq < (low.get(r.origin_chain) ?? Infinity)) {
        low.set(r.origin_chain, r.origin_seq);
        todo.add(r.origin_chain);
      }
    }
  }
  const out = new Set<string>();
  const range = stmt('SELECT event_id FROM events WHERE chain_id = ? AND chain_seq >= ? AND chain_seq <= ? AND room_id = ?');
  for (const [chain, from] of low) {
    const to = up.get(chain) ?? 0;
    if (from > to) continue;
    for (const r of range.all(chain, from, to, roomId) as { event_id: string }[]) out.add(r.event_id);
  }
  return out;
}
