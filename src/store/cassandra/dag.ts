// Auth chain questions on Cassandra, answered by walking the auth DAG (not a chain-cover index).
//
// Nodes are the stored, non-rejected state events (events.indexed); each node's edges are the
// auth events that were such nodes when it was written (events.chain_auth), the same graph the
// SQLite chain-cover index encodes. A call loads the part of the graph reachable from its
// arguments, frontier by frontier with parallel point reads (a per-call cache: every node is
// read once), then answers in memory.
//
// Cost: one point read per event in the union of the auth chains involved, per call. For
// typical state resolution (a few hundred to a few thousand auth events) that is fine; a room
// with a very large auth chain pays linearly per resolution where SQLite's index pays per chain.

import type { CassandraContext } from './context.js';
import { readEventRows } from './rooms-util.js';

interface Node {
  roomId: string;
  auth: string[];
}

class AuthGraph {
  private readonly nodes = new Map<string, Node | null>();

  constructor(private readonly ctx: CassandraContext) {}

  /** Loads every node reachable from `ids` (non-nodes are recorded as null). */
  async load(ids: Iterable<string>): Promise<void> {
    let frontier = [...new Set(ids)].filter((id) => !this.nodes.has(id));
    while (frontier.length > 0) {
      const rows = await readEventRows(this.ctx, frontier, 'event_id, room_id, indexed, chain_auth');
      const next = new Set<string>();
      for (const id of frontier) {
        const row = rows.get(id);
        if (!row || row['indexed'] !== true) {
          this.nodes.set(id, null);
          continue;
        }
        const auth = (row['chain_auth'] as string[] | null) ?? [];
        this.nodes.set(id, { roomId: row['room_id'] as string, auth });
        for (const a of auth) if (!this.nodes.has(a)) next.add(a);
      }
      frontier = [...next];
    }
  }

  node(id: string): Node | null {
    return this.nodes.get(id) ?? null;
  }

  /** The auth chain of a set: every node reachable from it through at least one edge. */
  chainOf(ids: readonly string[]): Set<string> {
    const out = new Set<string>();
    const stack: string[] = [];
    for (const id of ids) for (const a of this.node(id)?.auth ?? []) stack.push(a);
    while (stack.length > 0) {
      const id = stack.pop() as string;
      if (out.has(id) || this.node(id) === null) continue;
      out.add(id);
      for (const a of this.node(id)!.auth) if (!out.has(a)) stack.push(a);
    }
    return out;
  }
}

/** Events in some set's auth chain but not in every set's (state resolution v2's auth difference). */
export async function authChainDifference(ctx: CassandraContext, roomId: string, sets: readonly (readonly string[])[]): Promise<Set<string>> {
  const out = new Set<string>();
  if (sets.length < 2) return out;
  const graph = new AuthGraph(ctx);
  await graph.load(sets.flat());
  const chains = sets.map((s) => graph.chainOf(s));
  for (const chain of chains) {
    for (const id of chain) {
      if (out.has(id) || graph.node(id)?.roomId !== roomId) continue;
      if (!chains.every((c) => c.has(id))) out.add(id);
    }
  }
  return out;
}

/**
 * Room 12 (MSC4297): every event on an auth path from one of `eventIds` to another, themselves
 * included. Everything such a path visits is reachable from the starts, so the loaded graph is
 * enough: a node is in the subgraph iff it reaches one of the starts.
 */
export async function conflictedSubgraph(ctx: CassandraContext, roomId: string, eventIds: readonly string[]): Promise<Set<string>> {
  const graph = new AuthGraph(ctx);
  await graph.load(eventIds);
  const starts = new Set(eventIds.filter((id) => graph.node(id) !== null));
  const reachable = new Set<string>(starts);
  for (const id of graph.chainOf([...starts])) reachable.add(id);
  // reaches(x): x is a start, or one of its auth events reaches a start. Iterative post-order.
  const reaches = new Map<string, boolean>();
  for (const root of reachable) {
    if (reaches.has(root)) continue;
    const stack: Array<{ id: string; i: number }> = [{ id: root, i: 0 }];
    const onStack = new Set<string>([root]);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const auth = graph.node(top.id)?.auth ?? [];
      if (top.i < auth.length) {
        const child = auth[top.i++]!;
        if (!reaches.has(child) && !onStack.has(child) && graph.node(child) !== null) {
          stack.push({ id: child, i: 0 });
          onStack.add(child);
        }
        continue;
      }
      stack.pop();
      onStack.delete(top.id);
      reaches.set(top.id, starts.has(top.id) || auth.some((a) => reaches.get(a) === true));
    }
  }
  const out = new Set<string>();
  for (const id of reachable) if (reaches.get(id) === true && graph.node(id)?.roomId === roomId) out.add(id);
  return out;
}
