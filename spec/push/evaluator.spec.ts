import { assert } from '../helpers/assert.js';
import { defaultPushRules, type PushCondition } from '../../src/push/default-rules.js';
import {
  PushEvaluator,
  evaluatePushRules,
  globToRegexSource,
  parseDottedPath,
  type PushContext,
  type PushEvent,
} from '../../src/push/evaluator.js';
import { addRule, effectiveRuleset, emptyUserPushRules, setEnabled } from '../../src/push/ruleset.js';
import type { JsonObject } from '../../src/protocol/types.js';

const ALICE = '@alice:example.org';
const BOB = '@bob:example.org';
const ROOM = '!room:example.org';

type CtxOverrides = Partial<Omit<PushContext, 'event'>> & { event?: Partial<PushEvent> };

function ctx(over: CtxOverrides = {}): PushContext {
  const { event, ...rest } = over;
  return {
    userId: ALICE,
    displayName: 'Alice Liddell',
    roomMemberCount: 5,
    senderPowerLevel: 0,
    notificationPowerLevels: {},
    ...rest,
    event: { type: 'm.room.message', sender: BOB, room_id: ROOM, content: { msgtype: 'm.text', body: 'hello' }, ...event },
  };
}

const withContent = (content: JsonObject, over: CtxOverrides = {}): PushContext =>
  ctx({ ...over, event: { ...over.event, content } });

