// The read model's part for MSC2753 peeks: each device's peek rows (src/store/peek-types.ts),
// loaded from the store on first use and dropped by every peek record of the device, so a
// device that never peeked costs one store read, then none, per sync.
//
// A load is kept only when no peek record of the device arrived during the read (the change
// cache says so) and no device of its user was deleted meanwhile (device-list records, which
// follow every deletion: the store deletes a device's peeks with it), so a load can never
// overwrite a newer value.

import { LRUCache } from 'lru-cache';
import type { PeekRecord } from '../../store/peek-types.js';
import { StreamChangeCache } from './change-cache.js';

export class DevicePeeks {
  /** device -> last peek start or end. */
  readonly changes: StreamChangeCache;
  private readonly lists: LRUCache<string, { userId: string; peeks: readonly PeekRecord[] }>;
  /** Bumped whenever lists are dropped by user: a load that overlapped one is not kept. */
  private epoch = 0;
  hits = 0;
  misses = 0;

  constructor(start: number, changeEntries: number, readonly bound: number) {
    this.changes = new StreamChangeCache('peeks', start, changeEntries);
    this.lists = new LRUCache({ max: bound });
  }

  get size(): number {
    return this.lists.size;
  }

  apply(userId: string, deviceId: string, stream: number): void {
    const k = deviceKey(userId, deviceId);
    this.changes.record(k, stream);
    this.lists.delete(k);
  }

  /** The device's peeks, from memory once loaded (a copy: callers own it). */
  async get(userId: string, deviceId: string, position: number, load: () => Promise<PeekRecord[]>): Promise<PeekRecord[]> {
    const k = deviceKey(userId, deviceId);
    const cached = this.lists.get(k);
    if (cached) {
      this.hits++;
      return cached.peeks.map((p) => ({ ...p }));
    }
    this.misses++;
    const epoch = this.epoch;
    const rows = await load();
    if (epoch === this.epoch && !this.changes.changedSince(k, position) && !this.lists.has(k)) this.lists.set(k, { userId, peeks: rows.map((p) => ({ ...p })) });
    return rows;
  }

  /** Drops the lists of every device of these users (a device of theirs may have been deleted). */
  dropUsers(userIds: ReadonlySet<string>): void {
    for (const [k, v] of this.lists) if (userIds.has(v.userId)) this.lists.delete(k);
    this.epoch++;
  }

  /** Forgets every list (the change cache is reset with the model's others). */
  clear(): void {
    this.lists.clear();
    this.epoch++;
  }
}

function deviceKey(userId: string, deviceId: string): string {
  return `${userId}\u0000${deviceId}`;
}
