// Read receipts and read markers. A receipt is durable (it clears notification counts and must
// survive restarts), takes a stream position, and wakes the room. A local user's public receipt
// for other servers (`outbound`, set by federation) is queued in the receipt's own write, so it
// is durable exactly when the receipt is; listeners then learn where it was queued.

import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import type { ReceiptOutbound, ReceiptStore, ReceiptType } from '../store/chat-types.js';
import type { Store } from '../store/types.js';
import type { Notifier } from '../sync/notifier.js';

export interface ReceiptMoved {
  userId: string;
  roomId: string;
  type: ReceiptType;
  eventId: string;
  threadId: string | null;
  ts: number;
}

export class ReceiptService {
  constructor(
    private readonly store: Store,
    private readonly receipts: ReceiptStore,
    private readonly notifier: Notifier,
    private readonly now: () => number = Date.now,
    /** Called when a receipt moved (counts may have dropped: badge-clearing pushes). */
    private readonly onRead: (userId: string, roomId: string) => void = () => undefined,
  ) {}

  /**
   * Told of every receipt that moved, at its stream position; `queued`: the servers its EDU was
   * queued for in the receipt's write (see `outbound`).
   */
  readonly listeners: Array<(r: ReceiptMoved & { stream: number; queued?: readonly string[] }) => void> = [];

  /**
   * Set by federation: the EDU a receipt becomes for other servers and where it goes (undefined:
   * none), asked before the write so that it is queued in the same write (ReceiptStore.putReceipt).
   */
  outbound?: (r: ReceiptMoved) => Promise<ReceiptOutbound | undefined>;

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
    const moved: ReceiptMoved = { userId, roomId, type, eventId, threadId, ts };
    const outbound = await this.outbound?.(moved);
    const rec = await this.receipts.putReceipt({ roomId, userId, type, threadId, eventId, eventStream: ev.stream, ts }, outbound);
    if (rec) {
      this.notifier.publish({ stream: rec.stream, roomId, userIds: [userId] });
      this.onRead(userId, roomId);
      const queued = outbound && outbound.destinations.length > 0 ? outbound.destinations : undefined;
      for (const l of this.listeners) l({ ...moved, stream: rec.stream, ...(queued ? { queued } : {}) });
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
