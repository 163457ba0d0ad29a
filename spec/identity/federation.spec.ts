// Third-party invites across two real Hearth servers: the invitee's server learns the binding
// (3pid/onbind) and passes the signed block to the inviter's server
// (exchange_third_party_invite), which issues the invite over federation.

import { assert } from '../helpers/assert.js';
import { closeFedRequests, fedRequest, signedFedRequest, startPair, syncUntil, waitFor } from '../helpers/federation.js';
import { createRoom, ok, roomPath } from '../helpers/fixtures.js';
import { FakeIdentityServer, ID_ACCESS_TOKEN } from '../helpers/fake-identity-server.js';
import { Api, enc, type TestServer } from '../helpers/server.js';

describe('identity: third-party invites across servers', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let is: FakeIdentityServer;
  let alice: Api & { userId: string };
  let bob: Api & { userId: string };

  before(async function () {
    is = await FakeIdentityServer.start();
    ({ a, b } = await startPair({ identity: { verify_tls: false }, outbound: { ip_range_whitelist: ['127.0.0.0/8'] } }));
    alice = await new Api(a.url).register('alice');
    bob = await new Api(b.url).register('bob');
  });
  after(async function () {
    await b?.stop();
    await a?.stop();
    await is?.stop();
    await closeFedRequests();
  });

  const invite3pid = (roomId: string, address: string) =>
    alice.post(roomPath(roomId, 'invite'), { id_server: is.name, id_access_token: ID_ACCESS_TOKEN, medium: 'email', address });
  const tokenOf = async (roomId: string) => ((await ok(alice.get(roomPath(roomId, 'state')), 'state')) as any[]).find((e) => e.type === 'm.room.third_party_invite').state_key as string;

  it('onbind at the invitee\'s server: the inviter\'s server issues the invite, the invitee joins', async function () {
    const roomId = await createRoom(alice, { preset: 'private_chat' });
    await ok(invite3pid(roomId, 'bob@example.org'), '3pid invite');
    await ok(new Api(b.url).post('/_matrix/federation/v1/3pid/onbind', is.onBindBody('email', 'bob@example.org', bob.userId)), 'onbind');
    await syncUntil(bob, (body) => body.rooms?.invite?.[roomId]);
    const m = await ok(alice.get(roomPath(roomId, `state/m.room.member/${enc(bob.userId)}`)), 'member');
    assert.equal(m.membership, 'invite');
    assert.equal(m.third_party_invite.display_name, 'Bob');
    const state = (await ok(alice.get(roomPath(roomId, 'state')), 'state')) as any[];
    assert.equal(state.find((e) => e.type === 'm.room.member' && e.state_key === bob.userId).sender, alice.userId);
    await ok(bob.post(roomPath(roomId, 'join'), {}), 'join');
    await waitFor(async () => (await alice.get(roomPath(roomId, `state/m.room.member/${enc(bob.userId)}`))).body.membership === 'join', 15_000, 'bob joined');
  });

  it('the federation listener serves 3pid/onbind without X-Matrix (identity servers are no homeservers)', async function () {
    const url = b.hearth.federation!.url;
    const okRes = await fedRequest(url, 'PUT', '/_matrix/federation/v1/3pid/onbind', { 'content-type': 'application/json' }, { medium: 'email', address: 'z@example.org', mxid: bob.userId, invites: [] });
    assert.equal(okRes.status, 200, JSON.stringify(okRes.body));
    const other = await fedRequest(url, 'POST', '/_matrix/federation/v1/3pid/onbind', { 'content-type': 'application/json' }, { medium: 'email', address: 'z@example.org', mxid: alice.userId, invites: [] });
    assert.equal(other.status, 403, JSON.stringify(other.body));
    // exchange_third_party_invite is an ordinary federation request: X-Matrix required.
    const unsigned = await fedRequest(url, 'PUT', '/_matrix/federation/v1/exchange_third_party_invite/!r:x', { 'content-type': 'application/json' }, {});
    assert.equal(unsigned.status, 401, JSON.stringify(unsigned.body));
  });

  it('exchange_third_party_invite refuses a sender of another server and a bad signature', async function () {
    const roomId = await createRoom(alice, { preset: 'private_chat' });
    await ok(invite3pid(roomId, 'nobody@example.org'), '3pid invite');
    const token = await tokenOf(roomId);
    const partial = (sender: string, signed: Record<string, unknown>) => ({
      type: 'm.room.member',
      room_id: roomId,
      sender,
      state_key: bob.userId,
      content: { membership: 'invite', third_party_invite: { display_name: 'x', signed } },
    });
    const path = `/_matrix/federation/v1/exchange_third_party_invite/${enc(roomId)}`;
    const good = is.sign({ mxid: bob.userId, token });
    const notOurs = await signedFedRequest(b, a, 'PUT', path, partial(bob.userId, good));
    assert.equal(notOurs.status, 403, JSON.stringify(notOurs.body));
    is.rotateKeys();
    const forged = await signedFedRequest(b, a, 'PUT', path, partial(alice.userId, is.sign({ mxid: bob.userId, token })));
    assert.equal(forged.status, 403, JSON.stringify(forged.body));
    const res = await alice.get(roomPath(roomId, `state/m.room.member/${enc(bob.userId)}`));
    assert.equal(res.status, 404);
  });
});
