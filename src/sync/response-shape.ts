// The shape of /sync response sections: which users a section shows joining, and when a section
// or a whole response carries nothing (then it is left out, or the long-poll keeps waiting).

import type { JsonObject } from '../protocol/types.js';

/** Users whose join (not a profile change) appears in a section's timeline or state. */
export function joinsIn(section: JsonObject): string[] {
  const out: string[] = [];
  const lists = [(section.timeline as { events: JsonObject[] }).events, (section.state as { events: JsonObject[] }).events];
  for (const list of lists) {
    for (const e of list) {
      const content = e.content as JsonObject | undefined;
      const prev = (e.unsigned as JsonObject | undefined)?.prev_content as JsonObject | undefined;
      if (e.type === 'm.room.member' && typeof e.state_key === 'string' && content?.membership === 'join' && prev?.membership !== 'join') out.push(e.state_key);
    }
  }
  return out;
}

/**
 * An incremental joined section whose every part the filter emptied (e.g. a member event the
 * timeline filter excludes): nothing reaches the client, so the room is left out rather than
 * sent as an empty section.
 */
export function sectionEmpty(section: JsonObject): boolean {
  const tl = section.timeline as { events: unknown[]; limited: boolean };
  const list = (k: string) => ((section[k] as { events: unknown[] } | undefined)?.events.length ?? 0) === 0;
  const n = section.unread_notifications as { notification_count?: number; highlight_count?: number } | undefined;
  const threads = section.unread_thread_notifications as JsonObject | undefined;
  return (
    tl.events.length === 0 &&
    !tl.limited &&
    list('state') &&
    list('ephemeral') &&
    list('account_data') &&
    section.summary === undefined &&
    !n?.notification_count &&
    !n?.highlight_count &&
    (threads === undefined || Object.keys(threads).length === 0)
  );
}

export function emptyJoined(): JsonObject {
  return {
    timeline: { events: [], limited: false },
    state: { events: [] },
    account_data: { events: [] },
    ephemeral: { events: [] },
    unread_notifications: { notification_count: 0, highlight_count: 0 },
  };
}

export function isEmpty(res: JsonObject): boolean {
  const rooms = res.rooms as { join: JsonObject; invite: JsonObject; leave: JsonObject; knock: JsonObject; peek?: JsonObject };
  return (
    Object.keys(rooms.peek ?? {}).length === 0 &&
    Object.keys(rooms.join).length === 0 &&
    Object.keys(rooms.invite).length === 0 &&
    Object.keys(rooms.leave).length === 0 &&
    Object.keys(rooms.knock).length === 0 &&
    (res.account_data as { events: unknown[] }).events.length === 0 &&
    (res.presence as { events: unknown[] }).events.length === 0 &&
    (res.to_device as { events: unknown[] }).events.length === 0 &&
    (res.device_lists as { changed: unknown[] }).changed.length === 0 &&
    (res.device_lists as { left: unknown[] }).left.length === 0
  );
}
