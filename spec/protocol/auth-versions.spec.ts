// Auth rules across room versions 1-12: a common room life for every version, then one block per
// rule that changed between versions, asserting both the old and the new behaviour.
import { assert } from '../helpers/assert.js';
import {
  AuthError,
  authEventTypesFor,
  checkAuthEventsSelection,
  checkEventAuth,
  creatorOf,
  creatorsOf,
  isPrivilegedCreator,
  powerLevelOf,
} from '../../src/protocol/auth-rules.js';
import { computeEventId, signEvent } from '../../src/protocol/events.js';
import { levelValue } from '../../src/protocol/power-levels.js';
import { roomVersionRules, type RoomVersion } from '../../src/protocol/room-versions.js';
import type { JsonObject, Pdu } from '../../src/protocol/types.js';
import { ALICE, BOB, CAROL, DAVE, TestRoom } from './auth-room.js';
import { specKey } from './vectors.js';

const ALL: RoomVersion[] = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12'];
const upTo = (v: number) => ALL.filter((x) => Number(x) <= v);
const from = (v: number) => ALL.filter((x) => Number(x) >= v);

/** A room whose power_levels do not list ALICE in v12 (creators may not be listed there). */
function standard(version: RoomVersion, joinRule = 'invite', users: JsonObject = {}): TestRoom {
  const room = new TestRoom(version);
  const createContent: JsonObject = { room_version: version };
  if (roomVersionRules(version).auth.creatorInContent) createContent.creator = ALICE;
  room.send(ALICE, 'm.room.create', createContent, '');
  room.member(ALICE, 'join');
  const privileged = roomVersionRules(version).auth.privilegedCreators;
  room.powerLevels(ALICE, {
    users: privileged ? { ...users } : { [ALICE]: 100, ...users },
    users_default: 0,
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: 0,
    events: { 'm.room.power_levels': 100 },
  });
  room.send(ALICE, 'm.room.join_rules', { join_rule: joinRule }, '');
  return room;
}

describe('protocol/auth-rules across versions: a room\'s life', () => {
  for (const version of ALL) {
    it(`v${version}: create, join, invite, message, kick, ban, unban, leave`, () => {
      const room = standard(version);
      room.member(ALICE, 'invite', BOB);
      room.member(BOB, 'join');
      room.send(BOB, 'm.room.message', { body: 'hi' });
      room.reject(BOB, 'm.room.name', { name: 'x' }, '', /needs power level 50/);
      room.send(ALICE, 'm.room.name', { name: 'x' }, '');
      room.member(ALICE, 'leave', BOB);
      room.rejectMember(BOB, 'join', BOB, /not invited/);
      room.member(ALICE, 'ban', BOB);
      room.member(ALICE, 'leave', BOB);
      room.member(ALICE, 'invite', BOB);
      room.member(BOB, 'leave');
      room.reject(CAROL, 'm.room.message', { body: 'x' }, undefined, /not joined/);
    });
  }
});

describe('protocol/auth-rules across versions: knocking (v7)', () => {
  for (const version of upTo(6)) {
    it(`v${version}: knock membership is unknown and the knock join rule admits nobody`, () => {
      const room = standard(version, 'knock');
      room.rejectMember(CAROL, 'knock', CAROL, /knocking is not supported/);
      room.rejectMember(CAROL, 'join', CAROL, /does not allow joining/);
      room.member(ALICE, 'invite', CAROL);
      room.rejectMember(CAROL, 'join', CAROL, /does not allow joining/);
    });
  }
  for (const version of from(7)) {
    it(`v${version}: knock is allowed in knock rooms, then invite and join; a knock may be withdrawn`, () => {
      const room = standard(version, 'knock');
      room.member(CAROL, 'knock');
      room.member(CAROL, 'leave');
      room.member(CAROL, 'knock');
      room.member(ALICE, 'invite', CAROL);
      room.member(CAROL, 'join');
      room.rejectMember(DAVE, 'join', DAVE, /not invited/);
    });
  }
});

