// Authorisation rules for room versions 1 to 12 (spec rooms/v1 ... rooms/v12, "Authorisation
// rules"). The rules are one algorithm; what differs between versions is read from the flags in
// room-versions.ts, never from version comparisons. Rule numbers in comments follow v11 (v12
// inserts its room-ID rule as rule 2 and shifts the rest by one; v1-v5 have the m.room.aliases
// rule 4). Power-level helpers live in power-levels.js and are re-exported here.
//
// What is NOT checked here, because it needs more than the state before the event:
//  - rule 2.3 (auth events that were themselves rejected) and the signature part of rule 4.2
//    (the `join_authorised_via_users_server` user's server must have signed the join): the
//    caller's PDU pipeline handles these; see requiredSignatureServers() in events.js.
//  - v12 rule 2's "accepted (not rejected)" create event: the caller only supplies accepted state.
//  - from v3, whether a redaction is *applied*: auth rules accept redactions like any other
//    event; use mayApplyRedaction() before hiding the target. (v1/v2 check it here, rule 11.)
import { AuthError } from './auth-error.js';
import { checkPowerLevelsEvent } from './auth-power-levels.js';
import { isJsonObject } from './canonical-json.js';
import { verifyJsonSignature } from './crypto.js';
import { computeEventId, prevEventIds } from './events.js';
import { isValidUserId, serverNameOf } from './ids.js';
import { actionPowerLevel, creatorOf, powerLevelOf, requiredPowerLevel } from './power-levels.js';
import { findRoomVersion, isRoomVersion, type RoomVersionRules } from './room-versions.js';
import type { JsonObject, Pdu } from './types.js';
import { stateTuple } from './types.js';

export { AuthError } from './auth-error.js';

// Re-exported so callers find every auth-related helper in one place.
export {
  actionPowerLevel,
  creatorOf,
  creatorsOf,
  isPrivilegedCreator,
  notificationPowerLevel,
  powerLevelOf,
  requiredPowerLevel,
  type PowerLevelAction,
} from './power-levels.js';

/** State before the event, as the auth rules see it. */
export type AuthStateLookup = (type: string, stateKey: string) => Pdu | undefined;

function versionRules(roomVersion: string): RoomVersionRules {
  const rules = findRoomVersion(roomVersion);
  if (!rules) throw new AuthError(`unsupported room version ${roomVersion}`);
  return rules;
}

/** Membership of `userId` in the given state; `leave` when there is no member event. */
export function membershipOf(authState: AuthStateLookup, userId: string): string {
  const m = authState('m.room.member', userId)?.content.membership;
  return typeof m === 'string' ? m : 'leave';
}

/** The room's join rule; `invite` when there is no join_rules event. */
export function joinRuleOf(authState: AuthStateLookup): string {
  const r = authState('m.room.join_rules', '')?.content.join_rule;
  return typeof r === 'string' ? r : 'invite';
}

/** The event a redaction targets: `content.redacts` from v11, top-level `redacts` before. */
export function redactionTargetOf(pdu: Pdu, roomVersion: string): string | undefined {
  const inContent = pdu.content.redacts;
  const topLevel = pdu.redacts;
  const preferContent = findRoomVersion(roomVersion)?.redactsInContent ?? true;
  const first = preferContent ? inContent : topLevel;
  const second = preferContent ? topLevel : inContent;
  if (typeof first === 'string') return first;
  return typeof second === 'string' ? second : undefined;
}

/**
 * "Handling redactions" (v3+): a redaction that passed auth is only applied if its sender has
 * the redact level, or is on the same server as the target's sender.
 */
export function mayApplyRedaction(
  redaction: Pdu,
  target: Pdu,
  powerLevels: JsonObject | undefined,
  create: Pdu | undefined,
  roomVersion: string,
): boolean {
  if (redaction.room_id !== target.room_id) return false;
  const level = powerLevelOf(redaction.sender, powerLevels, create, roomVersion);
  if (level >= actionPowerLevel('redact', powerLevels)) return true;
  const domain = serverNameOf(redaction.sender);
  return domain !== undefined && domain === serverNameOf(target.sender);
}

/**
 * The state entries (type, state_key) an event's auth_events must be drawn from
 * ("Auth events selection"). Entries may be absent from the room; duplicates are removed.
 * v12 never cites the create event (the room ID implies it).
 */
