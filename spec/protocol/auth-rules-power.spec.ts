import { assert } from '../helpers/assert.js';
import {
  actionPowerLevel,
  AuthError,
  authStateFromEvents,
  checkAuthEventsSelection,
  checkEventAuth,
  creatorOf,
  joinRuleOf,
  mayApplyRedaction,
  membershipOf,
  notificationPowerLevel,
  powerLevelOf,
  redactionTargetOf,
  requiredPowerLevel,
} from '../../src/protocol/auth-rules.js';
import type { JsonObject, Pdu, RoomVersion } from '../../src/protocol/types.js';
import { ALICE, BOB, CAROL, DAVE, TestRoom } from './auth-room.js';

const VERSIONS: RoomVersion[] = ['10', '11'];

for (const version of VERSIONS) {
  describe(`protocol/auth-rules v${version}: power levels and sending`, () => {
    const room3 = (users: JsonObject = {}) => {
      const room = TestRoom.standard(version, 'public', users);
      room.member(BOB, 'join');
      room.member(CAROL, 'join');
      return room;
    };

    it('non-members cannot send', () => {
      const room = TestRoom.standard(version, 'public');
      room.reject(BOB, 'm.room.message', { body: 'hi' }, undefined, /not joined/);
    });

    it('messages below events_default are rejected; events overrides apply', () => {
      const room = room3({ [BOB]: 5 });
      room.send(BOB, 'm.room.message', { body: 'ok' });
      room.powerLevels(ALICE, { ...room.currentPowerLevels(), events_default: 10 });
      room.reject(BOB, 'm.room.message', { body: 'no' }, undefined, /needs power level 10; @bob:b.org has 5/);
      room.powerLevels(ALICE, { ...room.currentPowerLevels(), events: { 'm.room.message': 0, 'm.room.power_levels': 100 } });
      room.send(BOB, 'm.room.message', { body: 'ok again' });
      room.reject(BOB, 'm.reaction', { body: 'no' }, undefined, /needs power level 10/);
    });

    it('state below state_default is rejected; m.room.aliases is ordinary state', () => {
      const room = room3({ [BOB]: 49 });
      room.reject(BOB, 'm.room.topic', { topic: 't' }, '', /needs power level 50/);
      room.reject(BOB, 'm.room.aliases', { aliases: ['#a:b.org'] }, 'b.org', /needs power level 50/);
      room.send(ALICE, 'm.room.topic', { topic: 't' }, '');
      room.powerLevels(ALICE, { ...room.currentPowerLevels(), state_default: 40 });
      room.send(BOB, 'm.room.topic', { topic: 'u' }, '');
    });

    it('a state_key naming another user is reserved for that user', () => {
      const room = room3({ [BOB]: 50 });
      room.reject(BOB, 'org.example.user_state', { a: 1 }, CAROL, /state_key names another user/);
      room.reject(BOB, 'org.example.user_state', { a: 1 }, '@notauser', /state_key names another user/);
      room.send(BOB, 'org.example.user_state', { a: 1 }, BOB);
      room.send(BOB, 'org.example.user_state', { a: 1 }, 'notauser@b.org');
    });

    it('users may not change levels above their own', () => {
      const room = room3({ [BOB]: 50, [DAVE]: 50 });
      room.member(DAVE, 'join');
      const pl = () => room.currentPowerLevels();
      const users = () => pl().users as JsonObject;
      room.powerLevels(ALICE, { ...pl(), events: { 'm.room.power_levels': 50 } });
      room.reject(BOB, 'm.room.power_levels', { ...pl(), users_default: 60 }, '', /users_default/);
      room.reject(BOB, 'm.room.power_levels', { ...pl(), users: { ...users(), [CAROL]: 60 } }, '', /power level of @carol/);
      room.reject(BOB, 'm.room.power_levels', { ...pl(), users: { ...users(), [ALICE]: 0 } }, '', /not below the sender's level/);
      room.reject(BOB, 'm.room.power_levels', { ...pl(), users: { ...users(), [DAVE]: 0 } }, '', /not below the sender's level/);
      room.reject(BOB, 'm.room.power_levels', { ...pl(), ban: 51 }, '', /ban/);
      room.reject(BOB, 'm.room.power_levels', { ...pl(), events: { 'm.room.power_levels': 50, 'm.room.name': 51 } }, '', /events.m.room.name/);
      const { redact: _r, ...withoutRedact } = pl();
      room.powerLevels(BOB, withoutRedact);
      room.powerLevels(BOB, { ...pl(), users: { ...users(), [CAROL]: 50 }, kick: 40 });
      room.powerLevels(BOB, { ...pl(), users: { ...users(), [BOB]: 10 } });
      room.reject(BOB, 'm.room.power_levels', { ...pl(), users: { ...users(), [BOB]: 50 } }, '', /needs power level 50/);
    });

    it('changing entries whose current value is above the sender is rejected', () => {
      const room = room3({ [BOB]: 50 });
      room.powerLevels(ALICE, { ...room.currentPowerLevels(), events: { 'm.room.power_levels': 50, 'm.room.tombstone': 100 }, notifications: { room: 80 } });
      const pl = room.currentPowerLevels();
      room.reject(BOB, 'm.room.power_levels', { ...pl, events: { 'm.room.power_levels': 50 } }, '', /events.m.room.tombstone/);
      room.reject(BOB, 'm.room.power_levels', { ...pl, notifications: { room: 0 } }, '', /notifications.room/);
      room.powerLevels(ALICE, { ...pl, users: { ...(pl.users as JsonObject), [CAROL]: 100 } });
      room.reject(ALICE, 'm.room.power_levels', { ...room.currentPowerLevels(), users: { [ALICE]: 100, [CAROL]: 50 } }, '', /power level of @carol/);
    });

    it('power level values must be integers', () => {
      const room = room3();
      const pl = room.currentPowerLevels();
      for (const [bad, reason] of [
        [{ ban: '50' }, /ban is not an integer/],
        [{ invite: null }, /invite is not an integer/],
        [{ events: { 'm.room.name': '50' } }, /events must map to integers/],
        [{ events: [] }, /events must map to integers/],
        [{ notifications: { room: '50' } }, /notifications must map to integers/],
        [{ users: { [ALICE]: '100' } }, /not an integer/],
        [{ users: { [ALICE]: 100, 'not-a-user': 1 } }, /invalid user ID/],
        [{ users: [] }, /users is not an object/],
      ] as Array<[JsonObject, RegExp]>) {
        room.reject(ALICE, 'm.room.power_levels', { ...pl, ...bad }, '', reason);
      }
      // Floats have no canonical JSON, so such an event cannot even be signed; auth still says no.
      const valid = room.build(ALICE, 'm.room.power_levels', pl, '');
      for (const bad of [{ users_default: 1.5 }, { events: { x: 0.5 } }, { users: { [ALICE]: 2 ** 53 } }] as JsonObject[]) {
        assert.throws(() => checkEventAuth({ ...valid, content: { ...pl, ...bad } }, version, room.lookup), /integer/);
      }
    });

    it('the first power_levels event is allowed when well-formed', () => {
      const room = new TestRoom(version);
      room.send(ALICE, 'm.room.create', version === '10' ? { room_version: '10', creator: ALICE } : { room_version: '11' }, '');
      room.member(ALICE, 'join');
      room.send(ALICE, 'm.room.power_levels', { users: { [BOB]: 1000 } }, '');
    });

    it('without a power_levels event the creator has 100 and others 0', () => {
      const room = new TestRoom(version);
      room.send(ALICE, 'm.room.create', version === '10' ? { room_version: '10', creator: ALICE } : { room_version: '11' }, '');
      room.member(ALICE, 'join');
      room.send(ALICE, 'm.room.join_rules', { join_rule: 'public' }, '');
      room.member(BOB, 'join');
      room.send(BOB, 'm.room.message', { body: 'hi' });
      room.reject(BOB, 'm.room.name', { name: 'x' }, '', /needs power level 50; @bob:b.org has 0/);
      room.rejectMember(BOB, 'leave', ALICE, /may not kick/);
      room.member(ALICE, 'leave', BOB);
    });

    it('redactions are authorised like any event; applying them is a separate check', () => {
      const room = room3({ [CAROL]: 50 });
      room.member(DAVE, 'join');
      const target = room.send(ALICE, 'm.room.message', { body: 'x' });
      const targetId = 'whatever';
      const content: JsonObject = version === '11' ? { redacts: targetId } : {};
      const extra: JsonObject = version === '10' ? { redacts: targetId } : {};
      const byBob = room.send(BOB, 'm.room.redaction', content, undefined, extra);
      assert.equal(redactionTargetOf(byBob, version), targetId);
      const pl = room.currentPowerLevels();
      const create = room.lookup('m.room.create', '');
      assert.equal(mayApplyRedaction(byBob, target, pl, create, version), false, 'other server, no redact level');
      const byDave = room.send(DAVE, 'm.room.redaction', content, undefined, extra);
      assert.equal(mayApplyRedaction(byDave, target, pl, create, version), true, 'same server as the target sender');
      const byCarol = room.send(CAROL, 'm.room.redaction', content, undefined, extra);
      assert.equal(mayApplyRedaction(byCarol, target, pl, create, version), true, 'has the redact level');
      assert.equal(mayApplyRedaction(byCarol, { ...target, room_id: '!x:a.org' }, pl, create, version), false);
      room.powerLevels(ALICE, { ...pl, events: { 'm.room.power_levels': 100, 'm.room.redaction': 60 } });
      room.reject(CAROL, 'm.room.redaction', content, undefined, /needs power level 60/, extra);
    });
  });
}

describe('protocol/auth-rules: rule 2 (auth events selection)', () => {
  const room = TestRoom.standard('11', 'public');
  room.member(BOB, 'join');
  const get = (t: string, k: string) => room.lookup(t, k)!;

  it('accepts the exact selection, in any order, with entries missing', () => {
    const msg = room.build(BOB, 'm.room.message', { body: 'x' });
    checkAuthEventsSelection(msg, [get('m.room.member', BOB), get('m.room.create', ''), get('m.room.power_levels', '')], '11');
    checkAuthEventsSelection(msg, [get('m.room.create', '')], '11');
  });

  it('rejects duplicates, unexpected entries, a missing create and other rooms', () => {
    const msg = room.build(BOB, 'm.room.message', { body: 'x' });
    const create = get('m.room.create', '');
    assert.throws(() => checkAuthEventsSelection(msg, [create, create], '11'), /duplicate/);
    assert.throws(() => checkAuthEventsSelection(msg, [create, get('m.room.join_rules', '')], '11'), /unexpected/);
    assert.throws(() => checkAuthEventsSelection(msg, [create, get('m.room.member', ALICE)], '11'), /unexpected/);
    assert.throws(() => checkAuthEventsSelection(msg, [get('m.room.power_levels', '')], '11'), /lack the create/);
    assert.throws(() => checkAuthEventsSelection(msg, [{ ...create, room_id: '!o:a.org' }], '11'), /different room/);
    assert.throws(() => checkAuthEventsSelection(msg, [{ ...create, state_key: undefined }], '11'), /not a state event/);
    assert.throws(() => checkAuthEventsSelection(create, [create], '11'), /no auth_events/);
    checkAuthEventsSelection(create, [], '11');
  });

  it('authStateFromEvents turns auth events into a lookup for checkEventAuth', () => {
    const msg = room.build(BOB, 'm.room.message', { body: 'x' });
    const lookup = authStateFromEvents([get('m.room.create', ''), get('m.room.power_levels', ''), get('m.room.member', BOB)]);
    checkEventAuth(msg, '11', lookup);
    assert.throws(() => checkEventAuth(msg, '11', authStateFromEvents([get('m.room.create', '')])), AuthError);
  });
});

describe('protocol/auth-rules: power level helpers', () => {
  const create11 = { sender: ALICE, content: { room_version: '11' } } as unknown as Pdu;
  const create10 = { sender: ALICE, content: { room_version: '10', creator: DAVE } } as unknown as Pdu;

  it('powerLevelOf', () => {
    assert.equal(powerLevelOf(ALICE, undefined, create11), 100);
    assert.equal(powerLevelOf(BOB, undefined, create11), 0);
    assert.equal(powerLevelOf(DAVE, undefined, create10), 100);
    assert.equal(powerLevelOf(ALICE, undefined, create10), 0);
    assert.equal(powerLevelOf(ALICE, undefined, undefined), 0);
    const pl = { users: { [BOB]: 42, ['__proto__']: 7 }, users_default: 3 };
    assert.equal(powerLevelOf(BOB, pl, create11), 42);
    assert.equal(powerLevelOf(ALICE, pl, create11), 3, 'PL event present: creator gets no bonus');
    assert.equal(powerLevelOf(CAROL, {}, create11), 0);
    assert.equal(powerLevelOf('toString', pl, create11), 3);
  });

  it('requiredPowerLevel and actionPowerLevel defaults', () => {
    assert.equal(requiredPowerLevel('m.room.message', undefined, undefined), 0);
    assert.equal(requiredPowerLevel('m.room.name', '', undefined), 50);
    assert.equal(requiredPowerLevel('m.room.name', '', { state_default: 20 }), 20);
    assert.equal(requiredPowerLevel('m.room.message', undefined, { events_default: 5 }), 5);
    assert.equal(requiredPowerLevel('m.room.message', undefined, { events_default: 5, events: { 'm.room.message': 1 } }), 1);
    assert.equal(requiredPowerLevel('constructor', undefined, { events: {} }), 0);
    assert.deepEqual(['invite', 'kick', 'ban', 'redact'].map((a) => actionPowerLevel(a as 'invite', undefined)), [0, 50, 50, 50]);
    assert.equal(actionPowerLevel('kick', { kick: 7 }), 7);
    assert.equal(notificationPowerLevel('room', undefined), 50);
    assert.equal(notificationPowerLevel('room', { notifications: { room: 9 } }), 9);
  });

  it('membershipOf, joinRuleOf, creatorOf, redactionTargetOf', () => {
    const room = TestRoom.standard('11', 'knock');
    assert.equal(membershipOf(room.lookup, ALICE), 'join');
    assert.equal(membershipOf(room.lookup, BOB), 'leave');
    assert.equal(joinRuleOf(room.lookup), 'knock');
    assert.equal(joinRuleOf(() => undefined), 'invite');
    assert.equal(creatorOf(create10), DAVE);
    assert.equal(creatorOf(create10, '11'), ALICE);
    assert.equal(creatorOf(undefined), undefined);
    const r = { type: 'm.room.redaction', content: { redacts: '$c' }, redacts: '$t' } as unknown as Pdu;
    assert.equal(redactionTargetOf(r, '11'), '$c');
    assert.equal(redactionTargetOf(r, '10'), '$t');
    assert.equal(redactionTargetOf({ ...r, content: {} }, '11'), '$t');
    assert.equal(redactionTargetOf({ ...r, redacts: undefined }, '10'), '$c');
  });
});
