// The read model's per-device caches (read-model.ts): one-time key counts and unused fallback key
// types, and how far each device's to-device messages were acknowledged (deleted). Invariants: a
// device's key counts are dropped by its key writes (unpositioned changes, right after COMMIT)
// and by device-list records of its user (device deletion), and a load that overlapped any such
// drop is not kept; an acknowledged position only grows, and everything at or below it is gone
// from the store. Bound: changeCacheEntries devices each, least recently used dropped first.

import { LRUCache } from 'lru-cache';
import type { StreamChangeCache } from './change-cache.js';

export function deviceKey(userId: string, deviceId: string): string {
  return `${userId}\u0000${deviceId}`;
}

export class DeviceCaches {
  private readonly keyCounts: LRUCache<string, { userId: string; otk: Record<string, number>; fallback: string[] }>;
  /** Bumped on every key-count invalidation: a load that overlapped one is not kept. */
  private keyEpoch = 0;
  keyHits = 0;
  keyMisses = 0;
  /** device -> position up to which its to-device messages were deleted. */
  private readonly acked: LRUCache<string, number>;
  ackHits = 0;
  ackMisses = 0;

  constructor(
    entries: number,
    /** The model's change cache of to-device messages, per deviceKey. */
    private readonly toDevice: StreamChangeCache,
  ) {
    this.keyCounts = new LRUCache({ max: entries });
    this.acked = new LRUCache({ max: entries });
  }

  get keyCountsSize(): number {
    return this.keyCounts.size;
  }

  get ackedSize(): number {
    return this.acked.size;
  }

  /** A key write of the device. */
  dropDevice(userId: string, deviceId: string): void {
    this.keyCounts.delete(deviceKey(userId, deviceId));
    this.keyEpoch++;
  }

  /** A device-list record of these users. */
  dropUsers(userIds: ReadonlySet<string>): void {
    for (const [k, v] of this.keyCounts) if (userIds.has(v.userId)) this.keyCounts.delete(k);
    this.keyEpoch++;
  }

  clear(): void {
    this.acked.clear();
    this.keyCounts.clear();
    this.keyEpoch++;
  }

  /** See ReadModel.deviceKeyCounts. */
  async deviceKeyCounts(
    userId: string,
    deviceId: string,
    load: () => Promise<{ otk: Record<string, number>; fallback: string[] }>,
  ): Promise<{ otk: Record<string, number>; fallback: string[] }> {
    const k = deviceKey(userId, deviceId);
    const cached = this.keyCounts.get(k);
    if (cached) {
      this.keyHits++;
      return { otk: { ...cached.otk }, fallback: [...cached.fallback] };
    }
    this.keyMisses++;
    const epoch = this.keyEpoch;
    const v = await load();
    if (epoch === this.keyEpoch) {
      this.keyCounts.set(k, { userId, otk: { ...v.otk }, fallback: [...v.fallback] });
    }
    return v;
  }

  /** See ReadModel.ackMayDelete. */
  ackMayDelete(userId: string, deviceId: string, upTo: number): boolean {
    const k = deviceKey(userId, deviceId);
    const a = this.acked.get(k);
    if (a === undefined || (upTo > a && this.toDevice.changedSince(k, a))) {
      this.ackMisses++;
      return true;
    }
    this.ackHits++;
    return false;
  }

  acknowledged(userId: string, deviceId: string, upTo: number): void {
    const k = deviceKey(userId, deviceId);
    const a = Math.max(this.acked.get(k) ?? 0, upTo);
    this.acked.set(k, a);
  }
}
