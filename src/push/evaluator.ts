// Push rule evaluation: which of a user's rules fires for an event, and what it asks for.
// This runs once per room member per event, so everything that can be compiled (glob patterns,
// dotted key paths, member-count comparisons) is compiled once and kept in bounded caches on a
// PushEvaluator instance. Rules come from user-editable account data, so every field is checked
// at run time rather than trusted from the static types.

import type { JsonObject, JsonValue } from '../protocol/types.js';
import {
  LEGACY_MENTION_RULE_IDS,
  PUSH_RULE_KINDS,
  type PushAction,
  type PushCondition,
  type PushRule,
  type PushRuleKind,
  type PushRuleset,
} from './default-rules.js';

/** An event in the Client-Server format (only the fields push rules can look at). */
export type PushEvent = {
  type: string;
  sender: string;
  content: JsonObject;
  state_key?: string;
  room_id: string;
  event_id?: string;
};

export type PushContext = {
  event: PushEvent;
  userId: string;
  /** The user's display name in this room (member event), or null. */
  displayName: string | null;
  roomMemberCount: number;
  senderPowerLevel: number;
  /** `m.room.power_levels` content.notifications; `room` defaults to 50 when absent. */
  notificationPowerLevels: Record<string, number>;
};

export type PushEvaluation = {
  actions: PushAction[];
  notify: boolean;
  highlight: boolean;
  sound?: string;
  ruleId?: string;
  kind?: PushRuleKind;
};

export type PushEvaluatorOptions = {
  /** Upper bound on compiled glob patterns kept (display names and localparts are per user). */
  maxPatterns?: number;
};

const DEFAULT_ROOM_NOTIFICATION_LEVEL = 50;
// Spec word boundary: start/end of value or any character outside [A-Za-z0-9_].
const NOT_BEFORE_WORD = '(?<![A-Za-z0-9_])';
const NOT_AFTER_WORD = '(?![A-Za-z0-9_])';
const MEMBER_COUNT_RE = /^(==|<=|>=|<|>)?([0-9]+)$/;

type MemberCountTest = { op: string; n: number } | null;

const noNotification = (): PushEvaluation => ({ actions: [], notify: false, highlight: false });

function isHistoricalNoop(a: PushAction): boolean {
  return a === 'dont_notify' || a === 'coalesce';
}

/**
 * Splits a dotted property path. `\.` is a literal dot and `\\` a literal backslash; any other
 * backslash is kept as-is (the spec reserves other escapes).
 */
