// Where the room writer queues a local event's PDU (src/federation/pdu-destinations.ts): the
// servers of the joined members before the event, plus the target's server of a membership
// change other than an invite, minus ourselves, the ACL (the event's own, if it sets one) and
// the federation policy.

import { assert } from '../helpers/assert.js';
import { pduDestinations } from '../../src/federation/pdu-destinations.js';
import { RoomState } from '../../src/room/room-state.js';
import type { JsonObject, Pdu } from '../../src/protocol/types.js';

const ME = 'me.test';
let n = 0;
const ev = (type: string, sender: string, content: JsonObject, stateKey?: string): Pdu =>
  ({ room_id: '!r:me.test', type, sender, content, ...(stateKey !== undefined ? { state_key: stateKey } : {}), origin_server_ts: ++n, depth: n, prev_events: [], auth_events: [], hashes: { sha256: '' }, signatures: {} }) as Pdu;

function room(...members: Array<[string, string]>): RoomState {
  const s = RoomState.empty('11');
  for (const [user, membership] of members) s.applyPersisted(`$m${++n}`, ev('m.room.member', user, { membership }, user));
  return s;
}

const all = () => true;

describe('federation/pdu-destinations', () => {
  it('a message goes to every server with a joined member, not to us, nor to servers whose members left or are invited', () => {
    const s = room(['@a:me.test', 'join'], ['@b:b.test', 'join'], ['@b2:b.test', 'join'], ['@c:c.test', 'join'], ['@d:d.test', 'leave'], ['@e:e.test', 'invite']);
    assert.deepEqual(pduDestinations(ME, s, ev('m.room.message', '@a:me.test', { body: 'hi' }), all), ['b.test', 'c.test']);
  });

  it("a kick, ban or leave also reaches the target's server (its last member); an invite does not", () => {
    const s = room(['@a:me.test', 'join'], ['@b:b.test', 'join'], ['@c:c.test', 'join']);
    assert.deepEqual(pduDestinations(ME, s, ev('m.room.member', '@a:me.test', { membership: 'leave' }, '@c:c.test'), all), ['b.test', 'c.test']);
    assert.deepEqual(pduDestinations(ME, s, ev('m.room.member', '@a:me.test', { membership: 'ban' }, '@x:x.test'), all), ['b.test', 'c.test', 'x.test']);
    assert.deepEqual(pduDestinations(ME, s, ev('m.room.member', '@a:me.test', { membership: 'invite' }, '@x:x.test'), all), ['b.test', 'c.test']);
    // Our own user's join or leave: to the others only.
    assert.deepEqual(pduDestinations(ME, s, ev('m.room.member', '@z:me.test', { membership: 'join' }, '@z:me.test'), all), ['b.test', 'c.test']);
  });

  it("the state's joined servers follow members joining, leaving and a resolution dropping a member", () => {
    const s = room(['@a:me.test', 'join'], ['@b:b.test', 'join'], ['@b2:b.test', 'join'], ['@c:c.test', 'join']);
    const msg = ev('m.room.message', '@a:me.test', { body: 'x' });
    s.applyPersisted('$l1', ev('m.room.member', '@b:b.test', { membership: 'leave' }, '@b:b.test'));
    assert.deepEqual(pduDestinations(ME, s, msg, all), ['b.test', 'c.test'], 'b still has b2');
    s.applyPersisted('$l2', ev('m.room.member', '@b2:b.test', { membership: 'leave' }, '@b2:b.test'));
    assert.deepEqual(pduDestinations(ME, s, msg, all), ['c.test']);
    s.applyPersisted('$j', ev('m.room.member', '@b:b.test', { membership: 'join' }, '@b:b.test'));
    s.applyResolved([], [{ type: 'm.room.member', stateKey: '@c:c.test' }], ['$j'], { eventId: '$j', pdu: ev('m.room.message', '@a:me.test', {}) });
    assert.deepEqual(pduDestinations(ME, s, msg, all), ['b.test']);
  });

  it('the room ACL and the federation policy filter; an ACL event is judged by the ACL it sets', () => {
    const s = room(['@a:me.test', 'join'], ['@b:b.test', 'join'], ['@c:c.test', 'join'], ['@d:d.test', 'join']);
    s.applyPersisted('$acl', ev('m.room.server_acl', '@a:me.test', { allow: ['*'], deny: ['c.test'] }, ''));
    const msg = ev('m.room.message', '@a:me.test', { body: 'x' });
    assert.deepEqual(pduDestinations(ME, s, msg, all), ['b.test', 'd.test']);
    assert.deepEqual(pduDestinations(ME, s, msg, (x) => x !== 'd.test'), ['b.test']);
    const newAcl = ev('m.room.server_acl', '@a:me.test', { allow: ['*'], deny: ['b.test'] }, '');
    assert.deepEqual(pduDestinations(ME, s, newAcl, all), ['c.test', 'd.test'], 'c is allowed again by this very event, b is not');
  });
});
