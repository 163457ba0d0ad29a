// A bounded "last changed at" cache for one stream, keyed by room, user or device (the idea of
// Synapse's StreamChangeCache). It answers "may `key` have changed after position P?" from
// memory for every P at or above `earliest`; below that it cannot know and says yes, and the
// caller reads the store.
//
// Invariant: every change at a position above `earliest` has its key in the map with its latest
// position. Entries are kept in position order (re-inserted on update; records arrive in position
// order), so evicting the oldest entry only raises `earliest` to that entry's position.
//
// Bound: at most `maxEntries` keys.

export class StreamChangeCache {
  private readonly last = new Map<string, number>();
  private earliestKnown: number;
  hits = 0;
  misses = 0;

  constructor(
    readonly name: string,
    start: number,
    readonly maxEntries: number,
  ) {
    this.earliestKnown = start;
  }

  /** Positions at or above this are fully known. */
  get earliest(): number {
    return this.earliestKnown;
  }

  get size(): number {
    return this.last.size;
  }

  covers(pos: number): boolean {
    return pos >= this.earliestKnown;
  }

  record(key: string, pos: number): void {
    this.last.delete(key);
    this.last.set(key, pos);
    while (this.last.size > this.maxEntries) {
      const [oldest, at] = this.last.entries().next().value as [string, number];
      this.last.delete(oldest);
      if (at > this.earliestKnown) this.earliestKnown = at;
    }
  }

  /** True when `key` may have changed after `pos` (always true when `pos` is not covered). */
  changedSince(key: string, pos: number): boolean {
    if (pos < this.earliestKnown) {
      this.misses++;
      return true;
    }
    this.hits++;
    return (this.last.get(key) ?? -1) > pos;
  }

  /**
   * Latest change of each key changed after `pos` (keys absent from the result did not change),
   * or undefined when `pos` is not covered and the store must answer.
   */
  changesSince(keys: readonly string[], pos: number): Map<string, number> | undefined {
    if (pos < this.earliestKnown) {
      this.misses += keys.length;
      return undefined;
    }
    this.hits += keys.length;
    const out = new Map<string, number>();
    for (const k of keys) {
      const at = this.last.get(k);
      if (at !== undefined && at > pos) out.set(k, at);
    }
    return out;
  }

  /** Latest known change of `key`, or `earliest` when there is none above it (covers() first). */
  lastChange(key: string): number {
    return this.last.get(key) ?? this.earliestKnown;
  }

  /** Forgets everything: nothing below `pos` is known any more. */
  reset(pos: number): void {
    this.last.clear();
    this.earliestKnown = pos;
  }
}
