// A user's push rule customisations and how they merge with the server defaults. The stored
// form (UserPushRules) holds only what the user changed, so improving the defaults later
// reaches every user; the effective ruleset is rebuilt from it on demand. All functions are
// pure: they return a new UserPushRules and never mutate their input.

import type { JsonObject, JsonValue } from '../protocol/types.js';
import {
  PUSH_RULE_KINDS,
  defaultPushRules,
  isPushRuleKind,
  type PushAction,
  type PushCondition,
  type PushRule,
  type PushRuleKind,
  type PushRuleset,
} from './default-rules.js';

export type PushRuleErrcode = 'M_NOT_FOUND' | 'M_INVALID_PARAM' | 'M_BAD_JSON' | 'M_UNKNOWN';

/** A client-caused push rule failure; the API layer renders it as a Matrix error. */
export class PushRuleError extends Error {
  readonly errcode: PushRuleErrcode;
  readonly status: number;
  constructor(errcode: PushRuleErrcode, message: string) {
    super(message);
    this.name = 'PushRuleError';
    this.errcode = errcode;
    this.status = errcode === 'M_NOT_FOUND' ? 404 : 400;
  }
}

/** A user-defined rule as stored (`default` is implied false). */
export type UserPushRule = {
  rule_id: string;
  enabled: boolean;
  actions: PushAction[];
  conditions?: PushCondition[];
  pattern?: string;
};

/** What a user changed on a server-default rule. */
export type DefaultRuleChange = { enabled?: boolean; actions?: PushAction[] };

/** JSON-serialisable; stored as account data. Rules of each kind are most important first. */
export type UserPushRules = {
  rules: Record<PushRuleKind, UserPushRule[]>;
  defaults: Record<PushRuleKind, Record<string, DefaultRuleChange>>;
};

export type RulePosition = { before?: string; after?: string };

// The IDs and actions of the defaults do not depend on the user; only patterns/values do.
const DEFAULT_TEMPLATE: PushRuleset = defaultPushRules('@_:_');

function findDefault(kind: PushRuleKind, ruleId: string): PushRule | undefined {
  return DEFAULT_TEMPLATE.global[kind].find((r) => r.rule_id === ruleId);
}

function perKind<T>(make: () => T): Record<PushRuleKind, T> {
  return { override: make(), content: make(), room: make(), sender: make(), underride: make() };
}