export function parseDottedPath(key: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < key.length; i++) {
    const ch = key[i];
    if (ch === '\\' && (key[i + 1] === '.' || key[i + 1] === '\\')) {
      current += key[++i];
    } else if (ch === '.') {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

/** Escapes everything but the glob wildcards; the result is a RegExp source for the `u` flag. */
export function globToRegexSource(glob: string): string {
  let out = '';
  for (const ch of glob) {
    if (ch === '*') out += '.*?';
    else if (ch === '?') out += '.';
    else if ('\\^$.|+()[]{}/'.includes(ch)) out += '\\' + ch;
    else out += ch;
  }
  return out;
}

function isPushScalar(v: unknown): v is string | number | boolean | null {
  return (
    v === null ||
    typeof v === 'string' ||
    typeof v === 'boolean' ||
    (typeof v === 'number' && Number.isSafeInteger(v))
  );
}

/** A small insertion-ordered cache; evicts the oldest entry once full. */
class BoundedCache<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(key: string): V | undefined {
    return this.map.get(key);
  }
  set(key: string, value: V): V {
    if (this.map.size >= this.max) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
    this.map.set(key, value);
    return value;
  }
  get size(): number {
    return this.map.size;
  }
}

export class PushEvaluator {
  // One cache per match mode, keyed by the raw pattern: building a composite key string on
  // every condition check cost more than the regex test itself in the fan-out benchmark.
  private readonly wholeValue: BoundedCache<RegExp>;
  private readonly wordBounded: BoundedCache<RegExp>;
  private readonly literals: BoundedCache<RegExp>;
  private readonly paths = new BoundedCache<string[]>(512);
  private readonly memberCounts = new BoundedCache<MemberCountTest>(64);

  constructor(options: PushEvaluatorOptions = {}) {
    const max = Math.max(16, options.maxPatterns ?? 10_000);
    this.wholeValue = new BoundedCache(max);
    this.wordBounded = new BoundedCache(max);
    this.literals = new BoundedCache(max);
  }

  /** Number of compiled patterns currently cached (for tests and metrics). */
  get cachedPatternCount(): number {
    return this.wholeValue.size + this.wordBounded.size + this.literals.size;
  }

  /** Finds the first enabled matching rule in spec kind order and summarises its actions. */
  evaluate(ruleset: PushRuleset, ctx: PushContext): PushEvaluation {
    if (ctx.event.sender === ctx.userId) return noNotification();
    const mentions = ctx.event.content['m.mentions'];
    const hasMentions = typeof mentions === 'object' && mentions !== null && !Array.isArray(mentions);
    for (const kind of PUSH_RULE_KINDS) {
      const rules = ruleset.global[kind];
      if (!Array.isArray(rules)) continue;
      for (const rule of rules) {
        if (!rule || rule.enabled !== true) continue;
        if (hasMentions && rule.default && LEGACY_MENTION_RULE_IDS.has(rule.rule_id)) continue;
        if (this.ruleMatches(kind, rule, ctx)) return summarise(rule, kind);
      }
    }
    return noNotification();
  }

  ruleMatches(kind: PushRuleKind, rule: PushRule, ctx: PushContext): boolean {
    switch (kind) {
      case 'room':
        return ctx.event.room_id === rule.rule_id;
      case 'sender':
        return ctx.event.sender === rule.rule_id;
      case 'content': {
        const body = ctx.event.content.body;
        return typeof rule.pattern === 'string' && typeof body === 'string' && this.glob(rule.pattern, true).test(body);
      }
      default: {
        const conditions = rule.conditions ?? [];
        if (!Array.isArray(conditions)) return false;
        for (const c of conditions) if (!this.conditionMatches(c, ctx)) return false;
        return true;
      }
    }
  }

  conditionMatches(condition: PushCondition, ctx: PushContext): boolean {
    if (typeof condition !== 'object' || condition === null) return false;
    const c = condition as Record<string, unknown>;
    switch (c.kind) {
      case 'event_match': {
        if (typeof c.key !== 'string' || typeof c.pattern !== 'string') return false;
        const value = this.lookup(ctx.event, c.key);
        if (typeof value !== 'string') return false;
        return this.glob(c.pattern, c.key === 'content.body').test(value);
      }
      case 'event_property_is': {
        if (typeof c.key !== 'string' || !isPushScalar(c.value)) return false;
        const value = this.lookup(ctx.event, c.key);
        return value !== undefined && isPushScalar(value) && value === c.value;
      }
      case 'event_property_contains': {
        if (typeof c.key !== 'string' || !isPushScalar(c.value)) return false;
        const value = this.lookup(ctx.event, c.key);
        return Array.isArray(value) && value.some((v) => isPushScalar(v) && v === c.value);
      }
      case 'contains_display_name': {
        const body = ctx.event.content.body;
        if (!ctx.displayName || typeof body !== 'string') return false;
        return this.literal(ctx.displayName).test(body);
      }
      case 'room_member_count': {
        if (typeof c.is !== 'string') return false;
        return compareCount(this.memberCountTest(c.is), ctx.roomMemberCount);
      }
      case 'sender_notification_permission': {
        if (typeof c.key !== 'string') return false;
        const levels = ctx.notificationPowerLevels;
        let required = Object.prototype.hasOwnProperty.call(levels, c.key) ? levels[c.key] : undefined;
        if (required === undefined && c.key === 'room') required = DEFAULT_ROOM_NOTIFICATION_LEVEL;
        return typeof required === 'number' && ctx.senderPowerLevel >= required;
      }
      default:
        // Unrecognised conditions must not match, which disables the rule (spec).
        return false;
    }
  }

  /**
   * A compiled glob: case-insensitive; either the whole value must match, or (`wordBounded`,
   * used for content.body) any substring that starts and ends at a word boundary.
   */
  glob(pattern: string, wordBounded: boolean): RegExp {
    const cache = wordBounded ? this.wordBounded : this.wholeValue;
    const hit = cache.get(pattern);
    if (hit) return hit;
    const src = globToRegexSource(pattern);
    return cache.set(pattern, compile(wordBounded ? NOT_BEFORE_WORD + src + NOT_AFTER_WORD : '^' + src + '$', 'isu'));
  }

  // Display names are matched literally: a `*` in someone's name is not a wildcard.
  private literal(text: string): RegExp {
    const hit = this.literals.get(text);
    if (hit) return hit;
    return this.literals.set(text, compile(NOT_BEFORE_WORD + escapeLiteral(text) + NOT_AFTER_WORD, 'iu'));
  }

  private lookup(event: PushEvent, key: string): JsonValue | undefined {
    let path = this.paths.get(key);
    if (!path) path = this.paths.set(key, parseDottedPath(key));
    let node: JsonValue | undefined = event as unknown as JsonObject;
    for (const part of path) {
      if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined;
      if (!Object.prototype.hasOwnProperty.call(node, part)) return undefined;
      node = (node as JsonObject)[part];
    }
    return node;
  }

  private memberCountTest(is: string): MemberCountTest {
    const hit = this.memberCounts.get(is);
    if (hit !== undefined) return hit;
    const m = MEMBER_COUNT_RE.exec(is);
    return this.memberCounts.set(is, m ? { op: m[1] ?? '==', n: Number(m[2]) } : null);
  }
}

// Everything is escaped, so this cannot fail today; the guard keeps a future escaping bug from
// turning one user's odd pattern into an exception in every fan-out.
function compile(source: string, flags: string): RegExp {
  try {
    return new RegExp(source, flags);
  } catch {
    return /(?!)/;
  }
}

function escapeLiteral(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

function compareCount(test: MemberCountTest, count: number): boolean {
  if (!test) return false;
  switch (test.op) {
    case '==':
      return count === test.n;
    case '<':
      return count < test.n;
    case '>':
      return count > test.n;
    case '<=':
      return count <= test.n;
    case '>=':
      return count >= test.n;
    default:
      return false;
  }
}

function summarise(rule: PushRule, kind: PushRuleKind): PushEvaluation {
  const actions = Array.isArray(rule.actions) ? rule.actions.filter((a) => !isHistoricalNoop(a)) : [];
  let notify = false;
  let highlight = false;
  let sound: string | undefined;
  for (const a of actions) {
    if (a === 'notify') notify = true;
    else if (typeof a === 'object' && a !== null) {
      // A highlight tweak without a value means true (spec).
      if (a.set_tweak === 'highlight') highlight = a.value === undefined || a.value === true;
      else if (a.set_tweak === 'sound' && typeof a.value === 'string') sound = a.value;
    }
  }
  const result: PushEvaluation = { actions, notify, highlight, ruleId: rule.rule_id, kind };
  if (sound !== undefined) result.sound = sound;
  return result;
}

/**
 * One-off evaluation. Hot paths (fan-out to every room member) should keep one PushEvaluator
 * and call `evaluate` on it so compiled patterns are reused across users and events.
 */
export function evaluatePushRules(ruleset: PushRuleset, ctx: PushContext, evaluator?: PushEvaluator): PushEvaluation {
  return (evaluator ?? new PushEvaluator({ maxPatterns: 64 })).evaluate(ruleset, ctx);
}
