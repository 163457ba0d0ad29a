// The redaction algorithm (rooms v1-v12; v12 redacts as v11). Each room version is a small table of rules so the
// differences stay visible side by side instead of as version checks sprinkled through code.
import { cloneJson, isJsonObject, dict } from './canonical-json.js';
import type { JsonObject, LooseJsonObject, Pdu } from './types.js';

interface RedactionRules {
  /** Top-level keys that survive. */
  topLevel: readonly string[];
  /** Content keys that survive, per event type; `'all'` keeps the whole content. */
  content: Readonly<Record<string, readonly string[] | 'all'>>;
  /** v11: m.room.member keeps `third_party_invite.signed`. */
  memberKeepsThirdPartySigned: boolean;
}

const TOP_LEVEL_V11 = [
  'event_id', 'type', 'room_id', 'sender', 'state_key', 'content', 'hashes', 'signatures',
  'depth', 'prev_events', 'auth_events', 'origin_server_ts',
] as const;
// Before v11 three legacy keys were protected as well.
const TOP_LEVEL_V1 = [...TOP_LEVEL_V11, 'prev_state', 'origin', 'membership'] as const;

const POWER_LEVELS_V1 = ['ban', 'events', 'events_default', 'kick', 'redact', 'state_default', 'users', 'users_default'];

const V1: RedactionRules = {
  topLevel: TOP_LEVEL_V1,
  content: {
    'm.room.member': ['membership'],
    'm.room.create': ['creator'],
    'm.room.join_rules': ['join_rule'],
    'm.room.power_levels': POWER_LEVELS_V1,
    'm.room.aliases': ['aliases'],
    'm.room.history_visibility': ['history_visibility'],
  },
  memberKeepsThirdPartySigned: false,
};

// v6: m.room.aliases loses its special treatment.
const { 'm.room.aliases': _aliases, ...V1_CONTENT_WITHOUT_ALIASES } = V1.content;
const V6: RedactionRules = { ...V1, content: V1_CONTENT_WITHOUT_ALIASES };

// v8: restricted rooms keep the join rule's `allow`.
const V8: RedactionRules = { ...V6, content: { ...V6.content, 'm.room.join_rules': ['join_rule', 'allow'] } };

// v9: restricted joins keep the authorising user, whose server must have signed the join.
const V9: RedactionRules = {
  ...V8,
  content: { ...V8.content, 'm.room.member': ['membership', 'join_authorised_via_users_server'] },
};

const V11: RedactionRules = {
  topLevel: TOP_LEVEL_V11,
  content: {
    ...V9.content,
    'm.room.create': 'all',
    'm.room.power_levels': [...POWER_LEVELS_V1, 'invite'],
    'm.room.redaction': ['redacts'],
  },
  memberKeepsThirdPartySigned: true,
};

const RULES: Readonly<Record<string, RedactionRules>> = {
  '1': V1, '2': V1, '3': V1, '4': V1, '5': V1,
  '6': V6, '7': V6,
  '8': V8,
  '9': V9, '10': V9,
  '11': V11, '12': V11,
};

export function isRedactionSupported(roomVersion: string): boolean {
  return Object.prototype.hasOwnProperty.call(RULES, roomVersion);
}

function rulesFor(roomVersion: string): RedactionRules {
  if (!isRedactionSupported(roomVersion)) throw new Error(`no redaction rules for room version ${roomVersion}`);
  return RULES[roomVersion];
}

/**
 * Returns a redacted deep copy; the input is not modified. The result always has a `content`
 * object, even when the input had none (other implementations hash it that way too).
 */
export function redactEvent(event: Pdu, roomVersion: string): Pdu;
export function redactEvent(event: LooseJsonObject, roomVersion: string): JsonObject;
export function redactEvent(event: LooseJsonObject, roomVersion: string): LooseJsonObject {
  const rules = rulesFor(roomVersion);
  const out: JsonObject = dict();
  for (const key of rules.topLevel) {
    const v = event[key];
    if (v !== undefined && key !== 'content') out[key] = cloneJson(v);
  }
  out.content = redactContent(event, rules);
  return out;
}

/** The top-level keys redaction keeps in this version (for callers assembling its encoding). */
export function redactionTopLevel(roomVersion: string): readonly string[] {
  return rulesFor(roomVersion).topLevel;
}

/** The `content` of redactEvent(event): a deep copy of what survives. */
export function redactedContent(event: LooseJsonObject, roomVersion: string): JsonObject {
  return redactContent(event, rulesFor(roomVersion));
}

function redactContent(event: LooseJsonObject, rules: RedactionRules): JsonObject {
  const content = isJsonObject(event.content) ? event.content : {};
  const type = typeof event.type === 'string' ? event.type : '';
  const keep = Object.prototype.hasOwnProperty.call(rules.content, type) ? rules.content[type] : [];
  if (keep === 'all') return cloneJson(content);
  const out: JsonObject = dict();
  for (const key of keep) {
    const v = content[key];
    if (v !== undefined) out[key] = cloneJson(v);
  }
  if (type === 'm.room.member' && rules.memberKeepsThirdPartySigned) {
    const tpi = content.third_party_invite;
    if (isJsonObject(tpi) && tpi.signed !== undefined) out.third_party_invite = { signed: cloneJson(tpi.signed) };
  }
  return out;
}
