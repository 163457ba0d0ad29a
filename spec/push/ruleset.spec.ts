import { assert } from '../helpers/assert.js';
import {
  PushRuleError,
  addRule,
  deleteRule,
  effectiveRuleset,
  emptyUserPushRules,
  getRule,
  parseUserPushRules,
  serialiseUserPushRules,
  setActions,
  setEnabled,
  type UserPushRules,
} from '../../src/push/ruleset.js';
import type { JsonValue } from '../../src/protocol/types.js';

const ALICE = '@alice:example.org';
const NOTIFY = { actions: ['notify'] };

function expectError(fn: () => unknown, errcode: string, status?: number): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof PushRuleError, `expected PushRuleError, got ${String(e)}`);
    assert.equal(e.errcode, errcode, e.message);
    if (status !== undefined) assert.equal(e.status, status);
    assert.ok(e.message.length > 0);
    return true;
  });
}

const ids = (user: UserPushRules, kind: 'override' | 'content' | 'room' | 'sender' | 'underride'): string[] =>
  effectiveRuleset(ALICE, user).global[kind].map((r) => r.rule_id);

describe('push: user ruleset', () => {
  it('an empty customisation yields exactly the defaults', () => {
    const rs = effectiveRuleset(ALICE, emptyUserPushRules());
    assert.equal(rs.global.override[0].rule_id, '.m.rule.master');
    assert.equal(rs.global.override.length, 12);
    assert.equal(rs.global.underride.length, 5);
  });

  it('puts user override rules right after master, newest first', () => {
    let u = addRule(emptyUserPushRules(), 'override', 'first', { conditions: [], actions: [] });
    u = addRule(u, 'override', 'second', { conditions: [], actions: ['notify'] });
    const o = ids(u, 'override');
    assert.deepEqual(o.slice(0, 4), ['.m.rule.master', 'second', 'first', '.m.rule.suppress_notices']);
    const second = effectiveRuleset(ALICE, u).global.override[1];
    assert.deepEqual(second, { rule_id: 'second', default: false, enabled: true, actions: ['notify'], conditions: [] });
  });

  it('puts user content/room/sender/underride rules before the defaults of their kind', () => {
    let u = addRule(emptyUserPushRules(), 'underride', 'u1', { conditions: [{ kind: 'event_match', key: 'type', pattern: 'x' }], ...NOTIFY });
    u = addRule(u, 'content', 'cake', { pattern: 'cake', ...NOTIFY });
    u = addRule(u, 'room', '!room:example.org', { actions: [] });
    u = addRule(u, 'sender', '@spam:example.org', { actions: [] });
    assert.deepEqual(ids(u, 'underride')[0], 'u1');
    assert.deepEqual(ids(u, 'content'), ['cake', '.m.rule.contains_user_name']);
    assert.deepEqual(ids(u, 'room'), ['!room:example.org']);
    assert.deepEqual(ids(u, 'sender'), ['@spam:example.org']);
    const rs = effectiveRuleset(ALICE, u);
    assert.deepEqual(rs.global.content[0], { rule_id: 'cake', default: false, enabled: true, actions: ['notify'], pattern: 'cake' });
    assert.deepEqual(rs.global.room[0], { rule_id: '!room:example.org', default: false, enabled: true, actions: [] });
  });

  it('honours before and after (before wins when both are given)', () => {
    let u = addRule(emptyUserPushRules(), 'content', 'a', { pattern: 'a', ...NOTIFY });
    u = addRule(u, 'content', 'c', { pattern: 'c', ...NOTIFY }, { after: 'a' });
    u = addRule(u, 'content', 'b', { pattern: 'b', ...NOTIFY }, { before: 'c' });
    u = addRule(u, 'content', 'd', { pattern: 'd', ...NOTIFY }, { before: 'a', after: 'c' });
    assert.deepEqual(ids(u, 'content'), ['d', 'a', 'b', 'c', '.m.rule.contains_user_name']);
    // moving an existing rule
    u = addRule(u, 'content', 'd', { pattern: 'd2', ...NOTIFY }, { after: 'c' });
    assert.deepEqual(ids(u, 'content'), ['a', 'b', 'c', 'd', '.m.rule.contains_user_name']);
    assert.equal(getRule(ALICE, u, 'content', 'd').pattern, 'd2');
  });

  it('rejects before/after naming a missing or default rule with M_NOT_FOUND', () => {
    const u = addRule(emptyUserPushRules(), 'content', 'a', { pattern: 'a', ...NOTIFY });
    expectError(() => addRule(u, 'content', 'b', { pattern: 'b', ...NOTIFY }, { before: 'nope' }), 'M_NOT_FOUND', 404);
    expectError(() => addRule(u, 'content', 'b', { pattern: 'b', ...NOTIFY }, { after: '.m.rule.contains_user_name' }), 'M_NOT_FOUND');
    // a rule of another kind does not count
    expectError(() => addRule(u, 'override', 'b', NOTIFY, { after: 'a' }), 'M_NOT_FOUND');
  });

  it('updates an existing rule in place, keeping its enabled state', () => {
    let u = addRule(emptyUserPushRules(), 'override', 'x', NOTIFY);
    u = addRule(u, 'override', 'y', NOTIFY);
    u = setEnabled(u, 'override', 'x', false);
    u = addRule(u, 'override', 'x', { actions: [], conditions: [{ kind: 'room_member_count', is: '>2' }] });
    assert.deepEqual(ids(u, 'override').slice(0, 3), ['.m.rule.master', 'y', 'x']);
    assert.deepEqual(getRule(ALICE, u, 'override', 'x'), {
      rule_id: 'x',
      default: false,
      enabled: false,
      actions: [],
      conditions: [{ kind: 'room_member_count', is: '>2' }],
    });
  });

  it('validates rule IDs and kind-specific fields', () => {
    const e = emptyUserPushRules();
    expectError(() => addRule(e, 'override', '.m.rule.mine', NOTIFY), 'M_INVALID_PARAM', 400);
    expectError(() => addRule(e, 'override', 'a/b', NOTIFY), 'M_INVALID_PARAM');
    expectError(() => addRule(e, 'override', '', NOTIFY), 'M_INVALID_PARAM');
    expectError(() => addRule(e, 'global', 'x', NOTIFY), 'M_INVALID_PARAM');
    expectError(() => addRule(e, 'content', 'x', NOTIFY), 'M_BAD_JSON'); // pattern required
    expectError(() => addRule(e, 'content', 'x', { pattern: 5, ...NOTIFY }), 'M_BAD_JSON');
    expectError(() => addRule(e, 'override', 'x', { pattern: 'p', ...NOTIFY }), 'M_INVALID_PARAM');
    expectError(() => addRule(e, 'sender', 'bob', NOTIFY), 'M_INVALID_PARAM');
    expectError(
      () => addRule(e, 'room', '!r:x', { actions: [], conditions: [{ kind: 'event_match', key: 'a', pattern: 'b' }] }),
      'M_INVALID_PARAM',
    );
    expectError(() => addRule(e, 'sender', '@b:x', { actions: [], pattern: 'x' }), 'M_INVALID_PARAM');
    expectError(() => addRule(e, 'override', 'x', 'nope'), 'M_BAD_JSON');
    expectError(() => addRule(e, 'override', 'x', {}), 'M_BAD_JSON');
    expectError(() => addRule(e, 'override', 'x', { actions: 'notify' }), 'M_BAD_JSON');
    expectError(() => addRule(e, 'override', 'x', { actions: ['explode'] }), 'M_INVALID_PARAM');
    expectError(() => addRule(e, 'override', 'x', { actions: [{ value: 1 }] }), 'M_BAD_JSON');
    expectError(() => addRule(e, 'override', 'x', { actions: [], conditions: {} }), 'M_BAD_JSON');
    expectError(() => addRule(e, 'override', 'x', { actions: [], conditions: [{ key: 'a' }] }), 'M_BAD_JSON');
    expectError(() => addRule(e, 'override', 'x', { actions: [], conditions: [{ kind: 'event_match', key: 'a' }] }), 'M_BAD_JSON');
    expectError(
      () => addRule(e, 'override', 'x', { actions: [], conditions: [{ kind: 'event_property_is', key: 'a', value: {} }] }),
      'M_BAD_JSON',
    );
    expectError(() => addRule(e, 'override', 'x', { actions: [], conditions: [{ kind: 'room_member_count', is: '~2' }] }), 'M_INVALID_PARAM');
    expectError(() => addRule(e, 'override', 'x', NOTIFY, { before: 'x' }), 'M_INVALID_PARAM');
  });

  it('room rules accept any rule ID (one that is no room ID never matches)', () => {
    const u = addRule(emptyUserPushRules(), 'room', '#a:example.com', NOTIFY);
    assert.deepEqual(ids(u, 'room'), ['#a:example.com']);
  });

  it('accepts unknown condition kinds and keeps historical actions as sent', () => {
    const u = addRule(emptyUserPushRules(), 'override', 'future', {
      actions: ['dont_notify', 'coalesce', 'notify', { set_tweak: 'sound', value: 'x' }],
      conditions: [{ kind: 'org.example.future', foo: 1 }],
    });
    const r = getRule(ALICE, u, 'override', 'future');
    assert.deepEqual(r.actions, ['dont_notify', 'coalesce', 'notify', { set_tweak: 'sound', value: 'x' }]);
    assert.deepEqual(r.conditions, [{ kind: 'org.example.future', foo: 1 }]);
  });

  it('never mutates its input', () => {
    const e = emptyUserPushRules();
    const snapshot = JSON.stringify(e);
    const u = addRule(e, 'override', 'x', NOTIFY);
    setEnabled(u, 'override', 'x', false);
    setActions(u, 'override', '.m.rule.master', ['notify']);
    deleteRule(u, 'override', 'x');
    assert.equal(JSON.stringify(e), snapshot);
    assert.equal(getRule(ALICE, u, 'override', 'x').enabled, true);
  });

  it('deletes user rules; refuses defaults and unknown rules', () => {
    let u = addRule(emptyUserPushRules(), 'sender', '@spam:example.org', { actions: [] });
    u = deleteRule(u, 'sender', '@spam:example.org');
    assert.deepEqual(ids(u, 'sender'), []);
    expectError(() => deleteRule(u, 'sender', '@spam:example.org'), 'M_NOT_FOUND', 404);
    expectError(() => deleteRule(u, 'override', '.m.rule.master'), 'M_INVALID_PARAM');
    expectError(() => deleteRule(u, 'nope', 'x'), 'M_INVALID_PARAM');
  });

  it('enables/disables and re-actions default rules as stored deltas', () => {
    let u = setEnabled(emptyUserPushRules(), 'override', '.m.rule.master', true);
    u = setActions(u, 'underride', '.m.rule.message', ['notify', { set_tweak: 'sound', value: 'default' }]);
    u = setEnabled(u, 'content', '.m.rule.contains_user_name', false);
    const rs = effectiveRuleset(ALICE, u);
    assert.equal(rs.global.override[0].enabled, true);
    const msg = rs.global.underride.find((r) => r.rule_id === '.m.rule.message');
    assert.deepEqual(msg?.actions, ['notify', { set_tweak: 'sound', value: 'default' }]);
    assert.equal(msg?.default, true);
    assert.equal(rs.global.content[0].enabled, false);
    // restoring the default value drops the delta
    u = setEnabled(u, 'override', '.m.rule.master', false);
    assert.equal(u.defaults.override['.m.rule.master'], undefined);
    assert.equal(getRule(ALICE, u, 'override', '.m.rule.master').enabled, false);
  });

  it('reports unknown rules and bad values on enabled/actions', () => {
    const e = emptyUserPushRules();
    expectError(() => setEnabled(e, 'override', '.m.rule.nonexistent', true), 'M_NOT_FOUND');
    expectError(() => setEnabled(e, 'content', '.m.rule.master', true), 'M_NOT_FOUND'); // wrong kind
    expectError(() => setEnabled(e, 'override', '.m.rule.master', 'yes'), 'M_BAD_JSON');
    expectError(() => setActions(e, 'override', '.m.rule.master', 'notify'), 'M_BAD_JSON');
    expectError(() => getRule(ALICE, e, 'room', '!nope:x'), 'M_NOT_FOUND');
  });

  it('round-trips through JSON account data and drops damaged entries', () => {
    let u = addRule(emptyUserPushRules(), 'content', 'cake', { pattern: 'cake', ...NOTIFY });
    u = addRule(u, 'override', 'o', { actions: [], conditions: [{ kind: 'contains_display_name' }] });
    u = setEnabled(u, 'override', 'o', false);
    u = setEnabled(u, 'override', '.m.rule.suppress_notices', false);
    const json = JSON.parse(JSON.stringify(serialiseUserPushRules(u))) as JsonValue;
    assert.deepEqual(parseUserPushRules(json), u);

    // JSON.parse makes __proto__ an own key, as stored account data would.
    const damaged = JSON.parse(
      JSON.stringify({
        rules: { content: [{ rule_id: 'nopattern', actions: [] }, { rule_id: '.evil', pattern: 'x', actions: [] }], room: 'x' },
        defaults: { override: { '.m.rule.nope': { enabled: true }, '.m.rule.master': { enabled: true, actions: 'x' } } },
      }).replace('"defaults":{"override":{', '"defaults":{"override":{"__proto__":{"enabled":true},'),
    ) as JsonValue;
    const parsed = parseUserPushRules(damaged);
    assert.deepEqual(parsed.rules.content, []);
    assert.deepEqual(parsed.defaults.override, { '.m.rule.master': { enabled: true } });
    assert.deepEqual(parseUserPushRules(null), emptyUserPushRules());
  });
});

