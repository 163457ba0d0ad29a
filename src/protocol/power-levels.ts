// Power levels (spec m.room.power_levels) and the room creator: defaults and lookups shared by the
// auth rules and by the client API ("can this user kick / redact / send state X?").
import { isJsonObject } from './canonical-json.js';
import type { JsonObject, JsonValue, Pdu } from './types.js';

export type PowerLevelAction = 'invite' | 'kick' | 'ban' | 'redact';

export function hasOwn(obj: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

/** The value if it is an integer in the canonical JSON range (v10+ power levels must be). */
export function intValue(v: JsonValue | undefined): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined;
}

export function objectField(obj: JsonObject | undefined, key: string): JsonObject | undefined {
  const v = obj && hasOwn(obj, key) ? obj[key] : undefined;
  return isJsonObject(v) ? v : undefined;
}

export function ownEntry(obj: JsonObject | undefined, key: string): JsonValue | undefined {
  return obj && hasOwn(obj, key) ? obj[key] : undefined;
}

/**
 * The room creator. Without `roomVersion` the version is read from the create event itself
 * (absent means "1", which used `content.creator`); v11 onwards the creator is the sender.
 */
export function creatorOf(create: Pdu | undefined, roomVersion?: string): string | undefined {
  if (!create) return undefined;
  const declared = create.content.room_version;
  const version = roomVersion ?? (typeof declared === 'string' ? declared : '1');
  const n = Number(version);
  if (Number.isInteger(n) && n >= 11) return create.sender;
  const creator = create.content.creator;
  return typeof creator === 'string' ? creator : undefined;
}

/**
 * A user's power level. With no power_levels event the creator has 100 and everyone else 0.
 */
export function powerLevelOf(
  userId: string,
  powerLevels: JsonObject | undefined,
  create: Pdu | undefined,
  roomVersion?: string,
): number {
  if (!powerLevels) return userId === creatorOf(create, roomVersion) ? 100 : 0;
  const own = intValue(ownEntry(objectField(powerLevels, 'users'), userId));
  return own ?? intValue(powerLevels.users_default) ?? 0;
}

/** Level needed to send an event of this type (state if `stateKey` is given). */
export function requiredPowerLevel(eventType: string, stateKey: string | undefined, powerLevels: JsonObject | undefined): number {
  const specific = intValue(ownEntry(objectField(powerLevels, 'events'), eventType));
  if (specific !== undefined) return specific;
  if (stateKey !== undefined) return intValue(powerLevels?.state_default) ?? 50;
  return intValue(powerLevels?.events_default) ?? 0;
}

/** Level needed to invite / kick / ban / redact others' events. */
export function actionPowerLevel(action: PowerLevelAction, powerLevels: JsonObject | undefined): number {
  return intValue(powerLevels?.[action]) ?? (action === 'invite' ? 0 : 50);
}

/** Level needed for a notification key such as `room` (@room mentions). */
export function notificationPowerLevel(key: string, powerLevels: JsonObject | undefined): number {
  return intValue(ownEntry(objectField(powerLevels, 'notifications'), key)) ?? 50;
}

