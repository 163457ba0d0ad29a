// What SyTest found missing between servers (docs/conformance.md), between two real Hearths:
// - GET /profile of another server's user asks that server (/query/profile); a destination the
//   outbound guard refuses is a 502, not a 500 or a request to it;
// - GET/POST /publicRooms?server= asks that server's directory (filter passed on);
// - make_join for a room none of the server's users is in any more is 404;
// - an X-Matrix origin that is not a valid server name (a non-numeric port) is 400, not 401.

import assert from 'node:assert/strict';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, freePort, serverName, signedFedRequest, signedRequest, signingKeyOf, startFederated, type User } from '../helpers/federation.js';

describe('federation: remote profiles, remote room lists, make_join and origins', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let alice: User;
  let bob: User;

  before(async () => {
    const [pa, pb] = [await freePort(), await freePort()];
    a = await startFederated(pa);
    b = await startFederated(pb);
    alice = await new Api(a.url).register('alice');
    bob = await new Api(b.url).register('bob');
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
  });

  it('GET /profile of a user of another server asks that server', async () => {
    assert.equal((await bob.put(`/_matrix/client/v3/profile/${enc(bob.userId)}/displayname`, { displayname: 'Bob of B' })).status, 200);
    assert.equal((await bob.put(`/_matrix/client/v3/profile/${enc(bob.userId)}/avatar_url`, { avatar_url: 'mxc://b/avatar' })).status, 200);
    const full = await alice.get(`/_matrix/client/v3/profile/${enc(bob.userId)}`);
    assert.equal(full.status, 200, JSON.stringify(full.body));
    assert.deepEqual(full.body, { displayname: 'Bob of B', avatar_url: 'mxc://b/avatar' });
    const name = await alice.get(`/_matrix/client/v3/profile/${enc(bob.userId)}/displayname`);
    assert.deepEqual(name.body, { displayname: 'Bob of B' });
    const unknown = await alice.get(`/_matrix/client/v3/profile/${enc(`@nobody:${serverName(b)}`)}`);
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    assert.equal(unknown.body.errcode, 'M_NOT_FOUND');
  });

  it('a profile on a server the outbound guard refuses (a private address) is a 502, not a 500', async () => {
    const res = await alice.get(`/_matrix/client/v3/profile/${enc('@someone:10.255.255.1:8448')}`);
    assert.equal(res.status, 502, JSON.stringify(res.body));
    assert.equal(res.body.errcode, 'M_UNKNOWN');
  });

  it('GET and POST /publicRooms?server= list another server\'s directory', async () => {
    const room = await alice.post('/_matrix/client/v3/createRoom', { visibility: 'public', preset: 'public_chat', name: 'Remote listed', topic: 'Test Topic' });
    assert.equal(room.status, 200, JSON.stringify(room.body));
    const roomId: string = room.body.room_id;
    const got = await bob.get(`/_matrix/client/v3/publicRooms?server=${enc(serverName(a))}`);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    const entry = got.body.chunk.find((r: any) => r.room_id === roomId);
    assert.ok(entry, JSON.stringify(got.body));
    assert.equal(entry.name, 'Remote listed');
    // B's own directory does not have it.
    const own = await bob.get('/_matrix/client/v3/publicRooms');
    assert.equal(own.body.chunk.find((r: any) => r.room_id === roomId), undefined);
    const hit = await bob.post(`/_matrix/client/v3/publicRooms?server=${enc(serverName(a))}`, { filter: { generic_search_term: 'remote LISTED' } });
    assert.equal(hit.status, 200, JSON.stringify(hit.body));
    assert.ok(hit.body.chunk.some((r: any) => r.room_id === roomId));
    const miss = await bob.post('/_matrix/client/v3/publicRooms', { server: serverName(a), filter: { generic_search_term: 'no such words' } });
    assert.equal(miss.status, 200, JSON.stringify(miss.body));
    assert.equal(miss.body.chunk.length, 0);
    const bad = await bob.get(`/_matrix/client/v3/publicRooms?server=${enc('not a server!')}`);
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
  });

  it('make_join for a room every user of the server has left is 404', async () => {
    const room = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    const roomId: string = room.body.room_id;
    const path = `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(`@joiner:${serverName(b)}`)}?ver=10&ver=11&ver=12`;
    const before = await signedFedRequest(b, a, 'GET', path);
    assert.equal(before.status, 200, JSON.stringify(before.body));
    assert.equal((await alice.post(`/_matrix/client/v3/rooms/${enc(roomId)}/leave`, {})).status, 200);
    const after = await signedFedRequest(b, a, 'GET', path);
    assert.equal(after.status, 404, JSON.stringify(after.body));
    assert.equal(after.body.errcode, 'M_NOT_FOUND');
  });

  it('an X-Matrix origin with a non-numeric port is 400', async () => {
    const res = await signedRequest('localhost:http', await signingKeyOf(b), a, 'GET', `/_matrix/federation/v1/query/profile?user_id=${enc(alice.userId)}&field=displayname`);
    assert.equal(res.status, 400, JSON.stringify(res.body));
  });
});
