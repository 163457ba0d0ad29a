import { assert } from '../helpers/assert.js';
import nacl from 'tweetnacl';
import {
  AuthError,
  authEventTypesFor,
  checkEventAuth,
  creatorOf,
} from '../../src/protocol/auth-rules.js';
import { encodeBase64 } from '../../src/protocol/base64.js';
import { jsonSigningInput } from '../../src/protocol/crypto.js';
import { authEventIds, computeEventId } from '../../src/protocol/events.js';
import type { JsonObject, Pdu, RoomVersion } from '../../src/protocol/types.js';
import { ALICE, BOB, CAROL, DAVE, TestRoom } from './auth-room.js';

const VERSIONS: RoomVersion[] = ['10', '11'];

describe('protocol/auth-rules: create and first join', () => {
  it('v10 create without creator is rejected, with creator accepted', () => {
    const room = new TestRoom('10');
    room.reject(ALICE, 'm.room.create', { room_version: '10' }, '', /no creator/);
    room.send(ALICE, 'm.room.create', { room_version: '10', creator: ALICE }, '');
    room.member(ALICE, 'join');
  });

  it('v11 create with a creator field is accepted and the field ignored', () => {
    const room = new TestRoom('11');
    const create = room.send(ALICE, 'm.room.create', { room_version: '11', creator: DAVE }, '');
    assert.equal(creatorOf(create, '11'), ALICE);
    assert.equal(creatorOf(create), ALICE, 'version read from the create event');
    room.rejectMember(DAVE, 'join', DAVE, /not invited/);
    room.member(ALICE, 'join');
  });

  it('v11 create without creator is fine; the creator is the sender', () => {
    const room = new TestRoom('11');
    room.send(ALICE, 'm.room.create', { room_version: '11' }, '');
    room.member(ALICE, 'join');
  });

  for (const version of VERSIONS) {
    describe(`v${version} create rules`, () => {
      const content: JsonObject = version === '10' ? { room_version: version, creator: ALICE } : { room_version: version };

      it('rejects prev_events', () => {
        new TestRoom(version).reject(ALICE, 'm.room.create', content, '', /prev_events/, { prev_events: ['$x'] });
      });

      it('rejects a sender from another server than the room ID', () => {
        new TestRoom(version).reject(BOB, 'm.room.create', { ...content, creator: BOB }, '', /different servers/);
      });

      it('rejects an unknown or mismatched room version', () => {
        new TestRoom(version).reject(ALICE, 'm.room.create', { ...content, room_version: 'nope' }, '', /unknown room version/);
        new TestRoom(version).reject(ALICE, 'm.room.create', { ...content, room_version: 5 }, '', /unknown room version/);
        new TestRoom(version).reject(ALICE, 'm.room.create', { ...content, room_version: '9' }, '', /declares room version 9/);
        const { room_version: _v, ...noVersion } = content;
        new TestRoom(version).reject(ALICE, 'm.room.create', noVersion, '', /declares room version 1/);
      });

      it('only the creator may join straight after the create event', () => {
        const room = new TestRoom(version);
        room.send(ALICE, 'm.room.create', content, '');
        room.rejectMember(DAVE, 'join', DAVE, /not invited/);
        room.member(ALICE, 'join');
      });

      it('the creator join needs the create event as the only prev_event', () => {
        const room = new TestRoom(version);
        room.send(ALICE, 'm.room.create', content, '');
        const createId = computeEventId(room.lookup('m.room.create', '')!, version);
        room.reject(ALICE, 'm.room.member', { membership: 'join' }, ALICE, /not invited/, { prev_events: [createId, '$other'] });
        room.reject(ALICE, 'm.room.member', { membership: 'join' }, ALICE, /not invited/, { prev_events: ['$other'] });
      });

      it('non-create events need a create event in the auth state', () => {
        const room = new TestRoom(version);
        room.reject(ALICE, 'm.room.message', { body: 'x' }, undefined, /no m.room.create/);
      });
    });
  }

  it('v10 uses content.creator for the first join', () => {
    const room = new TestRoom('10');
    room.send(ALICE, 'm.room.create', { room_version: '10', creator: DAVE }, '');
    room.member(DAVE, 'join');
  });

  it('rejects unsupported room versions', () => {
    const room = TestRoom.standard('11');
    const pdu = room.build(ALICE, 'm.room.message', { body: 'x' });
    assert.throws(() => checkEventAuth(pdu, '13' as RoomVersion, room.lookup), AuthError);
    assert.throws(() => checkEventAuth(pdu, 'constructor' as RoomVersion, room.lookup), AuthError);
  });

  it('rejects state from another room', () => {
    const room = TestRoom.standard('11');
    const pdu = room.build(ALICE, 'm.room.message', { body: 'x' });
    assert.throws(
      () => checkEventAuth({ ...pdu, room_id: '!other:a.org' }, '11', room.lookup),
      /from another room/,
    );
  });

  it('m.federate false keeps other servers out', () => {
    const room = new TestRoom('11');
    room.send(ALICE, 'm.room.create', { room_version: '11', 'm.federate': false }, '');
    room.member(ALICE, 'join');
    room.send(ALICE, 'm.room.join_rules', { join_rule: 'public' }, '');
    room.rejectMember(BOB, 'join', BOB, /not federated/);
    room.member(DAVE, 'join');
  });
});

