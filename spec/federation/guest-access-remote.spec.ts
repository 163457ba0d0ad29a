// Guest access revoked by another server's user (SyTest: `Guest users are kicked from
// guest_access rooms on revocation of guest_access over federation`): the spec's "Guest Access"
// rule (guests leave once m.room.guest_access is no longer can_join) holds whichever server the
// change came from. Two real Hearths; the guest is on A, the revoking user on B. And a guest's
// join of another server's room without guest access is refused (SyTest: `Guest users denied
// access over federation if guest access prohibited`).

import assert from 'node:assert/strict';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, freePort, serverName, startFederated, waitFor, type User } from '../helpers/federation.js';

describe('federation: guest access revoked from another server', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;

  before(async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    a = await startFederated(pa, undefined, { registration: { allow_guests: true } });
    b = await startFederated(pb);
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
  });

  it('a guest of A leaves when a user of B sets guest_access to forbidden', async () => {
    const alice = await new Api(a.url).register('alice');
    const bob = await new Api(b.url).register('bob');
    const room = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    const roomId: string = room.body.room_id;
    assert.equal((await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(serverName(a))}`, {})).status, 200);
    const pl = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`);
    const raised = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`, { ...pl.body, users: { ...pl.body.users, [bob.userId]: 50 } });
    assert.equal(raised.status, 200, JSON.stringify(raised.body));
    assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.guest_access/`, { guest_access: 'can_join' })).status, 200);
    const reg = await new Api(a.url).post('/_matrix/client/v3/register?kind=guest', {});
    assert.equal(reg.status, 200, JSON.stringify(reg.body));
    const guest: User = Object.assign(new Api(a.url, reg.body.access_token), { userId: reg.body.user_id as string });
    assert.equal((await guest.post(`/_matrix/client/v3/join/${enc(roomId)}`, {})).status, 200);
    const membership = async () => (await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(guest.userId)}`)).body.membership;
    assert.equal(await membership(), 'join');
    // B must have the power level change before its user may revoke guest access.
    await waitFor(async () => (await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.guest_access/`, { guest_access: 'forbidden' })).status === 200, 15_000, 'B accepting the guest_access change');
    await waitFor(async () => (await membership()) === 'leave', 15_000, 'the guest to leave');
    // The guest left by itself (a self-leave needs no power), and alice stays.
    const ev = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(guest.userId)}?format=event`);
    assert.equal(ev.body.sender, guest.userId);
    assert.equal((await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(alice.userId)}`)).body.membership, 'join');
  });

  it('a guest of A invited into a room of B without guest access cannot join it (403), and is not left in it', async () => {
    const bob = await new Api(b.url).register('bob2');
    const room = await bob.post('/_matrix/client/v3/createRoom', { preset: 'private_chat' });
    const roomId: string = room.body.room_id;
    assert.equal((await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.guest_access/`, { guest_access: 'forbidden' })).status, 200);
    const reg = await new Api(a.url).post('/_matrix/client/v3/register?kind=guest', {});
    const guest: User = Object.assign(new Api(a.url, reg.body.access_token), { userId: reg.body.user_id as string });
    assert.equal((await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { user_id: guest.userId })).status, 200);
    await waitFor(async () => (await a.hearth.store.rooms.getMembership(roomId, guest.userId))?.membership === 'invite', 15_000, 'the invite at A');
    const join = await guest.post(`/_matrix/client/v3/join/${enc(roomId)}`, {});
    assert.equal(join.status, 403, JSON.stringify(join.body));
    assert.equal(join.body.errcode, 'M_GUEST_ACCESS_FORBIDDEN');
    assert.notEqual((await a.hearth.store.rooms.getMembership(roomId, guest.userId))?.membership, 'join');
    // B, where the room lives, sees the guest gone again.
    await waitFor(async () => (await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(guest.userId)}`)).body.membership === 'leave', 15_000, 'the leave at B');
  });
});
