import { assert } from '../helpers/assert.js';
import { PUSH_RULE_KINDS, defaultPushRules, localpartOf, type PushRule } from '../../src/push/default-rules.js';

const ALICE = '@alice:example.org';
const SOUND = { set_tweak: 'sound', value: 'default' };
const HIGHLIGHT = { set_tweak: 'highlight' };

function byId(rules: PushRule[], id: string): PushRule {
  const r = rules.find((x) => x.rule_id === id);
  assert.ok(r, `missing ${id}`);
  return r;
}

describe('push: default rules', () => {
  const rs = defaultPushRules(ALICE);

  it('has every kind, with no default room or sender rules', () => {
    assert.deepEqual(Object.keys(rs.global).sort(), [...PUSH_RULE_KINDS].sort());
    assert.deepEqual(rs.global.room, []);
    assert.deepEqual(rs.global.sender, []);
  });

  it('lists the override rules in spec order, legacy rules included', () => {
    assert.deepEqual(
      rs.global.override.map((r) => r.rule_id),
      [
        '.m.rule.master',
        '.m.rule.suppress_notices',
        '.m.rule.invite_for_me',
        '.m.rule.member_event',
        '.m.rule.is_user_mention',
        '.m.rule.contains_display_name',
        '.m.rule.is_room_mention',
        '.m.rule.roomnotif',
        '.m.rule.tombstone',
        '.m.rule.reaction',
        '.m.rule.room.server_acl',
        '.m.rule.suppress_edits',
      ],
    );
  });

  it('lists the content and underride rules in spec order', () => {
    assert.deepEqual(rs.global.content.map((r) => r.rule_id), ['.m.rule.contains_user_name']);
    assert.deepEqual(
      rs.global.underride.map((r) => r.rule_id),
      ['.m.rule.call', '.m.rule.encrypted_room_one_to_one', '.m.rule.room_one_to_one', '.m.rule.message', '.m.rule.encrypted'],
    );
  });

  it('marks every rule default, enabled except master, with conditions xor pattern', () => {
    for (const kind of PUSH_RULE_KINDS) {
      for (const r of rs.global[kind]) {
        assert.equal(r.default, true, r.rule_id);
        assert.equal(r.enabled, r.rule_id !== '.m.rule.master', r.rule_id);
        assert.ok(Array.isArray(r.actions), r.rule_id);
        if (kind === 'content') {
          assert.equal(typeof r.pattern, 'string');
          assert.equal(r.conditions, undefined);
        } else {
          assert.ok(Array.isArray(r.conditions), r.rule_id);
          assert.equal(r.pattern, undefined);
        }
      }
    }
  });

  it('has the right actions', () => {
    const o = rs.global.override;
    const u = rs.global.underride;
    const expected: Array<[PushRule[], string, unknown[]]> = [
      [o, '.m.rule.master', []],
      [o, '.m.rule.suppress_notices', []],
      [o, '.m.rule.invite_for_me', ['notify', SOUND]],
      [o, '.m.rule.member_event', []],
      [o, '.m.rule.is_user_mention', ['notify', SOUND, HIGHLIGHT]],
      [o, '.m.rule.contains_display_name', ['notify', SOUND, HIGHLIGHT]],
      [o, '.m.rule.is_room_mention', ['notify', HIGHLIGHT]],
      [o, '.m.rule.roomnotif', ['notify', HIGHLIGHT]],
      [o, '.m.rule.tombstone', ['notify', HIGHLIGHT]],
      [o, '.m.rule.reaction', []],
      [o, '.m.rule.room.server_acl', []],
      [o, '.m.rule.suppress_edits', []],
      [rs.global.content, '.m.rule.contains_user_name', ['notify', SOUND, HIGHLIGHT]],
      [u, '.m.rule.call', ['notify', { set_tweak: 'sound', value: 'ring' }]],
      [u, '.m.rule.encrypted_room_one_to_one', ['notify', SOUND]],
      [u, '.m.rule.room_one_to_one', ['notify', SOUND]],
      [u, '.m.rule.message', ['notify']],
      [u, '.m.rule.encrypted', ['notify']],
    ];
    for (const [list, id, actions] of expected) assert.deepEqual(byId(list, id).actions, actions, id);
  });

  it('personalises the user-specific conditions and pattern', () => {
    assert.deepEqual(byId(rs.global.override, '.m.rule.invite_for_me').conditions, [
      { kind: 'event_match', key: 'type', pattern: 'm.room.member' },
      { kind: 'event_match', key: 'content.membership', pattern: 'invite' },
      { kind: 'event_match', key: 'state_key', pattern: ALICE },
    ]);
    assert.deepEqual(byId(rs.global.override, '.m.rule.is_user_mention').conditions, [
      { kind: 'event_property_contains', key: 'content.m\\.mentions.user_ids', value: ALICE },
    ]);
    assert.deepEqual(byId(rs.global.override, '.m.rule.is_room_mention').conditions, [
      { kind: 'event_property_is', key: 'content.m\\.mentions.room', value: true },
      { kind: 'sender_notification_permission', key: 'room' },
    ]);
    assert.deepEqual(byId(rs.global.override, '.m.rule.suppress_edits').conditions, [
      { kind: 'event_property_is', key: 'content.m\\.relates_to.rel_type', value: 'm.replace' },
    ]);
    assert.deepEqual(byId(rs.global.override, '.m.rule.tombstone').conditions, [
      { kind: 'event_match', key: 'type', pattern: 'm.room.tombstone' },
      { kind: 'event_match', key: 'state_key', pattern: '' },
    ]);
    assert.deepEqual(byId(rs.global.underride, '.m.rule.room_one_to_one').conditions, [
      { kind: 'room_member_count', is: '2' },
      { kind: 'event_match', key: 'type', pattern: 'm.room.message' },
    ]);
    assert.equal(byId(rs.global.content, '.m.rule.contains_user_name').pattern, 'alice');
  });

  it('returns fresh objects each call', () => {
    const a = defaultPushRules(ALICE);
    a.global.override[1].actions.push('notify');
    assert.deepEqual(defaultPushRules(ALICE).global.override[1].actions, []);
  });

  it('extracts localparts', () => {
    assert.equal(localpartOf('@bob.smith:example.org:8448'), 'bob.smith');
    assert.equal(localpartOf('@x:y'), 'x');
  });
});
