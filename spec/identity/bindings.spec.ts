// 3PID binding through the homeserver over HTTP (src/identity/bindings.ts): /account/3pid/bind,
// /unbind, /delete and deactivation, against an in-process identity server.

import { assert } from '../helpers/assert.js';
import { expectError, makeUser, ok, passwordAuth, PASSWORD, V3, type User } from '../helpers/fixtures.js';
import { FakeIdentityServer, ID_ACCESS_TOKEN } from '../helpers/fake-identity-server.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';

const UNSTABLE = '/_matrix/client/unstable';

describe('identity: 3PID bindings through the homeserver', function () {
  let srv: TestServer;
  let is: FakeIdentityServer;

  before(async function () {
    is = await FakeIdentityServer.start();
    srv = await startTestServer({ identity: { verify_tls: false }, outbound: { ip_range_whitelist: ['127.0.0.0/8'] } });
  });
  after(async function () {
    await srv?.stop();
    await is?.stop();
  });

  const bind = (user: User, address: string, prefix = V3) =>
    user.post(`${prefix}/account/3pid/bind`, { id_server: is.name, id_access_token: ID_ACCESS_TOKEN, sid: is.validate('email', address), client_secret: 'sekrit' });
  const boundTo = (address: string) => is.bindings.get(`email\u0000${address}`);

  it('binds, then unbinds without naming the identity server (the homeserver remembers it)', async function () {
    const u = await makeUser(srv, 'binder');
    await ok(bind(u, 'b1@example.org', UNSTABLE), 'bind');
    assert.equal(boundTo('b1@example.org'), u.userId);
    const bindReq = is.requests.filter((r) => r.path === '/_matrix/identity/v2/3pid/bind').at(-1)!;
    assert.equal(bindReq.authorization, `Bearer ${ID_ACCESS_TOKEN}`);
    assert.equal(bindReq.body.mxid, u.userId);

    const r = await ok(u.post(`${V3}/account/3pid/unbind`, { medium: 'email', address: 'b1@example.org' }), 'unbind');
    assert.deepEqual(r, { id_server_unbind_result: 'success' });
    assert.equal(boundTo('b1@example.org'), undefined);
    // The identity server is told by the homeserver itself (X-Matrix), not by the user's token.
    const unbindReq = is.requests.filter((r) => r.path === '/_matrix/identity/v2/3pid/unbind').at(-1)!;
    assert.match(unbindReq.authorization ?? '', /^X-Matrix origin="?localhost"?,/);
    assert.deepEqual(unbindReq.body, { mxid: u.userId, threepid: { medium: 'email', address: 'b1@example.org' } });

    // Nothing recorded any more: nowhere to unbind.
    assert.deepEqual(await ok(u.post(`${UNSTABLE}/account/3pid/unbind`, { medium: 'email', address: 'b1@example.org' }), 'again'), { id_server_unbind_result: 'no-support' });
  });

  it('delete naming the identity server unbinds a binding made out of band', async function () {
    const u = await makeUser(srv, 'outofband');
    is.bind('email', 'b2@example.org', u.userId);
    const r = await ok(u.post(`${V3}/account/3pid/delete`, { medium: 'email', address: 'b2@example.org', id_server: is.name }), 'delete');
    assert.deepEqual(r, { id_server_unbind_result: 'success' });
    assert.equal(boundTo('b2@example.org'), undefined);
  });

  it('an identity server that does not know the binding gives no-support', async function () {
    const u = await makeUser(srv, 'unknown');
    const r = await ok(u.post(`${V3}/account/3pid/delete`, { medium: 'email', address: 'never@example.org', id_server: is.name }), 'delete');
    assert.deepEqual(r, { id_server_unbind_result: 'no-support' });
  });

  it('deactivation unbinds what was bound through the homeserver', async function () {
    const u = await new Api(srv.url).register('leaving', PASSWORD);
    await ok(bind(u, 'b3@example.org'), 'bind');
    await ok(bind(u, 'b4@example.org'), 'bind');
    const first = await u.post(`${V3}/account/deactivate`, {});
    assert.equal(first.status, 401);
    const r = await ok(u.post(`${V3}/account/deactivate`, { auth: passwordAuth('leaving', PASSWORD, first.body.session) }), 'deactivate');
    assert.equal(r.id_server_unbind_result, 'success');
    assert.equal(boundTo('b3@example.org'), undefined);
    assert.equal(boundTo('b4@example.org'), undefined);
  });

  it('a bind the identity server refuses is an error, and nothing is recorded', async function () {
    const u = await makeUser(srv, 'refused');
    const r = await u.post(`${V3}/account/3pid/bind`, { id_server: is.name, id_access_token: ID_ACCESS_TOKEN, sid: 'no-such-session', client_secret: 'x' });
    assert.equal(r.status, 502, JSON.stringify(r.body));
    assert.equal(r.body.errcode, 'M_UNKNOWN');
    assert.deepEqual(await ok(u.post(`${V3}/account/3pid/unbind`, { medium: 'email', address: 'x@example.org' }), 'unbind'), { id_server_unbind_result: 'no-support' });
  });

  it('refuses missing fields and an id_server that is not a server name', async function () {
    const u = await makeUser(srv, 'picky');
    expectError(await u.post(`${V3}/account/3pid/bind`, { id_server: is.name, sid: 's', client_secret: 'c' }), 400, 'M_MISSING_PARAM');
    const seen = is.requests.length;
    expectError(await u.post(`${V3}/account/3pid/bind`, { id_server: 'https://is.example.org', id_access_token: 't', sid: 's', client_secret: 'c' }), 400, 'M_INVALID_PARAM');
    expectError(await u.post(`${V3}/account/3pid/unbind`, { medium: 'email', address: 'a@example.org', id_server: 'a/b' }), 400, 'M_INVALID_PARAM');
    assert.equal(is.requests.length, seen);
  });
});
