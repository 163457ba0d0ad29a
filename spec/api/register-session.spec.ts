// Registration continued through a user-interactive-auth session (Client-Server API v1.12
// "Account registration" and "User-Interactive Authentication API"): a client that continues
// with only {auth: {type, session}} gets the account its first request asked for, and retrying
// a completed session answers for the same account instead of M_USER_IN_USE or a second user.

import { assert } from '../helpers/assert.js';
import { expectError, loginClient, PASSWORD, V3 } from '../helpers/fixtures.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';

describe('registration: UIA sessions remember the request and its outcome', function () {
  this.timeout(20000);
  let srv: TestServer;
  let api: Api;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
  });
  after(async () => srv.stop());

  const begin = async (body: Record<string, unknown>): Promise<string> => {
    const r = await api.post(`${V3}/register`, body);
    assert.equal(r.status, 401, JSON.stringify(r.body));
    assert.equal(typeof r.body.session, 'string');
    return r.body.session;
  };
  const dummy = (session: string, extra: Record<string, unknown> = {}) => api.post(`${V3}/register`, { ...extra, auth: { type: 'm.login.dummy', session } });

  it('a continuation with only auth gets the username, password, device and display name of the first request', async () => {
    const session = await begin({ username: 'Remembered', password: 'übers3kr1t', device_id: 'xyzzy', initial_device_display_name: 'display_name' });
    const r = await dummy(session);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, '@remembered:localhost');
    assert.equal(r.body.device_id, 'xyzzy');
    const me = new Api(srv.url, r.body.access_token);
    const d = await me.get(`${V3}/devices/xyzzy`);
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.equal(d.body.display_name, 'display_name');
    // The (non-ASCII) password of the first request is the account's password.
    const c = await loginClient(srv.url, 'remembered', 'übers3kr1t');
    assert.equal((await c.get(`${V3}/account/whoami`)).body.user_id, '@remembered:localhost');
  });

  it('inhibit_login from the first request holds on a continuation with only auth', async () => {
    const session = await begin({ username: 'quietly', password: PASSWORD, inhibit_login: true });
    const r = await dummy(session);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, '@quietly:localhost');
    assert.equal(r.body.access_token, undefined);
    assert.equal(r.body.device_id, undefined);
  });

  it('a continuation that carries parameters uses them (the password stays if it brings none)', async () => {
    const session = await begin({ username: 'firstname', password: 'first password' });
    const r = await dummy(session, { username: 'secondname', device_id: 'DEV2' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, '@secondname:localhost');
    assert.equal(r.body.device_id, 'DEV2');
    await loginClient(srv.url, 'secondname', 'first password');
    assert.equal((await api.get(`${V3}/register/available?username=firstname`)).status, 200, 'the first name was never taken');
  });

  it('retrying a completed session with a username answers for the same account, not M_USER_IN_USE', async () => {
    const session = await begin({ username: 'idem', password: PASSWORD });
    const first = await dummy(session, { username: 'idem', password: PASSWORD });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const again = await dummy(session, { username: 'idem', password: PASSWORD });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.user_id, '@idem:localhost');
    assert.equal(typeof again.body.access_token, 'string');
    assert.notEqual(again.body.access_token, first.body.access_token);
    // Both logins are live sessions of the one account.
    const who = await new Api(srv.url, again.body.access_token).get(`${V3}/account/whoami`);
    assert.equal(who.body.user_id, '@idem:localhost');
  });

  it('retrying a completed session without a username gives the same generated user, not a new one', async () => {
    const session = await begin({ password: PASSWORD });
    const first = await dummy(session, { password: PASSWORD });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const again = await dummy(session, { password: PASSWORD });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.user_id, first.body.user_id);
    const onlyAuth = await dummy(session);
    assert.equal(onlyAuth.status, 200, JSON.stringify(onlyAuth.body));
    assert.equal(onlyAuth.body.user_id, first.body.user_id);
  });

  it('concurrent completions of one session create one account', async () => {
    const session = await begin({ username: 'racer', password: PASSWORD });
    const rs = await Promise.all([dummy(session), dummy(session), dummy(session)]);
    for (const r of rs) assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(new Set(rs.map((r) => r.body.user_id)), new Set(['@racer:localhost']));
  });

  it('a continuation without a password anywhere is refused with M_MISSING_PARAM, and a later one with it succeeds', async () => {
    const session = await begin({ username: 'nopass' });
    expectError(await dummy(session), 400, 'M_MISSING_PARAM');
    assert.equal((await api.get(`${V3}/register/available?username=nopass`)).status, 200);
    const r = await dummy(session, { username: 'nopass', password: PASSWORD });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, '@nopass:localhost');
  });

  it('a taken username is still refused up front, and an unknown session starts a fresh one', async () => {
    await api.register('taken');
    expectError(await api.post(`${V3}/register`, { username: 'taken', password: PASSWORD }), 400, 'M_USER_IN_USE');
    const r = await api.post(`${V3}/register`, { username: 'fresh', password: PASSWORD, auth: { type: 'm.login.dummy', session: 'no-such-session' } });
    // The dummy stage completes the new session at once.
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, '@fresh:localhost');
  });
});
