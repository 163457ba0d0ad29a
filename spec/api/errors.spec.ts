import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('bad input gets Matrix errors, never a 500', function () {
  let srv: TestServer;
  let api: Api;
  let alice: Awaited<ReturnType<Api['register']>>;
  let roomId: string;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
    alice = await api.register('alice');
    roomId = (await alice.post('/_matrix/client/v3/createRoom', {})).body.room_id;
  });
  after(async () => srv.stop());

  const expectError = (r: { status: number; body: any }, status: number, errcode: string) => {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal(r.body.errcode, errcode);
    assert.equal(typeof r.body.error, 'string');
  };

  it('401 M_MISSING_TOKEN and M_UNKNOWN_TOKEN', async () => {
    expectError(await api.get('/_matrix/client/v3/account/whoami'), 401, 'M_MISSING_TOKEN');
    expectError(await new Api(srv.url, 'nope').get('/_matrix/client/v3/account/whoami'), 401, 'M_UNKNOWN_TOKEN');
  });

  it('404 M_UNRECOGNIZED for unknown endpoints and 405 for wrong methods', async () => {
    expectError(await api.get('/_matrix/client/v3/no/such/thing'), 404, 'M_UNRECOGNIZED');
    expectError(await api.get('/_matrix/client/unstable/org.matrix.msc4143/rtc/transports'), 404, 'M_UNRECOGNIZED');
    expectError(await api.req('DELETE', '/_matrix/client/v3/login'), 405, 'M_UNRECOGNIZED');
  });

  it('405 M_UNRECOGNIZED for methods the server does not implement, with an Allow header', async () => {
    const call = async (method: string, path: string) => {
      const res = await fetch(`${srv.url}${path}`, { method });
      return { status: res.status, allow: res.headers.get('allow'), body: await res.json() };
    };
    for (const method of ['PROPFIND', 'MKCOL', 'LOCK']) {
      const known = await call(method, '/_matrix/client/v3/login');
      expectError(known, 405, 'M_UNRECOGNIZED');
      const unknown = await call(method, '/_matrix/client/v3/no/such/thing');
      expectError(unknown, 405, 'M_UNRECOGNIZED');
    }
    // PATCH is a method the router knows: 405 where the path exists, 404 where it does not.
    const patch = await call('PATCH', '/_matrix/client/v3/login');
    expectError(patch, 405, 'M_UNRECOGNIZED');
    assert.deepEqual(patch.allow?.split(/,\s*/).sort(), ['GET', 'HEAD', 'POST']);
    expectError(await call('PATCH', '/_matrix/client/v3/no/such/thing'), 404, 'M_UNRECOGNIZED');
    expectError(await call('PUT', '/_matrix/client/v3/login'), 405, 'M_UNRECOGNIZED');
    // A made-up method never reaches the router: Node's parser refuses it (400, see listener.spec).
    expectError(await call('BREW', '/_matrix/client/v3/login'), 400, 'M_UNKNOWN');
  });

  it('400 M_NOT_JSON and M_BAD_JSON', async () => {
    expectError(await alice.req('POST', '/_matrix/client/v3/createRoom', '{not json'), 400, 'M_NOT_JSON');
    expectError(await alice.req('POST', '/_matrix/client/v3/createRoom', '[1,2]'), 400, 'M_BAD_JSON');
    expectError(await alice.post('/_matrix/client/v3/createRoom', { name: 42 }), 400, 'M_BAD_JSON');
    expectError(await alice.req('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/f1`, '{"x": 1.5}'), 400, 'M_BAD_JSON');
  });

  it('413 M_TOO_LARGE for an oversized event, and nothing is stored', async () => {
    const before = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=100`);
    const big = { msgtype: 'm.text', body: 'x'.repeat(70_000) };
    expectError(await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/big1`, big), 413, 'M_TOO_LARGE');
    // Under the body limit but over the PDU limit once signed and wrapped.
    const nearly = { msgtype: 'm.text', body: 'x'.repeat(65_400) };
    expectError(await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/big2`, nearly), 413, 'M_TOO_LARGE');
    const after = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=100`);
    assert.equal(after.body.chunk.length, before.body.chunk.length);
  });

  it('rejects invalid IDs and tokens with 4xx', async () => {
    expectError(await alice.post(`/_matrix/client/v3/rooms/${enc(roomId)}/invite`, { user_id: 'not-a-user' }), 400, 'M_INVALID_PARAM');
    expectError(await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?from=garbage`), 400, 'M_INVALID_PARAM');
    expectError(await alice.get('/_matrix/client/v3/sync?since=garbage'), 400, 'M_INVALID_PARAM');
    expectError(await alice.post(`/_matrix/client/v3/join/${enc('#nope:localhost')}`), 404, 'M_NOT_FOUND');
    expectError(await alice.post('/_matrix/client/v3/createRoom', { room_version: '13' }), 400, 'M_UNSUPPORTED_ROOM_VERSION');
    for (const v of ['0', '1.0', '', 'constructor', ' 12']) expectError(await alice.post('/_matrix/client/v3/createRoom', { room_version: v }), 400, 'M_UNSUPPORTED_ROOM_VERSION');
  });

  it('403 M_FORBIDDEN when auth rules reject an event', async () => {
    const bob = await api.register('bob');
    expectError(await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/join`), 403, 'M_FORBIDDEN');
    expectError(await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/x`, { body: 'hi' }), 403, 'M_FORBIDDEN');
  });

  it('rate-limits logins with M_LIMIT_EXCEEDED and retry_after_ms', async () => {
    const limited = await startTestServer({ limits: { rate_limits: { enabled: true, login: { per_second: 0.1, burst: 3 } } } });
    try {
      const anon = new Api(limited.url);
      let last: { status: number; body: any } | undefined;
      for (let i = 0; i < 6; i++) {
        last = await anon.post('/_matrix/client/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'x' }, password: 'y' });
        if (last.status === 429) break;
      }
      expectError(last!, 429, 'M_LIMIT_EXCEEDED');
      assert.ok(last!.body.retry_after_ms > 0);
    } finally {
      await limited.stop();
    }
  });

  it('answers CORS preflight on every route', async () => {
    const res = await fetch(`${srv.url}/_matrix/client/v3/rooms/x/send/m.room.message/1`, { method: 'OPTIONS' });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.match(res.headers.get('access-control-allow-headers') ?? '', /Authorization/);
  });
});
