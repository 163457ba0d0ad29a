// Small helpers shared by the derived-data modules (notifications, relations, search, admin).

import type { RoomStore } from '../types.js';

/** The bucket of a stream position for a table bucketed by `size` positions (negatives too). */
export function bucketOf(stream: number, size: number): number {
  return Math.floor(stream / size);
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