export function emptyUserPushRules(): UserPushRules {
  return { rules: perKind(() => []), defaults: perKind(() => ({})) };
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

function checkKind(kind: string): PushRuleKind {
  if (!isPushRuleKind(kind)) throw new PushRuleError('M_INVALID_PARAM', `Unknown push rule kind: ${kind}`);
  return kind;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const KNOWN_ACTIONS = new Set(['notify', 'dont_notify', 'coalesce']);

/**
 * Validates an actions array. The historical `dont_notify`/`coalesce` are stored as the client
 * sent them (a client reading its rule back gets what it wrote); evaluation ignores them, as
 * the spec asks.
 */
export function validateActions(actions: unknown): PushAction[] {
  if (!Array.isArray(actions)) throw new PushRuleError('M_BAD_JSON', "'actions' must be an array");
  const out: PushAction[] = [];
  for (const a of actions) {
    if (typeof a === 'string') {
      if (!KNOWN_ACTIONS.has(a)) throw new PushRuleError('M_INVALID_PARAM', `Unrecognised action: ${a}`);
      out.push(a as 'notify' | 'dont_notify' | 'coalesce');
    } else if (isObject(a) && typeof a.set_tweak === 'string') {
      out.push(clone(a) as PushAction);
    } else {
      throw new PushRuleError('M_BAD_JSON', 'Each action must be a string or an object with a string set_tweak');
    }
  }
  return out;
}

function isScalar(v: unknown): boolean {
  return (
    v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isSafeInteger(v))
  );
}

/** Checks the parameters of known condition kinds; unknown kinds are kept (they never match). */
export function validateConditions(conditions: unknown): PushCondition[] {
  if (!Array.isArray(conditions)) throw new PushRuleError('M_BAD_JSON', "'conditions' must be an array");
  return conditions.map((c, i): PushCondition => {
    const where = `conditions[${i}]`;
    if (!isObject(c) || typeof c.kind !== 'string') {
      throw new PushRuleError('M_BAD_JSON', `${where} must be an object with a string 'kind'`);
    }
    const needString = (field: string): void => {
      if (typeof c[field] !== 'string') throw new PushRuleError('M_BAD_JSON', `${where}.${field} must be a string`);
    };
    switch (c.kind) {
      case 'event_match':
        needString('key');
        needString('pattern');
        break;
      case 'event_property_is':
      case 'event_property_contains':
        needString('key');
        if (!isScalar(c.value)) {
          throw new PushRuleError('M_BAD_JSON', `${where}.value must be a string, integer, boolean or null`);
        }
        break;
      case 'room_member_count':
        needString('is');
        if (!/^(==|<=|>=|<|>)?[0-9]+$/.test(c.is as string)) {
          throw new PushRuleError('M_INVALID_PARAM', `${where}.is must be an integer optionally prefixed by ==, <, >, <= or >=`);
        }
        break;
      case 'sender_notification_permission':
        needString('key');
        break;
      default:
        break;
    }
    return clone(c) as PushCondition;
  });
}

function validateRuleId(kind: PushRuleKind, ruleId: string): void {
  if (!ruleId) throw new PushRuleError('M_INVALID_PARAM', 'rule_id must not be empty');
  if (ruleId.startsWith('.')) {
    throw new PushRuleError('M_INVALID_PARAM', "rule_id must not start with '.': reserved for server-default rules");
  }
  if (ruleId.includes('/') || ruleId.includes('\\')) {
    throw new PushRuleError('M_INVALID_PARAM', 'rule_id must not contain slashes or backslashes');
  }
  // A room rule's ID names the room it matches; the spec asks for nothing more, and one that is
  // no room ID simply never matches.
  if (kind === 'sender' && !/^@[^:]+:.+$/.test(ruleId)) {
    throw new PushRuleError('M_INVALID_PARAM', 'The rule_id of a sender rule must be a user ID');
  }
}

/** Validates a PUT body for `kind` and returns the rule to store (enabled as given). */
function buildUserRule(kind: PushRuleKind, ruleId: string, body: unknown, enabled: boolean): UserPushRule {
  validateRuleId(kind, ruleId);
  if (!isObject(body)) throw new PushRuleError('M_BAD_JSON', 'The push rule must be a JSON object');
  if (body.actions === undefined) throw new PushRuleError('M_BAD_JSON', "Missing 'actions'");
  const rule: UserPushRule = { rule_id: ruleId, enabled, actions: validateActions(body.actions) };
  const hasConditions = Array.isArray(body.conditions) ? body.conditions.length > 0 : body.conditions !== undefined;
  if (kind === 'override' || kind === 'underride') {
    if (body.pattern !== undefined) {
      throw new PushRuleError('M_INVALID_PARAM', `'pattern' is only valid for content rules, not ${kind}`);
    }
    rule.conditions = body.conditions === undefined ? [] : validateConditions(body.conditions);
    return rule;
  }
  // content, room and sender rules have predefined conditions (body pattern, room ID, sender).
  if (hasConditions) throw new PushRuleError('M_INVALID_PARAM', `${kind} rules do not take 'conditions'`);
  if (kind === 'content') {
    if (typeof body.pattern !== 'string') {
      throw new PushRuleError('M_BAD_JSON', "Content rules require a string 'pattern'");
    }
    rule.pattern = body.pattern;
  } else if (body.pattern !== undefined) {
    throw new PushRuleError('M_INVALID_PARAM', `'pattern' is only valid for content rules, not ${kind}`);
  }
  return rule;
}

/**
 * Creates or replaces a user rule (PUT /pushrules/global/{kind}/{ruleId}). A new rule without
 * a position becomes the most important of its kind; a replaced one keeps its place and its
 * enabled state. `before` wins over `after` when both are given (spec).
 */
export function addRule(
  user: UserPushRules,
  kind: string,
  ruleId: string,
  body: unknown,
  position: RulePosition = {},
): UserPushRules {
  const k = checkKind(kind);
  const existing = user.rules[k].findIndex((r) => r.rule_id === ruleId);
  const enabled = existing === -1 ? true : user.rules[k][existing].enabled;
  const rule = buildUserRule(k, ruleId, body, enabled);
  const next = clone(user);
  const list = next.rules[k];
  const anchorId = position.before ?? position.after;
  if (anchorId !== undefined) {
    if (anchorId === ruleId) {
      throw new PushRuleError('M_INVALID_PARAM', 'A rule cannot be positioned relative to itself');
    }
    if (existing !== -1) list.splice(existing, 1);
    const anchor = list.findIndex((r) => r.rule_id === anchorId);
    if (anchor === -1) throw new PushRuleError('M_NOT_FOUND', `before/after rule not found: ${anchorId}`);
    list.splice(position.before !== undefined ? anchor : anchor + 1, 0, rule);
  } else if (existing !== -1) {
    list[existing] = rule;
  } else {
    list.unshift(rule);
  }
  return next;
}

/** DELETE /pushrules/global/{kind}/{ruleId}. Server-default rules cannot be deleted. */
export function deleteRule(user: UserPushRules, kind: string, ruleId: string): UserPushRules {
  const k = checkKind(kind);
  const index = user.rules[k].findIndex((r) => r.rule_id === ruleId);
  if (index === -1) {
    if (findDefault(k, ruleId)) throw new PushRuleError('M_INVALID_PARAM', 'Server-default rules cannot be deleted');
    throw new PushRuleError('M_NOT_FOUND', 'The push rule was not found.');
  }
  const next = clone(user);
  next.rules[k].splice(index, 1);
  return next;
}

// Applies `change` to the named rule: to the user rule itself, or as a delta on a default.
function modify(user: UserPushRules, kind: string, ruleId: string, change: DefaultRuleChange): UserPushRules {
  const k = checkKind(kind);
  const next = clone(user);
  const own = next.rules[k].find((r) => r.rule_id === ruleId);
  if (own) {
    Object.assign(own, change);
    return next;
  }
  const base = findDefault(k, ruleId);
  if (!base) throw new PushRuleError('M_NOT_FOUND', 'The push rule was not found.');
  const delta: DefaultRuleChange = { ...(next.defaults[k][ruleId] ?? {}), ...change };
  // Drop deltas that restore the default so the stored data stays minimal.
  if (delta.enabled === base.enabled) delete delta.enabled;
  if (delta.actions && JSON.stringify(delta.actions) === JSON.stringify(base.actions)) delete delta.actions;
  if (delta.enabled === undefined && delta.actions === undefined) delete next.defaults[k][ruleId];
  else next.defaults[k][ruleId] = delta;
  return next;
}

/** PUT .../enabled */
export function setEnabled(user: UserPushRules, kind: string, ruleId: string, enabled: unknown): UserPushRules {
  if (typeof enabled !== 'boolean') throw new PushRuleError('M_BAD_JSON', "'enabled' must be a boolean");
  return modify(user, kind, ruleId, { enabled });
}

/** PUT .../actions */
export function setActions(user: UserPushRules, kind: string, ruleId: string, actions: unknown): UserPushRules {
  return modify(user, kind, ruleId, { actions: validateActions(actions) });
}

/**
 * After a room upgrade: every rule of the user's that is about `oldRoomId` (its rule ID is the
 * room ID, as clients name per-room rules and mutes) gets a twin about `newRoomId`, placed just
 * before it, with `room_id` conditions pointing at the new room. Rules the user already has for
 * the new room are left alone.
 */
export function copyRoomRules(user: UserPushRules, oldRoomId: string, newRoomId: string): UserPushRules {
  const next = clone(user);
  for (const kind of Object.keys(next.rules) as PushRuleKind[]) {
    const list = next.rules[kind];
    const i = list.findIndex((r) => r.rule_id === oldRoomId);
    if (i === -1 || list.some((r) => r.rule_id === newRoomId)) continue;
    const twin = clone(list[i]);
    twin.rule_id = newRoomId;
    if (twin.conditions) {
      twin.conditions = twin.conditions.map((c) =>
        c.kind === 'event_match' && c.key === 'room_id' && c.pattern === oldRoomId ? { ...c, pattern: newRoomId } : c,
      );
    }
    list.splice(i, 0, twin);
  }
  return next;
}

function toPushRule(kind: PushRuleKind, r: UserPushRule): PushRule {
  const rule: PushRule = { rule_id: r.rule_id, default: false, enabled: r.enabled, actions: clone(r.actions) };
  if (kind === 'override' || kind === 'underride') rule.conditions = clone(r.conditions ?? []);
  if (kind === 'content') rule.pattern = r.pattern ?? '';
  return rule;
}

/**
 * The ruleset the user sees and that the evaluator runs: user rules first within each kind,
 * except that `.m.rule.master` always stays the first override rule.
 */
export function effectiveRuleset(userId: string, user: UserPushRules): PushRuleset {
  const defaults = defaultPushRules(userId);
  const global = {} as PushRuleset['global'];
  for (const kind of PUSH_RULE_KINDS) {
    const changes = user.defaults[kind] ?? {};
    const builtIn = defaults.global[kind].map((r) => {
      const c = Object.prototype.hasOwnProperty.call(changes, r.rule_id) ? changes[r.rule_id] : undefined;
      if (c?.enabled !== undefined) r.enabled = c.enabled;
      if (c?.actions !== undefined) r.actions = clone(c.actions);
      return r;
    });
    const own = (user.rules[kind] ?? []).map((r) => toPushRule(kind, r));
    if (kind === 'override') {
      const masterAt = builtIn.findIndex((r) => r.rule_id === '.m.rule.master');
      const master = masterAt === -1 ? [] : builtIn.splice(masterAt, 1);
      global[kind] = [...master, ...own, ...builtIn];
    } else {
      global[kind] = [...own, ...builtIn];
    }
  }
  return { global };
}

/** GET /pushrules/global/{kind}/{ruleId} */
export function getRule(userId: string, user: UserPushRules, kind: string, ruleId: string): PushRule {
  const k = checkKind(kind);
  const rule = effectiveRuleset(userId, user).global[k].find((r) => r.rule_id === ruleId);
  if (!rule) throw new PushRuleError('M_NOT_FOUND', 'The push rule was not found.');
  return rule;
}

/**
 * Reads stored account data back, tolerating damage: anything that no longer validates is
 * dropped rather than failing every notification for the user.
 */
export function parseUserPushRules(data: JsonValue | undefined): UserPushRules {
  const out = emptyUserPushRules();
  if (!isObject(data)) return out;
  const rules = isObject(data.rules) ? data.rules : {};
  const defaults = isObject(data.defaults) ? data.defaults : {};
  for (const kind of PUSH_RULE_KINDS) {
    const list = Array.isArray(rules[kind]) ? (rules[kind] as unknown[]) : [];
    for (const raw of list) {
      if (!isObject(raw) || typeof raw.rule_id !== 'string') continue;
      if (out.rules[kind].some((r) => r.rule_id === raw.rule_id)) continue;
      try {
        out.rules[kind].push(buildUserRule(kind, raw.rule_id, raw, raw.enabled !== false));
      } catch {
        // skip the damaged rule
      }
    }
    const changes = isObject(defaults[kind]) ? (defaults[kind] as Record<string, unknown>) : {};
    for (const [ruleId, raw] of Object.entries(changes)) {
      if (!findDefault(kind, ruleId) || !isObject(raw)) continue;
      const change: DefaultRuleChange = {};
      if (typeof raw.enabled === 'boolean') change.enabled = raw.enabled;
      try {
        if (raw.actions !== undefined) change.actions = validateActions(raw.actions);
      } catch {
        // keep the enabled flag even if the actions are damaged
      }
      if (change.enabled !== undefined || change.actions !== undefined) out.defaults[kind][ruleId] = change;
    }
  }
  return out;
}

/** The stored form as plain JSON for account data. */
export function serialiseUserPushRules(user: UserPushRules): JsonObject {
  return JSON.parse(JSON.stringify(user)) as JsonObject;
}
