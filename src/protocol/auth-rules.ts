// Authorisation rules for room versions 10 and 11 (spec rooms/v10 and rooms/v11,
// "Authorisation rules"). Power-level helpers live in power-levels.js and are re-exported here.
//
// What is NOT checked here, because it needs more than the state before the event:
//  - rule 2.3 (auth events that were themselves rejected) and the signature part of rule 4.2
//    (the `join_authorised_via_users_server` user's server must have signed the join): the
//    caller's PDU pipeline handles these; see requiredSignatureServers() in events.js.
//  - whether a redaction is *applied*: auth rules accept redactions like any other event; use
//    mayApplyRedaction() before hiding the target.
import { isJsonObject } from './canonical-json.js';
import { verifyJsonSignature } from './crypto.js';
import { computeEventId } from './events.js';
import { isValidUserId, serverNameOf } from './ids.js';
import {
  actionPowerLevel,
  creatorOf,
  hasOwn,
  intValue,
  objectField,
  ownEntry,
  powerLevelOf,
  requiredPowerLevel,
} from './power-levels.js';
import type { JsonObject, Pdu, RoomVersion } from './types.js';
import { stateTuple } from './types.js';

// Re-exported so callers find every auth-related helper in one place.
export {
  actionPowerLevel,
  creatorOf,
  notificationPowerLevel,
  powerLevelOf,
  requiredPowerLevel,
  type PowerLevelAction,
} from './power-levels.js';

/** State before the event, as the auth rules see it. */
export type AuthStateLookup = (type: string, stateKey: string) => Pdu | undefined;

export class AuthError extends Error {
  override name = 'AuthError';
}

/** Per-version differences in the auth rules; everything else is shared by v10 and v11. */
interface AuthVersionRules {
  /** v10: the creator is `content.creator`, which the create event must carry. v11: its sender. */
  creatorFromContent: boolean;
}

const AUTH_RULES: Readonly<Record<RoomVersion, AuthVersionRules>> = {
  '10': { creatorFromContent: true },
  '11': { creatorFromContent: false },
};

