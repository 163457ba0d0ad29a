// The rooms.peek part of a /sync response (MSC2753, src/sync/peeks.ts): which of a device's
// peeks show in the range (since, upTo], and in which form. The sections themselves come from
// the joined-room builder (`section`), so a peeked room reads exactly like a joined one.
//
// Rules:
// - A peek that started in the range (or any active peek on an initial or full_state sync) gets
//   a full section: the latest timeline and the state at its start, as a newly joined room.
// - An active peek that started before the range gets an incremental section, left out when
//   nothing happened in the room.
// - A peek that ended (unpeek) in the range after starting before it puts the room under
//   rooms.leave with the events between `since` and the end (MSC2753); one started and ended
//   inside the range was never seen by the client and shows nowhere.
// - A membership of the user in the room written after the peek started (a join, a leave, a
//   ban) ends the peek: the room follows its membership from then on (join or leave section)
//   and never returns to rooms.peek, even after the user leaves again. Invites and knocks do
//   not end it. A room the user is joined to is never under rooms.peek.
// - Peeks written after upTo belong to the next response (their record lies above upTo).

import type { JsonObject } from '../protocol/types.js';
import type { PeekRecord } from '../store/peek-types.js';
import type { MembershipRecord } from '../store/types.js';
import { dict } from '../protocol/canonical-json.js';
import { sectionEmpty } from './response-shape.js';

export interface PeekSectionArgs {
  peeks: readonly PeekRecord[];
  /** The user's membership in a room as of upTo, if any. */
  membership: (roomId: string) => MembershipRecord | undefined;
  /** Undefined on an initial sync. */
  from: number | undefined;
  upTo: number;
  fullState: boolean;
  /** The filter's room list. */
  included: (roomId: string) => boolean;
  /** Highest event position of each room (rooms with none may be absent). */
  lastEvents: (roomIds: string[]) => Promise<Map<string, number>>;
  /** A joined-room section: `from` undefined for a full one. */
  section: (roomId: string, from: number | undefined, upTo: number, full: boolean) => Promise<JsonObject | null>;
}

export interface PeekSections {
  peek: JsonObject;
  /** Rooms unpeeked in the range, for rooms.leave. */
  left: Array<[string, JsonObject]>;
  /** Rooms whose new events should wake the device's parked sync. */
  watched: string[];
}

export async function peekSections(a: PeekSectionArgs): Promise<PeekSections> {
  const out: PeekSections = { peek: dict(), left: [], watched: [] };
  const active: PeekRecord[] = [];
  const ended: PeekRecord[] = [];
  for (const p of a.peeks) {
    if (p.stream > a.upTo || !a.included(p.roomId) || endedByMembership(p, a.membership(p.roomId))) continue;
    if (p.endedAt === null || p.endedAt > a.upTo) active.push(p);
    else if (a.from !== undefined && p.endedAt > a.from && p.stream <= a.from) ended.push(p);
  }
  out.watched = active.map((p) => p.roomId);
  const from = a.from;
  const incremental = from === undefined || a.fullState ? [] : active.filter((p) => p.stream <= from);
  const last = incremental.length > 0 ? await a.lastEvents(incremental.map((p) => p.roomId)) : new Map<string, number>();
  for (const p of active) {
    const newly = from === undefined || a.fullState || p.stream > from;
    if (!newly && (last.get(p.roomId) ?? 0) <= from) continue;
    const section = await a.section(p.roomId, newly ? undefined : from, a.upTo, newly);
    if (!section) continue;
    if (!newly && sectionEmpty(section)) continue;
    out.peek[p.roomId] = section;
  }
  for (const p of ended) {
    const section = await a.section(p.roomId, from, p.endedAt!, false);
    if (!section) continue;
    // A leave section has no ephemeral events, unread counts or summary.
    delete section.ephemeral;
    delete section.unread_notifications;
    delete section.summary;
    out.left.push([p.roomId, section]);
  }
  return out;
}

function endedByMembership(p: PeekRecord, m: MembershipRecord | undefined): boolean {
  if (!m) return false;
  if (m.membership === 'join') return true;
  return m.stream > p.stream && m.membership !== 'invite' && m.membership !== 'knock';
}