export function authEventTypesFor(
  pdu: {
    type: string;
    state_key?: string;
    sender: string;
    content: JsonObject;
  },
  roomVersion: string,
): Array<[type: string, stateKey: string]> {
  const rules = versionRules(roomVersion);
  if (pdu.type === 'm.room.create') return [];
  const out: Array<[string, string]> = [];
  const add = (type: string, stateKey: string): void => {
    if (!out.some(([t, k]) => t === type && k === stateKey)) out.push([type, stateKey]);
  };
  if (!rules.auth.privilegedCreators) add('m.room.create', '');
  add('m.room.power_levels', '');
  add('m.room.member', pdu.sender);
  if (pdu.type === 'm.room.member' && typeof pdu.state_key === 'string') {
    const membership = pdu.content.membership;
    add('m.room.member', pdu.state_key);
    if (membership === 'join' || membership === 'invite' || membership === 'knock') add('m.room.join_rules', '');
    const tpi = pdu.content.third_party_invite;
    if (membership === 'invite' && isJsonObject(tpi) && isJsonObject(tpi.signed) && typeof tpi.signed.token === 'string') {
      add('m.room.third_party_invite', tpi.signed.token);
    }
    const authoriser = pdu.content.join_authorised_via_users_server;
    if (membership === 'join' && typeof authoriser === 'string' && rules.auth.restrictedJoins) add('m.room.member', authoriser);
  }
  return out;
}

/** A lookup over a list of events, e.g. an event's own auth_events. */
export function authStateFromEvents(events: Iterable<Pdu>): AuthStateLookup {
  const map = new Map<string, Pdu>();
  for (const e of events) if (typeof e.state_key === 'string') map.set(stateTuple(e.type, e.state_key), e);
  return (type, stateKey) => map.get(stateTuple(type, stateKey));
}

/**
 * Rule 2 (v12: 3): the event's auth_events (already fetched) must be distinct state entries, all
 * from the auth events selection, in the same room, and (before v12) include the create event.
 */
export function checkAuthEventsSelection(pdu: Pdu, authEvents: readonly Pdu[], roomVersion: string): void {
  const rules = versionRules(roomVersion);
  if (pdu.type === 'm.room.create') {
    if (authEvents.length > 0) throw new AuthError('create event must have no auth_events');
    return;
  }
  const allowed = new Set(authEventTypesFor(pdu, roomVersion).map(([t, k]) => stateTuple(t, k)));
  const seen = new Set<string>();
  let haveCreate = false;
  for (const e of authEvents) {
    if (typeof e.state_key !== 'string') throw new AuthError(`auth event of type ${e.type} is not a state event`);
    const tuple = stateTuple(e.type, e.state_key);
    if (seen.has(tuple)) throw new AuthError(`duplicate auth event for (${e.type}, ${e.state_key})`);
    seen.add(tuple);
    if (!allowed.has(tuple)) throw new AuthError(`unexpected auth event (${e.type}, ${e.state_key})`);
    if (e.room_id !== pdu.room_id) throw new AuthError('auth event belongs to a different room');
    if (e.type === 'm.room.create') haveCreate = true;
  }
  if (!haveCreate && !rules.auth.privilegedCreators) throw new AuthError('auth_events lack the create event');
}

/** Everything the individual rules need, computed once per check. */
interface AuthContext {
  pdu: Pdu;
  rules: RoomVersionRules;
  get: AuthStateLookup;
  create: Pdu;
  powerLevels: JsonObject | undefined;
  levelOf(userId: string): number;
  membership(userId: string): string;
  /** The create event's ID: as the caller holds it if it says, else computed (lazily: it hashes). */
  createEventId(): string | undefined;
}

/**
 * Optional knowledge the caller has beyond the PDUs. `eventIdOf` gives the ID under which the
 * caller holds an event; the rules compare the create event's ID with the only prev event
 * (4.3.1) and, in v12, with the room ID (rule 2). Without it, or when it answers undefined, the
 * ID is computed from the PDU. State resolution passes it: it holds events by ID already, and
 * test vectors use readable IDs that are not reference hashes.
 */
export interface AuthCheckOptions {
  eventIdOf?: (pdu: Pdu) => string | undefined;
}

/**
 * Throws AuthError with a readable reason if the event is not allowed given the state before it.
 * Assumes signatures and hashes were checked already. `roomVersion` is a string so callers with
 * a version from storage or the wire need no cast; unknown versions are rejected.
 */
