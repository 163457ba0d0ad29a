// The initial events of a room created by a client (POST /createRoom): create, the creator's
// join, power levels, canonical alias, join rules, history visibility, guest access, the
// client's initial_state, name, topic and local invites, in that order. Invariants: pure apart
// from reading invitees' profiles; the client's initial_state never supplies the create event
// or a member event, and replaces an earlier draft of the same (type, state_key) in place; v12+
// creators are never listed in power_levels.users (their power is infinite) and the tombstone
// needs more than state_default, so only creators can upgrade; invitees of other servers are
// left out (their server must sign each invite once the room exists).

import { MatrixError } from '../errors.js';
import { isValidUserId } from '../protocol/ids.js';
import { creatorsOf } from '../protocol/power-levels.js';
import type { RoomVersionRules } from '../protocol/room-versions.js';
import type { JsonObject, Pdu } from '../protocol/types.js';
import type { EventDraft } from './event-builder.js';

export interface CreateRoomRequest {
  visibility?: 'public' | 'private';
  room_alias_name?: string;
  name?: string;
  topic?: string;
  invite?: string[];
  room_version?: string;
  creation_content?: JsonObject;
  initial_state?: Array<{ type: string; state_key?: string; content: JsonObject }>;
  preset?: 'private_chat' | 'public_chat' | 'trusted_private_chat';
  is_direct?: boolean;
  power_level_content_override?: JsonObject;
}

type Profile = { displayname: string | null; avatarUrl: string | null } | null;

export async function initialDrafts(
  req: CreateRoomRequest,
  ctx: {
    rules: RoomVersionRules;
    me: string;
    preset: NonNullable<CreateRoomRequest['preset']>;
    alias: string | undefined;
    profile: Profile;
    remoteInvites: readonly string[];
    getUser: (userId: string) => Promise<Profile>;
  },
): Promise<EventDraft[]> {
  const { rules, me, preset, alias, profile, remoteInvites } = ctx;
  const version = rules.id;
  const createContent: JsonObject = { ...(req.creation_content ?? {}), room_version: version };
  if (rules.auth.creatorInContent) createContent.creator = me;
  else delete createContent.creator;
  if (rules.auth.privilegedCreators) {
    const extra = createContent.additional_creators ?? [];
    if (!Array.isArray(extra) || !extra.every((u) => isValidUserId(u))) {
      throw new MatrixError('M_BAD_JSON', 'creation_content.additional_creators must be an array of user IDs');
    }
    // createRoom spec: trusted_private_chat invitees SHOULD become additional creators (v12+).
    const invited = preset === 'trusted_private_chat' ? (req.invite ?? []) : [];
    const all = [...new Set([...extra, ...invited])].filter((u) => u !== me);
    if (all.length > 0) createContent.additional_creators = all;
    else delete createContent.additional_creators;
  } else {
    // Only v12 knows this field; elsewhere it would be ordinary content with no power.
    delete createContent.additional_creators;
  }

  // v12 creators have infinite power and must not be listed in power_levels.users.
  const creators = rules.auth.privilegedCreators
    ? creatorsOf({ sender: me, type: 'm.room.create', content: createContent } as Pdu, version)
    : new Set<string>();
  const users: JsonObject = creators.has(me) ? {} : { [me]: 100 };
  if (preset === 'trusted_private_chat') for (const u of req.invite ?? []) if (!creators.has(u)) users[u] = 100;
  const powerLevels: JsonObject = {
    users,
    users_default: 0,
    events: {
      'm.room.name': 50,
      'm.room.power_levels': 100,
      'm.room.history_visibility': 100,
      'm.room.canonical_alias': 50,
      'm.room.avatar': 50,
      // v12+: MUST be above state_default's 100 so that only creators can upgrade the room.
      'm.room.tombstone': rules.auth.privilegedCreators ? 150 : 100,
      'm.room.server_acl': 100,
      'm.room.encryption': 100,
    },
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: 0,
    historical: 100,
    notifications: { room: 50 },
    ...(req.power_level_content_override ?? {}),
  };

  const drafts: EventDraft[] = [
    { type: 'm.room.create', stateKey: '', sender: me, content: createContent },
    { type: 'm.room.member', stateKey: me, sender: me, content: memberContent('join', profile) },
    { type: 'm.room.power_levels', stateKey: '', sender: me, content: powerLevels },
  ];
  if (alias) drafts.push({ type: 'm.room.canonical_alias', stateKey: '', sender: me, content: { alias } });
  drafts.push(
    { type: 'm.room.join_rules', stateKey: '', sender: me, content: { join_rule: preset === 'public_chat' ? 'public' : 'invite' } },
    { type: 'm.room.history_visibility', stateKey: '', sender: me, content: { history_visibility: 'shared' } },
  );
  if (preset !== 'public_chat') {
    drafts.push({ type: 'm.room.guest_access', stateKey: '', sender: me, content: { guest_access: 'can_join' } });
  }
  const seen = new Set(drafts.map((d) => `${d.type}\u0000${d.stateKey}`));
  for (const s of req.initial_state ?? []) {
    const key = `${s.type}\u0000${s.state_key ?? ''}`;
    if (s.type === 'm.room.create' || s.type === 'm.room.member') continue;
    const draft: EventDraft = { type: s.type, stateKey: s.state_key ?? '', sender: me, content: s.content };
    if (seen.has(key)) {
      const i = drafts.findIndex((d) => `${d.type}\u0000${d.stateKey}` === key);
      drafts[i] = draft;
    } else drafts.push(draft);
    seen.add(key);
  }
  if (req.name !== undefined) drafts.push({ type: 'm.room.name', stateKey: '', sender: me, content: { name: req.name } });
  if (req.topic !== undefined) drafts.push({ type: 'm.room.topic', stateKey: '', sender: me, content: { topic: req.topic } });
  for (const u of req.invite ?? []) {
    if (remoteInvites.includes(u)) continue;
    const target = await ctx.getUser(u);
    const content = memberContent('invite', target);
    if (req.is_direct) content.is_direct = true;
    drafts.push({ type: 'm.room.member', stateKey: u, sender: me, content });
  }
  return drafts;
}

/** The content of a member event with the user's profile. */
export function memberContent(
  membership: string,
  profile: Profile,
): JsonObject {
  const c: JsonObject = { membership };
  if (profile?.displayname) c.displayname = profile.displayname;
  if (profile?.avatarUrl) c.avatar_url = profile.avatarUrl;
  return c;
}

