// The server-default push rules (spec v1.16 set, as Synapse 1.157 serves it). The three legacy
// mention rules (.m.rule.contains_display_name, .m.rule.roomnotif, .m.rule.contains_user_name)
// are kept because matrix-js-sdk warns when they are absent; v1.17 (MSC4210) removed them.
// Pure data: the evaluator and the CRUD merge live in evaluator.ts and ruleset.ts.

import type { JsonValue } from '../protocol/types.js';

export type PushRuleKind = 'override' | 'content' | 'room' | 'sender' | 'underride';

/** The kinds in the order the spec evaluates them. */
export const PUSH_RULE_KINDS: readonly PushRuleKind[] = ['override', 'content', 'room', 'sender', 'underride'];

export function isPushRuleKind(kind: string): kind is PushRuleKind {
  return (PUSH_RULE_KINDS as readonly string[]).includes(kind);
}

/** Values `event_property_is` / `event_property_contains` can compare against. */
export type PushScalar = string | number | boolean | null;

export type EventMatchCondition = { kind: 'event_match'; key: string; pattern: string };
export type EventPropertyIsCondition = { kind: 'event_property_is'; key: string; value: PushScalar };
export type EventPropertyContainsCondition = { kind: 'event_property_contains'; key: string; value: PushScalar };
export type ContainsDisplayNameCondition = { kind: 'contains_display_name' };
export type RoomMemberCountCondition = { kind: 'room_member_count'; is: string };
export type SenderNotificationPermissionCondition = { kind: 'sender_notification_permission'; key: string };
/** Conditions of kinds this server does not know are stored verbatim; they never match. */
export type UnknownPushCondition = { kind: string; [param: string]: JsonValue };

export type PushCondition =
  | EventMatchCondition
  | EventPropertyIsCondition
  | EventPropertyContainsCondition
  | ContainsDisplayNameCondition
  | RoomMemberCountCondition
  | SenderNotificationPermissionCondition
  | UnknownPushCondition;

export type PushTweak = { set_tweak: string; value?: JsonValue };
/** `dont_notify` and `coalesce` are historical no-ops the spec says to ignore. */
export type PushAction = 'notify' | 'dont_notify' | 'coalesce' | PushTweak;

export type PushRule = {
  rule_id: string;
  default: boolean;
  enabled: boolean;
  actions: PushAction[];
  /** override and underride rules only. */
  conditions?: PushCondition[];
  /** content rules only. */
  pattern?: string;
};

export type PushRuleset = {
  global: Record<PushRuleKind, PushRule[]>;
};

const SOUND_DEFAULT: PushTweak = { set_tweak: 'sound', value: 'default' };
const HIGHLIGHT: PushTweak = { set_tweak: 'highlight' };

// Fresh arrays per rule so that callers may mutate a returned ruleset without aliasing.
const notifySound = (): PushAction[] => ['notify', { ...SOUND_DEFAULT }];
const notifySoundHighlight = (): PushAction[] => ['notify', { ...SOUND_DEFAULT }, { ...HIGHLIGHT }];
const notifyHighlight = (): PushAction[] => ['notify', { ...HIGHLIGHT }];

const match = (key: string, pattern: string): EventMatchCondition => ({ kind: 'event_match', key, pattern });

function rule(rule_id: string, conditions: PushCondition[], actions: PushAction[], enabled = true): PushRule {
  return { rule_id, default: true, enabled, conditions, actions };
}

/** The localpart of `@localpart:server` (the whole ID minus the sigil if there is no colon). */
export function localpartOf(userId: string): string {
  const colon = userId.indexOf(':');
  return userId.slice(userId.startsWith('@') ? 1 : 0, colon === -1 ? undefined : colon);
}

/** The complete server-default ruleset for `userId`, freshly allocated on every call. */
export function defaultPushRules(userId: string): PushRuleset {
  const roomPermission: PushCondition = { kind: 'sender_notification_permission', key: 'room' };
  const override: PushRule[] = [
    rule('.m.rule.master', [], [], false),
    rule('.m.rule.suppress_notices', [match('content.msgtype', 'm.notice')], []),
    rule(
      '.m.rule.invite_for_me',
      [match('type', 'm.room.member'), match('content.membership', 'invite'), match('state_key', userId)],
      notifySound(),
    ),
    rule('.m.rule.member_event', [match('type', 'm.room.member')], []),
    rule(
      '.m.rule.is_user_mention',
      [{ kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: userId }],
      notifySoundHighlight(),
    ),
    rule('.m.rule.contains_display_name', [{ kind: 'contains_display_name' }], notifySoundHighlight()),
    rule(
      '.m.rule.is_room_mention',
      [{ kind: 'event_property_is', key: 'content.m\\.mentions.room', value: true }, { ...roomPermission }],
      notifyHighlight(),
    ),
    rule('.m.rule.roomnotif', [match('content.body', '@room'), { ...roomPermission }], notifyHighlight()),
    rule('.m.rule.tombstone', [match('type', 'm.room.tombstone'), match('state_key', '')], notifyHighlight()),
    rule('.m.rule.reaction', [match('type', 'm.reaction')], []),
    rule('.m.rule.room.server_acl', [match('type', 'm.room.server_acl'), match('state_key', '')], []),
    rule(
      '.m.rule.suppress_edits',
      [{ kind: 'event_property_is', key: 'content.m\\.relates_to.rel_type', value: 'm.replace' }],
      [],
    ),
  ];
  const content: PushRule[] = [
    {
      rule_id: '.m.rule.contains_user_name',
      default: true,
      enabled: true,
      pattern: localpartOf(userId),
      actions: notifySoundHighlight(),
    },
  ];
  const underride: PushRule[] = [
    rule('.m.rule.call', [match('type', 'm.call.invite')], ['notify', { set_tweak: 'sound', value: 'ring' }]),
    rule(
      '.m.rule.encrypted_room_one_to_one',
      [{ kind: 'room_member_count', is: '2' }, match('type', 'm.room.encrypted')],
      notifySound(),
    ),
    rule('.m.rule.room_one_to_one', [{ kind: 'room_member_count', is: '2' }, match('type', 'm.room.message')], notifySound()),
    rule('.m.rule.message', [match('type', 'm.room.message')], ['notify']),
    rule('.m.rule.encrypted', [match('type', 'm.room.encrypted')], ['notify']),
  ];
  return { global: { override, content, room: [], sender: [], underride } };
}

/**
 * Legacy mention rules that the spec (v1.7+) says apply only to events without `m.mentions`,
 * so that clients sending intentional mentions don't double-notify via body matching.
 */
export const LEGACY_MENTION_RULE_IDS: ReadonlySet<string> = new Set([
  '.m.rule.contains_display_name',
  '.m.rule.roomnotif',
  '.m.rule.contains_user_name',
]);
