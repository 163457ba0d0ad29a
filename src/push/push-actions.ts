// Evaluates push rules for every local member a new event could notify, inside the room's
// input queue, so the results are written atomically with the event and unread counts are
// exact. One evaluator (with its compiled-pattern cache) serves all rooms.
//
// Storage: in a big room most members get the very same result (`.m.rule.message` -> notify).
// When at least BULK_MIN joined members share one notifying result, it is stored once as a
// bulk result (PushBulkInput: "every joined member but the sender and `except`"), and only the
// members with another result get a row of their own. The dispatcher still gets everyone.

import type { JsonObject, Pdu } from '../protocol/types.js';
import { roomIdOf } from '../protocol/events.js';
import { levelValue } from '../protocol/power-levels.js';
import type { RoomState } from '../room/room-state.js';
import type { PushActionInput, PushBulkInput } from '../store/chat-types.js';
import { PushEvaluator, type PushContext } from './evaluator.js';
import type { PushRulesService } from './push-rules-service.js';

/** Fewest members sharing a result for it to be stored once; below that, rows cost little. */
export const BULK_MIN = 32;

export interface PushComputation {
  /** Results to store one row each: everyone `bulk` does not cover who notifies or highlights. */
  rows: PushActionInput[];
  /** The result shared by most joined members, stored once. */
  bulk?: PushBulkInput;
  /** Every member's notifying or highlighting result (for push delivery). */
  all: PushActionInput[];
}

interface Group {
  sample: PushActionInput;
  size: number;
}

export class PushActionComputer {
  private readonly evaluator = new PushEvaluator();
  private readonly localSuffix: string;

  constructor(
    private readonly rules: PushRulesService,
    serverName: string,
  ) {
    this.localSuffix = `:${serverName}`;
  }

  async compute(eventId: string, pdu: Pdu, state: RoomState): Promise<PushComputation> {
    const members = state.joinedMembers();
    const candidates = new Map(members.map((m) => [m.userId, m.displayname]));
    // An invite notifies its target, who is not joined yet (so never covered by a bulk result).
    let notJoined: string | null = null;
    if (pdu.type === 'm.room.member' && pdu.state_key && pdu.content.membership === 'invite' && !candidates.has(pdu.state_key)) {
      candidates.set(pdu.state_key, null);
      notJoined = pdu.state_key;
    }
    candidates.delete(pdu.sender);
    if (candidates.size === 0) return { rows: [], all: [] };

    const pl = state.content('m.room.power_levels');
    const notif = pl?.notifications;
    const notificationPowerLevels: Record<string, number> = { room: 50 };
    if (notif && typeof notif === 'object' && !Array.isArray(notif)) {
      for (const [k, v] of Object.entries(notif)) {
        // levelValue: rooms before v10 may hold levels as integer strings.
        const level = levelValue(v);
        if (level !== undefined) notificationPowerLevels[k] = level;
      }
    }
    const event = { type: pdu.type, sender: pdu.sender, content: pdu.content, state_key: pdu.state_key, room_id: roomIdOf(pdu, eventId), event_id: eventId };
    const threadId = threadOf(pdu.content);
    const base: Omit<PushContext, 'userId' | 'displayName'> = {
      event,
      roomMemberCount: members.length,
      senderPowerLevel: state.powerLevel(pdu.sender),
      notificationPowerLevels,
    };
    const all: PushActionInput[] = [];
    const local = [...candidates.keys()].filter((u) => u.endsWith(this.localSuffix)); // remote servers notify their own users
    const users = await this.rules.forUsers(local);
    // Joined members by identical result; `groupOf[i]` is local[i]'s group (undefined: not
    // notifying or not joined), `actionGroup[k]` that of all[k].
    const groups = new Map<string, Group>();
    const groupOf: Array<Group | undefined> = new Array(local.length);
    const actionGroup: Array<Group | undefined> = [];
    // One context object, updated per member: this loop runs for every member on every event.
    const ctx: PushContext = { ...base, userId: '', displayName: null };
    for (let i = 0; i < local.length; i++) {
      const userId = local[i];
      const u = users.get(userId)!;
      if (u.ignored.has(pdu.sender)) continue;
      ctx.userId = userId;
      ctx.displayName = candidates.get(userId) ?? null;
      const res = this.evaluator.evaluate(u.ruleset, ctx);
      if (!res.notify && !res.highlight) continue;
      const action: PushActionInput = { userId, notify: res.notify, highlight: res.highlight, threadId, actions: res.actions as Array<string | JsonObject> };
      all.push(action);
      let group: Group | undefined;
      if (userId !== notJoined) {
        const key = `${res.notify ? 1 : 0}${res.highlight ? 1 : 0}${JSON.stringify(res.actions)}`;
        group = groups.get(key);
        if (group) group.size++;
        else groups.set(key, (group = { sample: action, size: 1 }));
        groupOf[i] = group;
      }
      actionGroup.push(group);
    }

    let best: Group | undefined;
    for (const g of groups.values()) if (!best || g.size > best.size) best = g;
    const joinedLocal = notJoined !== null && local.includes(notJoined) ? local.length - 1 : local.length;
    // Everyone else joined goes into `except`: not worth it when they outnumber the group.
    if (!best || best.size < BULK_MIN || joinedLocal - best.size > best.size) return { rows: all, all };
    const except: string[] = [];
    for (let i = 0; i < local.length; i++) if (groupOf[i] !== best && local[i] !== notJoined) except.push(local[i]);
    const { notify, highlight, actions } = best.sample;
    return {
      rows: all.filter((_, k) => actionGroup[k] !== best),
      bulk: { notify, highlight, threadId, actions, except },
      all,
    };
  }
}

function threadOf(content: JsonObject): string | null {
  const rel = content['m.relates_to'];
  if (rel && typeof rel === 'object' && !Array.isArray(rel) && rel.rel_type === 'm.thread' && typeof rel.event_id === 'string') {
    return rel.event_id;
  }
  return null;
}
