// OpenID tokens, GET /admin/whois and the /unstable cross-signing upload paths over real HTTP
// (Client-Server API v1.12 openid.yaml, admin.yaml, cross_signing.yaml). The token lookup of the
// Server-Server API's /openid/userinfo is checked through the account service and over the
// client listener, which serves it too (as Synapse).

import { assert } from '../helpers/assert.js';
import { expectError, makeUser, ok, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { CrossSigning, PASSWORD, passwordAuth, sign, TestDevice, uploadDevice } from './keys-helpers.js';

const UNSTABLE = '/_matrix/client/unstable';

describe('OpenID, whois and unstable cross-signing paths', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;

  before(async () => {
    srv = await startTestServer();
    [alice, bob] = await Promise.all([makeUser(srv, 'alice'), makeUser(srv, 'bob')]);
  });
  after(async () => srv.stop());

  describe('OpenID', function () {
    // The federation listener's GET /openid/userinfo answers from AccountService.openIdUser.
    const userinfo = (token: string) => srv.hearth.services.accounts.openIdUser(token);

    it('request_token gives a bearer token that the userinfo lookup resolves to the user ID', async () => {
      const t = await ok(alice.post(`${V3}/user/${enc(alice.userId)}/openid/request_token`, {}), 'request_token');
      assert.equal(typeof t.access_token, 'string');
      assert.equal(t.token_type, 'Bearer');
      assert.equal(t.matrix_server_name, 'localhost');
      assert.equal(t.expires_in, 3600);
      assert.notEqual(t.access_token, alice.token, 'not the access token');
      assert.equal(await userinfo(t.access_token), alice.userId);
      // It is no access token: the client API refuses it.
      expectError(await new Api(srv.url, t.access_token).get(`${V3}/account/whoami`), 401, 'M_UNKNOWN_TOKEN');
    });

    it('refuses tokens for another user; unknown tokens and access tokens resolve to nobody', async () => {
      expectError(await alice.post(`${V3}/user/${enc(bob.userId)}/openid/request_token`, {}), 403, 'M_FORBIDDEN');
      assert.equal(await userinfo('an/invalid/token'), null);
      assert.equal(await userinfo(alice.token!), null, 'an access token is not an OpenID token');
    });

    it('GET /_matrix/federation/v1/openid/userinfo on the client listener: sub for a token, 401 otherwise', async () => {
      const t = await ok(alice.post(`${V3}/user/${enc(alice.userId)}/openid/request_token`, {}), 'request_token');
      const anon = new Api(srv.url);
      const path = '/_matrix/federation/v1/openid/userinfo';
      assert.deepEqual(await ok(anon.get(`${path}?access_token=${enc(t.access_token)}`), 'userinfo'), { sub: alice.userId });
      expectError(await anon.get(`${path}?access_token=${enc('an/invalid/token')}`), 401, 'M_UNKNOWN_TOKEN');
      expectError(await anon.get(path), 401, 'M_UNKNOWN_TOKEN');
      expectError(await anon.get(`${path}?access_token=${enc(alice.token!)}`), 401, 'M_UNKNOWN_TOKEN');
    });

    it('tokens expire after expires_in', async () => {
      const t = await ok(bob.post(`${V3}/user/${enc(bob.userId)}/openid/request_token`, {}), 'request_token');
      assert.equal(await userinfo(t.access_token), bob.userId);
      // Seen from an hour and a second later, through the store the service uses.
      const hash = (await import('../../src/users/credentials.js')).hashAccessToken(t.access_token);
      assert.equal(await srv.hearth.store.accounts.lookupOpenIdToken(hash, Date.now() + 3601_000), null);
    });
  });

  describe('GET /admin/whois/{userId}', function () {
    it('self: every device with a session, and the last IP, time and user agent once seen', async () => {
      const u = await new Api(srv.url).register('whoisme');
      await u.req('GET', `${V3}/account/whoami`, undefined, { 'user-agent': 'Hearth-Test/1.0' });
      let body: any;
      for (let i = 0; i < 50; i++) {
        body = await ok(u.get(`${V3}/admin/whois/${enc(u.userId)}`), 'whois');
        if (body.devices[u.deviceId]?.sessions[0].connections.length) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(body.user_id, u.userId);
      assert.deepEqual(Object.keys(body.devices), [u.deviceId]);
      const [c] = body.devices[u.deviceId].sessions[0].connections;
      assert.equal(c.ip, '127.0.0.1');
      assert.equal(typeof c.last_seen, 'number');
      assert.equal(c.user_agent, 'Hearth-Test/1.0');
    });

    it('others: admins only (403 otherwise, before any lookup); unknown users 404 for admins', async () => {
      expectError(await alice.get(`${V3}/admin/whois/${enc(bob.userId)}`), 403, 'M_FORBIDDEN');
      expectError(await alice.get(`${V3}/admin/whois/${enc('@nobody:localhost')}`), 403, 'M_FORBIDDEN');
      const accounts = srv.hearth.services.accounts;
      const adminId = await accounts.createAccount('root', null, true);
      const l = await accounts.login(adminId, undefined, null, null);
      const admin = new Api(srv.url, l.access_token);
      const res = await ok(admin.get(`${V3}/admin/whois/${enc(bob.userId)}`), 'admin whois');
      assert.equal(res.user_id, bob.userId);
      assert.ok(res.devices[bob.deviceId], JSON.stringify(res));
      expectError(await admin.get(`${V3}/admin/whois/${enc('@nobody:localhost')}`), 404, 'M_NOT_FOUND');
    });
  });

  describe('/unstable cross-signing uploads', function () {
    it('keys/device_signing/upload and keys/signatures/upload answer under /unstable, with the same checks', async () => {
      const carol = await new Api(srv.url).register('carol', PASSWORD);
      const dev = new TestDevice(carol.userId, carol.deviceId);
      await uploadDevice(carol, dev, 0);
      const cs = new CrossSigning(carol.userId);
      // The first upload needs no UIA; replacing the keys does, on this path too.
      await ok(carol.post(`${UNSTABLE}/keys/device_signing/upload`, cs.all()), 'first upload');
      const cs2 = new CrossSigning(carol.userId);
      const again = await carol.post(`${UNSTABLE}/keys/device_signing/upload`, cs2.all());
      assert.equal(again.status, 401, JSON.stringify(again.body));
      await ok(carol.post(`${UNSTABLE}/keys/device_signing/upload`, { ...cs2.all(), auth: passwordAuth(carol, again.body.session) }), 'replace with UIA');
      const signed = sign(dev.deviceKeys(), carol.userId, cs2.id(cs2.selfSigning), cs2.selfSigning);
      const sig = await ok(carol.post(`${UNSTABLE}/keys/signatures/upload`, { [carol.userId]: { [carol.deviceId]: signed } }), 'signatures');
      assert.deepEqual(sig.failures, {});
      const q = await ok(carol.post(`${V3}/keys/query`, { device_keys: { [carol.userId]: [] } }), 'query');
      assert.deepEqual(q.master_keys[carol.userId].keys, cs2.masterKey().keys, 'the replacement master key is stored');
      assert.ok(q.device_keys[carol.userId][carol.deviceId].signatures[carol.userId][cs2.id(cs2.selfSigning)], 'self-signing signature stored');
      expectError(await new Api(srv.url).post(`${UNSTABLE}/keys/signatures/upload`, {}), 401, 'M_MISSING_TOKEN');
    });
  });
});
