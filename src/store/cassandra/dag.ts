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
import { authChainBounds, ChainLinks, conflictedRanges, differenceRanges, driveAsync, withStarts, type ChainPos } from '../chain-cover.js';


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

/** Index positions and links for one call, each read once as the walk (../chain-cover.ts) reaches it. */
class ChainReader {
  private readonly positions = new Map<string, ChainPos | null>();
  readonly links = new ChainLinks();

  constructor(private readonly ctx: CassandraContext) {}

  /** Index positions of `ids` (those not indexed are left out). */
  async positionsOf(ids: readonly string[]): Promise<ChainPos[]> {
    const want = [...new Set(ids)].filter((id) => !this.positions.has(id));
    const rows = await readEventRows(this.ctx, want, 'event_id, chain_id, chain_seq');
    for (const id of want) {
      const row = rows.get(id);
      const chain = row ? numOrNull(row['chain_id']) : null;
      this.positions.set(id, row && chain !== null ? { chain, seq: num(row['chain_seq']) } : null);
    }
    return ids.map((id) => this.positions.get(id) ?? null).filter((p): p is ChainPos => p !== null);
  }

  async loadLinks(chains: readonly number[]): Promise<void> {
    const q = 'SELECT origin_seq, target_chain, target_seq FROM auth_chain_links WHERE origin_chain = ?';
    await mapLimit([...chains], 32, async (chain) => {
      this.links.loaded(chain);
      for await (const r of scan(this.ctx, q, [chain], 1000)) this.links.add(chain, num(r['origin_seq']), { chain: num(r['target_chain']), seq: num(r['target_seq']) });
    });
  }

  bounds(starts: readonly ChainPos[]): Promise<Map<number, number>> {
    return driveAsync(authChainBounds(starts, this.links), (chains) => this.loadLinks(chains));
  }
}

/** Event IDs of the given per-chain seq ranges [from, to], in `roomId`, read in parallel. */
async function eventsInRanges(ctx: CassandraContext, roomId: string, ranges: ReadonlyArray<[number, number, number]>): Promise<Set<string>> {
  const out = new Set<string>();
  const q = 'SELECT event_id, room_id FROM auth_chains WHERE chain_id = ? AND seq >= ? AND seq <= ?';
  await mapLimit([...ranges], 32, async ([chain, from, to]) => {
    for await (const r of scan(ctx, q, [chain, from, to], 1000)) if (r['room_id'] === roomId) out.add(r['event_id'] as string);
  });
  return out;
}

/** Events in some set's auth chain but not in every set's (state resolution v2's auth difference). */
export async function authChainDifference(ctx: CassandraContext, roomId: string, sets: readonly (readonly string[])[]): Promise<Set<string>> {
  if (sets.length < 2) return new Set();
  const reader = new ChainReader(ctx);
  await reader.positionsOf(sets.flat());
  const bounds: Array<Map<number, number>> = [];
  for (const s of sets) bounds.push(await reader.bounds(await reader.positionsOf(s)));
  return eventsInRanges(ctx, roomId, differenceRanges(bounds));
}

/**
 * Room 12 (MSC4297): the conflicted state subgraph of `eventIds` (../chain-cover.ts
 * conflictedRanges), each backward step's partition reads in parallel.
 */
export async function conflictedSubgraph(ctx: CassandraContext, roomId: string, eventIds: readonly string[]): Promise<Set<string>> {
  const reader = new ChainReader(ctx);
  const starts = await reader.positionsOf(eventIds);
  const up = withStarts(await reader.bounds(starts), starts);
  const into = 'SELECT origin_chain, origin_seq FROM auth_chain_links_in WHERE target_chain = ? AND target_seq >= ? AND target_seq < ?';
  const ranges = await driveAsync(conflictedRanges(starts, up), async (step) => {
    const found = await mapLimit(step, 32, async ([chain, from, before]) => {
      const rows: ChainPos[] = [];
      for await (const r of scan(ctx, into, [chain, from, before], 1000)) rows.push({ chain: num(r['origin_chain']), seq: num(r['origin_seq']) });
      return rows;
    });
    return found.flat();
  });
  return eventsInRanges(ctx, roomId, ranges);
}