export function checkEventAuth(
  pdu: Pdu,
  roomVersion: string,
  authState: AuthStateLookup,
  options: AuthCheckOptions = {},
): void {
  const rules = versionRules(roomVersion);
  if (!isJsonObject(pdu.content)) throw new AuthError('event content is not an object');

  if (pdu.type === 'm.room.create') return checkCreate(pdu, rules);
  if (typeof pdu.room_id !== 'string') throw new AuthError('event has no room_id');

  // Rule 2.5: every state event consulted must come from the same room. A v12 create event has
  // no room_id; it is tied to the room by rule 2 below instead.
  const get: AuthStateLookup = (type, stateKey) => {
    const e = authState(type, stateKey);
    if (e && e.room_id !== pdu.room_id && !(type === 'm.room.create' && rules.roomIdFromCreateEvent)) {
      throw new AuthError(`auth event (${type}, ${stateKey}) is from another room`);
    }
    return e;
  };
  const create = get('m.room.create', '');
  if (!create) throw new AuthError('no m.room.create event in the auth state');
  let createId: string | undefined | null = null;
  const createEventId = (): string | undefined => {
    if (createId === null) createId = options.eventIdOf?.(create) ?? eventIdOrUndefined(create, rules.id);
    return createId;
  };
  // v12 rule 2: the room ID is the create event's ID with the `!` sigil.
  if (rules.roomIdFromCreateEvent) {
    const id = createEventId();
    if (id === undefined || `!${id.slice(1)}` !== pdu.room_id) throw new AuthError('room ID is not derived from the room\'s create event');
  }

  // Rule 3.
  if (create.content['m.federate'] === false && serverNameOf(pdu.sender) !== serverNameOf(create.sender)) {
    throw new AuthError('room is not federated and the sender is on another server');
  }

  // v1-v5 rule 4: m.room.aliases belongs to the server named by its state_key, whoever sends it.
  if (pdu.type === 'm.room.aliases' && rules.auth.specialCaseAliases) {
    if (typeof pdu.state_key !== 'string') throw new AuthError('m.room.aliases has no state_key');
    if (pdu.state_key !== serverNameOf(pdu.sender)) throw new AuthError('m.room.aliases state_key is not the sender\'s server');
    return;
  }

  const plEvent = get('m.room.power_levels', '');
  const powerLevels = plEvent && isJsonObject(plEvent.content) ? plEvent.content : undefined;
  const ctx: AuthContext = {
    pdu,
    rules,
    get,
    create,
    powerLevels,
    levelOf: (userId) => powerLevelOf(userId, powerLevels, create, rules.id),
    membership: (userId) => membershipOf(get, userId),
    createEventId,
  };

  if (pdu.type === 'm.room.member') return checkMember(ctx);

  // Rule 5.
  if (ctx.membership(pdu.sender) !== 'join') throw new AuthError(`${pdu.sender} is not joined to the room`);
  const senderLevel = ctx.levelOf(pdu.sender);

  // Rule 6.
  if (pdu.type === 'm.room.third_party_invite') {
    if (senderLevel >= actionPowerLevel('invite', powerLevels)) return;
    throw new AuthError('sender may not invite users');
  }

  // Rule 7.
  const needed = requiredPowerLevel(pdu.type, pdu.state_key, powerLevels);
  if (needed > senderLevel) {
    throw new AuthError(`sending ${pdu.type} needs power level ${needed}; ${pdu.sender} has ${senderLevel}`);
  }

  // Rule 8.
  if (typeof pdu.state_key === 'string' && pdu.state_key.startsWith('@') && pdu.state_key !== pdu.sender) {
    throw new AuthError('state_key names another user');
  }

  // Rule 9.
  if (pdu.type === 'm.room.power_levels') checkPowerLevelsEvent(pdu, rules, senderLevel, plEvent, create);

  // v1/v2 rule 11: redactions need the redact level or the same event-ID domain as the target.
  if (pdu.type === 'm.room.redaction' && rules.auth.redactionRule) {
    if (senderLevel >= actionPowerLevel('redact', powerLevels)) return;
    const target = redactionTargetOf(pdu, rules.id);
    const own = pdu.event_id;
    if (target !== undefined && own !== undefined && serverNameOf(target) !== undefined && serverNameOf(target) === serverNameOf(own)) return;
    throw new AuthError('redacting needs the redact level, or an event from the same server');
  }
}