describe('protocol/auth-rules across versions: restricted joins (v8) and knock_restricted (v10)', () => {
  const allow = [{ type: 'm.room_membership', room_id: '!space:a.org' }];
  for (const version of upTo(7)) {
    it(`v${version}: restricted admits nobody, not even with an authoriser`, () => {
      const room = standard(version);
      room.send(ALICE, 'm.room.join_rules', { join_rule: 'restricted', allow }, '');
      room.rejectMember(CAROL, 'join', CAROL, /does not allow joining/, { join_authorised_via_users_server: ALICE });
      // The authoriser is not part of the auth events selection before v8.
      const sel = authEventTypesFor({ type: 'm.room.member', state_key: CAROL, sender: CAROL, content: { membership: 'join', join_authorised_via_users_server: ALICE } }, version);
      assert.ok(!sel.some(([t, k]) => t === 'm.room.member' && k === ALICE));
    });
  }
  for (const version of from(8)) {
    it(`v${version}: restricted joins need a joined authoriser with the invite level`, () => {
      const room = standard(version);
      room.send(ALICE, 'm.room.join_rules', { join_rule: 'restricted', allow }, '');
      room.rejectMember(CAROL, 'join', CAROL, /without join_authorised_via_users_server/);
      room.rejectMember(CAROL, 'join', CAROL, /not joined/, { join_authorised_via_users_server: DAVE });
      room.member(CAROL, 'join', CAROL, { join_authorised_via_users_server: ALICE });
    });
  }
  for (const version of upTo(9)) {
    it(`v${version}: knock_restricted is an unknown join rule`, () => {
      const room = standard(version);
      room.send(ALICE, 'm.room.join_rules', { join_rule: 'knock_restricted', allow }, '');
      room.rejectMember(CAROL, 'join', CAROL, /does not allow joining/, { join_authorised_via_users_server: ALICE });
      if (roomVersionRules(version).auth.knocking) room.rejectMember(CAROL, 'knock', CAROL, /does not allow knocking/);
    });
  }
  for (const version of from(10)) {
    it(`v${version}: knock_restricted allows knocking and authorised joins`, () => {
      const room = standard(version);
      room.send(ALICE, 'm.room.join_rules', { join_rule: 'knock_restricted', allow }, '');
      room.member(CAROL, 'knock');
      room.member(DAVE, 'join', DAVE, { join_authorised_via_users_server: ALICE });
    });
  }
});

describe('protocol/auth-rules across versions: string power levels (v1-v9) and integers only (v10)', () => {
  const stringy: JsonObject = {
    users: { [BOB]: ' +60 ' },
    users_default: '0',
    events_default: '0',
    state_default: '050',
    ban: '50',
    kick: '50',
    redact: '50',
    invite: '0',
    events: { 'm.room.power_levels': '100' },
    notifications: { room: '50' },
  };
  for (const version of upTo(9)) {
    it(`v${version}: integer strings are accepted and count as their value`, () => {
      const room = standard(version);
      room.member(ALICE, 'invite', BOB);
      room.member(BOB, 'join');
      room.member(ALICE, 'invite', CAROL);
      room.member(CAROL, 'join');
      room.powerLevels(ALICE, { ...stringy, users: { ...(stringy.users as JsonObject), [ALICE]: '100' } });
      assert.equal(powerLevelOf(BOB, room.currentPowerLevels(), room.lookup('m.room.create', ''), version), 60);
      // BOB at "60" may kick (kick "50") CAROL at 0, and set state ("050").
      room.send(BOB, 'm.room.topic', { topic: 't' }, '');
      room.member(BOB, 'leave', CAROL);
      // Not-integer strings in users are rejected.
      room.reject(ALICE, 'm.room.power_levels', { ...stringy, users: { [ALICE]: '100', [BOB]: '6O' } }, '', /not an integer/);
      room.reject(ALICE, 'm.room.power_levels', { ...stringy, users: { [ALICE]: '100', [BOB]: '1.5' } }, '', /not an integer/);
    });
  }
  for (const version of from(10)) {
    it(`v${version}: any string level is rejected`, () => {
      const room = standard(version);
      const users: JsonObject = roomVersionRules(version).auth.privilegedCreators ? {} : { [ALICE]: 100 };
      for (const [k, v] of Object.entries(stringy)) {
        const content: JsonObject = { users, [k]: v };
        if (k === 'users') content.users = { ...users, ...(v as JsonObject) };
        room.reject(ALICE, 'm.room.power_levels', content, '', /not an integer|must map to integers/);
      }
      room.powerLevels(ALICE, { users: { ...users, [BOB]: 60 }, ban: 50, events: { 'm.room.power_levels': 100 }, notifications: { room: 50 } });
    });
  }

  it('levelValue follows the v1 string grammar', () => {
    const cases: Array<[unknown, number | undefined]> = [
      ['100', 100], ['000100', 100], ['+100', 100], ['-100', -100], [' 100 ', 100], [' +100 ', 100], ['\t-5\n', -5],
      [100, 100], [50.57, 50], [-0.5, 0], ['1.5', undefined], ['1e3', undefined], ['', undefined], ['+-1', undefined],
      ['0x10', undefined], [null, undefined], [true, undefined], ['99999999999999999999', undefined],
    ];
    for (const [input, expected] of cases) assert.equal(levelValue(input as never), expected, JSON.stringify(input));
  });
});