for (const version of VERSIONS) {
  describe(`protocol/auth-rules v${version}: membership`, () => {
    it('stranger join to an invite-only room is rejected', () => {
      TestRoom.standard(version).rejectMember(BOB, 'join', BOB, /not invited/);
    });

    it('no join_rules event means invite-only', () => {
      const room = new TestRoom(version);
      room.send(ALICE, 'm.room.create', version === '10' ? { room_version: '10', creator: ALICE } : { room_version: '11' }, '');
      room.member(ALICE, 'join');
      room.rejectMember(BOB, 'join', BOB, /join rule is invite/);
    });

    it('invite then join is allowed; a profile update while joined too', () => {
      const room = TestRoom.standard(version);
      room.member(ALICE, 'invite', BOB);
      room.member(BOB, 'join');
      room.member(BOB, 'join', BOB, { displayname: 'Bob' });
    });

    it('cannot join on behalf of someone else', () => {
      const room = TestRoom.standard(version, 'public');
      room.rejectMember(ALICE, 'join', BOB, /on behalf/);
    });

    it('public rooms can be joined by anyone', () => {
      TestRoom.standard(version, 'public').member(CAROL, 'join');
    });

    it('invite rules', () => {
      const room = TestRoom.standard(version, 'invite', { [DAVE]: 10 });
      room.rejectMember(CAROL, 'invite', BOB, /not joined/);
      room.member(ALICE, 'invite', BOB);
      room.member(BOB, 'join');
      room.rejectMember(ALICE, 'invite', BOB, /membership is join/);
      room.powerLevels(ALICE, { ...room.currentPowerLevels(), invite: 50 });
      room.rejectMember(BOB, 'invite', CAROL, /inviting needs power level 50/);
      room.member(ALICE, 'ban', CAROL);
      room.rejectMember(ALICE, 'invite', CAROL, /membership is ban/);
    });

    it('an invitee may reject the invite; a knock may be withdrawn', () => {
      const room = TestRoom.standard(version);
      room.member(ALICE, 'invite', BOB);
      room.member(BOB, 'leave');
      room.rejectMember(BOB, 'leave', BOB, /cannot leave from membership leave/);
      room.send(ALICE, 'm.room.join_rules', { join_rule: 'knock' }, '');
      room.member(CAROL, 'knock');
      room.member(CAROL, 'leave');
    });

    it('ban prevents join, even in a public room, until unbanned', () => {
      const room = TestRoom.standard(version, 'public');
      room.member(CAROL, 'join');
      room.member(ALICE, 'ban', CAROL);
      room.rejectMember(CAROL, 'join', CAROL, /banned/);
      room.rejectMember(CAROL, 'leave', CAROL, /cannot leave from membership ban/);
      room.member(ALICE, 'leave', CAROL);
      room.member(CAROL, 'join');
    });

    it('ban needs the ban level and more power than the target', () => {
      const room = TestRoom.standard(version, 'public', { [BOB]: 50, [DAVE]: 50 });
      for (const u of [BOB, CAROL, DAVE]) room.member(u, 'join');
      room.rejectMember(CAROL, 'ban', DAVE, /may not ban/);
      room.rejectMember(BOB, 'ban', DAVE, /may not ban/);
      room.rejectMember(BOB, 'ban', ALICE, /may not ban/);
      room.member(BOB, 'ban', CAROL);
      room.rejectMember('@x:x.org', 'ban', CAROL, /not joined/);
    });

    it('unbanning needs the ban level as well as the kick level', () => {
      const room = TestRoom.standard(version, 'public', { [BOB]: 50 });
      room.member(BOB, 'join');
      room.member(ALICE, 'ban', CAROL);
      room.powerLevels(ALICE, { ...room.currentPowerLevels(), ban: 60 });
      room.rejectMember(BOB, 'leave', CAROL, /unbanning needs the ban level/);
    });

    it('kick requires the kick level and more power than the target', () => {
      const room = TestRoom.standard(version, 'public', { [BOB]: 50, [DAVE]: 50, [CAROL]: 40 });
      for (const u of [BOB, CAROL, DAVE, '@eve:e.org']) room.member(u, 'join');
      room.rejectMember(CAROL, 'leave', '@eve:e.org', /may not kick/);
      room.rejectMember(BOB, 'leave', DAVE, /may not kick/);
      room.rejectMember(BOB, 'leave', ALICE, /may not kick/);
      room.member(BOB, 'leave', '@eve:e.org');
      room.member(ALICE, 'leave', BOB);
      room.rejectMember(BOB, 'leave', CAROL, /not joined/);
    });

    it('knock is only for knock rooms and only for oneself', () => {
      const room = TestRoom.standard(version);
      room.rejectMember(BOB, 'knock', BOB, /does not allow knocking/);
      room.send(ALICE, 'm.room.join_rules', { join_rule: 'knock' }, '');
      room.rejectMember(ALICE, 'knock', BOB, /on behalf/);
      room.rejectMember(ALICE, 'knock', ALICE, /membership join/);
      room.member(BOB, 'knock');
      room.rejectMember(BOB, 'join', BOB, /not invited/);
      room.member(ALICE, 'invite', BOB);
      room.member(BOB, 'join');
    });

    it('unknown or missing membership and state_key are rejected', () => {
      const room = TestRoom.standard(version);
      room.rejectMember(ALICE, 'dance', BOB, /unknown membership/);
      room.reject(ALICE, 'm.room.member', {}, BOB, /no membership/);
      room.reject(ALICE, 'm.room.member', { membership: 'join' }, undefined, /no state_key/);
    });
  });

  describe(`protocol/auth-rules v${version}: restricted joins`, () => {
    const allow = [{ type: 'm.room_membership', room_id: '!space:a.org' }];

    for (const rule of ['restricted', 'knock_restricted']) {
      it(`${rule}: a join needs an authorising user who is joined and may invite`, () => {
        const room = TestRoom.standard(version, 'invite', { [BOB]: 0 });
        room.send(ALICE, 'm.room.join_rules', { join_rule: rule, allow }, '');
        room.member(ALICE, 'invite', BOB);
        room.member(BOB, 'join');
        room.rejectMember(CAROL, 'join', CAROL, /without join_authorised_via_users_server/);
        room.rejectMember(CAROL, 'join', CAROL, /not joined/, { join_authorised_via_users_server: DAVE });
        room.powerLevels(ALICE, { ...room.currentPowerLevels(), invite: 10 });
        room.rejectMember(CAROL, 'join', CAROL, /may not invite/, { join_authorised_via_users_server: BOB });
        const join = room.member(CAROL, 'join', CAROL, { join_authorised_via_users_server: ALICE });
        // The authorising user's membership is part of the join's auth events.
        const aliceMember = computeEventId(room.lookup('m.room.member', ALICE)!, version);
        assert.ok(authEventIds(join).includes(aliceMember));
      });

      it(`${rule}: invited users join without an authoriser`, () => {
        const room = TestRoom.standard(version);
        room.send(ALICE, 'm.room.join_rules', { join_rule: rule, allow }, '');
        room.member(ALICE, 'invite', CAROL);
        room.member(CAROL, 'join');
      });
    }

    it('knock_restricted also allows knocking; restricted does not', () => {
      const room = TestRoom.standard(version);
      room.send(ALICE, 'm.room.join_rules', { join_rule: 'restricted', allow }, '');
      room.rejectMember(CAROL, 'knock', CAROL, /does not allow knocking/);
      room.send(ALICE, 'm.room.join_rules', { join_rule: 'knock_restricted', allow }, '');
      room.member(CAROL, 'knock');
    });
  });

  describe(`protocol/auth-rules v${version}: third-party invites`, () => {
    const idServer = nacl.sign.keyPair();
    const setup = () => {
      const room = TestRoom.standard(version);
      room.member(ALICE, 'invite', BOB);
      room.member(BOB, 'join');
      room.send(ALICE, 'm.room.third_party_invite', { display_name: 'c…', public_key: encodeBase64(idServer.publicKey) }, 'tok');
      return room;
    };
    const signedFor = (mxid: string, token = 'tok', secretKey = idServer.secretKey): JsonObject => {
      const signed: JsonObject = { mxid, token, sender: ALICE };
      const sig = encodeBase64(nacl.sign.detached(new TextEncoder().encode(jsonSigningInput(signed)), secretKey));
      return { ...signed, signatures: { 'id.example': { 'ed25519:0': sig } } };
    };
    const tpi = (signed: JsonObject): JsonObject => ({ third_party_invite: { display_name: 'c…', signed } });

    it('a correctly signed token is accepted', () => {
      const room = setup();
      const invite = room.member(ALICE, 'invite', CAROL, tpi(signedFor(CAROL)));
      const tpiId = computeEventId(room.lookup('m.room.third_party_invite', 'tok')!, version);
      assert.ok(authEventIds(invite).includes(tpiId));
      room.member(CAROL, 'join');
    });

    it('public_keys entries (URL-safe base64) are also tried', () => {
      const room = TestRoom.standard(version);
      const other = nacl.sign.keyPair();
      room.send(ALICE, 'm.room.third_party_invite', {
        public_key: encodeBase64(other.publicKey),
        public_keys: [{ public_key: Buffer.from(idServer.publicKey).toString('base64url') }],
      }, 'tok');
      room.member(ALICE, 'invite', CAROL, tpi(signedFor(CAROL)));
    });

    it('bad signature, wrong mxid, wrong sender, unknown token and bans are rejected', () => {
      const room = setup();
      room.rejectMember(ALICE, 'invite', CAROL, /no valid signature/, tpi(signedFor(CAROL, 'tok', nacl.sign.keyPair().secretKey)));
      room.rejectMember(ALICE, 'invite', CAROL, /mxid does not match/, tpi(signedFor(DAVE)));
      room.rejectMember(ALICE, 'invite', CAROL, /no matching/, tpi(signedFor(CAROL, 'other')));
      room.rejectMember(BOB, 'invite', CAROL, /issued by another user/, tpi(signedFor(CAROL)));
      room.rejectMember(ALICE, 'invite', CAROL, /no signed object/, { third_party_invite: { display_name: 'x' } });
      room.rejectMember(ALICE, 'invite', CAROL, /lacks mxid or token/, tpi({ mxid: CAROL }));
      room.member(ALICE, 'ban', CAROL);
      room.rejectMember(ALICE, 'invite', CAROL, /banned/, tpi(signedFor(CAROL)));
    });

    it('the inviter need not be joined any more (rule 4.4.1 checks no sender membership)', () => {
      const room = setup();
      room.member(ALICE, 'leave');
      room.rejectMember(ALICE, 'invite', DAVE, /sender is not joined/);
      room.member(ALICE, 'invite', CAROL, tpi(signedFor(CAROL)));
      room.member(CAROL, 'join');
    });

    it('sending m.room.third_party_invite needs the invite level', () => {
      const room = TestRoom.standard(version, 'public');
      room.member(BOB, 'join');
      room.powerLevels(ALICE, { ...room.currentPowerLevels(), invite: 50 });
      room.reject(BOB, 'm.room.third_party_invite', { public_key: 'x' }, 't2', /may not invite/);
    });
  });
}

