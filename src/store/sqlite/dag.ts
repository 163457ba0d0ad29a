// The room DAG in SQLite: the auth chain index. Neither edge kind has a table: an event's row
// holds its PDU, whose prev_events and auth_events are the edges (getPrevEvents reads them).
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

import { authChainBounds, ChainLinks, conflictedRanges, differenceRanges, drive, withStarts, type ChainPos } from '../chain-cover.js';
import type { Stmt } from './state-groups.js';

interface ChainRow {
  chain_id: number;
  chain_seq: number;
}

function chainOf(stmt: Stmt, eventId: string): ChainRow | undefined {
  return stmt('SELECT chain_id, chain_seq FROM events WHERE event_id = ? AND chain_id IS NOT NULL').get(eventId) as ChainRow | undefined;
}

/** Gives a just-inserted state event its chain position and links. Auth events not stored yet are skipped. */
export function indexAuthChain(stmt: Stmt, eventId: string, authEvents: readonly string[]): void {
  const auths: ChainRow[] = [];
  for (const id of authEvents) {
    const pos = chainOf(stmt, id);
    if (pos) auths.push(pos);
  }
  const headSeq = stmt('SELECT MAX(chain_seq) AS m FROM events WHERE chain_id = ?');
  let mine: ChainRow | undefined;
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
 * Reads the index for one walk: chain positions and links are fetched in batches (IN lists) as
 * the walk (../chain-cover.ts) reaches them, so a 10,000-event state costs a few dozen queries
 * rather than one per event and link.
 */
class ChainReader {
  private readonly positions = new Map<string, ChainPos | null>();
  readonly links = new ChainLinks();

  constructor(private readonly stmt: Stmt) {}

  /** Index positions of `ids` (those not indexed are left out). */
  positionsOf(ids: readonly string[]): ChainPos[] {
    const want = [...new Set(ids)].filter((id) => !this.positions.has(id));
    for (let i = 0; i < want.length; i += BATCH) {
      const chunk = want.slice(i, i + BATCH);
      const rows = this.stmt(
        `SELECT event_id, chain_id, chain_seq FROM events WHERE event_id IN (${placeholders(chunk.length)}) AND chain_id IS NOT NULL`,
      ).all(...chunk) as Array<{ event_id: string; chain_id: number; chain_seq: number }>;
      for (const id of chunk) this.positions.set(id, null);
      for (const r of rows) this.positions.set(r.event_id, { chain: r.chain_id, seq: r.chain_seq });
    }
    return ids.map((id) => this.positions.get(id) ?? null).filter((p): p is ChainPos => p !== null);
  }

  loadLinks(chains: readonly number[]): void {
    for (let i = 0; i < chains.length; i += BATCH) {
      const chunk = chains.slice(i, i + BATCH);
      for (const c of chunk) this.links.loaded(c);
      const rows = this.stmt(
        `SELECT origin_chain, origin_seq, target_chain, target_seq FROM auth_chain_links WHERE origin_chain IN (${placeholders(chunk.length)})`,
      ).all(...chunk) as { origin_chain: number; origin_seq: number; target_chain: number; target_seq: number }[];
      for (const r of rows) this.links.add(r.origin_chain, r.origin_seq, { chain: r.target_chain, seq: r.target_seq });
    }
  }

  bounds(starts: readonly ChainPos[]): Map<number, number> {
    return drive(authChainBounds(starts, this.links), (chains) => this.loadLinks(chains));
  }
}

/** Event IDs of the given per-chain seq ranges [from, to], in `roomId`. */
function eventsInRanges(stmt: Stmt, roomId: string, ranges: ReadonlyArray<[number, number, number]>): Set<string> {
  const out = new Set<string>();
  const range = stmt('SELECT event_id FROM events WHERE chain_id = ? AND chain_seq >= ? AND chain_seq <= ? AND room_id = ?');
  for (const [chain, from, to] of ranges) for (const r of range.all(chain, from, to, roomId) as { event_id: string }[]) out.add(r.event_id);
  return out;
}

/** Events in some set's auth chain but not in every set's (state resolution v2's auth difference). */
export function authChainDifference(stmt: Stmt, roomId: string, sets: readonly (readonly string[])[]): Set<string> {
  if (sets.length < 2) return new Set();
  const reader = new ChainReader(stmt);
  reader.positionsOf(sets.flat());
  const bounds = sets.map((s) => reader.bounds(reader.positionsOf(s)));
  return eventsInRanges(stmt, roomId, differenceRanges(bounds));
}

/**
 * Room 12 (MSC4297): the conflicted state subgraph of `eventIds`: every event on an auth path
 * from one of them to another, themselves included. Per chain that is a seq range: from the
 * lowest seq that reaches one of them (walking links backwards) up to the highest seq one of
 * them reaches (walking links forwards). The backward walk stays inside the forward ranges.
 */
export function conflictedSubgraph(stmt: Stmt, roomId: string, eventIds: readonly string[]): Set<string> {
  const reader = new ChainReader(stmt);
  const starts = reader.positionsOf(eventIds);
  const up = withStarts(reader.bounds(starts), starts);
  const into = stmt('SELECT origin_chain, origin_seq FROM auth_chain_links WHERE target_chain = ? AND target_seq >= ? AND target_seq < ?');
  const ranges = drive(conflictedRanges(starts, up), (step) =>
    step.flatMap(([chain, from, before]) =>
      (into.all(chain, from, before) as { origin_chain: number; origin_seq: number }[]).map((r) => ({ chain: r.origin_chain, seq: r.origin_seq })),
    ),
  );
  return eventsInRanges(stmt, roomId, ranges);
}
