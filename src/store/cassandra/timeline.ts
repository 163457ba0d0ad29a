// Timeline paging on Cassandra (getRoomEvents): accepted events only (outliers, soft-failed and
// rejected events never get timeline rows), in stream order from room_timeline or in (depth,
// stream) order from room_topo. Both walk the room's non-empty buckets in the direction of
// travel, read each bucket in pages with the bounds pushed into the clustering slice, filter
// types/senders in memory, and stop at `limit`; then the page's events are read by ID.
//
// Cost: a page reads the buckets it crosses (one partition each, usually one or two) plus one
// point read per returned event. A topological page bounded only by stream positions (no topo
// token) cannot prune by depth and scans from the room's newest/oldest depth until it fills.

import type { RoomEventsQuery, StoredEvent, TopologicalPosition } from '../types.js';
import { num, type CassandraContext } from './context.js';
import { depthBucket, getStoredEvents, KIND_TIMELINE, KIND_TOPO, MAX, MIN, roomBuckets, scan, streamBucket } from './rooms-util.js';
import type cassandra from 'cassandra-driver';

/** Matrix filter patterns: only '*' is a wildcard (any run of characters); case-sensitive. */
function patternMatcher(patterns: string[]): (s: string) => boolean {
  const exact = new Set(patterns.filter((p) => !p.includes('*')));
  const globs = patterns
    .filter((p) => p.includes('*'))
    .map((p) => new RegExp(`^${p.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[\\s\\S]*')}$`));
  return (s) => exact.has(s) || globs.some((g) => g.test(s));
}

function rowFilter(q: RoomEventsQuery): (type: string, sender: string, stream: number) => boolean {
  const types = q.types !== undefined ? patternMatcher(q.types) : null;
  const notTypes = q.notTypes !== undefined && q.notTypes.length > 0 ? patternMatcher(q.notTypes) : null;
  const senders = q.senders !== undefined ? new Set(q.senders) : null;
  const notSenders = q.notSenders !== undefined ? new Set(q.notSenders) : null;
  const maxStream = q.maxStream;
  return (type, sender, stream) =>
    (maxStream === undefined || stream <= maxStream) &&
    (types === null || types(type)) &&
    (notTypes === null || !notTypes(type)) &&
    (senders === null || senders.has(sender)) &&
    (notSenders === null || !notSenders.has(sender));
}

export async function queryRoomEvents(ctx: CassandraContext, q: RoomEventsQuery): Promise<StoredEvent[]> {
  const limit = Math.floor(q.limit);
  if (!(limit > 0)) return [];
  if (q.types !== undefined && q.types.length === 0) return [];
  if (q.senders !== undefined && q.senders.length === 0) return [];
  const ids = q.order === 'topological' ? await topoIds(ctx, q, limit) : await streamIds(ctx, q, limit);
  const events = await getStoredEvents(ctx, ids);
  return ids.map((id) => events.get(id)).filter((e): e is StoredEvent => e !== undefined);
}

async function streamIds(ctx: CassandraContext, q: RoomEventsQuery, limit: number): Promise<string[]> {
  const back = q.dir === 'b';
  // Inclusive [lo, hi] stream bounds.
  let lo: number;
  let hi: number;
  if (back) {
    hi = q.from;
    lo = q.to !== undefined ? q.to + 1 : MIN;
  } else {
    lo = q.from + 1;
    hi = q.to !== undefined ? q.to : MAX;
  }
  if (q.maxStream !== undefined) hi = Math.min(hi, q.maxStream);
  if (lo > hi) return [];
  const keep = rowFilter(q);
  const out: string[] = [];
  const order = back ? 'DESC' : 'ASC';
  const query = `SELECT stream, event_id, type, sender FROM room_timeline WHERE room_id = ? AND bucket = ? AND stream >= ? AND stream <= ? ORDER BY stream ${order}`;
  for await (const bucket of roomBuckets(ctx, q.roomId, KIND_TIMELINE, streamBucket(lo), streamBucket(hi), back)) {
    for await (const row of scan(ctx, query, [q.roomId, bucket, lo, hi], Math.min(1000, limit + 20))) {
      if (keep(row['type'] as string, row['sender'] as string, num(row['stream']))) {
        out.push(row['event_id'] as string);
        if (out.length >= limit) return out;
      }
    }
  }
  return out;
}

type Cmp = (depth: number, stream: number) => boolean;

async function topoIds(ctx: CassandraContext, q: RoomEventsQuery, limit: number): Promise<string[]> {
  const back = q.dir === 'b';
  const hasTo = q.to !== undefined || q.toTopo !== undefined;
  // Bounds as SQLite applies them: a topological token bounds (depth, stream); without one the
  // stream position alone bounds (checked per row, since it cannot prune the depth order).
  const slice: string[] = [];
  const params: unknown[] = [];
  const checks: Cmp[] = [];
  let loDepth = MIN;
  let hiDepth = MAX;
  const bound = (op: '<=' | '>' , stream: number, pos: TopologicalPosition | undefined): void => {
    if (pos) {
      slice.push(`(depth, stream) ${op} (?, ?)`);
      params.push(pos.depth, pos.stream);
      if (op === '<=') hiDepth = Math.min(hiDepth, pos.depth);
      else loDepth = Math.max(loDepth, pos.depth);
    } else if (op === '<=') checks.push((_d, s) => s <= stream);
    else checks.push((_d, s) => s > stream);
  };
  if (back) {
    bound('<=', q.from, q.fromTopo);
    if (hasTo) bound('>', q.to ?? 0, q.toTopo);
  } else {
    bound('>', q.from, q.fromTopo);
    if (hasTo) bound('<=', q.to ?? 0, q.toTopo);
  }
  if (loDepth > hiDepth) return [];
  const keep = rowFilter(q);
  const order = back ? 'ORDER BY depth DESC, stream DESC' : 'ORDER BY depth ASC, stream ASC';
  const query = `SELECT depth, stream, event_id, type, sender FROM room_topo WHERE room_id = ? AND bucket = ?${slice.map((s) => ` AND ${s}`).join('')} ${order}`;
  const out: string[] = [];
  const buckets = roomBuckets(ctx, q.roomId, KIND_TOPO, loDepth === MIN ? MIN : depthBucket(loDepth), hiDepth === MAX ? MAX : depthBucket(hiDepth), back);
  for await (const bucket of buckets) {
    for await (const row of scan(ctx, query, [q.roomId, bucket, ...params], Math.min(1000, limit + 20))) {
      const depth = num(row['depth']);
      const stream = num(row['stream']);
      if (!checks.every((c) => c(depth, stream))) continue;
      if (keep(row['type'] as string, row['sender'] as string, stream)) {
        out.push(row['event_id'] as string);
        if (out.length >= limit) return out;
      }
    }
  }
  return out;
}

/** Highest stream of any timeline event of the room (backfill included), or null. */
export async function roomMaxStream(ctx: CassandraContext, roomId: string): Promise<number | null> {
  for await (const bucket of roomBuckets(ctx, roomId, KIND_TIMELINE, MIN, MAX, true)) {
    const row: cassandra.types.Row | null = (
      await ctx.execute('SELECT stream FROM room_timeline WHERE room_id = ? AND bucket = ? ORDER BY stream DESC LIMIT 1', [roomId, bucket])
    ).first();
    if (row) return num(row['stream']);
  }
  return null;
}
