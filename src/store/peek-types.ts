// MSC2753 peeks: which rooms a device is peeking into (src/sync/peeks.ts decides who may peek).
//
// Invariants:
// - One row per (user, device, room). A peek's start and its end each take a stream position
//   and complete with a { kind: 'peek' } change record, so a sync range names exactly the peeks
//   that started or ended in it and waiters wake through the completion hook like any write.
// - An ended peek keeps its row (endedAt set) so the next incremental sync of the device can
//   report the end once; starting the peek again reuses the row (endedAt back to null).
// - Rows are per device: another device of the same user sees none of them. Deleting a device
//   (DeviceStore.deleteDevice) deletes its rows, outside the stream: readers caching them drop
//   them on the user's device-list record that follows every deletion.

export interface PeekRecord {
  roomId: string;
  /** Position of the (latest) start. */
  stream: number;
  /** Position of the end, or null while the peek is active. */
  endedAt: number | null;
}

export interface PeekStore {
  /** Starts (or renews) the device's peek into the room; returns the start's position. */
  startPeek(userId: string, deviceId: string, roomId: string): Promise<number>;
  /** Ends an active peek; returns the end's position, or null when no peek of it was active. */
  endPeek(userId: string, deviceId: string, roomId: string): Promise<number | null>;
  /** The device's peeks, ended ones included, by room ID. */
  getPeeks(userId: string, deviceId: string): Promise<PeekRecord[]>;
}
