// Room layouts: power-law room sizes ("80/20": most rooms have 2-3 members, a few are large) and
// their creation through the client API (public rooms: the first member creates, the rest join).

import type { MatrixClient } from './matrix.js';
import { pool } from './schedule.js';

/** Deterministic PRNG (mulberry32) so every run and every target gets the same layout. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Layout {
  /** members[r] = user indexes of room r (distinct). */
  members: number[][];
  /** rooms[u] = room indexes of user u. */
  roomsOf: number[][];
}

/**
 * Room sizes from P(s) ~ s^-alpha on [min, max] (one room of exactly `max` is always included),
 * drawn until the memberships reach `membershipsPerUser` x users; members are drawn uniformly,
 * then every user left without a room is added to a random small room.
 */
export function powerLawLayout(users: number, min: number, max: number, alpha = 2, membershipsPerUser = 2, seed = 42): Layout {
  const rand = rng(seed);
  max = Math.min(max, users);
  const weights: number[] = [];
  for (let s = min; s <= max; s++) weights.push(s ** -alpha);
  const total = weights.reduce((a, b) => a + b, 0);
  const draw = () => {
    let x = rand() * total;
    for (let i = 0; i < weights.length; i++) {
      x -= weights[i];
      if (x <= 0) return min + i;
    }
    return max;
  };
  const sizes = [max];
  let sum = max;
  while (sum < membershipsPerUser * users) {
    const s = draw();
    sizes.push(s);
    sum += s;
  }
  const members = sizes.map((size) => {
    const set = new Set<number>();
    while (set.size < size) set.add(Math.floor(rand() * users));
    return [...set];
  });
  const roomsOf: number[][] = Array.from({ length: users }, () => []);
  members.forEach((m, r) => m.forEach((u) => roomsOf[u].push(r)));
  for (let u = 0; u < users; u++) {
    if (roomsOf[u].length) continue;
    const r = 1 + Math.floor(rand() * (members.length - 1));
    members[r].push(u);
    roomsOf[u].push(r);
  }
  return { members, roomsOf };
}

/** `rooms` rooms of `size` members each, users assigned in order (user u in room floor(u/size)). */
export function blockLayout(users: number, size: number): Layout {
  const members: number[][] = [];
  for (let u = 0; u < users; u++) {
    const r = Math.floor(u / size);
    (members[r] ??= []).push(u);
  }
  const roomsOf: number[][] = Array.from({ length: users }, (_, u) => [Math.floor(u / size)]);
  return { members, roomsOf };
}

/** Creates every room (its first member creates it) and joins the other members. */
export async function createRooms(clients: MatrixClient[], layout: Layout, name: string, concurrency = 16, log?: (s: string) => void): Promise<string[]> {
  const started = performance.now();
  const roomIds = await pool(layout.members, concurrency, (m, r) => clients[m[0]].createRoom(`${name} ${r}`));
  const joins: Array<[number, number]> = [];
  layout.members.forEach((m, r) => m.slice(1).forEach((u) => joins.push([u, r])));
  await pool(joins, concurrency, ([u, r]) => clients[u].join(roomIds[r]));
  log?.(`  ${roomIds.length} rooms, ${joins.length + roomIds.length} memberships in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return roomIds;
}

export function sizeHistogram(layout: Layout): Record<string, number> {
  const buckets: Record<string, number> = { '2-3': 0, '4-10': 0, '11-50': 0, '51-200': 0, '>200': 0 };
  for (const m of layout.members) {
    const s = m.length;
    buckets[s <= 3 ? '2-3' : s <= 10 ? '4-10' : s <= 50 ? '11-50' : s <= 200 ? '51-200' : '>200']++;
  }
  return buckets;
}