describe('push: evaluator', () => {
  const ev = new PushEvaluator();
  const matches = (c: PushCondition, context: PushContext): boolean => ev.conditionMatches(c, context);

  describe('helpers', () => {
    it('parses dotted paths with escapes', () => {
      assert.deepEqual(parseDottedPath('content.body'), ['content', 'body']);
      assert.deepEqual(parseDottedPath('content.m\\.relates_to.rel_type'), ['content', 'm.relates_to', 'rel_type']);
      assert.deepEqual(parseDottedPath('content.m\\\\foo'), ['content', 'm\\foo']);
      assert.deepEqual(parseDottedPath('content.a\\xb'), ['content', 'a\\xb']);
    });

    it('escapes regex metacharacters in globs', () => {
      assert.equal(globToRegexSource('a.b*c?(d)'), 'a\\.b.*?c.\\(d\\)');
    });
  });

  describe('event_match', () => {
    const topic = (pattern: string, value: unknown): boolean =>
      matches(
        { kind: 'event_match', key: 'content.topic', pattern },
        ctx({ event: { type: 'm.room.topic', state_key: '', content: { topic: value } as JsonObject } }),
      );

    it('matches the whole value with * and ? case-insensitively', () => {
      assert.equal(topic('lunc?*', 'Lunch plans'), true);
      assert.equal(topic('lunc?*', 'LUNCH'), true);
      assert.equal(topic('lunc?*', ' lunch'), false);
      assert.equal(topic('lunc?*', 'lunc'), false);
      assert.equal(topic('lunch', 'lunch plans'), false);
      assert.equal(topic('*plans', 'Lunch plans'), true);
      assert.equal(topic('a.c', 'abc'), false); // dots are literal
      assert.equal(topic('*', 'line1\nline2'), true);
    });

    it('never matches non-string or absent values, even with *', () => {
      assert.equal(topic('*', null), false);
      assert.equal(topic('*', 5), false);
      assert.equal(topic('*', ['x']), false);
      assert.equal(matches({ kind: 'event_match', key: 'content.nope', pattern: '*' }, ctx()), false);
      assert.equal(matches({ kind: 'event_match', key: 'state_key', pattern: '*' }, ctx()), false);
    });

    it('matches top-level fields and empty state keys', () => {
      assert.equal(matches({ kind: 'event_match', key: 'type', pattern: 'm.room.*' }, ctx()), true);
      assert.equal(matches({ kind: 'event_match', key: 'sender', pattern: '@bob:*' }, ctx()), true);
      assert.equal(matches({ kind: 'event_match', key: 'room_id', pattern: ROOM }, ctx()), true);
      const tomb = ctx({ event: { type: 'm.room.tombstone', state_key: '' } });
      assert.equal(matches({ kind: 'event_match', key: 'state_key', pattern: '' }, tomb), true);
      const notEmpty = ctx({ event: { type: 'm.room.tombstone', state_key: 'x' } });
      assert.equal(matches({ kind: 'event_match', key: 'state_key', pattern: '' }, notEmpty), false);
    });

    it('matches content.body at word boundaries anywhere', () => {
      const body = (pattern: string, text: string): boolean =>
        matches({ kind: 'event_match', key: 'content.body', pattern }, withContent({ body: text }));
      assert.equal(body('alice', 'hi alice!'), true);
      assert.equal(body('alice', 'ALICE'), true);
      assert.equal(body('alice', 'malice'), false);
      assert.equal(body('alice', 'alice_b'), false);
      assert.equal(body('alice', 'alice2'), false);
      assert.equal(body('ex*ple', 'An example event.'), true);
      assert.equal(body('ex*ple', 'exple'), true);
      assert.equal(body('ex*ple', 'An exciting triple-whammy'), true);
      assert.equal(body('@room', 'hey @room look'), true);
      assert.equal(body('@room', 'hey @roommates'), false);
      assert.equal(body('cake*lie', 'the cake is a lie'), true);
      assert.equal(body('ca?e', 'cake'), true);
      assert.equal(body('ca?e', 'cae'), false);
    });

    it('follows escaped dotted keys', () => {
      const c = withContent({ 'm.relates_to': { rel_type: 'm.thread' } });
      assert.equal(matches({ kind: 'event_match', key: 'content.m\\.relates_to.rel_type', pattern: 'm.thread' }, c), true);
      assert.equal(matches({ kind: 'event_match', key: 'content.m.relates_to.rel_type', pattern: 'm.thread' }, c), false);
    });
  });

  describe('event_property_is / event_property_contains', () => {
    const c = withContent({
      'm.federate': true,
      n: 3,
      s: 'x',
      z: null,
      'm.mentions': { user_ids: [ALICE, 7, null, false] },
    });
    const is = (key: string, value: string | number | boolean | null): boolean =>
      matches({ kind: 'event_property_is', key, value }, c);
    const contains = (key: string, value: string | number | boolean | null): boolean =>
      matches({ kind: 'event_property_contains', key, value }, c);

    it('matches exact scalars without casting', () => {
      assert.equal(is('content.m\\.federate', true), true);
      assert.equal(is('content.m\\.federate', 'true'), false);
      assert.equal(is('content.m\\.federate', 1), false);
      assert.equal(is('content.n', 3), true);
      assert.equal(is('content.n', '3'), false);
      assert.equal(is('content.s', 'X'), false); // exact, not case-insensitive
      assert.equal(is('content.z', null), true);
      assert.equal(is('content.missing', null), false);
      assert.equal(is('content.m\\.mentions', null), false); // compound values never match
    });

    it('matches array membership', () => {
      assert.equal(contains('content.m\\.mentions.user_ids', ALICE), true);
      assert.equal(contains('content.m\\.mentions.user_ids', BOB), false);
      assert.equal(contains('content.m\\.mentions.user_ids', 7), true);
      assert.equal(contains('content.m\\.mentions.user_ids', null), true);
      assert.equal(contains('content.m\\.mentions.user_ids', '@alice'), false);
      assert.equal(contains('content.s', 'x'), false); // not an array
      assert.equal(contains('content.missing', 'x'), false);
    });
  });

  describe('contains_display_name', () => {
    const dn = (body: unknown, displayName: string | null = 'Alice'): boolean =>
      matches({ kind: 'contains_display_name' }, withContent({ body } as JsonObject, { displayName }));

    it('matches the display name at word boundaries, case-insensitively', () => {
      assert.equal(dn('hi alice!'), true);
      assert.equal(dn('ALICE: ping'), true);
      assert.equal(dn('malice'), false);
      assert.equal(dn('Alice2'), false);
      assert.equal(dn('hi Dr. A.*', 'Dr. A.*'), true); // no wildcard or regex semantics
      assert.equal(dn('hi Dr. AB', 'Dr. A.*'), false);
    });

    it('never matches an empty or null display name or a non-string body', () => {
      assert.equal(dn('anything', ''), false);
      assert.equal(dn('anything', null), false);
      assert.equal(dn(42), false);
    });
  });

  describe('room_member_count', () => {
    const count = (is: string, n: number): boolean => matches({ kind: 'room_member_count', is }, ctx({ roomMemberCount: n }));
    it('supports every operator, == by default', () => {
      assert.equal(count('2', 2), true);
      assert.equal(count('2', 3), false);
      assert.equal(count('==2', 2), true);
      assert.equal(count('<2', 1), true);
      assert.equal(count('<2', 2), false);
      assert.equal(count('>2', 3), true);
      assert.equal(count('>2', 2), false);
      assert.equal(count('<=2', 2), true);
      assert.equal(count('<=2', 3), false);
      assert.equal(count('>=2', 2), true);
      assert.equal(count('>=2', 1), false);
      assert.equal(count('~2', 2), false);
      assert.equal(count('', 0), false);
    });
  });

  describe('sender_notification_permission', () => {
    const perm = (pl: number, levels: Record<string, number> = {}, key = 'room'): boolean =>
      matches({ kind: 'sender_notification_permission', key }, ctx({ senderPowerLevel: pl, notificationPowerLevels: levels }));
    it('compares the sender power level with the notification level (room defaults to 50)', () => {
      assert.equal(perm(50), true);
      assert.equal(perm(49), false);
      assert.equal(perm(10, { room: 10 }), true);
      assert.equal(perm(9, { room: 10 }), false);
      assert.equal(perm(100, {}, 'other'), false); // unknown key without a level
      assert.equal(perm(20, { other: 20 }, 'other'), true);
    });
  });

  it('unknown condition kinds never match, so the rule does not apply', () => {
    assert.equal(matches({ kind: 'org.example.always' }, ctx()), false);
    const u = addRule(emptyUserPushRules(), 'override', 'future', { actions: ['notify', { set_tweak: 'highlight' }], conditions: [{ kind: 'org.example.always' }] });
    const r = ev.evaluate(effectiveRuleset(ALICE, u), ctx());
    assert.equal(r.ruleId, '.m.rule.message');
    assert.equal(r.highlight, false);
  });

  describe('end to end with the default rules', () => {
    const rules = defaultPushRules(ALICE);
    const run = (c: PushContext) => ev.evaluate(rules, c);

    it('a one-to-one message notifies with sound', () => {
      const r = run(ctx({ roomMemberCount: 2 }));
      assert.deepEqual(r, { actions: ['notify', { set_tweak: 'sound', value: 'default' }], notify: true, highlight: false, sound: 'default', ruleId: '.m.rule.room_one_to_one', kind: 'underride' });
    });

    it('a message in a 5-member room notifies without sound', () => {
      const r = run(ctx());
      assert.equal(r.notify, true);
      assert.equal(r.sound, undefined);
      assert.equal(r.highlight, false);
      assert.equal(r.ruleId, '.m.rule.message');
    });

    it('an m.mentions mention highlights; legacy body rules are skipped when m.mentions is present', () => {
      const r = run(withContent({ msgtype: 'm.text', body: 'hey', 'm.mentions': { user_ids: [ALICE] } }));
      assert.equal(r.ruleId, '.m.rule.is_user_mention');
      assert.deepEqual([r.notify, r.highlight, r.sound], [true, true, 'default']);
      const other = run(withContent({ msgtype: 'm.text', body: 'alice and Alice Liddell', 'm.mentions': { user_ids: [BOB] } }));
      assert.equal(other.ruleId, '.m.rule.message');
      assert.equal(other.highlight, false);
    });

    it('legacy rules still fire for events without m.mentions', () => {
      assert.equal(run(withContent({ body: 'ping Alice Liddell' })).ruleId, '.m.rule.contains_display_name');
      assert.equal(run(withContent({ body: 'ping alice' })).ruleId, '.m.rule.contains_user_name');
      const room = run(withContent({ body: '@room hi' }, { senderPowerLevel: 50 }));
      assert.deepEqual([room.ruleId, room.highlight, room.sound], ['.m.rule.roomnotif', true, undefined]);
      assert.equal(run(withContent({ body: '@room hi' })).ruleId, '.m.rule.message'); // no permission
    });

    it('a room mention needs notification permission', () => {
      const mention = { body: 'all', 'm.mentions': { room: true } };
      assert.equal(run(withContent(mention, { senderPowerLevel: 50 })).ruleId, '.m.rule.is_room_mention');
      assert.equal(run(withContent(mention)).ruleId, '.m.rule.message');
    });

    it('m.notice is suppressed', () => {
      const r = run(withContent({ msgtype: 'm.notice', body: 'alice' }));
      assert.deepEqual([r.ruleId, r.notify, r.highlight], ['.m.rule.suppress_notices', false, false]);
    });

    it('a reaction does not notify', () => {
      const r = run(ctx({ event: { type: 'm.reaction', content: { 'm.relates_to': { rel_type: 'm.annotation', event_id: '$x', key: '👍' } } } }));
      assert.deepEqual([r.ruleId, r.notify], ['.m.rule.reaction', false]);
    });

    it('an edit (m.replace) does not notify', () => {
      const r = run(withContent({ msgtype: 'm.text', body: '* fixed', 'm.new_content': { body: 'fixed' }, 'm.relates_to': { rel_type: 'm.replace', event_id: '$x' } }, { roomMemberCount: 2 }));
      assert.deepEqual([r.ruleId, r.notify], ['.m.rule.suppress_edits', false]);
    });

    it('an invite for me notifies with sound; other member events do not', () => {
      const invite = run(ctx({ event: { type: 'm.room.member', state_key: ALICE, content: { membership: 'invite' } } }));
      assert.deepEqual([invite.ruleId, invite.notify, invite.sound], ['.m.rule.invite_for_me', true, 'default']);
      const other = run(ctx({ event: { type: 'm.room.member', state_key: '@carol:x', content: { membership: 'invite' } } }));
      assert.deepEqual([other.ruleId, other.notify], ['.m.rule.member_event', false]);
    });

    it('calls ring, encrypted events notify, tombstones highlight, unknown events do not match', () => {
      assert.equal(run(ctx({ event: { type: 'm.call.invite', content: {} } })).sound, 'ring');
      assert.equal(run(ctx({ event: { type: 'm.room.encrypted', content: {} }, roomMemberCount: 2 })).ruleId, '.m.rule.encrypted_room_one_to_one');
      assert.equal(run(ctx({ event: { type: 'm.room.encrypted', content: {} } })).ruleId, '.m.rule.encrypted');
      assert.equal(run(ctx({ event: { type: 'm.room.tombstone', state_key: '', content: {} } })).highlight, true);
      const none = run(ctx({ event: { type: 'org.example.thing', content: {} } }));
      assert.deepEqual(none, { actions: [], notify: false, highlight: false });
    });

    it('never notifies for the user\'s own events', () => {
      const r = run(withContent({ body: 'alice', 'm.mentions': { user_ids: [ALICE] } }, { event: { sender: ALICE }, roomMemberCount: 2 }));
      assert.deepEqual(r, { actions: [], notify: false, highlight: false });
    });

    it('respects master, disabled rules, room/sender rules and dont_notify', () => {
      let u = setEnabled(emptyUserPushRules(), 'override', '.m.rule.master', true);
      assert.equal(ev.evaluate(effectiveRuleset(ALICE, u), ctx({ roomMemberCount: 2 })).ruleId, '.m.rule.master');
      u = setEnabled(emptyUserPushRules(), 'underride', '.m.rule.message', false);
      assert.equal(ev.evaluate(effectiveRuleset(ALICE, u), ctx()).notify, false);
      u = addRule(emptyUserPushRules(), 'room', ROOM, { actions: [] });
      assert.deepEqual([ev.evaluate(effectiveRuleset(ALICE, u), ctx()).ruleId], [ROOM]);
      u = addRule(emptyUserPushRules(), 'sender', BOB, { actions: ['notify', { set_tweak: 'highlight', value: false }] });
      const s = ev.evaluate(effectiveRuleset(ALICE, u), ctx());
      assert.deepEqual([s.ruleId, s.notify, s.highlight], [BOB, true, false]);
      const legacy = defaultPushRules(ALICE);
      legacy.global.underride[3].actions = ['dont_notify'];
      assert.deepEqual(evaluatePushRules(legacy, ctx()), { actions: [], notify: false, highlight: false, ruleId: '.m.rule.message', kind: 'underride' });
    });
  });

  describe('cache', () => {
    it('stays bounded', () => {
      const small = new PushEvaluator({ maxPatterns: 20 });
      for (let i = 0; i < 100; i++) small.glob(`p${i}*`, false);
      assert.ok(small.cachedPatternCount <= 20);
      assert.equal(small.glob('p99*', false).test('P99x'), true);
    });
  });

  it('micro-benchmark: one message evaluated for 1,000 users (printed, not asserted)', function () {
    this.timeout(60_000);
    const users = Array.from({ length: 1000 }, (_, i) => `@user${i}:example.org`);
    const rulesets = users.map((u) => defaultPushRules(u));
    const evaluator = new PushEvaluator();
    const event: PushEvent = {
      type: 'm.room.message',
      sender: BOB,
      room_id: ROOM,
      content: { msgtype: 'm.text', body: 'Hello everyone, the meeting moved to 3pm — see the agenda for details.' },
    };
    const contexts = users.map((userId, i): PushContext => ({
      event,
      userId,
      displayName: `User Number ${i}`,
      roomMemberCount: 1000,
      senderPowerLevel: 0,
      notificationPowerLevels: { room: 50 },
    }));
    const fanOut = (): number => {
      let notified = 0;
      for (let i = 0; i < users.length; i++) if (evaluator.evaluate(rulesets[i], contexts[i]).notify) notified++;
      return notified;
    };
    const t0 = process.hrtime.bigint();
    const coldNotified = fanOut();
    const coldMs = Number(process.hrtime.bigint() - t0) / 1e6;
    for (let r = 0; r < 10; r++) fanOut(); // let the JIT settle before timing steady state
    const rounds = 50;
    const t1 = process.hrtime.bigint();
    for (let r = 0; r < rounds; r++) fanOut();
    const warmMs = Number(process.hrtime.bigint() - t1) / 1e6 / rounds;
    assert.equal(coldNotified, 1000);
    console.log(
      `      push bench: 1,000 users x 1 message — cold ${coldMs.toFixed(2)} ms, warm ${warmMs.toFixed(3)} ms/fan-out ` +
        `(${((warmMs * 1000) / users.length).toFixed(2)} µs/user, mean of ${rounds}), ${evaluator.cachedPatternCount} patterns cached`,
    );
  });
});
