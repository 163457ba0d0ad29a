// The per-device parts of /sync: to_device messages (deleted once a later `since` acknowledges
// them), device_lists, device_one_time_keys_count and device_unused_fallback_key_types.

import type { JsonObject } from '../protocol/types.js';
import type { E2eeStore, ToDeviceMessage } from '../store/e2ee-types.js';
import type { ChangeHints, SyncRange } from './sources.js';

export interface DeviceListChanges {
  changes(userId: string, fromExclusive: number, toInclusive: number): Promise<{ changed: string[]; left: string[] }>;
}

/** Bounded batches: js-sdk repeats timeout=0 syncs while to_device is non-empty. */
export const TO_DEVICE_BATCH = 100;

/** What the read model knows about a device: acknowledgements and key counts. */
export interface DeviceCache {
  ackMayDelete(userId: string, deviceId: string, upTo: number): boolean;
  acknowledged(userId: string, deviceId: string, upTo: number): void;
  /** Key counts of a device, from memory when known (see ReadModel.deviceKeyCounts). */
  deviceKeyCounts(
    userId: string,
    deviceId: string,
    load: () => Promise<{ otk: Record<string, number>; fallback: string[] }>,
  ): Promise<{ otk: Record<string, number>; fallback: string[] }>;
}

export class DeviceSyncSource {
  constructor(
    private readonly e2ee: E2eeStore,
    private readonly deviceLists: DeviceListChanges,
    private readonly acks?: DeviceCache,
  ) {}

  /** The same source reading everything from the store (verification, tests). */
  withoutCache(): DeviceSyncSource {
    return new DeviceSyncSource(this.e2ee, this.deviceLists);
  }

  /** Deletes messages the device acknowledged by syncing from `since`. */
  async acknowledge(userId: string, deviceId: string, since: number): Promise<void> {
    // Most syncs acknowledge nothing new: the read model knows when no message can be waiting.
    if (this.acks && !this.acks.ackMayDelete(userId, deviceId, since)) return;
    await this.e2ee.ackToDevice(userId, deviceId, since);
    this.acks?.acknowledged(userId, deviceId, since);
  }

  /**
   * The stream bound for this response, with the to-device messages up to it: normally `upTo`,
   * but lowered when more messages are waiting than one batch holds, so the rest are delivered
   * (and acknowledged) by the next sync rather than skipped. The whole response is built to the
   * same bound, and `collect` is handed these messages instead of reading them again.
   */
  async bound(
    userId: string,
    deviceId: string,
    since: number | undefined,
    upTo: number,
    hints?: ChangeHints,
  ): Promise<{ upTo: number; messages: ToDeviceMessage[] }> {
    // Nothing queued for the device after `since` (the read model knows): nothing to read.
    if (since !== undefined && hints && !hints.toDeviceChanged()) return { upTo, messages: [] };
    const pending = await this.pending(userId, deviceId, since, upTo);
    if (pending.length <= TO_DEVICE_BATCH) return { upTo, messages: pending };
    const bound = pending[TO_DEVICE_BATCH - 1].stream;
    return { upTo: bound, messages: pending.filter((m) => m.stream <= bound) };
  }

  /**
   * Messages not yet sent: above `since`. Those at or below it were sent in an earlier response
   * and wait for an acknowledgement (socket ack frames), so they are not repeated.
   */
  private async pending(userId: string, deviceId: string, since: number | undefined, upTo: number): Promise<ToDeviceMessage[]> {
    const all = await this.e2ee.getToDevice(userId, deviceId, upTo, TO_DEVICE_BATCH * 10);
    return since === undefined ? all : all.filter((m) => m.stream > since);
  }

  /** `messages`: what `bound()` returned for this range. */
  async collect(range: SyncRange, messages: ToDeviceMessage[]): Promise<JsonObject> {
    const { userId, deviceId } = range;
    const load = async () => {
      const [otk, fallback] = await Promise.all([this.e2ee.countOneTimeKeys(userId, deviceId), this.e2ee.getUnusedFallbackKeyTypes(userId, deviceId)]);
      return { otk, fallback };
    };
    const [{ otk: counts, fallback }, lists] = await Promise.all([
      this.acks ? this.acks.deviceKeyCounts(userId, deviceId, load) : load(),
      range.since && (!range.hints || range.hints.deviceListsMayChange())
        ? this.deviceLists.changes(userId, range.since.stream, range.upTo.stream)
        : { changed: [], left: [] },
    ]);
    return {
      to_device: { events: messages.map(toDeviceEvent) },
      device_lists: { changed: lists.changed, left: lists.left },
      // Clients re-upload keys on every sync when this is missing or stale: always send it.
      device_one_time_keys_count: { signed_curve25519: 0, ...counts },
      device_unused_fallback_key_types: fallback,
    };
  }
}

function toDeviceEvent(m: ToDeviceMessage): JsonObject {
  return { type: m.type, sender: m.sender, content: m.content };
}
