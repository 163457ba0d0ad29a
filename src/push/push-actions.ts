// Evaluates push rules for every local member a new event could notify, inside the room's
// input queue, so the results are written atomically with the event and unread counts are
// exact. One evaluator (with its compiled-pattern cache) serves all rooms.

import type { JsonObject, Pdu } from '../protocol/types.js';
import type { RoomState } from '../room/room-state.js';
import type { PushActionInput } from '../store/chat-types.js';
import { PushEvaluator, type PushContext } from './evaluator.js';
import type { PushRulesService } from './push-rules-service.js';

export class PushActionComputer {
  private readonly evaluator = new PushEvaluator();
  private readonly localSuffix: string;

  constructor(
    private readonly rules: PushRulesService,
    serverName: string,
  ) {
    this.localSuffix = `:${serverName}`;
  }

  async compute(eventId: string, pdu: Pdu, state: RoomState): Promise<PushActionInput[]> {
    const members = state.joinedMembers();
    const candidates = new Map(members.map((m) => [m.userId, m.displayname]));
    // An invite notifies its target, who is not joined yet.
    if (pdu.type === 'm.room.member' && pdu.state_key && pdu.content.membership === 'invite') {
      candidates.set(pdu.state_key, null);
    }
    candidates.delete(pdu.sender);
    if (candidates.size === 0) return [];

    const pl = state.content('m.room.power_levels');
    const notif = pl?.notifications;
    const notificationPowerLevels: Record<string, number> = { room: 50 };
    if (notif && typeof notif === 'object' && !Array.isArray(notif)) {
      for (const [k, v] of Object.entries(notif)) if (typeof v === 'number') notificationPowerLevels[k] = v;
    }
    const event = { type: pdu.type, sender: pdu.sender, content: pdu.content, state_key: pdu.state_key, room_id: pdu.room_id, event_id: eventId };
    const threadId = threadOf(pdu.content);
    const base: Omit<PushContext, 'userId' | 'displayName'> = {
      event,
      roomMemberCount: members.length,
      senderPowerLevel: state.powerLevel(pdu.sender),
      notificationPowerLevels,
    };
    const out: PushActionInput[] = [];
    const local = [...candidates.keys()].filter((u) => u.endsWith(this.localSuffix)); // remote servers notify their own users
    const users = await this.rules.forUsers(local);
    // One context object, updated per member: this loop runs for every member on every event.
    const ctx: PushContext = { ...base, userId: '', displayName: null };
    for (const userId of local) {
      const u = users.get(userId)!;
      if (u.ignored.has(pdu.sender)) continue;
      ctx.userId = userId;
      ctx.displayName = candidates.get(userId) ?? null;
      const res = this.evaluator.evaluate(u.ruleset, ctx);
      if (!res.notify && !res.highlight) continue;
      out.push({ userId, notify: res.notify, highlight: res.highlight, threadId, actions: res.actions as Array<string | JsonObject> });
    }
    return out;
  }
}

function threadOf(content: JsonObject): string | null {
  const rel = content['m.relates_to'];
  if (rel && typeof rel === 'object' && !Array.isArray(rel) && rel.rel_type === 'm.thread' && typeof rel.event_id === 'string') {
    return rel.event_id;
  }
  return null;
}
