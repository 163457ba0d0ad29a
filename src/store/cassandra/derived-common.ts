// Small helpers shared by the derived-data modules (notifications, relations, search, admin).

import type { RoomStore } from '../types.js';
import { positionBucket } from './positions.js';

/** Partition bucket of a room's derived rows (bulk results, search): the position's hour. */
export const roomBucket = positionBucket;

/** Hours per bucket of a user's push actions. */
export const USER_BUCKET_HOURS = 168;

/**
 * Partition bucket of a user's push actions: the position's week. A user is notified far less
 * often than a busy room gets events, so week partitions stay small, and an unread range of a
 * month probes a handful of them rather than hundreds of hours.
 */
export function userBucket(pos: number): number {
  return Math.floor(positionBucket(pos) / USER_BUCKET_HOURS);
}

/**
 * Maps with at most `limit` calls in flight: enough to hide round trips, few enough not to
 * flood the driver's per-connection request queue on large inputs.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Other modules' stores, read through the domain contract rather than their tables, so the
 * derived modules do not depend on how rooms or receipts are laid out. Getters: the backend
 * builds its modules one after another.
 */
export interface DerivedDeps {
  rooms: () => RoomStore;
}
