// Presence where sharing starts (SyTest SYN-115, `New federated private chats get full presence
// information`): presence crosses on change only, so when a user of B joins a room of A, each
// server sends the other its users' current presence (as Synapse): both users' initial /sync
// then shows both presences, set before they shared any room. Presence that overtakes the join
// (the resident server sends it as it stores the join) is held until the join is in.

import assert from 'node:assert/strict';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, signedFedRequest, startPair, syncUntil, waitFor, type User } from '../helpers/federation.js';

const V3 = '/_matrix/client/v3';

describe('federation: presence when a room starts being shared', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let nameA: string;
  let alice: User;
  let bob: User;

  before(async () => {
    ({ a, b, nameA } = await startPair());
    alice = await new Api(a.url).register('alice');
    bob = await new Api(b.url).register('bob');
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
  });

  it('a join sends the joiner\'s presence to the room\'s servers and theirs back', async () => {
    assert.equal((await alice.put(`${V3}/presence/${enc(alice.userId)}/status`, { presence: 'online', status_msg: 'alice at A' })).status, 200);
    assert.equal((await bob.put(`${V3}/presence/${enc(bob.userId)}/status`, { presence: 'unavailable', status_msg: 'bob at B' })).status, 200);
    // Set while they shared nothing: neither server has heard of the other's user.
    assert.equal((await alice.get(`${V3}/presence/${enc(bob.userId)}/status`)).body.status_msg, undefined);
    const created = await alice.post(`${V3}/createRoom`, { preset: 'private_chat', invite: [bob.userId] });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const roomId: string = created.body.room_id;
    await syncUntil(bob, (body) => body.rooms?.invite?.[roomId]);
    assert.equal((await bob.post(`${V3}/join/${enc(roomId)}?server_name=${enc(nameA)}`, {})).status, 200);
    await waitFor(async () => (await alice.get(`${V3}/presence/${enc(bob.userId)}/status`)).body.status_msg === 'bob at B', 15_000, 'bob\'s presence at A');
    await waitFor(async () => (await bob.get(`${V3}/presence/${enc(alice.userId)}/status`)).body.status_msg === 'alice at A', 15_000, 'alice\'s presence at B');
    // Each initial /sync shows both users' presence.
    for (const who of [alice, bob]) {
      const first = await who.get(`${V3}/sync`);
      const senders = (first.body.presence?.events ?? []).map((e: any) => e.sender).sort();
      assert.deepEqual(senders, [alice.userId, bob.userId].sort(), `${who.userId}: ${JSON.stringify(first.body.presence)}`);
    }
  });

  it('presence that overtakes the join making its user a room-mate is believed once the join is in', async () => {
    const carol = await new Api(a.url).register('carol');
    const dave = await new Api(b.url).register('dave');
    // A's m.presence for carol reaches B while B shares no room with her (as when A sends it on
    // storing dave's join, before B has adopted the room).
    const early = { user_id: carol.userId, presence: 'online', status_msg: 'early bird', last_active_ago: 0, currently_active: true };
    const txn = await signedFedRequest(a, b, 'PUT', `/_matrix/federation/v1/send/early${Date.now()}`, { origin: nameA, origin_server_ts: Date.now(), pdus: [], edus: [{ edu_type: 'm.presence', content: { push: [early] } }] });
    assert.equal(txn.status, 200, JSON.stringify(txn.body));
    assert.equal((await dave.get(`${V3}/presence/${enc(carol.userId)}/status`)).body.status_msg, undefined, 'not believed yet');
    const created = await carol.post(`${V3}/createRoom`, { preset: 'public_chat' });
    const roomId: string = created.body.room_id;
    assert.equal((await dave.post(`${V3}/join/${enc(roomId)}?server_name=${enc(nameA)}`, {})).status, 200);
    await waitFor(async () => (await dave.get(`${V3}/presence/${enc(carol.userId)}/status`)).body.status_msg === 'early bird', 15_000, 'carol\'s presence at B');
  });
});