// Rule 1.
function checkCreate(pdu: Pdu, rules: RoomVersionRules): void {
  if (Array.isArray(pdu.prev_events) && pdu.prev_events.length > 0) throw new AuthError('create event has prev_events');
  if (rules.roomIdFromCreateEvent) {
    // v12 1.2: the room ID is derived from this very event, so it cannot be inside it.
    if (pdu.room_id !== undefined) throw new AuthError('create event has a room_id');
  } else {
    const roomDomain = typeof pdu.room_id === 'string' ? serverNameOf(pdu.room_id) : undefined;
    if (roomDomain === undefined || roomDomain !== serverNameOf(pdu.sender)) {
      throw new AuthError('room ID and sender of the create event are on different servers');
    }
  }
  const declared = pdu.content.room_version;
  if (declared !== undefined && !isRoomVersion(declared)) {
    throw new AuthError(`unknown room version ${JSON.stringify(declared)}`);
  }
  // Not a spec rule, but a create event describing another version than the one we were asked
  // to apply would be authorised under the wrong rules.
  if ((declared ?? '1') !== rules.id) {
    throw new AuthError(`create event declares room version ${String(declared ?? '1')}, not ${rules.id}`);
  }
  if (rules.auth.creatorInContent && pdu.content.creator === undefined) {
    throw new AuthError('create event has no creator');
  }
  // v12 1.4.
  if (rules.auth.privilegedCreators) {
    const extra = pdu.content.additional_creators;
    if (extra !== undefined && (!Array.isArray(extra) || !extra.every((u) => isValidUserId(u)))) {
      throw new AuthError('additional_creators must be an array of user IDs');
    }
  }
}

// Rule 4.
function checkMember(ctx: AuthContext): void {
  const { pdu, rules } = ctx;
  const target = pdu.state_key;
  const membership = pdu.content.membership;
  if (typeof target !== 'string') throw new AuthError('member event has no state_key');
  if (typeof membership !== 'string') throw new AuthError('member event has no membership');
  const targetMembership = ctx.membership(target);
  const senderMembership = ctx.membership(pdu.sender);

  switch (membership) {
    case 'join':
      return checkJoin(ctx, target, targetMembership, senderMembership);
    case 'invite':
      return checkInvite(ctx, target, targetMembership, senderMembership);
    case 'leave': {
      if (pdu.sender === target) {
        const leavable = rules.auth.knocking ? ['invite', 'join', 'knock'] : ['invite', 'join'];
        if (leavable.includes(targetMembership)) return;
        throw new AuthError(`cannot leave from membership ${targetMembership}`);
      }
      if (senderMembership !== 'join') throw new AuthError('sender is not joined');
      const senderLevel = ctx.levelOf(pdu.sender);
      if (targetMembership === 'ban' && senderLevel < actionPowerLevel('ban', ctx.powerLevels)) {
        throw new AuthError('unbanning needs the ban level');
      }
      if (senderLevel >= actionPowerLevel('kick', ctx.powerLevels) && ctx.levelOf(target) < senderLevel) return;
      throw new AuthError('sender may not kick this user (needs the kick level and more power than the target)');
    }
    case 'ban': {
      if (senderMembership !== 'join') throw new AuthError('sender is not joined');
      const senderLevel = ctx.levelOf(pdu.sender);
      if (senderLevel >= actionPowerLevel('ban', ctx.powerLevels) && ctx.levelOf(target) < senderLevel) return;
      throw new AuthError('sender may not ban this user (needs the ban level and more power than the target)');
    }
    case 'knock': {
      if (!rules.auth.knocking) throw new AuthError(`knocking is not supported in room version ${rules.id}`);
      const rule = joinRuleOf(ctx.get);
      if (!knockJoinRules(rules).includes(rule)) throw new AuthError(`join rule ${rule} does not allow knocking`);
      if (pdu.sender !== target) throw new AuthError('cannot knock on behalf of another user');
      if (!['ban', 'invite', 'join'].includes(senderMembership)) return;
      throw new AuthError(`cannot knock with membership ${senderMembership}`);
    }
    default:
      throw new AuthError(`unknown membership ${membership}`);
  }
}

/** Join rules under which a knock is allowed: `knock` from v7, `knock_restricted` from v10. */
function knockJoinRules(rules: RoomVersionRules): string[] {
  const out: string[] = [];
  if (rules.auth.knocking) out.push('knock');
  if (rules.auth.knockRestricted) out.push('knock_restricted');
  return out;
}

/** Join rules under which an authorised join is allowed: `restricted` from v8, `knock_restricted` from v10. */
function restrictedJoinRules(rules: RoomVersionRules): string[] {
  const out: string[] = [];
  if (rules.auth.restrictedJoins) out.push('restricted');
  if (rules.auth.knockRestricted) out.push('knock_restricted');
  return out;
}

// Create event IDs are needed for every join (rule 4.3.1) and, in v12, every event (rule 2);
// state resolution checks thousands of events against one create event, so its hash is kept per
// PDU object. State PDUs are never mutated in ways that change the hash (only `unsigned`).
const createIds = new WeakMap<Pdu, { version: string; id: string | undefined }>();

