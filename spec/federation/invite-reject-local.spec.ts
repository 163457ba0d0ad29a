// Rejecting an invite whose inviting server will not take the rejection (SyTest: `Inbound
// federation can receive invite and reject when remote replies with a 403 / 500 / is
// unreachable`): the invite is rejected on the invitee's server alone, the client's /leave
// succeeds and its /sync shows the room left with the user's own leave in the timeline.
// Two real Hearth servers: the refusal is A's own 403 (B banned by the room's server ACL), and
// "unreachable" is A stopped.

import assert from 'node:assert/strict';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, freePort, startFederated, syncUntil, type User } from '../helpers/federation.js';

describe('federation: invites rejected locally when the inviting server refuses or is down', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let alice: User;
  let aStopped = false;

  before(async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    a = await startFederated(pa);
    b = await startFederated(pb);
    alice = await new Api(a.url).register('alice');
  });

  after(async () => {
    await b?.stop();
    if (!aStopped) await a?.stop();
    await closeFedRequests();
  });

  /** Alice invites a new user of B into a new room of A; returns the user and room once B's /sync has the invite. */
  async function invited(name: string, version?: string): Promise<{ user: User; roomId: string; since: string }> {
    const user = await new Api(b.url).register(name);
    const room = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', ...(version ? { room_version: version } : {}) });
    assert.equal(room.status, 200, JSON.stringify(room.body));
    const roomId: string = room.body.room_id;
    const inv = await alice.post(`/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { user_id: user.userId });
    assert.equal(inv.status, 200, JSON.stringify(inv.body));
    const since = await syncUntil(user, (body) => (body.rooms?.invite?.[roomId] ? body.next_batch as string : undefined));
    return { user, roomId, since };
  }

  async function assertLeftLocally(user: User, roomId: string, since: string): Promise<void> {
    const left = await syncUntil(user, (body) => body.rooms?.leave?.[roomId], 15_000, since);
    const first = left.timeline.events[0];
    assert.equal(first.type, 'm.room.member');
    assert.equal(first.state_key, user.userId);
    assert.equal(first.sender, user.userId);
    assert.equal(first.content.membership, 'leave');
    const full = await user.get('/_matrix/client/v3/sync');
    assert.equal(full.body.rooms?.invite?.[roomId], undefined, 'the invite is gone');
  }

  it('A refuses make_leave (403, B banned by the room ACL): the invite is rejected on B, /leave answers 200', async () => {
    const { user, roomId, since } = await invited('carol');
    // Both servers are 127.0.0.1: IP literals banned shuts out B (A's own users are not subject to it).
    const acl = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.server_acl/`, { allow: ['*'], deny: [], allow_ip_literals: false });
    assert.equal(acl.status, 200, JSON.stringify(acl.body));
    const leave = await user.post(`/_matrix/client/v3/rooms/${enc(roomId)}/leave`, {});
    assert.equal(leave.status, 200, JSON.stringify(leave.body));
    await assertLeftLocally(user, roomId, since);
    // A never got the rejection: it still has the user invited.
    const member = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(user.userId)}`);
    assert.equal(member.body.membership, 'invite');
  });

  it('A is down: the invite (a v1 room, server-chosen IDs) is rejected on B, /leave answers 200', async () => {
    const { user, roomId, since } = await invited('dave', '1');
    await a.stop();
    aStopped = true;
    const leave = await user.post(`/_matrix/client/v3/rooms/${enc(roomId)}/leave`, { reason: 'not now' });
    assert.equal(leave.status, 200, JSON.stringify(leave.body));
    await assertLeftLocally(user, roomId, since);
    // Leaving again is the usual no-op.
    assert.equal((await user.post(`/_matrix/client/v3/rooms/${enc(roomId)}/leave`, {})).status, 200);
  });
});
