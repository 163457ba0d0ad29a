// What users keep for themselves: account data (global and per room), room tags (room account data of type m.tag, which /sync
// already carries), their notification list, content reports and the user directory search.
//
// Invariants:
// - Tags are read and written only by their owner, for a room they have a membership in; every
//   write wakes that user's syncs.
// - A report of an event says "not found" alike for an unknown event and one the reporter may
//   not see, so reports do not leak existence.

import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import type { VisibilityChecker } from '../room/visibility.js';
import type { NotificationRecord, Store, StoredEvent } from '../store/types.js';
import type { Notifier } from '../sync/notifier.js';
import { INTERNAL_ACCOUNT_DATA_PREFIX, type PushRulesService } from '../push/push-rules-service.js';

/** Account-data types the server manages itself and clients may not set directly. */
const SERVER_MANAGED = new Set(['m.fully_read', 'm.push_rules']);

export type Tags = Record<string, JsonObject>;

export class UserDataService {
  constructor(
    private readonly store: Store,
    private readonly notifier: Notifier,
    private readonly pushRules: Pick<PushRulesService, 'accountDataChanged'>,
    private readonly visibility: VisibilityChecker,
    private readonly now: () => number,
  ) {}

  /** Global (`roomId` '') or room account data of the user's own; null when there is none. */
  async accountData(userIdParam: string, userId: string, roomId: string, type: string): Promise<JsonObject | null> {
    await this.assertOwnData(userIdParam, userId, roomId);
    return type.startsWith(INTERNAL_ACCOUNT_DATA_PREFIX) ? null : this.store.userData.getAccountData(userId, roomId, type);
  }

  async setAccountData(userIdParam: string, userId: string, roomId: string, type: string, content: JsonObject): Promise<void> {
    await this.assertOwnData(userIdParam, userId, roomId);
    if (type.length > 255) throw new MatrixError('M_INVALID_PARAM', 'Type too long');
    if (SERVER_MANAGED.has(type) || type.startsWith(INTERNAL_ACCOUNT_DATA_PREFIX)) {
      throw new MatrixError('M_BAD_JSON', `Cannot set ${type} through account data; use its own API`, {}, 405);
    }
    const stream = await this.store.userData.setAccountData(userId, roomId, type, content);
    if (roomId === '') this.pushRules.accountDataChanged(userId, type);
    this.notifier.publish({ stream, userIds: [userId] });
  }

  async tags(userIdParam: string, userId: string, roomId: string): Promise<Tags> {
    await this.assertOwnRoom(userIdParam, userId, roomId);
    return this.readTags(userId, roomId);
  }

  /** Sets (order given or not) or, with `order` null, removes one tag. */
  async updateTag(userIdParam: string, userId: string, roomId: string, tag: string, value: { order?: number } | null): Promise<void> {
    if (Buffer.byteLength(tag) > 255) throw new MatrixError('M_INVALID_PARAM', 'Tag too long');
    await this.assertOwnRoom(userIdParam, userId, roomId);
    const tags = await this.readTags(userId, roomId);
    if (value === null) delete tags[tag];
    else tags[tag] = value.order !== undefined ? { order: value.order } : {};
    const stream = await this.store.userData.setAccountData(userId, roomId, 'm.tag', { tags });
    this.notifier.publish({ stream, userIds: [userId] });
  }

  /** A page of the user's notifications, newest first, each with its event (gone ones left out). */
  async notifications(userId: string, q: { before?: number; limit: number; onlyHighlight: boolean }): Promise<{ page: Array<{ record: NotificationRecord; event: StoredEvent }>; full: boolean; last?: number }> {
    const records = await this.store.notifications.getNotifications(userId, q);
    const found = await this.store.rooms.getEvents(records.map((n) => n.eventId));
    const page = records.filter((n) => found.has(n.eventId)).map((record) => ({ record, event: found.get(record.eventId) as StoredEvent }));
    return { page, full: records.length === q.limit, last: records[records.length - 1]?.stream };
  }

  async reportEvent(reporter: string, roomId: string, eventId: string, reason: string | null, score: number | null): Promise<void> {
    const ev = await this.store.rooms.getEvent(eventId);
    const [visible] = ev && ev.roomId === roomId ? await this.visibility.filter(reporter, roomId, [ev]) : [];
    if (!visible) throw new MatrixError('M_NOT_FOUND', 'Event not found');
    await this.store.directory.addReport({ roomId, eventId, reporter, reason, score, ts: this.now() });
  }

  async reportRoom(reporter: string, roomId: string, reason: string | null): Promise<void> {
    if (!(await this.store.rooms.getRoom(roomId))) throw new MatrixError('M_NOT_FOUND', 'Room not found');
    await this.store.directory.addReport({ roomId, eventId: null, reporter, reason, score: null, ts: this.now() });
  }

  /** Up to `limit` + 1 users matching `term` that `userId` may see (one more says "limited"). */
  searchUsers(userId: string, term: string, limit: number) {
    return this.store.directory.searchUsers(userId, term, limit);
  }

  private async readTags(userId: string, roomId: string): Promise<Tags> {
    const data = await this.store.userData.getAccountData(userId, roomId, 'm.tag');
    const tags = data?.tags;
    return tags && typeof tags === 'object' && !Array.isArray(tags) ? { ...(tags as Tags) } : {};
  }

  private async assertOwnData(userIdParam: string, userId: string, roomId: string): Promise<void> {
    if (userIdParam !== userId) throw new MatrixError('M_FORBIDDEN', 'Cannot access account data of other users');
    if (roomId === '') return;
    if (!roomId.startsWith('!')) throw new MatrixError('M_INVALID_PARAM', 'Invalid room ID');
    if (!(await this.store.rooms.getMembership(roomId, userId))) throw new MatrixError('M_FORBIDDEN', 'You are not in this room');
  }

  private async assertOwnRoom(userIdParam: string, userId: string, roomId: string): Promise<void> {
    if (userIdParam !== userId) throw new MatrixError('M_FORBIDDEN', 'Cannot access tags of other users');
    if (!(await this.store.rooms.getMembership(roomId, userId))) throw new MatrixError('M_FORBIDDEN', 'You are not in this room');
  }
}