// The create event in state was accepted earlier, so this only fails on corrupt input; that must
// surface as a rejection, not as a CanonicalJsonError from deep inside the auth check.
function eventIdOrUndefined(pdu: Pdu, roomVersion: string): string | undefined {
  const cached = createIds.get(pdu);
  if (cached && cached.version === roomVersion) return cached.id;
  let id: string | undefined;
  try {
    id = computeEventId(pdu, roomVersion);
  } catch {
    id = undefined;
  }
  if (pdu.type === 'm.room.create') createIds.set(pdu, { version: roomVersion, id });
  return id;
}

function checkJoin(ctx: AuthContext, target: string, targetMembership: string, senderMembership: string): void {
  const { pdu, rules } = ctx;
  // 4.3.1: the creator's own first join, directly after the create event.
  const prev = prevEventIds(pdu);
  if (
    prev.length === 1 &&
    target === creatorOf(ctx.create, rules.id) &&
    prev[0] === ctx.createEventId()
  ) {
    return;
  }
  if (pdu.sender !== target) throw new AuthError('cannot join on behalf of another user');
  if (senderMembership === 'ban') throw new AuthError(`${target} is banned from the room`);
  const rule = joinRuleOf(ctx.get);
  if (rule === 'invite' || (rule === 'knock' && rules.auth.knocking)) {
    if (targetMembership === 'invite' || targetMembership === 'join') return;
    throw new AuthError(`join rule is ${rule} and ${target} is not invited`);
  }
  if (restrictedJoinRules(rules).includes(rule)) {
    if (targetMembership === 'invite' || targetMembership === 'join') return;
    const authoriser = pdu.content.join_authorised_via_users_server;
    if (typeof authoriser !== 'string') throw new AuthError('restricted join without join_authorised_via_users_server');
    if (ctx.membership(authoriser) !== 'join') throw new AuthError(`authorising user ${authoriser} is not joined`);
    if (ctx.levelOf(authoriser) < actionPowerLevel('invite', ctx.powerLevels)) {
      throw new AuthError(`authorising user ${authoriser} may not invite`);
    }
    return;
  }
  if (rule === 'public') return;
  throw new AuthError(`join rule ${rule} does not allow joining in room version ${rules.id}`);
}

function checkInvite(ctx: AuthContext, target: string, targetMembership: string, senderMembership: string): void {
  const { pdu } = ctx;
  if (pdu.content.third_party_invite !== undefined) return checkThirdPartyInvite(ctx, target, targetMembership);
  if (senderMembership !== 'join') throw new AuthError('sender is not joined');
  if (targetMembership === 'join' || targetMembership === 'ban') {
    throw new AuthError(`cannot invite a user whose membership is ${targetMembership}`);
  }
  const senderLevel = ctx.levelOf(pdu.sender);
  const needed = actionPowerLevel('invite', ctx.powerLevels);
  if (senderLevel >= needed) return;
  throw new AuthError(`inviting needs power level ${needed}; ${pdu.sender} has ${senderLevel}`);
}

// Rule 4.4.1: the invite redeems a third-party invite whose token was signed by an identity server.
function checkThirdPartyInvite(ctx: AuthContext, target: string, targetMembership: string): void {
  const { pdu } = ctx;
  if (targetMembership === 'ban') throw new AuthError('target user is banned');
  const tpi = pdu.content.third_party_invite;
  const signed = isJsonObject(tpi) ? tpi.signed : undefined;
  if (!isJsonObject(signed)) throw new AuthError('third_party_invite has no signed object');
  const { mxid, token } = signed;
  if (typeof mxid !== 'string' || typeof token !== 'string') throw new AuthError('third_party_invite.signed lacks mxid or token');
  if (mxid !== target) throw new AuthError('third_party_invite mxid does not match state_key');
  const invite = ctx.get('m.room.third_party_invite', token);
  if (!invite) throw new AuthError('no matching m.room.third_party_invite in the room');
  if (invite.sender !== pdu.sender) throw new AuthError('third-party invite was issued by another user');

  const keys: string[] = [];
  if (typeof invite.content.public_key === 'string') keys.push(invite.content.public_key);
  if (Array.isArray(invite.content.public_keys)) {
    for (const k of invite.content.public_keys) if (isJsonObject(k) && typeof k.public_key === 'string') keys.push(k.public_key);
  }
  const signatures = isJsonObject(signed.signatures) ? signed.signatures : {};
  for (const [server, byKey] of Object.entries(signatures)) {
    if (!isJsonObject(byKey)) continue;
    for (const keyId of Object.keys(byKey)) {
      if (keys.some((k) => verifyJsonSignature(signed, server, keyId, k))) return;
    }
  }
  throw new AuthError('no valid signature on third_party_invite.signed');
}