describe('protocol/auth-rules: authEventTypesFor', () => {
  const pdu = (type: string, content: JsonObject, stateKey?: string): Pick<Pdu, 'type' | 'state_key' | 'sender' | 'content'> => ({
    type,
    sender: ALICE,
    content,
    ...(stateKey === undefined ? {} : { state_key: stateKey }),
  });
  const base = [['m.room.create', ''], ['m.room.power_levels', ''], ['m.room.member', ALICE]];
  const sel = (p: Pick<Pdu, 'type' | 'state_key' | 'sender' | 'content'>) => authEventTypesFor(p, '11');

  it('create has none; messages and state get create, power levels and sender member', () => {
    assert.deepEqual(sel(pdu('m.room.create', {}, '')), []);
    assert.deepEqual(sel(pdu('m.room.message', {})), base);
    assert.deepEqual(sel(pdu('m.room.topic', {}, '')), base);
  });

  it('membership adds target member and join rules where relevant', () => {
    assert.deepEqual(sel(pdu('m.room.member', { membership: 'join' }, ALICE)), [...base, ['m.room.join_rules', '']]);
    assert.deepEqual(sel(pdu('m.room.member', { membership: 'invite' }, BOB)), [...base, ['m.room.member', BOB], ['m.room.join_rules', '']]);
    assert.deepEqual(sel(pdu('m.room.member', { membership: 'knock' }, ALICE)), [...base, ['m.room.join_rules', '']]);
    assert.deepEqual(sel(pdu('m.room.member', { membership: 'leave' }, BOB)), [...base, ['m.room.member', BOB]]);
    assert.deepEqual(sel(pdu('m.room.member', { membership: 'ban' }, BOB)), [...base, ['m.room.member', BOB]]);
  });

  it('third-party invite token and restricted-join authoriser', () => {
    const inv = { membership: 'invite', third_party_invite: { signed: { mxid: BOB, token: 'abc' } } };
    assert.deepEqual(sel(pdu('m.room.member', inv, BOB)).slice(-1), [['m.room.third_party_invite', 'abc']]);
    const join = { membership: 'join', join_authorised_via_users_server: CAROL };
    assert.deepEqual(sel(pdu('m.room.member', join, ALICE)), [...base, ['m.room.join_rules', ''], ['m.room.member', CAROL]]);
    const leave = { membership: 'leave', join_authorised_via_users_server: CAROL };
    assert.ok(!sel(pdu('m.room.member', leave, ALICE)).some(([, k]) => k === CAROL));
  });
});
