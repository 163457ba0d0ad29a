// Presence where sharing starts (SyTest SYN-115, `New federated private chats get full presence
// information`): presence crosses on change only, so when a user of B joins a room of A, each
// server sends the other its users' current presence (as Synapse): both users' initial /sync
// then shows both presences, set before they shared any room.

import assert from 'node:assert/strict';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, startPair, syncUntil, waitFor, type User } from '../helpers/federation.js';

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
});
