// The replication stream's entries as they stand in Redis (one field `e`, JSON): what a publisher
// writes (src/cluster/replication-publisher.ts) and a consumer reads
// (src/cluster/replication-consumer.ts).
//
// Invariants:
// - `s` counts one stream instance's entries without a gap, so a consumer that sees a jump in a
//   worker's `s` knows entries of it were lost.
// - `p` is the publisher's promise as of the entry (see src/cluster/replication.ts).
// - `r` is the position of the last change record its worker queued before the entry, so a
//   consumer that lost entries knows how far up the lost records may lie.
// - `o` is the publisher's lease token, when it has one: it tells apart two instances on one
//   worker ID.
// - An entry that does not decode as a whole is skipped, never believed in part.

import type { ChangeRecord } from '../store/change-types.js';

// `r` is absent from entries of workers that predate it.
export type Entry =
  | { t: 'c'; w: number; s: number; p: number; r?: number; c: ChangeRecord[]; o?: string }
  | { t: 'h'; w: number; s: number; p: number; r?: number; o?: string }
  | { t: 'bye'; w: number; s: number; p: number; r?: number; o?: string };

/** The last change record a worker queued as of entry `e` (its own records included). */
export function entryRecords(e: Entry): number {
  let r = e.r ?? 0;
  if (e.t === 'c') for (const c of e.c) r = Math.max(r, c.stream);
  return r;
}

/** Stream time: the milliseconds of the ID Redis gave an entry. */
export function entryTime(id: string): number {
  return Number(id.split('-')[0]);
}

export function decodeEntry(fields: string[]): Entry | null {
  const i = fields.indexOf('e');
  if (i < 0 || i + 1 >= fields.length) return null;
  try {
    const e = JSON.parse(fields[i + 1]!) as Entry;
    if (typeof e.w !== 'number' || typeof e.s !== 'number' || typeof e.p !== 'number') return null;
    if (e.r !== undefined && typeof e.r !== 'number') return null;
    if (e.t === 'c' && !Array.isArray(e.c)) return null;
    return e;
  } catch {
    return null;
  }
}
