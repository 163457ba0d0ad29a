// Authorisation rule for m.room.power_levels events (rule 10 in rooms v1-v9 and v12, rule 9 in
// v10/v11; "the power levels rule" below). Which checks apply is read from the version table:
// integer-only values (v10+), `notifications` comparisons (v6+), creators barred from `users` (v12).
import { AuthError } from './auth-error.js';
import { isJsonObject } from './canonical-json.js';
import { isValidUserId } from './ids.js';
import { creatorsOf, intValue, levelValue, objectField, ownEntry } from './power-levels.js';
import type { RoomVersionRules } from './room-versions.js';
import type { JsonObject, Pdu } from './types.js';

const INT_KEYS = ['users_default', 'events_default', 'state_default', 'ban', 'redact', 'kick', 'invite'] as const;

/**
 * Checks a power_levels event against the previous one (if any). `senderLevel` is the sender's
 * level before the event (Infinity for v12 creators); `create` is the room's create event.
 */
export function checkPowerLevelsEvent(
  pdu: Pdu,
  rules: RoomVersionRules,
  senderLevel: number,
  previous: Pdu | undefined,
  create: Pdu,
): void {
  const next = pdu.content;
  const mapKeys = rules.auth.notificationsInPowerLevels ? (['events', 'notifications'] as const) : (['events'] as const);
  // From v10 every level must be a JSON integer; before, integer strings (and v1-v5 floats) count.
  const parse = rules.auth.integerPowerLevels ? intValue : levelValue;
  if (rules.auth.integerPowerLevels) {
    for (const key of INT_KEYS) {
      if (next[key] !== undefined && intValue(next[key]) === undefined) throw new AuthError(`power_levels ${key} is not an integer`);
    }
    for (const key of ['events', 'notifications'] as const) {
      const v = next[key];
      if (v === undefined) continue;
      if (!isJsonObject(v) || Object.values(v).some((x) => intValue(x) === undefined)) {
        throw new AuthError(`power_levels ${key} must map to integers`);
      }
    }
  }
  // An absent `users` is fine (as in Synapse); a present one must be well-formed.
  const users = next.users;
  if (users !== undefined) {
    if (!isJsonObject(users)) throw new AuthError('power_levels users is not an object');
    for (const [userId, level] of Object.entries(users)) {
      if (!isValidUserId(userId)) throw new AuthError(`power_levels users has invalid user ID ${userId}`);
      if (parse(level) === undefined) throw new AuthError(`power level of ${userId} is not an integer`);
    }
    if (rules.auth.privilegedCreators) {
      for (const creator of creatorsOf(create, rules.id)) {
        if (Object.prototype.hasOwnProperty.call(users, creator)) {
          throw new AuthError(`power_levels users may not list the room creator ${creator}`);
        }
      }
    }
  }
  if (!previous || !isJsonObject(previous.content)) return;
  const old = previous.content;
  const tooHigh = (what: string): never => {
    throw new AuthError(`cannot change ${what}: above the sender's power level ${senderLevel}`);
  };

  for (const key of INT_KEYS) {
    const was = levelValue(old[key]);
    const now = levelValue(next[key]);
    if (was === now) continue;
    if (was !== undefined && was > senderLevel) tooHigh(key);
    if (now !== undefined && now > senderLevel) tooHigh(key);
  }
  for (const key of mapKeys) {
    compareMaps(objectField(old, key), objectField(next, key), (entry, was, now) => {
      if (was !== undefined && was > senderLevel) tooHigh(`${key}.${entry}`);
      if (now !== undefined && now > senderLevel) tooHigh(`${key}.${entry}`);
    });
  }
  compareMaps(objectField(old, 'users'), objectField(next, 'users'), (userId, was, now) => {
    if (was !== undefined && userId !== pdu.sender && was >= senderLevel) {
      throw new AuthError(`cannot change the power level of ${userId}: not below the sender's level ${senderLevel}`);
    }
    if (now !== undefined && now > senderLevel) tooHigh(`the power level of ${userId}`);
  });
}

/** Calls `onChange` for each key added, removed or changed between two maps of levels. */
function compareMaps(
  before: JsonObject | undefined,
  after: JsonObject | undefined,
  onChange: (key: string, was: number | undefined, now: number | undefined) => void,
): void {
  const keys = new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})]);
  for (const key of keys) {
    const was = levelValue(ownEntry(before, key));
    const now = levelValue(ownEntry(after, key));
    if (was !== now) onChange(key, was, now);
  }
}
