// federation.allowed_servers / denied_servers, both ways, and GET /openid/userinfo.

import { assert } from '../helpers/assert.js';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, fedRequest, freePort, serverName, signedFedRequest, startFederated } from '../helpers/federation.js';
import { FederationPolicy } from '../../src/federation/policy.js';

describe('federation policy: allow and deny lists', function () {
  it('matches exact names (port included) and *.domain subdomains, case-insensitively', function () {
    const p = new FederationPolicy({ allowed_servers: null, denied_servers: ['bad.example', '*.evil.org', '10.0.0.1:8448'] });
    assert.equal(p.allows('good.example'), true);
    assert.equal(p.allows('BAD.example'), false);
    assert.equal(p.allows('a.b.evil.org:8448'), false);
    assert.equal(p.allows('evil.org'), true, '*.domain is subdomains only');
    assert.equal(p.allows('10.0.0.1:8448'), false);
    assert.equal(p.allows('10.0.0.1'), true);
    const only = new FederationPolicy({ allowed_servers: ['matrix.org', '*.example.com'], denied_servers: ['x.example.com'] });
    assert.equal(only.allows('matrix.org'), true);
    assert.equal(only.allows('chat.example.com'), true);
    assert.equal(only.allows('x.example.com'), false, 'deny wins over allow');
    assert.equal(only.allows('other.net'), false);
  });

  describe('two servers, A denying B', function () {
    this.timeout(60_000);
    let a: TestServer;
    let b: TestServer;
    let alice: Api & { userId: string };
    let bob: Api & { userId: string };

    before(async function () {
      const [pa, pb] = [await freePort(), await freePort()];
      b = await startFederated(pb);
      a = await startFederated(pa, undefined, { federation: { denied_servers: [`127.0.0.1:${pb}`] } });
      alice = await new Api(a.url).register('alice');
      bob = await new Api(b.url).register('bob');
    });
    after(async function () {
      await closeFedRequests();
      await a?.stop();
      await b?.stop();
    });

    it('refuses B\'s signed requests with 403 M_FORBIDDEN', async function () {
      const r = await signedFedRequest(b, a, 'GET', `/_matrix/federation/v1/query/profile?user_id=${enc(alice.userId)}`);
      assert.equal(r.status, 403);
      assert.equal(r.body.errcode, 'M_FORBIDDEN');
    });

    it('sends nothing to B: an invite of bob fails and B never hears of the room', async function () {
      const room = await alice.post('/_matrix/client/v3/createRoom', {});
      assert.equal(room.status, 200);
      const inv = await alice.post(`/_matrix/client/v3/rooms/${enc(room.body.room_id)}/invite`, { user_id: bob.userId });
      assert.notEqual(inv.status, 200, 'the invite cannot reach a denied server');
      assert.ok(inv.status >= 400 && inv.status < 500, `a Matrix error, not a 5xx: ${inv.status} ${JSON.stringify(inv.body)}`);
      assert.equal(typeof inv.body.errcode, 'string');
      const s = await bob.get('/_matrix/client/v3/sync?timeout=0');
      assert.equal(s.body.rooms?.invite?.[room.body.room_id], undefined);
    });

    it('B itself (no lists) still talks to A: only A refuses', async function () {
      const r = await signedFedRequest(a, b, 'GET', `/_matrix/federation/v1/query/profile?user_id=${enc(bob.userId)}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(serverName(b).startsWith('127.0.0.1:'), true);
    });
  });

  describe('GET /_matrix/federation/v1/openid/userinfo', function () {
    this.timeout(60_000);
    let a: TestServer;
    before(async function () {
      a = await startFederated(await freePort());
    });
    after(async function () {
      await closeFedRequests();
      await a?.stop();
    });

    it('answers {sub} for a token from /openid/request_token, 401 M_UNKNOWN_TOKEN otherwise', async function () {
      const alice = await new Api(a.url).register('alice');
      const t = await alice.post(`/_matrix/client/v3/user/${enc(alice.userId)}/openid/request_token`, {});
      assert.equal(t.status, 200);
      const base = a.hearth.federation!.url;
      const ok = await fedRequest(base, 'GET', `/_matrix/federation/v1/openid/userinfo?access_token=${enc(t.body.access_token)}`, {});
      assert.deepEqual(ok, { status: 200, body: { sub: alice.userId } });
      const bad = await fedRequest(base, 'GET', '/_matrix/federation/v1/openid/userinfo?access_token=nope', {});
      assert.equal(bad.status, 401);
      assert.equal(bad.body.errcode, 'M_UNKNOWN_TOKEN');
      const none = await fedRequest(base, 'GET', '/_matrix/federation/v1/openid/userinfo', {});
      assert.equal(none.status, 401);
      // The client access token is not an OpenID token.
      const client = await fedRequest(base, 'GET', `/_matrix/federation/v1/openid/userinfo?access_token=${enc(alice.token!)}`, {});
      assert.equal(client.status, 401);
    });
  });
});
