// A user's membership history in a room, for the /sync questions the current membership cannot
// answer: what it was at the response's upper bound (a record written above it is not part of
// this response), whether a join is a rejoin, whether a join happened inside the sync range.
// Reads only stored history (m.room.member state history), never the read model: these questions
// come up on joins and leaves, rarely enough that a store read is fine.

import type { MembershipRecord, RoomStore } from '../store/types.js';

export type MemberHistory = Array<{ stream: number; eventId: string | null }>;

export class MemberHistoryReader {
  constructor(private readonly rooms: Pick<RoomStore, 'getStateHistory' | 'getEvent' | 'getEvents'>) {}

  /** The membership as of `upTo`: the current record if written at or below it, else history. */
  async membershipAsOf(m: MembershipRecord, upTo: number): Promise<MembershipRecord | null> {
    if (m.stream <= upTo) return m;
    const hist = await this.rooms.getStateHistory(m.roomId, 'm.room.member', m.userId);
    const prev = [...hist].reverse().find((h) => h.stream <= upTo);
    if (!prev?.eventId) return null;
    const ev = await this.rooms.getEvent(prev.eventId);
    const membership = ev?.pdu.content.membership;
    if (typeof membership !== 'string') return null;
    return { ...m, membership: membership as MembershipRecord['membership'], eventId: prev.eventId, stream: prev.stream };
  }

  /** The user's member history in a room: read once per room, shared by the checks below. */
  of(roomId: string, userId: string): Promise<MemberHistory> {
    return this.rooms.getStateHistory(roomId, 'm.room.member', userId);
  }

  /**
   * Whether the user's join stint current at `at` (by `hist`, their member history) follows an
   * earlier one: a join, then leave or ban, then join again. Profile changes (join after join)
   * are part of one stint.
   */
  async isRejoin(hist: MemberHistory, at: number): Promise<boolean> {
    const upTo = hist.filter((h) => h.stream <= at && h.eventId !== null);
    if (upTo.length < 3) return false;
    const events = await this.rooms.getEvents(upTo.map((h) => h.eventId as string));
    const ms = upTo.map((h) => events.get(h.eventId as string)?.pdu.content.membership);
    let i = ms.length - 1;
    while (i >= 0 && ms[i] === 'join') i--;
    return ms.slice(0, i + 1).includes('join');
  }

  /** Whether `hist` (the user's member history) has a `join` membership event in (from, to]. */
  async joinedWithin(hist: MemberHistory, from: number, to: number): Promise<boolean> {
    const ids = hist.flatMap((h) => (h.stream > from && h.stream <= to && h.eventId !== null ? [h.eventId] : []));
    if (ids.length === 0) return false;
    return [...(await this.rooms.getEvents(ids)).values()].some((e) => e.pdu.content.membership === 'join');
  }

  /** Whether the user's membership as of `at`, by `hist` (their member history), was not `join`. */
  async wasNotJoined(hist: MemberHistory, at: number): Promise<boolean> {
    const prev = [...hist].reverse().find((h) => h.stream <= at);
    if (!prev?.eventId) return true;
    const ev = await this.rooms.getEvent(prev.eventId);
    return ev?.pdu.content.membership !== 'join';
  }
}
