// Power levels (spec m.room.power_levels) and the room creators: defaults and lookups shared by
// the auth rules and by the client API ("can this user kick / redact / send state X?").
//
// Levels are read leniently: besides integers, v1-v9 allow integer strings ("+100", " 050 ") and
// v1-v5 floats (truncated). That is safe for every version because from v10 the auth rules reject
// power_levels events that are not all integers, so such values never reach a v10+ room's state.
// v12 creators have an infinite level, represented as Infinity.
import { isJsonObject } from './canonical-json.js';
import { findRoomVersion, roomVersionRules, type RoomVersionRules } from './room-versions.js';
import type { JsonObject, JsonValue, Pdu } from './types.js';

export type PowerLevelAction = 'invite' | 'kick' | 'ban' | 'redact';

export function hasOwn(obj: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

/** The value if it is an integer in the canonical JSON range (v10+ power levels must be). */
export function intValue(v: JsonValue | undefined): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined;
}

// rooms/v1 "m.room.power_levels events accept values as strings": base 10, optional sign,
// leading zeroes and surrounding whitespace.
const INTEGER_STRING = /^\s*[+-]?[0-9]+\s*$/;

/**
 * A power level as v1-v9 accept it: an integer, an integer string, or (v1-v5) a float truncated
 * towards zero. Undefined when the value is none of these or outside the safe integer range.
 */
export function levelValue(v: JsonValue | undefined): number | undefined {
  let n: number;
  if (typeof v === 'number') n = Math.trunc(v);
  else if (typeof v === 'string' && INTEGER_STRING.test(v)) n = Number(v.trim());
  else return undefined;
  if (Object.is(n, -0)) n = 0;
  return Number.isSafeInteger(n) ? n : undefined;
}

export function objectField(obj: JsonObject | undefined, key: string): JsonObject | undefined {
  const v = obj && hasOwn(obj, key) ? obj[key] : undefined;
  return isJsonObject(v) ? v : undefined;
}

export function ownEntry(obj: JsonObject | undefined, key: string): JsonValue | undefined {
  return obj && hasOwn(obj, key) ? obj[key] : undefined;
}

/** The rules of the room a create event starts: `roomVersion` if given, else its declared version. */
function rulesOf(create: Pdu | undefined, roomVersion?: string): RoomVersionRules {
  if (roomVersion !== undefined) return roomVersionRules(roomVersion);
  const declared = create?.content.room_version;
  // No room_version means "1"; an unknown one cannot be in an accepted create event.
  return findRoomVersion(declared ?? '1') ?? roomVersionRules('1');
}

/**
 * The room creator: `content.creator` before v11, the create event's sender from v11. In v12
 * there may be more (see creatorsOf); this is the one who sent the create event.
 */
export function creatorOf(create: Pdu | undefined, roomVersion?: string): string | undefined {
  if (!create) return undefined;
  if (!rulesOf(create, roomVersion).auth.creatorInContent) return create.sender;
  const creator = create.content.creator;
  return typeof creator === 'string' ? creator : undefined;
}

/**
 * Every room creator. v12: the create event's sender plus `content.additional_creators` (the auth
 * rules made sure those are user IDs); before, the single creator.
 */
export function creatorsOf(create: Pdu | undefined, roomVersion?: string): Set<string> {
  const out = new Set<string>();
  const first = creatorOf(create, roomVersion);
  if (first !== undefined) out.add(first);
  if (create && rulesOf(create, roomVersion).auth.privilegedCreators) {
    const extra = create.content.additional_creators;
    if (Array.isArray(extra)) for (const u of extra) if (typeof u === 'string') out.add(u);
  }
  return out;
}

/**
 * v12: whether the user is a privileged creator (infinite power, not in power_levels.users).
 * Allocation-free, as state resolution asks this for every event it sorts.
 */
export function isPrivilegedCreator(userId: string, create: Pdu | undefined, roomVersion?: string): boolean {
  if (!create || !rulesOf(create, roomVersion).auth.privilegedCreators) return false;
  if (userId === create.sender) return true;
  const extra = create.content.additional_creators;
  return Array.isArray(extra) && extra.includes(userId);
}

/**
 * A user's power level. v12 creators: Infinity. With no power_levels event the creator has 100
 * and everyone else 0; otherwise `users[userId]`, then `users_default`, then 0.
 */
export function powerLevelOf(
  userId: string,
  powerLevels: JsonObject | undefined,
  create: Pdu | undefined,
  roomVersion?: string,
): number {
  if (isPrivilegedCreator(userId, create, roomVersion)) return Infinity;
  if (!powerLevels) return userId === creatorOf(create, roomVersion) ? 100 : 0;
  const own = levelValue(ownEntry(objectField(powerLevels, 'users'), userId));
  return own ?? levelValue(powerLevels.users_default) ?? 0;
}

/** Level needed to send an event of this type (state if `stateKey` is given). */
export function requiredPowerLevel(eventType: string, stateKey: string | undefined, powerLevels: JsonObject | undefined): number {
  const specific = levelValue(ownEntry(objectField(powerLevels, 'events'), eventType));
  if (specific !== undefined) return specific;
  // 50 even without any power_levels event, as Synapse does (the C-S spec text says 0 there).
  if (stateKey !== undefined) return levelValue(powerLevels?.state_default) ?? 50;
  return levelValue(powerLevels?.events_default) ?? 0;
}

/** Level needed to invite / kick / ban / redact others' events. */
export function actionPowerLevel(action: PowerLevelAction, powerLevels: JsonObject | undefined): number {
  return levelValue(powerLevels?.[action]) ?? (action === 'invite' ? 0 : 50);
}

/** Level needed for a notification key such as `room` (@room mentions). */
export function notificationPowerLevel(key: string, powerLevels: JsonObject | undefined): number {
  return levelValue(ownEntry(objectField(powerLevels, 'notifications'), key)) ?? 50;
}


const LEVEL_KEYS = ['ban', 'events_default', 'invite', 'kick', 'redact', 'state_default', 'users_default'];
const LEVEL_MAPS = ['events', 'users', 'notifications'];

/**
 * Power levels content that any room version accepts (v10+ demand integers; earlier versions
 * allowed strings such as "50" and, before v6, floats): each level is read as levelValue reads
 * it and written as an integer; values that are no level at all are dropped, so they take their
 * defaults. Other keys are kept as they are.
 */
export function copyablePowerLevels(content: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(content)) {
    if (LEVEL_KEYS.includes(k)) {
      const n = levelValue(v);
      if (n !== undefined) out[k] = n;
    } else if (LEVEL_MAPS.includes(k)) {
      const map: JsonObject = {};
      if (isJsonObject(v)) {
        for (const [mk, mv] of Object.entries(v)) {
          const n = levelValue(mv);
          if (n !== undefined) map[mk] = n;
        }
      }
      out[k] = map;
    } else {
      out[k] = v;
    }
  }
  return out;
}

/** The level that lets a user send every state event and ban anyone under `powerLevels`. */
export function requiredToCopyState(powerLevels: JsonObject): number {
  const events = objectField(powerLevels, 'events') ?? {};
  const levels = Object.values(events).map(intValue).filter((n): n is number => n !== undefined);
  return Math.max(intValue(powerLevels.state_default) ?? 50, intValue(powerLevels.ban) ?? 50, ...levels);
}
