// GET /pushers and POST /pushers/set over real HTTP (Client-Server API "Push notifications"):
// creating, replacing and deleting http pushers, append semantics across users, validation
// (missing and invalid parameters, gateway URLs, formats, kinds), and pushers going away with
// the device that created them.

import { assert } from '../helpers/assert.js';
import { V3, type User } from '../helpers/fixtures.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';

const URL_OK = 'https://push.example.org/_matrix/push/v1/notify';

describe('pushers API', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;

  before(async function () {
    // One test registers a loopback gateway URL, which the outbound IP policy refuses by default.
    srv = await startTestServer({ outbound: { ip_range_whitelist: ['127.0.0.1/32'] } });
  });
  after(async function () {
    await srv.stop();
  });
  let n = 0;
  beforeEach(async function () {
    n++;
    alice = await new Api(srv.url).register(`alice${n}`);
    bob = await new Api(srv.url).register(`bob${n}`);
  });

  const pusherBody = (extra: Record<string, unknown> = {}) => ({
    kind: 'http',
    app_id: 'org.example.app',
    pushkey: 'key1',
    app_display_name: 'Example App',
    device_display_name: 'Phone',
    lang: 'en-GB',
    data: { url: URL_OK },
    ...extra,
  });
  const list = async (u: Api) => {
    const r = await u.get(`${V3}/pushers`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.pushers as any[];
  };
  const set = async (u: Api, body: unknown, status = 200, errcode?: string) => {
    const r = await u.post(`${V3}/pushers/set`, body);
    assert.equal(r.status, status, JSON.stringify(r.body));
    if (errcode) assert.equal(r.body.errcode, errcode, JSON.stringify(r.body));
    else assert.deepEqual(r.body, {});
  };

  it('lists nothing, then the pusher as set', async function () {
    assert.deepEqual(await list(alice), []);
    await set(alice, pusherBody({ profile_tag: 'xyz', data: { url: URL_OK, format: 'event_id_only', default_payload: { aps: { 'mutable-content': 1 } } } }));
    assert.deepEqual(await list(alice), [
      {
        pushkey: 'key1',
        kind: 'http',
        app_id: 'org.example.app',
        app_display_name: 'Example App',
        device_display_name: 'Phone',
        profile_tag: 'xyz',
        lang: 'en-GB',
        data: { url: URL_OK, format: 'event_id_only', default_payload: { aps: { 'mutable-content': 1 } } },
      },
    ]);
    assert.deepEqual(await list(bob), []);
  });

  it('replaces a pusher with the same app_id and pushkey; other keys are separate pushers', async function () {
    await set(alice, pusherBody());
    await set(alice, pusherBody({ device_display_name: 'Tablet', data: { url: 'http://127.0.0.1:5000/_matrix/push/v1/notify' } }));
    const [only, ...rest] = await list(alice);
    assert.equal(rest.length, 0);
    assert.equal(only.device_display_name, 'Tablet');
    assert.equal(only.data.url, 'http://127.0.0.1:5000/_matrix/push/v1/notify');
    assert.equal(only.profile_tag, undefined);
    await set(alice, pusherBody({ pushkey: 'key2' }));
    await set(alice, pusherBody({ app_id: 'org.example.other' }));
    assert.deepEqual((await list(alice)).map((p) => `${p.app_id}/${p.pushkey}`).sort(), ['org.example.app/key1', 'org.example.app/key2', 'org.example.other/key1']);
  });

  it('append: false takes the pushkey from other users; append: true shares it', async function () {
    await set(alice, pusherBody({ pushkey: 'shared' }));
    await set(bob, pusherBody({ pushkey: 'shared', append: true }));
    assert.equal((await list(alice)).length, 1);
    assert.equal((await list(bob)).length, 1);
    await set(alice, pusherBody({ pushkey: 'shared', append: false }));
    assert.equal((await list(alice)).length, 1);
    assert.deepEqual(await list(bob), []);
  });

  it('deletes a pusher with kind: null (and accepts deleting one that does not exist)', async function () {
    await set(alice, pusherBody());
    await set(alice, pusherBody({ pushkey: 'key2' }));
    await set(alice, { kind: null, app_id: 'org.example.app', pushkey: 'key1' });
    assert.deepEqual((await list(alice)).map((p) => p.pushkey), ['key2']);
    await set(alice, { kind: null, app_id: 'org.example.app', pushkey: 'key1' });
    // Only the caller's own pushers can be deleted.
    await set(bob, { kind: null, app_id: 'org.example.app', pushkey: 'key2' });
    assert.deepEqual((await list(alice)).map((p) => p.pushkey), ['key2']);
  });

  it('requires kind, app_id and pushkey, and the other fields unless deleting', async function () {
    for (const field of ['kind', 'app_id', 'pushkey', 'app_display_name', 'device_display_name', 'lang', 'data']) {
      const b: Record<string, unknown> = pusherBody();
      delete b[field];
      await set(alice, b, 400, 'M_MISSING_PARAM');
    }
    await set(alice, pusherBody({ data: {} }), 400, 'M_MISSING_PARAM');
    assert.deepEqual(await list(alice), []);
  });

  it('rejects gateway URLs that are not absolute http(s) URLs of the notify endpoint', async function () {
    for (const url of [
      '/_matrix/push/v1/notify',
      'push.example.org/_matrix/push/v1/notify',
      'ftp://push.example.org/_matrix/push/v1/notify',
      'https://push.example.org/',
      'https://push.example.org/_matrix/push/v1/notify/extra',
      'not a url',
      42,
    ]) {
      await set(alice, pusherBody({ data: { url } }), 400, 'M_INVALID_PARAM');
    }
    await set(alice, pusherBody({ data: { url: 'https://gw.example.org:8443/prefix/_matrix/push/v1/notify' } }));
  });

  it('keeps any data.format string as given (only event_id_only changes the pushes)', async function () {
    await set(alice, pusherBody({ pushkey: 'fmt', data: { url: URL_OK, format: 'id_event_only' } }));
    const got = (await list(alice)).find((p: any) => p.pushkey === 'fmt');
    assert.equal(got?.data.format, 'id_event_only');
    await set(alice, pusherBody({ pushkey: 'fmt', data: { url: URL_OK, format: 7 } }), 400, 'M_INVALID_PARAM');
    await set(alice, pusherBody({ pushkey: 'fmt', kind: null }));
  });

  it('rejects other kinds and bad field types', async function () {
    await set(alice, pusherBody({ kind: 'email', app_id: 'm.email', pushkey: 'alice@example.org' }), 400, 'M_INVALID_PARAM');
    await set(alice, pusherBody({ kind: 7 }), 400, 'M_INVALID_PARAM');
    await set(alice, pusherBody({ app_id: 'a'.repeat(65) }), 400, 'M_INVALID_PARAM');
    await set(alice, pusherBody({ pushkey: 'k'.repeat(513) }), 400, 'M_INVALID_PARAM');
    await set(alice, pusherBody({ append: 'yes' }), 400, 'M_INVALID_PARAM');
    await set(alice, pusherBody({ data: 'https://push.example.org/_matrix/push/v1/notify' }), 400, 'M_INVALID_PARAM');
    await set(alice, pusherBody({ data: { url: URL_OK, blob: 'x'.repeat(9000) } }), 400, 'M_INVALID_PARAM');
    assert.deepEqual(await list(alice), []);
  });

  it('requires authentication', async function () {
    assert.equal((await new Api(srv.url).get(`${V3}/pushers`)).status, 401);
    assert.equal((await new Api(srv.url).post(`${V3}/pushers/set`, pusherBody())).status, 401);
  });

  it('removes the pushers of a device when the device goes away', async function () {
    const login = await new Api(srv.url).post(`${V3}/login`, {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: alice.userId },
      password: 'correct horse battery',
    });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const phone = new Api(srv.url, login.body.access_token);
    await set(phone, pusherBody({ pushkey: 'phone' }));
    await set(alice, pusherBody({ pushkey: 'laptop' }));
    assert.equal((await list(alice)).length, 2);
    assert.equal((await phone.post(`${V3}/logout`, {})).status, 200);
    assert.deepEqual((await list(alice)).map((p) => p.pushkey), ['laptop']);
  });
});
