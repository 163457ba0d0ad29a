// Read receipts and read markers. A receipt is durable (it clears notification counts and must
// survive restarts), takes a stream position, and wakes the room.

import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import type { ReceiptStore, ReceiptType } from '../store/chat-types.js';
import type { Store } from '../store/types.js';
import type { Notifier } from '../sync/notifier.js';

export class ReceiptService {
  constructor(
    private readonly store: Store,
    private readonly receipts: ReceiptStore,
    private readonly notifier: Notifier,
    private readonly now: () => number = Date.now,
    /** Called when a receipt moved (counts may have dropped: badge-clearing pushes). */
    private readonly onRead: (userId: string, roomId: string) => void = () => undefined,
  ) {}

  /** Told of every receipt that moved (federation forwards local users' public ones). */
  readonly listeners: Array<(r: { userId: string; roomId: string; type: ReceiptType; eventId: string; threadId: string | null; ts: number }) => void> = [];

  /**
   * Records a receipt. Silently keeps the old one when the new one would move backwards, as
   * clients race their own receipts across devices.
   */
  async send(userId: string, roomId: string, type: ReceiptType, eventId: string, threadId: string | null): Promise<void> {
    const m = await this.store.rooms.getMembership(roomId, userId);
    if (m?.membership !== 'join') throw new MatrixError('M_FORBIDDEN', 'You are not joined to this room');
    await this.record(userId, roomId, type, eventId, threadId);
  }

  /** A receipt from another server (m.receipt EDU): the sender's membership was checked there. */
  async receiveRemote(userId: string, roomId: string, eventId: string, threadId: string | null): Promise<void> {
    const m = await this.store.rooms.getMembership(roomId, userId);
    if (m?.membership !== 'join') return;
    const ev = await this.store.rooms.getEvent(eventId);
    if (!ev || ev.roomId !== roomId) return; // an event we do not have yet: nothing to anchor it to
    await this.record(userId, roomId, 'm.read', eventId, threadId);
  }

  private async record(userId: string, roomId: string, type: ReceiptType, eventId: string, threadId: string | null): Promise<void> {
    const ev = await this.store.rooms.getEvent(eventId);
    if (!ev || ev.roomId !== roomId) throw new MatrixError('M_NOT_FOUND', 'Unknown event');
    if (threadId !== null && threadId !== 'main') {
      const root = await this.store.rooms.getEvent(threadId);
      if (!root || root.roomId !== roomId) throw new MatrixError('M_INVALID_PARAM', 'thread_id is not an event in this room');
    }
    const ts = this.now();
    const rec = await this.receipts.putReceipt({ roomId, userId, type, threadId, eventId, eventStream: ev.stream, ts });
    if (rec) {
      this.notifier.publish({ stream: rec.stream, roomId, userIds: [userId] });
      this.onRead(userId, roomId);
      for (const l of this.listeners) l({ userId, roomId, type, eventId, threadId, ts });
    }
  }

  /** /read_markers: m.fully_read as room account data, plus optional receipts. */
  async readMarkers(userId: string, roomId: string, markers: { fullyRead?: string; read?: string; readPrivate?: string }): Promise<void> {
    const m = await this.store.rooms.getMembership(roomId, userId);
    if (m?.membership !== 'join') throw new MatrixError('M_FORBIDDEN', 'You are not joined to this room');
    if (markers.read) await this.send(userId, roomId, 'm.read', markers.read, null);
    if (markers.readPrivate) await this.send(userId, roomId, 'm.read.private', markers.readPrivate, null);
    if (markers.fullyRead) {
      const ev = await this.store.rooms.getEvent(markers.fullyRead);
      if (!ev || ev.roomId !== roomId) throw new MatrixError('M_NOT_FOUND', 'Unknown event');
      const content: JsonObject = { event_id: markers.fullyRead };
      const stream = await this.store.userData.setAccountData(userId, roomId, 'm.fully_read', content);
      this.notifier.publish({ stream, userIds: [userId] });
    }
  }
}
