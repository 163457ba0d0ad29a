// The walks over the auth chain index (the chain cover: sqlite/dag.ts explains the idea), shared
// by both backends. They are written as generators that yield what they need read next (the
// links of some chains, or the links into some seq ranges) and are resumed with the answer, so
// SQLite drives them synchronously inside its transaction and Cassandra drives them with one
// parallel round of partition reads per step, with one copy of the logic.
//
// Invariants:
// - Within a chain a higher seq reaches every lower seq; a link (origin chain, origin seq) ->
//   (target chain, target seq) means every seq >= origin seq of the origin chain reaches the
//   target and everything below it in the target chain.
// - Each chain's links are read once per walk, and each (chain, seq range) is expanded once.

export interface ChainPos {
  chain: number;
  seq: number;
}

/** Links of the chains read so far, by origin chain and origin seq. */
export class ChainLinks {
  private readonly links = new Map<number, ChainPos[][]>();

  has(chain: number): boolean {
    return this.links.has(chain);
  }

  /** Records that `chain`'s links were read (it may have none). */
  loaded(chain: number): void {
    if (!this.links.has(chain)) this.links.set(chain, []);
  }

  add(originChain: number, originSeq: number, target: ChainPos): void {
    let byChain = this.links.get(originChain);
    if (!byChain) this.links.set(originChain, (byChain = []));
    // Indexed by origin seq: a walk reaching seq s follows the links of every seq <= s.
    (byChain[originSeq] ??= []).push(target);
  }

  /** Links of `chain` with origin seq in (after, upTo]. */
  between(chain: number, after: number, upTo: number): ChainPos[] {
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
 * For a set of events (given by their index positions): per chain, the highest seq in the set's
 * auth chain. An event's auth chain excludes the event itself, so its own chain counts up to
 * seq - 1. Yields the chains whose links must be loaded into `links` before it can go on.
 */
export function* authChainBounds(starts: readonly ChainPos[], links: ChainLinks): Generator<number[], Map<number, number>, void> {
  const include = new Map<number, number>();
  const expanded = new Map<number, number>();
  const raise = (chain: number, seq: number): void => {
    if ((include.get(chain) ?? 0) < seq) include.set(chain, seq);
  };
  let todo: ChainPos[] = [];
  for (const pos of starts) {
    raise(pos.chain, pos.seq - 1);
    todo.push(pos);
  }
  while (todo.length > 0) {
    const missing = [...new Set(todo.map((p) => p.chain))].filter((c) => !links.has(c));
    if (missing.length > 0) yield missing;
    const next: ChainPos[] = [];
    for (const { chain, seq } of todo) {
      const done = expanded.get(chain) ?? 0;
      if (seq <= done) continue;
      expanded.set(chain, seq);
      for (const t of links.between(chain, done, seq)) {
        raise(t.chain, t.seq);
        next.push(t);
      }
    }
    todo = next;
  }
  return include;
}

/**
 * The auth chain difference of several sets as per-chain seq ranges [from, to]: the events in
 * some set's auth chain but not in every set's, from each set's bounds (authChainBounds).
 */
export function differenceRanges(bounds: ReadonlyArray<ReadonlyMap<number, number>>): Array<[chain: number, from: number, to: number]> {
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
  return ranges;
}

/** One backward step: the links whose target is in `chain` at seq in [from, before). */
export type InboundQuery = [chain: number, from: number, before: number];

/**
 * Room 12 (MSC4297): the conflicted state subgraph of some events, as per-chain seq ranges
 * [from, to]: every event on an auth path from one of them to another, themselves included.
 * From the lowest seq that reaches one of them (walking links backwards) up to the highest seq
 * one of them reaches (`up`: their auth chain bounds raised to their own seqs). Yields the
 * backward queries of one step and is resumed with the origins (chain, seq) they found.
 */
export function* conflictedRanges(
  starts: readonly ChainPos[],
  up: ReadonlyMap<number, number>,
): Generator<InboundQuery[], Array<[chain: number, from: number, to: number]>, ChainPos[]> {
  const low = new Map<number, number>();
  const done = new Map<number, number>();
  let todo = new Set<number>();
  for (const s of starts) {
    if (s.seq < (low.get(s.chain) ?? Infinity)) low.set(s.chain, s.seq);
    todo.add(s.chain);
  }
  while (todo.size > 0) {
    const step: InboundQuery[] = [];
    for (const chain of todo) {
      const from = low.get(chain) as number;
      const before = done.get(chain) ?? Number.MAX_SAFE_INTEGER;
      if (from >= before) continue;
      done.set(chain, from);
      step.push([chain, from, before]);
    }
    todo = new Set<number>();
    if (step.length === 0) break;
    const found = yield step;
    for (const r of found) {
      // Only events the conflicted events reach can be on a path between them.
      if (r.seq > (up.get(r.chain) ?? 0)) continue;
      if (r.seq < (low.get(r.chain) ?? Infinity)) {
        low.set(r.chain, r.seq);
        todo.add(r.chain);
      }
    }
  }
  const out: Array<[number, number, number]> = [];
  for (const [chain, from] of low) {
    const to = up.get(chain) ?? 0;
    if (from <= to) out.push([chain, from, to]);
  }
  return out;
}

/** `up` for conflictedRanges: the auth chain bounds of `starts`, raised to their own seqs. */
export function withStarts(bounds: Map<number, number>, starts: readonly ChainPos[]): Map<number, number> {
  for (const s of starts) if ((bounds.get(s.chain) ?? 0) < s.seq) bounds.set(s.chain, s.seq);
  return bounds;
}

/** Runs a walk synchronously: `answer` reads what it yields. */
export function drive<Y, R, N>(walk: Generator<Y, R, N>, answer: (need: Y) => N): R {
  let step = walk.next(undefined as N);
  while (!step.done) step = walk.next(answer(step.value));
  return step.value;
}

/** Runs a walk with an asynchronous reader. */
export async function driveAsync<Y, R, N>(walk: Generator<Y, R, N>, answer: (need: Y) => Promise<N>): Promise<R> {
  let step = walk.next(undefined as N);
  while (!step.done) step = walk.next(await answer(step.value));
  return step.value;
}