describe('protocol/auth-rules across versions: notifications in power level checks (v6)', () => {
  for (const version of ALL) {
    const checked = roomVersionRules(version).auth.notificationsInPowerLevels;
    it(`v${version}: a moderator ${checked ? 'may not' : 'may'} change notifications above their level`, () => {
      const room = standard(version, 'invite', { [BOB]: 50 });
      room.member(ALICE, 'invite', BOB);
      room.member(BOB, 'join');
      room.powerLevels(ALICE, { ...room.currentPowerLevels(), events: { 'm.room.power_levels': 50 }, notifications: { room: 100 } });
      const next = { ...room.currentPowerLevels(), notifications: { room: 20 } };
      if (checked) room.reject(BOB, 'm.room.power_levels', next, '', /notifications\.room/);
      else room.powerLevels(BOB, next);
    });
  }
});

describe('protocol/auth-rules across versions: m.room.aliases (special before v6)', () => {
  for (const version of ALL) {
    const special = roomVersionRules(version).auth.specialCaseAliases;
    it(`v${version}: ${special ? 'any server may set its own aliases entry' : 'aliases are ordinary state'}`, () => {
      const room = standard(version);
      if (special) {
        // BOB is not even in the room: only the state_key/server match counts.
        room.send(BOB, 'm.room.aliases', { aliases: ['#x:b.org'] }, 'b.org');
        room.reject(BOB, 'm.room.aliases', { aliases: ['#x:a.org'] }, 'a.org', /sender's server/);
      } else {
        room.reject(BOB, 'm.room.aliases', { aliases: ['#x:b.org'] }, 'b.org', /not joined/);
        room.send(ALICE, 'm.room.aliases', { aliases: ['#x:a.org'] }, 'a.org');
      }
    });
  }
});

describe('protocol/auth-rules across versions: redactions (rule 11 in v1/v2 only)', () => {
  for (const version of ALL) {
    const ruled = roomVersionRules(version).auth.redactionRule;
    it(`v${version}: a redaction of another server's event without the redact level is ${ruled ? 'rejected' : 'allowed by auth'}`, () => {
      const room = standard(version);
      room.member(ALICE, 'invite', BOB);
      room.member(BOB, 'join');
      const target = room.send(ALICE, 'm.room.message', { body: 'x' });
      const targetId = computeEventId(target, version);
      // v11+ carry the target in content, earlier versions at top level.
      const inContent = roomVersionRules(version).redactsInContent;
      const content: JsonObject = inContent ? { redacts: targetId } : {};
      const extra: JsonObject = inContent ? {} : { redacts: targetId };
      if (ruled) {
        room.reject(BOB, 'm.room.redaction', content, undefined, /redact level/, extra);
        // Its own server's events: allowed (event IDs carry the server in v1/v2).
        const own = room.send(BOB, 'm.room.message', { body: 'mine' });
        room.send(BOB, 'm.room.redaction', {}, undefined, { redacts: computeEventId(own, version) });
      } else {
        room.send(BOB, 'm.room.redaction', content, undefined, extra);
      }
      room.send(ALICE, 'm.room.redaction', content, undefined, extra);
    });
  }
});

describe('protocol/auth-rules across versions: the creator (content.creator until v10, sender from v11)', () => {
  for (const version of ALL) {
    const inContent = roomVersionRules(version).auth.creatorInContent;
    it(`v${version}: ${inContent ? 'create needs content.creator, who is the creator' : 'the sender is the creator; content.creator is ignored'}`, () => {
      if (inContent) {
        new TestRoom(version).reject(ALICE, 'm.room.create', { room_version: version }, '', /no creator/);
        // The named creator (here another local user) gets the first join.
        const room = new TestRoom(version);
        const create = room.send(ALICE, 'm.room.create', { room_version: version, creator: DAVE }, '');
        assert.equal(creatorOf(create, version), DAVE);
        room.rejectMember(ALICE, 'join', ALICE, /not invited/);
        room.member(DAVE, 'join');
      } else {
        const room = new TestRoom(version);
        const create = room.send(ALICE, 'm.room.create', { room_version: version, creator: DAVE }, '');
        assert.equal(creatorOf(create, version), ALICE);
        room.rejectMember(DAVE, 'join', DAVE, /not invited/);
        room.member(ALICE, 'join');
      }
    });
  }
});

describe('protocol/auth-rules v12: privileged creators and room IDs', () => {
  const { key } = specKey();

  it('the create event has no room_id; the room ID is its hash and events cite no create event', () => {
    const room = standard('12');
    const create = room.lookup('m.room.create', '')!;
    assert.equal(create.room_id, undefined);
    assert.equal(room.roomId, '!' + computeEventId(create, '12').slice(1));
    const msg = room.send(ALICE, 'm.room.message', { body: 'x' });
    assert.equal(msg.room_id, room.roomId);
    assert.ok(!msg.auth_events.includes(computeEventId(create, '12') as never));
    assert.deepEqual(authEventTypesFor(msg, '12'), [['m.room.power_levels', ''], ['m.room.member', ALICE]]);
    // Citing the create event anyway violates the selection.
    assert.throws(() => checkAuthEventsSelection(msg, [create], '12'), /unexpected auth event \(m.room.create/);
    checkAuthEventsSelection(msg, [], '12');
    // Before v12 a missing create is a rejection.
    const room11 = standard('11');
    const msg11 = room11.build(ALICE, 'm.room.message', { body: 'x' });
    assert.throws(() => checkAuthEventsSelection(msg11, [], '11'), /lack the create event/);
  });

  it('a create event with a room_id, or bad additional_creators, is rejected', () => {
    new TestRoom('12').reject(ALICE, 'm.room.create', { room_version: '12' }, '', /has a room_id/, { room_id: '!x:a.org' });
    for (const bad of ['@bob:b.org', [1], ['not a user'], [BOB, '']]) {
      new TestRoom('12').reject(ALICE, 'm.room.create', { room_version: '12', additional_creators: bad as never }, '', /additional_creators/);
    }
    new TestRoom('12').send(ALICE, 'm.room.create', { room_version: '12', additional_creators: [BOB] }, '');
    // Before v12 the field is just content.
    new TestRoom('11').send(ALICE, 'm.room.create', { room_version: '11', additional_creators: 'whatever' }, '');
  });

  it('an event whose room ID is not the create event hash is rejected', () => {
    const room = standard('12');
    const pdu = room.build(ALICE, 'm.room.message', { body: 'x' });
    const other = signEvent({ ...pdu, room_id: '!' + 'A'.repeat(43) }, 'a.org', key, '12');
    assert.throws(() => checkEventAuth(other, '12', room.lookup), /not derived from the room's create event/);
    const withServer = signEvent({ ...pdu, room_id: '!room:a.org' }, 'a.org', key, '12');
    assert.throws(() => checkEventAuth(withServer, '12', room.lookup), AuthError);
  });

  it('creators have infinite power: they outrank 100, cannot be listed in power_levels, cannot kick each other', () => {
    const room = new TestRoom('12');
    const create = room.send(ALICE, 'm.room.create', { room_version: '12', additional_creators: [BOB] }, '');
    assert.deepEqual([...creatorsOf(create)].sort(), [ALICE, BOB].sort());
    assert.ok(isPrivilegedCreator(BOB, create) && !isPrivilegedCreator(CAROL, create));
    room.member(ALICE, 'join');
    room.reject(ALICE, 'm.room.power_levels', { users: { [ALICE]: 100 } }, '', /may not list the room creator/);
    room.reject(ALICE, 'm.room.power_levels', { users: { [BOB]: 50 } }, '', /may not list the room creator/);
    room.powerLevels(ALICE, { users: { [CAROL]: 100 }, events: { 'm.room.power_levels': 100 }, state_default: 50, kick: 50, ban: 50 });
    assert.equal(powerLevelOf(ALICE, room.currentPowerLevels(), create), Infinity);
    assert.equal(powerLevelOf(CAROL, room.currentPowerLevels(), create), 100);
    room.send(ALICE, 'm.room.join_rules', { join_rule: 'public' }, '');
    room.member(BOB, 'join');
    room.member(CAROL, 'join');
    // An additional creator outranks a 100 user: may kick and ban her, and demote her.
    room.member(BOB, 'ban', CAROL);
    room.member(BOB, 'leave', CAROL);
    room.powerLevels(BOB, { ...room.currentPowerLevels(), users: { [CAROL]: 0 } });
    // Creators are equal: neither can kick the other.
    room.rejectMember(BOB, 'leave', ALICE, /more power than the target/);
    room.rejectMember(ALICE, 'ban', BOB, /more power than the target/);
    // A 100 user cannot touch a creator either.
    room.member(CAROL, 'join');
    room.powerLevels(ALICE, { ...room.currentPowerLevels(), users: { [CAROL]: 100 } });
    room.rejectMember(CAROL, 'leave', BOB, /more power than the target/);
  });

  it('without any power_levels event creators are still infinite and others 0', () => {
    const room = new TestRoom('12');
    const create = room.send(ALICE, 'm.room.create', { room_version: '12', additional_creators: [BOB] }, '');
    room.member(ALICE, 'join');
    assert.equal(powerLevelOf(ALICE, undefined, create), Infinity);
    assert.equal(powerLevelOf(BOB, undefined, create), Infinity);
    assert.equal(powerLevelOf(CAROL, undefined, create), 0);
    // v11 for contrast: the creator has 100, nobody is infinite.
    const create11 = new TestRoom('11').send(ALICE, 'm.room.create', { room_version: '11', additional_creators: [BOB] }, '');
    assert.equal(powerLevelOf(ALICE, undefined, create11), 100);
    assert.equal(powerLevelOf(BOB, undefined, create11), 0);
  });

  it('the first join after create is the create sender\'s, not an additional creator\'s', () => {
    const room = new TestRoom('12');
    room.send(ALICE, 'm.room.create', { room_version: '12', additional_creators: [DAVE] }, '');
    room.rejectMember(DAVE, 'join', DAVE, /not invited/);
    room.member(ALICE, 'join');
  });
});

describe('protocol/auth-rules across versions: v1/v2 references in the creator join', () => {
  for (const version of ['1', '2'] as const) {
    it(`v${version}: prev_events are [id, hash] pairs and the creator join recognises them`, () => {
      const room = new TestRoom(version);
      const create = room.send(ALICE, 'm.room.create', { room_version: version, creator: ALICE }, '');
      const join = room.member(ALICE, 'join');
      const prev = join.prev_events[0] as unknown as [string, { sha256: string }];
      assert.equal(prev[0], create.event_id);
      assert.match(prev[1].sha256, /^[A-Za-z0-9+/]{43}$/);
      assert.match(String(join.event_id), /^\$ev[0-9]+:a\.org$/);
      const pdu: Pdu = room.build(DAVE, 'm.room.member', { membership: 'join' }, DAVE);
      assert.throws(() => checkEventAuth(pdu, version, room.lookup), /not invited/);
    });
  }
});
