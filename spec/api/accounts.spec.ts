// Accounts over real HTTP: registration (UIA, tokens, policy), login, logout, whoami, password
// change, deactivation, credential storage, and Synapse's shared-secret admin registration.
// Expectations follow the Matrix Client-Server API v1.12 (data/api/client-server/registration.yaml,
// login.yaml, logout.yaml, whoami.yaml, "User-Interactive Authentication API").

import { assert } from '../helpers/assert.js';
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { expectError, loginClient, passwordAuth, passwordLogin as login, PASSWORD, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('accounts: registration', function () {
  let srv: TestServer;
  let api: Api;
  let alice: User;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
    alice = await api.register('alice');
  });
  after(async () => srv.stop());

  it('answers a first POST /register with a 401 UIA challenge: m.login.dummy flow, a session, no errcode', async () => {
    const r = await api.post(`${V3}/register`, { username: 'challenged', password: PASSWORD });
    assert.equal(r.status, 401, JSON.stringify(r.body));
    assert.deepEqual(r.body.flows, [{ stages: ['m.login.dummy'] }]);
    assert.equal(typeof r.body.session, 'string');
    assert.ok(r.body.session.length > 0);
    assert.equal(r.body.errcode, undefined, 'the first challenge must not carry an errcode');
    if (r.body.completed !== undefined) assert.deepEqual(r.body.completed, []);
    if (r.body.params !== undefined) assert.equal(typeof r.body.params, 'object');
    // Nothing was created by the challenge.
    const avail = await api.get(`${V3}/register/available?username=challenged`);
    assert.equal(avail.status, 200, JSON.stringify(avail.body));
  });

  it('completes with m.login.dummy: user_id, access_token and device_id, and the token works', async () => {
    const first = await api.post(`${V3}/register`, { username: 'dora', password: PASSWORD });
    assert.equal(first.status, 401);
    const r = await api.post(`${V3}/register`, {
      username: 'dora',
      password: PASSWORD,
      auth: { type: 'm.login.dummy', session: first.body.session },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, '@dora:localhost');
    assert.equal(typeof r.body.access_token, 'string');
    assert.ok(r.body.access_token.length >= 16);
    assert.equal(typeof r.body.device_id, 'string');
    assert.ok(r.body.device_id.length > 0);
    const who = await new Api(srv.url, r.body.access_token).get(`${V3}/account/whoami`);
    assert.equal(who.status, 200, JSON.stringify(who.body));
    assert.equal(who.body.user_id, '@dora:localhost');
    assert.equal(who.body.device_id, r.body.device_id);
  });

  it('GET /register/available: available, taken (M_USER_IN_USE), invalid (M_INVALID_USERNAME)', async () => {
    const free = await api.get(`${V3}/register/available?username=nobody_yet`);
    assert.equal(free.status, 200, JSON.stringify(free.body));
    assert.deepEqual(free.body, { available: true });
    expectError(await api.get(`${V3}/register/available?username=alice`), 400, 'M_USER_IN_USE');
    expectError(await api.get(`${V3}/register/available?username=${enc('bad name!')}`), 400, 'M_INVALID_USERNAME');
    expectError(await api.get(`${V3}/register/available?username=${enc('a:b')}`), 400, 'M_INVALID_USERNAME');
    expectError(await api.get(`${V3}/register/available?username=`), 400, 'M_INVALID_USERNAME');
  });

  it('refuses a taken username on /register with 400 M_USER_IN_USE, and an invalid one with M_INVALID_USERNAME', async () => {
    expectError(await api.post(`${V3}/register`, { username: 'alice', password: PASSWORD }), 400, 'M_USER_IN_USE');
    expectError(await api.post(`${V3}/register`, { username: 'no spaces', password: PASSWORD }), 400, 'M_INVALID_USERNAME');
  });

  it('folds the username to lower case', async () => {
    const u = await api.register('MixedCase');
    assert.equal(u.userId, '@mixedcase:localhost');
    expectError(await api.get(`${V3}/register/available?username=mixedcase`), 400, 'M_USER_IN_USE');
    const who = await u.get(`${V3}/account/whoami`);
    assert.equal(who.body.user_id, '@mixedcase:localhost');
  });

  it('refuses kind=guest with 403 M_FORBIDDEN', async () => {
    const r = await api.post(`${V3}/register?kind=guest`, {});
    expectError(r, 403, 'M_FORBIDDEN');
    assert.equal(r.body.access_token, undefined);
  });

  it('inhibit_login creates the account without a device or token', async () => {
    const first = await api.post(`${V3}/register`, { username: 'quiet', password: PASSWORD, inhibit_login: true });
    assert.equal(first.status, 401);
    const r = await api.post(`${V3}/register`, {
      username: 'quiet',
      password: PASSWORD,
      inhibit_login: true,
      auth: { type: 'm.login.dummy', session: first.body.session },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, '@quiet:localhost');
    assert.equal(r.body.access_token, undefined);
    assert.equal(r.body.device_id, undefined);
    expectError(await api.get(`${V3}/register/available?username=quiet`), 400, 'M_USER_IN_USE');
    // The account works, and registration did not leave a device behind.
    const c = await loginClient(srv.url, 'quiet', PASSWORD);
    const devices = await c.get(`${V3}/devices`);
    assert.equal(devices.status, 200);
    assert.deepEqual(devices.body.devices.map((d: any) => d.device_id), [c.deviceId]);
  });

  it('keeps a device_id and initial_device_display_name given at registration', async () => {
    const first = await api.post(`${V3}/register`, { username: 'devreg', password: PASSWORD });
    const r = await api.post(`${V3}/register`, {
      username: 'devreg',
      password: PASSWORD,
      device_id: 'MYDEVICE01',
      initial_device_display_name: 'Registration Phone',
      auth: { type: 'm.login.dummy', session: first.body.session },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.device_id, 'MYDEVICE01');
    const c = new Api(srv.url, r.body.access_token);
    assert.equal((await c.get(`${V3}/account/whoami`)).body.device_id, 'MYDEVICE01');
    const d = await c.get(`${V3}/devices/MYDEVICE01`);
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.equal(d.body.device_id, 'MYDEVICE01');
    assert.equal(d.body.display_name, 'Registration Phone');
  });

  it('generates a valid user ID when no username is given', async () => {
    const first = await api.post(`${V3}/register`, { password: PASSWORD });
    assert.equal(first.status, 401, JSON.stringify(first.body));
    const r = await api.post(`${V3}/register`, { password: PASSWORD, auth: { type: 'm.login.dummy', session: first.body.session } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.match(r.body.user_id, /^@[a-z0-9._=\-/+]+:localhost$/);
    assert.notEqual(r.body.user_id, alice.userId);
  });

  it('rejects an unsupported auth stage without creating the account', async () => {
    const first = await api.post(`${V3}/register`, { username: 'sneaky', password: PASSWORD });
    const r = await api.post(`${V3}/register`, {
      username: 'sneaky',
      password: PASSWORD,
      auth: { type: 'm.login.registration_token', token: 'x', session: first.body.session },
    });
    assert.equal(r.status, 401, JSON.stringify(r.body));
    assert.equal(typeof r.body.errcode, 'string');
    assert.deepEqual(r.body.flows, [{ stages: ['m.login.dummy'] }]);
    assert.equal((await api.get(`${V3}/register/available?username=sneaky`)).status, 200);
  });
});

describe('accounts: registration policy', function () {
  it('registration disabled by config: 403 M_FORBIDDEN, with or without auth', async () => {
    const srv = await startTestServer({ registration: { enabled: false } });
    try {
      const api = new Api(srv.url);
      expectError(await api.post(`${V3}/register`, { username: 'closed', password: PASSWORD }), 403, 'M_FORBIDDEN');
      expectError(
        await api.post(`${V3}/register`, { username: 'closed', password: PASSWORD, auth: { type: 'm.login.dummy' } }),
        403,
        'M_FORBIDDEN',
      );
      expectError(await login(api, 'closed', PASSWORD), 403, 'M_FORBIDDEN');
    } finally {
      await srv.stop();
    }
  });

  describe('with a registration token', function () {
    let srv: TestServer;
    let api: Api;
    before(async () => {
      srv = await startTestServer({ registration: { token: 'sekrit' } });
      api = new Api(srv.url);
    });
    after(async () => srv.stop());

    it('offers only the m.login.registration_token flow', async () => {
      const r = await api.post(`${V3}/register`, { username: 'tok1', password: PASSWORD });
      assert.equal(r.status, 401, JSON.stringify(r.body));
      assert.deepEqual(r.body.flows, [{ stages: ['m.login.registration_token'] }]);
      assert.equal(typeof r.body.session, 'string');
      assert.equal(r.body.errcode, undefined);
    });

    it('does not accept m.login.dummy instead of the token', async () => {
      const first = await api.post(`${V3}/register`, { username: 'tok2', password: PASSWORD });
      const r = await api.post(`${V3}/register`, {
        username: 'tok2',
        password: PASSWORD,
        auth: { type: 'm.login.dummy', session: first.body.session },
      });
      assert.equal(r.status, 401, JSON.stringify(r.body));
      assert.equal(r.body.access_token, undefined);
      assert.equal((await api.get(`${V3}/register/available?username=tok2`)).status, 200);
    });

    it('fails a wrong token with 401 M_FORBIDDEN and creates nothing', async () => {
      const first = await api.post(`${V3}/register`, { username: 'tok3', password: PASSWORD });
      const r = await api.post(`${V3}/register`, {
        username: 'tok3',
        password: PASSWORD,
        auth: { type: 'm.login.registration_token', token: 'wrong', session: first.body.session },
      });
      assert.equal(r.status, 401, JSON.stringify(r.body));
      assert.equal(r.body.errcode, 'M_FORBIDDEN');
      assert.deepEqual(r.body.flows, [{ stages: ['m.login.registration_token'] }]);
      assert.equal(r.body.access_token, undefined);
      assert.equal((await api.get(`${V3}/register/available?username=tok3`)).status, 200);
    });

    it('registers with the right token', async () => {
      const first = await api.post(`${V3}/register`, { username: 'tok4', password: PASSWORD });
      const r = await api.post(`${V3}/register`, {
        username: 'tok4',
        password: PASSWORD,
        auth: { type: 'm.login.registration_token', token: 'sekrit', session: first.body.session },
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.user_id, '@tok4:localhost');
      const who = await new Api(srv.url, r.body.access_token).get(`${V3}/account/whoami`);
      assert.equal(who.body.user_id, '@tok4:localhost');
    });

    it('GET /v1/register/m.login.registration_token/validity reports valid and invalid tokens (spec v1.2+)', async () => {
      const ok = await api.get('/_matrix/client/v1/register/m.login.registration_token/validity?token=sekrit');
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.deepEqual(ok.body, { valid: true });
      const bad = await api.get('/_matrix/client/v1/register/m.login.registration_token/validity?token=nope');
      assert.equal(bad.status, 200, JSON.stringify(bad.body));
      assert.deepEqual(bad.body, { valid: false });
    });
  });
});

describe('accounts: login, whoami, logout', function () {
  let srv: TestServer;
  let api: Api;
  let lena: User;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
    lena = await api.register('lena', PASSWORD);
  });
  after(async () => srv.stop());

  it('GET /login offers m.login.password', async () => {
    const r = await api.get(`${V3}/login`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(Array.isArray(r.body.flows));
    assert.ok(r.body.flows.some((f: any) => f.type === 'm.login.password'), JSON.stringify(r.body));
  });

  it('logs in with a localpart identifier; the response has user_id, access_token, device_id and well_known', async () => {
    const r = await login(api, 'lena', PASSWORD);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, '@lena:localhost');
    assert.equal(typeof r.body.access_token, 'string');
    assert.equal(typeof r.body.device_id, 'string');
    assert.notEqual(r.body.device_id, lena.deviceId);
    assert.equal(typeof r.body.well_known, 'object');
    assert.equal(typeof r.body.well_known['m.homeserver']?.base_url, 'string');
    assert.doesNotThrow(() => new URL(r.body.well_known['m.homeserver'].base_url));
    const who = await new Api(srv.url, r.body.access_token).get(`${V3}/account/whoami`);
    assert.equal(who.status, 200);
    assert.equal(who.body.user_id, '@lena:localhost');
    assert.equal(who.body.device_id, r.body.device_id);
  });

  it('logs in with a full MXID identifier', async () => {
    const r = await login(api, '@lena:localhost', PASSWORD);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, '@lena:localhost');
  });

  it('logs in with the legacy top-level `user` field', async () => {
    const r = await api.post(`${V3}/login`, { type: 'm.login.password', user: 'lena', password: PASSWORD });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, '@lena:localhost');
  });

  it('refuses a wrong password and an unknown user alike with 403 M_FORBIDDEN', async () => {
    const wrong = await login(api, 'lena', 'not the password');
    expectError(wrong, 403, 'M_FORBIDDEN');
    assert.equal(wrong.body.access_token, undefined);
    expectError(await login(api, 'nosuchuser', PASSWORD), 403, 'M_FORBIDDEN');
    expectError(await login(api, '@lena:elsewhere.example', PASSWORD), 403, 'M_FORBIDDEN');
  });

  it('refuses an unknown login type with 400 M_UNKNOWN', async () => {
    expectError(await api.post(`${V3}/login`, { type: 'm.login.carrier_pigeon', user: 'lena', password: PASSWORD }), 400, 'M_UNKNOWN');
  });

  it('accepts the access token as the (deprecated) access_token query parameter', async () => {
    const r = await new Api(srv.url).get(`${V3}/account/whoami?access_token=${enc(lena.token!)}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, '@lena:localhost');
  });

  it('whoami returns user_id and device_id for the token used', async () => {
    const r = await lena.get(`${V3}/account/whoami`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, '@lena:localhost');
    assert.equal(r.body.device_id, lena.deviceId);
  });

  it('initial_device_display_name shows in /devices', async () => {
    const c = await loginClient(srv.url, 'lena', PASSWORD, { initial_device_display_name: 'Lena Laptop' });
    const list = await c.get(`${V3}/devices`);
    assert.equal(list.status, 200);
    const mine = list.body.devices.find((d: any) => d.device_id === c.deviceId);
    assert.ok(mine, JSON.stringify(list.body));
    assert.equal(mine.display_name, 'Lena Laptop');
  });

  it('device_id reuse keeps the device (and its name: initial_device_display_name is ignored for a known device)', async () => {
    const a = await loginClient(srv.url, 'lena', PASSWORD, { device_id: 'REUSEDDEV', initial_device_display_name: 'First name' });
    assert.equal(a.deviceId, 'REUSEDDEV');
    const before = (await a.get(`${V3}/devices`)).body.devices.length;
    const b = await loginClient(srv.url, 'lena', PASSWORD, { device_id: 'REUSEDDEV', initial_device_display_name: 'Second name' });
    assert.equal(b.deviceId, 'REUSEDDEV');
    assert.equal((await b.get(`${V3}/account/whoami`)).body.device_id, 'REUSEDDEV');
    const list = (await b.get(`${V3}/devices`)).body.devices as any[];
    assert.equal(list.length, before, 'no new device');
    assert.equal(list.filter((d) => d.device_id === 'REUSEDDEV').length, 1);
    // login.yaml: initial_device_display_name is "Ignored if device_id corresponds to a known device".
    assert.equal(list.find((d) => d.device_id === 'REUSEDDEV').display_name, 'First name');
  });

  it('logout kills that token and deletes its device; other devices keep working', async () => {
    const a = await loginClient(srv.url, 'lena', PASSWORD);
    const b = await loginClient(srv.url, 'lena', PASSWORD);
    const r = await a.post(`${V3}/logout`, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const dead = await a.get(`${V3}/account/whoami`);
    expectError(dead, 401, 'M_UNKNOWN_TOKEN');
    assert.notEqual(dead.body.soft_logout, true, 'an explicit logout is not a soft logout');
    const who = await b.get(`${V3}/account/whoami`);
    assert.equal(who.status, 200);
    assert.equal(who.body.device_id, b.deviceId);
    const ids = (await b.get(`${V3}/devices`)).body.devices.map((d: any) => d.device_id);
    assert.ok(!ids.includes(a.deviceId), 'logged-out device is deleted');
    assert.ok(ids.includes(b.deviceId));
  });

  it('logout/all kills every token of the user, and no one else\'s', async () => {
    const other = await api.register('lars', PASSWORD);
    const a = await loginClient(srv.url, 'lena', PASSWORD);
    const b = await loginClient(srv.url, 'lena', PASSWORD);
    const r = await a.post(`${V3}/logout/all`, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const c of [a, b, lena]) expectError(await c.get(`${V3}/account/whoami`), 401, 'M_UNKNOWN_TOKEN');
    assert.equal((await other.get(`${V3}/account/whoami`)).status, 200);
    // The password still works for a new session, which starts with exactly one device.
    const c = await loginClient(srv.url, 'lena', PASSWORD);
    assert.deepEqual((await c.get(`${V3}/devices`)).body.devices.map((d: any) => d.device_id), [c.deviceId]);
  });
});

describe('accounts: password change', function () {
  let srv: TestServer;
  let api: Api;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
  });
  after(async () => srv.stop());

  it('requires UIA m.login.password; a wrong password is 401 M_FORBIDDEN; the right one changes it and logs out other devices', async () => {
    const pat = await api.register('pat', PASSWORD);
    const other = await loginClient(srv.url, 'pat', PASSWORD);

    const first = await pat.post(`${V3}/account/password`, { new_password: 'new secret 1' });
    assert.equal(first.status, 401, JSON.stringify(first.body));
    assert.ok(first.body.flows.some((f: any) => JSON.stringify(f.stages) === JSON.stringify(['m.login.password'])), JSON.stringify(first.body));
    assert.equal(typeof first.body.session, 'string');
    assert.equal(first.body.errcode, undefined);

    const wrong = await pat.post(`${V3}/account/password`, {
      new_password: 'new secret 1',
      auth: passwordAuth(pat.userId, 'not my password', first.body.session),
    });
    assert.equal(wrong.status, 401, JSON.stringify(wrong.body));
    assert.equal(wrong.body.errcode, 'M_FORBIDDEN');
    assert.ok(Array.isArray(wrong.body.flows));
    // Nothing changed yet: the other device still works.
    assert.equal((await other.get(`${V3}/account/whoami`)).status, 200);

    const ok = await pat.post(`${V3}/account/password`, {
      new_password: 'new secret 1',
      auth: passwordAuth(pat.userId, PASSWORD, wrong.body.session ?? first.body.session),
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));

    expectError(await login(api, 'pat', PASSWORD), 403, 'M_FORBIDDEN');
    const fresh = await login(api, 'pat', 'new secret 1');
    assert.equal(fresh.status, 200, JSON.stringify(fresh.body));

    // logout_devices defaults to true: the other device is gone, the current one kept.
    expectError(await other.get(`${V3}/account/whoami`), 401, 'M_UNKNOWN_TOKEN');
    const who = await pat.get(`${V3}/account/whoami`);
    assert.equal(who.status, 200);
    assert.equal(who.body.device_id, pat.deviceId);
    const ids = (await pat.get(`${V3}/devices`)).body.devices.map((d: any) => d.device_id).sort();
    assert.deepEqual(ids, [pat.deviceId, fresh.body.device_id].sort());
  });

  it('logout_devices: false keeps the other devices', async () => {
    const quin = await api.register('quin', PASSWORD);
    const other = await loginClient(srv.url, 'quin', PASSWORD);
    const first = await quin.post(`${V3}/account/password`, { new_password: 'new secret 2', logout_devices: false });
    assert.equal(first.status, 401);
    const ok = await quin.post(`${V3}/account/password`, {
      new_password: 'new secret 2',
      logout_devices: false,
      auth: passwordAuth('quin', PASSWORD, first.body.session),
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal((await other.get(`${V3}/account/whoami`)).status, 200);
    assert.equal((await quin.get(`${V3}/account/whoami`)).status, 200);
    const ids = (await quin.get(`${V3}/devices`)).body.devices.map((d: any) => d.device_id);
    assert.ok(ids.includes(other.deviceId));
    assert.equal((await login(api, 'quin', 'new secret 2')).status, 200);
  });

  it('does not accept another user\'s credentials for the UIA stage', async () => {
    const rae = await api.register('rae', PASSWORD);
    await api.register('sam', 'sams password');
    const first = await rae.post(`${V3}/account/password`, { new_password: 'hijacked' });
    const r = await rae.post(`${V3}/account/password`, {
      new_password: 'hijacked',
      auth: passwordAuth('@sam:localhost', 'sams password', first.body.session),
    });
    // Not a failed stage to retry (401) but a request that can never succeed: 403, as Synapse.
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.equal(r.body.errcode, 'M_FORBIDDEN');
    expectError(await login(api, 'rae', 'hijacked'), 403, 'M_FORBIDDEN');
  });
});

describe('accounts: deactivation and 3pids', function () {
  let srv: TestServer;
  let api: Api;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
  });
  after(async () => srv.stop());

  it('GET /account/3pid is {threepids: []}', async () => {
    const u = await api.register('threep');
    const r = await u.get(`${V3}/account/3pid`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { threepids: [] });
  });

  it('deactivation needs UIA; afterwards login fails and every token is dead', async () => {
    const dee = await api.register('dee', PASSWORD);
    const other = await loginClient(srv.url, 'dee', PASSWORD);
    const first = await dee.post(`${V3}/account/deactivate`, {});
    assert.equal(first.status, 401, JSON.stringify(first.body));
    assert.ok(first.body.flows.some((f: any) => f.stages.includes('m.login.password')), JSON.stringify(first.body));
    // Still active after the challenge.
    assert.equal((await dee.get(`${V3}/account/whoami`)).status, 200);

    const wrong = await dee.post(`${V3}/account/deactivate`, { auth: passwordAuth('dee', 'nope', first.body.session) });
    assert.equal(wrong.status, 401, JSON.stringify(wrong.body));
    assert.equal(wrong.body.errcode, 'M_FORBIDDEN');
    assert.equal((await dee.get(`${V3}/account/whoami`)).status, 200);

    const r = await dee.post(`${V3}/account/deactivate`, { auth: passwordAuth('dee', PASSWORD, first.body.session) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // registration.yaml: id_server_unbind_result "must be `success` if the homeserver has no
    // identifiers to unbind for the user" (and this user has no 3PIDs at all).
    assert.equal(r.body.id_server_unbind_result, 'success');

    for (const c of [dee, other]) expectError(await c.get(`${V3}/account/whoami`), 401, 'M_UNKNOWN_TOKEN');
    const again = await login(api, 'dee', PASSWORD);
    assert.equal(again.status, 403, JSON.stringify(again.body));
    assert.ok(['M_USER_DEACTIVATED', 'M_FORBIDDEN'].includes(again.body.errcode), JSON.stringify(again.body));
    assert.equal(again.body.access_token, undefined);
    // The user ID is not handed out again.
    expectError(await api.get(`${V3}/register/available?username=dee`), 400, 'M_USER_IN_USE');
  });
});

describe('accounts: credential storage', function () {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => srv.stop());

  it('stores only hashes of access tokens, and scrypt hashes of passwords', async () => {
    const password = 'plaintext-password-marker-4711';
    const u = await new Api(srv.url).register('hashy', password);
    const second = await loginClient(srv.url, 'hashy', password);
    const tokens = [u.token!, second.token!];
    // Make sure the writes are visible: an authenticated request after both logins.
    assert.equal((await second.get(`${V3}/account/whoami`)).status, 200);

    const db = new Database(join(srv.dataDir, 'hearth.sqlite'), { readonly: true, fileMustExist: true });
    try {
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((t) => t.name);
      assert.ok(tables.length > 0);
      const needles = [...tokens, ...tokens.map((t) => t.replace(/^[a-z]+_/, '')), password];
      let sawUser = false;
      const scryptCells: string[] = [];
      for (const table of tables) {
        const rows = db.prepare(`SELECT * FROM "${table.replace(/"/g, '""')}"`).all() as Array<Record<string, unknown>>;
        for (const row of rows) {
          const cells = Object.values(row);
          if (cells.includes('@hashy:localhost')) sawUser = true;
          for (const cell of cells) {
            const text = typeof cell === 'string' ? cell : Buffer.isBuffer(cell) ? cell.toString('latin1') : null;
            if (text === null) continue;
            for (const n of needles) assert.ok(!text.includes(n), `table ${table} stores a secret in clear: ${text.slice(0, 80)}`);
            if (text.startsWith('scrypt$') && cells.includes('@hashy:localhost')) scryptCells.push(text);
          }
        }
      }
      assert.ok(sawUser, 'the scan saw the new user (the database is readable while the server runs)');
      assert.equal(scryptCells.length, 1, 'exactly one scrypt$ password hash for the user');
      assert.match(scryptCells[0], /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
    } finally {
      db.close();
    }
  });
});

