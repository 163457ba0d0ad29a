// m.receipt for /sync. Private receipts (m.read.private) go only to their owner.

import type { JsonObject } from '../protocol/types.js';
import type { ReceiptRecord, ReceiptStore } from '../store/chat-types.js';
import { addTo, type RoomEphemeralSource, type SyncRange } from '../sync/sources.js';
import { dict } from '../protocol/canonical-json.js';

export class ReceiptSource implements RoomEphemeralSource {
  constructor(private readonly receipts: ReceiptStore) {}

  async collect(range: SyncRange, roomIds: string[]): Promise<Map<string, JsonObject[]>> {
    const out = new Map<string, JsonObject[]>();
    if (range.hints) roomIds = range.hints.receiptRooms(roomIds);
    if (roomIds.length === 0) return out;
    const records = range.since
      ? await this.receipts.getReceiptChanges(roomIds, range.since.stream, range.upTo.stream)
      : (await this.receipts.getRoomReceipts(roomIds)).filter((r) => r.stream <= range.upTo.stream);
    const byRoom = new Map<string, ReceiptRecord[]>();
    for (const r of records) {
      if (r.type === 'm.read.private' && r.userId !== range.userId) continue;
      const list = byRoom.get(r.roomId) ?? [];
      list.push(r);
      byRoom.set(r.roomId, list);
    }
    for (const [roomId, list] of byRoom) addTo(out, roomId, { type: 'm.receipt', content: receiptContent(list) });
    return out;
  }
}

/** `{eventId: {receiptType: {userId: {ts, thread_id?}}}}` */
export function receiptContent(records: ReceiptRecord[]): JsonObject {
  const content: Record<string, Record<string, Record<string, JsonObject>>> = dict();
  for (const r of records) {
    const byType = (content[r.eventId] ??= dict());
    const byUser = (byType[r.type] ??= dict());
    const data: JsonObject = { ts: r.ts };
    if (r.threadId !== null) data.thread_id = r.threadId;
    byUser[r.userId] = data;
  }
  return content as JsonObject;
}