describe('copyRoomRules (room upgrades)', () => {
  it('twins every rule named after the old room, before it, with room_id conditions re-pointed; other rules and conditions untouched', async () => {
    const { addRule, copyRoomRules, emptyUserPushRules } = await import('../../src/push/ruleset.js');
    let u = emptyUserPushRules();
    u = addRule(u, 'room', '!old:hs', { actions: ['notify'] });
    u = addRule(u, 'room', '!other:hs', { actions: [] });
    u = addRule(u, 'override', '!old:hs', {
      actions: [],
      conditions: [
        { kind: 'event_match', key: 'room_id', pattern: '!old:hs' },
        { kind: 'event_match', key: 'content.body', pattern: '!old:hs' },
      ],
    });
    const next = copyRoomRules(u, '!old:hs', '!new:hs');
    const roomIds = next.rules.room.map((r) => r.rule_id);
    assert.ok(roomIds.indexOf('!new:hs') === roomIds.indexOf('!old:hs') - 1, roomIds.join(' '));
    assert.deepEqual(next.rules.override[0].conditions, [
      { kind: 'event_match', key: 'room_id', pattern: '!new:hs' },
      { kind: 'event_match', key: 'content.body', pattern: '!old:hs' },
    ]);
    assert.equal(next.rules.override.length, 2);
    assert.equal(u.rules.room.length, 2, 'the input is not changed');
    assert.deepEqual(copyRoomRules(next, '!old:hs', '!new:hs'), next, 'a second copy adds nothing');
  });
});