describe('accounts: Synapse shared-secret registration (/_synapse/admin/v1/register)', function () {
  const secret = 'x'.repeat(32);
  let srv: TestServer;
  let api: Api;
  const ADMIN = '/_synapse/admin/v1/register';
  const mac = (nonce: string, user: string, password: string, admin: boolean, key = secret) =>
    createHmac('sha1', key).update(`${nonce}\0${user}\0${password}\0${admin ? 'admin' : 'notadmin'}`).digest('hex');

  before(async () => {
    srv = await startTestServer({ registration: { shared_secret: secret } });
    api = new Api(srv.url);
  });
  after(async () => srv.stop());

  it('GET gives a fresh nonce', async () => {
    const a = await api.get(ADMIN);
    const b = await api.get(ADMIN);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(typeof a.body.nonce, 'string');
    assert.ok(a.body.nonce.length >= 8);
    assert.notEqual(a.body.nonce, b.body.nonce);
  });

  it('creates the user with a correct HMAC-SHA1 mac', async () => {
    const { nonce } = (await api.get(ADMIN)).body;
    const r = await api.post(ADMIN, { nonce, username: 'opsbot', password: 'ops password', admin: false, mac: mac(nonce, 'opsbot', 'ops password', false) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, '@opsbot:localhost');
    assert.equal(typeof r.body.access_token, 'string');
    const who = await new Api(srv.url, r.body.access_token).get(`${V3}/account/whoami`);
    assert.equal(who.body.user_id, '@opsbot:localhost');
    assert.equal((await login(api, 'opsbot', 'ops password')).status, 200);
  });

  it('creates an admin user (mac over "admin")', async () => {
    const { nonce } = (await api.get(ADMIN)).body;
    const r = await api.post(ADMIN, { nonce, username: 'root', password: 'pw', admin: true, mac: mac(nonce, 'root', 'pw', true) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, '@root:localhost');
  });

  it('refuses a wrong mac with 403 and creates nothing', async () => {
    const { nonce } = (await api.get(ADMIN)).body;
    const wrongKey = await api.post(ADMIN, { nonce, username: 'intruder', password: 'pw', mac: mac(nonce, 'intruder', 'pw', false, 'y'.repeat(32)) });
    expectError(wrongKey, 403, 'M_FORBIDDEN');
    const { nonce: n2 } = (await api.get(ADMIN)).body;
    // A mac for a non-admin user does not register an admin.
    const flipped = await api.post(ADMIN, { nonce: n2, username: 'intruder', password: 'pw', admin: true, mac: mac(n2, 'intruder', 'pw', false) });
    expectError(flipped, 403, 'M_FORBIDDEN');
    assert.equal((await api.get(`${V3}/register/available?username=intruder`)).status, 200);
  });

  it('refuses a reused nonce', async () => {
    const { nonce } = (await api.get(ADMIN)).body;
    const once = await api.post(ADMIN, { nonce, username: 'once', password: 'pw', mac: mac(nonce, 'once', 'pw', false) });
    assert.equal(once.status, 200, JSON.stringify(once.body));
    const twice = await api.post(ADMIN, { nonce, username: 'twice', password: 'pw', mac: mac(nonce, 'twice', 'pw', false) });
    // Synapse: SynapseError(400, "unrecognised nonce").
    assert.equal(twice.status, 400, JSON.stringify(twice.body));
    assert.equal(typeof twice.body.errcode, 'string');
    assert.equal((await api.get(`${V3}/register/available?username=twice`)).status, 200);
    const unknown = await api.post(ADMIN, { nonce: 'made-up', username: 'twice', password: 'pw', mac: mac('made-up', 'twice', 'pw', false) });
    assert.equal(unknown.status, 400, JSON.stringify(unknown.body));
  });

  it('sets the displayname given in the request (Synapse admin API `displayname`)', async () => {
    const { nonce } = (await api.get(ADMIN)).body;
    const r = await api.post(ADMIN, { nonce, username: 'named', password: 'pw', displayname: 'Named Bot', mac: mac(nonce, 'named', 'pw', false) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const p = await api.get(`${V3}/profile/${enc('@named:localhost')}`);
    assert.equal(p.status, 200, JSON.stringify(p.body));
    assert.equal(p.body.displayname, 'Named Bot');
  });

  it('is refused when no shared secret is configured', async () => {
    const plain = await startTestServer();
    try {
      const r = await new Api(plain.url).post(ADMIN, { nonce: 'n', username: 'x', password: 'pw', mac: mac('n', 'x', 'pw', false) });
      assert.ok(r.status >= 400 && r.status < 500, JSON.stringify(r.body));
      assert.equal(typeof r.body.errcode, 'string');
    } finally {
      await plain.stop();
    }
  });
});