/** Room versions whose existence we know of; rule 1.3 rejects create events naming others. */
const KNOWN_ROOM_VERSIONS = new Set(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12']);

const POWER_LEVEL_INT_KEYS = ['users_default', 'events_default', 'state_default', 'ban', 'redact', 'kick', 'invite'] as const;
const POWER_LEVEL_MAP_KEYS = ['events', 'notifications'] as const;

function versionRules(roomVersion: string): AuthVersionRules {
  if (!hasOwn(AUTH_RULES, roomVersion)) throw new AuthError(`unsupported room version ${roomVersion}`);
  return AUTH_RULES[roomVersion as RoomVersion];
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

/** The event a redaction targets: `content.redacts` in v11, top-level `redacts` before. */
export function redactionTargetOf(pdu: Pdu, roomVersion: string): string | undefined {
  const inContent = pdu.content.redacts;
  const topLevel = pdu.redacts;
  const preferContent = roomVersion !== '10';
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
 */
export function authEventTypesFor(pdu: {
  type: string;
  state_key?: string;
  sender: string;
  content: JsonObject;
}): Array<[type: string, stateKey: string]> {
  if (pdu.type === 'm.room.create') return [];
  const out: Array<[string, string]> = [];
  const add = (type: string, stateKey: string): void => {
    if (!out.some(([t, k]) => t === type && k === stateKey)) out.push([type, stateKey]);
  };
  add('m.room.create', '');
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
    if (membership === 'join' && typeof authoriser === 'string') add('m.room.member', authoriser);
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
 * Rule 2: the event's auth_events (already fetched) must be distinct state entries, all from the
 * auth events selection, in the same room, and include the create event.
 */
export function checkAuthEventsSelection(pdu: Pdu, authEvents: readonly Pdu[], roomVersion: string): void {
  versionRules(roomVersion);
  if (pdu.type === 'm.room.create') {
    if (authEvents.length > 0) throw new AuthError('create event must have no auth_events');
    return;
  }
  const allowed = new Set(authEventTypesFor(pdu).map(([t, k]) => stateTuple(t, k)));
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
  if (!haveCreate) throw new AuthError('auth_events lack the create event');
}

/** Everything the individual rules need, computed once per check. */
interface AuthContext {
  pdu: Pdu;
  roomVersion: RoomVersion;
  get: AuthStateLookup;
  create: Pdu;
  powerLevels: JsonObject | undefined;
  levelOf(userId: string): number;
  membership(userId: string): string;
}

/**
 * Throws AuthError with a readable reason if the event is not allowed given the state before it.
 * Assumes signatures and hashes were checked already.
 */
export function checkEventAuth(pdu: Pdu, roomVersion: RoomVersion, authState: AuthStateLookup): void {
  const rules = versionRules(roomVersion);
  if (!isJsonObject(pdu.content)) throw new AuthError('event content is not an object');

  if (pdu.type === 'm.room.create') return checkCreate(pdu, roomVersion, rules);

  // Rule 2.5: every state event consulted must come from the same room.
  const get: AuthStateLookup = (type, stateKey) => {
    const e = authState(type, stateKey);
    if (e && e.room_id !== pdu.room_id) throw new AuthError(`auth event (${type}, ${stateKey}) is from another room`);
    return e;
  };
  const create = get('m.room.create', '');
  if (!create) throw new AuthError('no m.room.create event in the auth state');

  // Rule 3.
  if (create.content['m.federate'] === false && serverNameOf(pdu.sender) !== serverNameOf(create.sender)) {
    throw new AuthError('room is not federated and the sender is on another server');
  }

  const plEvent = get('m.room.power_levels', '');
  const powerLevels = plEvent && isJsonObject(plEvent.content) ? plEvent.content : undefined;
  const ctx: AuthContext = {
    pdu,
    roomVersion,
    get,
    create,
    powerLevels,
    levelOf: (userId) => powerLevelOf(userId, powerLevels, create, roomVersion),
    membership: (userId) => membershipOf(get, userId),
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
  if (pdu.type === 'm.room.power_levels') checkPowerLevels(ctx, senderLevel, plEvent);
}

// Rule 1.
function checkCreate(pdu: Pdu, roomVersion: RoomVersion, rules: AuthVersionRules): void {
  if (Array.isArray(pdu.prev_events) && pdu.prev_events.length > 0) throw new AuthError('create event has prev_events');
  const roomDomain = serverNameOf(pdu.room_id);
  if (roomDomain === undefined || roomDomain !== serverNameOf(pdu.sender)) {
    throw new AuthError('room ID and sender of the create event are on different servers');
  }
  const declared = pdu.content.room_version;
  if (declared !== undefined && (typeof declared !== 'string' || !KNOWN_ROOM_VERSIONS.has(declared))) {
    throw new AuthError(`unknown room version ${JSON.stringify(declared)}`);
  }
  // Not a spec rule, but a create event describing another version than the one we were asked
  // to apply would be authorised under the wrong rules.
  if ((declared ?? '1') !== roomVersion) {
    throw new AuthError(`create event declares room version ${String(declared ?? '1')}, not ${roomVersion}`);
  }
  if (rules.creatorFromContent && pdu.content.creator === undefined) {
    throw new AuthError('create event has no creator');
  }
}

// Rule 4.
function checkMember(ctx: AuthContext): void {
  const { pdu } = ctx;
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
        if (['invite', 'join', 'knock'].includes(targetMembership)) return;
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
      const rule = joinRuleOf(ctx.get);
      if (rule !== 'knock' && rule !== 'knock_restricted') throw new AuthError(`join rule ${rule} does not allow knocking`);
      if (pdu.sender !== target) throw new AuthError('cannot knock on behalf of another user');
      if (!['ban', 'invite', 'join'].includes(senderMembership)) return;
      throw new AuthError(`cannot knock with membership ${senderMembership}`);
    }
    default:
      throw new AuthError(`unknown membership ${membership}`);
  }
}

// The create event in state was accepted earlier, so this only fails on corrupt input; that must
// surface as a rejection, not as a CanonicalJsonError from deep inside the auth check.
function eventIdOrUndefined(pdu: Pdu, roomVersion: string): string | undefined {
  try {
    return computeEventId(pdu, roomVersion);
  } catch {
    return undefined;
  }
}

function checkJoin(ctx: AuthContext, target: string, targetMembership: string, senderMembership: string): void {
  const { pdu } = ctx;
  // 4.3.1: the creator's own first join, directly after the create event.
  if (
    Array.isArray(pdu.prev_events) &&
    pdu.prev_events.length === 1 &&
    target === creatorOf(ctx.create, ctx.roomVersion) &&
    pdu.prev_events[0] === eventIdOrUndefined(ctx.create, ctx.roomVersion)
  ) {
    return;
  }
  if (pdu.sender !== target) throw new AuthError('cannot join on behalf of another user');
  if (senderMembership === 'ban') throw new AuthError(`${target} is banned from the room`);
  const rule = joinRuleOf(ctx.get);
  if (rule === 'invite' || rule === 'knock') {
    if (targetMembership === 'invite' || targetMembership === 'join') return;
    throw new AuthError(`join rule is ${rule} and ${target} is not invited`);
  }
  if (rule === 'restricted' || rule === 'knock_restricted') {
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
  throw new AuthError(`join rule ${rule} does not allow joining`);
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

// Rule 9.
function checkPowerLevels(ctx: AuthContext, senderLevel: number, previous: Pdu | undefined): void {
  const next = ctx.pdu.content;
  for (const key of POWER_LEVEL_INT_KEYS) {
    if (next[key] !== undefined && intValue(next[key]) === undefined) throw new AuthError(`power_levels ${key} is not an integer`);
  }
  for (const key of POWER_LEVEL_MAP_KEYS) {
    const v = next[key];
    if (v === undefined) continue;
    if (!isJsonObject(v) || Object.values(v).some((x) => intValue(x) === undefined)) {
      throw new AuthError(`power_levels ${key} must map to integers`);
    }
  }
  // An absent `users` is fine (as in Synapse); a present one must be well-formed.
  const users = next.users;
  if (users !== undefined) {
    if (!isJsonObject(users)) throw new AuthError('power_levels users is not an object');
    for (const [userId, level] of Object.entries(users)) {
      if (!isValidUserId(userId)) throw new AuthError(`power_levels users has invalid user ID ${userId}`);
      if (intValue(level) === undefined) throw new AuthError(`power level of ${userId} is not an integer`);
    }
  }
  if (!previous || !isJsonObject(previous.content)) return;
  const old = previous.content;
  const tooHigh = (what: string): never => {
    throw new AuthError(`cannot change ${what}: above the sender's power level ${senderLevel}`);
  };

  for (const key of POWER_LEVEL_INT_KEYS) {
    const was = intValue(old[key]);
    const now = intValue(next[key]);
    if (was === now) continue;
    if (was !== undefined && was > senderLevel) tooHigh(key);
    if (now !== undefined && now > senderLevel) tooHigh(key);
  }
  for (const key of POWER_LEVEL_MAP_KEYS) {
    compareMaps(objectField(old, key), objectField(next, key), (entry, was, now) => {
      if (was !== undefined && was > senderLevel) tooHigh(`${key}.${entry}`);
      if (now !== undefined && now > senderLevel) tooHigh(`${key}.${entry}`);
    });
  }
  compareMaps(objectField(old, 'users'), objectField(next, 'users'), (userId, was, now) => {
    if (was !== undefined && userId !== ctx.pdu.sender && was >= senderLevel) {
      throw new AuthError(`cannot change the power level of ${userId}: not below the sender's level ${senderLevel}`);
    }
    if (now !== undefined && now > senderLevel) tooHigh(`the power level of ${userId}`);
  });
}

/** Calls `onChange` for each key added, removed or changed between two integer maps. */
function compareMaps(
  before: JsonObject | undefined,
  after: JsonObject | undefined,
  onChange: (key: string, was: number | undefined, now: number | undefined) => void,
): void {
  const keys = new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})]);
  for (const key of keys) {
    const was = intValue(ownEntry(before, key));
    const now = intValue(ownEntry(after, key));
    if (was !== now) onChange(key, was, now);
  }
}
