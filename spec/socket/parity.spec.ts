// REST and socket request frames are served by one route table (src/api/handlers.ts): the same
// bad input must get the same {status, errcode} over both. Each case sends byte-for-byte the same
// body text over HTTP and inside a raw request frame (spliced into the frame's text, so values
// JSON.stringify could not produce, such as 1e400, arrive as sent).

import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { makeUser, V3, type User } from '../helpers/fixtures.js';
import { bearer, rawConnect, socketUrl, waitFor, type RawClient } from './helpers.js';

type Answer = { status: number; body: any };

async function overHttp(base: string, token: string | undefined, method: string, path: string, text?: string): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(base + path, { method, headers, body: text });
  const raw = await res.text();
  return { status: res.status, body: raw ? JSON.parse(raw) : {} };
}

let seq = 0;
async function overSocket(c: RawClient, method: string, path: string, text?: string): Promise<Answer> {
  const id = `p${++seq}`;
  const head = `{"type":"request","id":${JSON.stringify(id)},"method":${JSON.stringify(method)},"path":${JSON.stringify(path)}`;
  c.sendText(text === undefined ? `${head}}` : `${head},"body":${text}}`);
  const f = await waitFor(`response ${id}`, () => c.frames.find((x) => x.type === 'response' && x.id === id));
  return { status: f.status, body: f.body };
}

function same(http: Answer, sock: Answer, status: number, errcode: string | undefined, what: string): void {
  assert.deepEqual({ status: sock.status, errcode: sock.body.errcode }, { status: http.status, errcode: http.body.errcode }, `${what}: socket vs HTTP`);
  assert.equal(http.status, status, `${what}: ${JSON.stringify(http.body)}`);
  assert.equal(http.body.errcode, errcode, `${what}: ${JSON.stringify(http.body)}`);
  if (errcode) assert.equal(typeof sock.body.error, 'string', what);
}

describe('REST and socket request frames answer bad input identically', function () {
  let srv: TestServer;
  let u: User;
  let roomId: string;
  let c: RawClient;

  before(async () => {
    srv = await startTestServer();
    u = await makeUser(srv, 'parity');
    const r = await u.post(`${V3}/createRoom`, {});
    roomId = r.body.room_id;
    c = await rawConnect(socketUrl(srv.url), bearer(u.token!));
    await waitFor('the first sync frame', () => c.frames.some((f) => f.type === 'sync'));
  });
  after(async () => {
    c.ws.close(1000);
    await srv.stop();
  });

  const both = async (method: string, path: string, text: string | undefined, status: number, errcode: string | undefined, what: string) => {
    const http = await overHttp(srv.url, u.token, method, path, text);
    const sock = await overSocket(c, method, path, text);
    same(http, sock, status, errcode, what);
    return { http, sock };
  };

  it('bad JSON bodies: not an object, numbers without a canonical form, lone surrogates, too deep, schema violations', async () => {
    const send = (t: string) => `${V3}/rooms/${enc(roomId)}/send/m.room.message/${t}-${seq}`;
    await both('POST', `${V3}/createRoom`, '[1,2]', 400, 'M_BAD_JSON', 'array body');
    await both('POST', `${V3}/createRoom`, '"text"', 400, 'M_BAD_JSON', 'string body');
    await both('POST', `${V3}/createRoom`, 'null', 400, 'M_BAD_JSON', 'null body');
    await both('PUT', send('big'), '{"msgtype":"m.text","body":"x","n":1e400}', 400, 'M_BAD_JSON', '1e400');
    await both('PUT', send('int'), '{"msgtype":"m.text","body":"x","n":9007199254740993}', 400, 'M_BAD_JSON', 'integer past 2^53');
    await both('PUT', send('frac'), '{"msgtype":"m.text","body":"x","n":0.5}', 400, 'M_BAD_JSON', 'fraction in an event');
    await both('PUT', send('exp'), '{"msgtype":"m.text","body":"x","n":1e2}', 400, 'M_BAD_JSON', 'exponent in an event');
    await both('PUT', send('sur'), '{"msgtype":"m.text","body":"\\ud800"}', 400, 'M_BAD_JSON', 'lone surrogate');
    await both('PUT', `${V3}/user/${enc(u.userId)}/account_data/m.deep`, '{"a":'.repeat(600) + '1' + '}'.repeat(600), 400, 'M_BAD_JSON', 'nesting 600 deep');
    await both('POST', `${V3}/createRoom`, '{"name":42}', 400, 'M_BAD_JSON', 'schema violation');
    await both('POST', `${V3}/createRoom`, '{"preset":"nope"}', 400, 'M_BAD_JSON', 'bad enum');
    // Account data may hold fractions (tag order) on both.
    await both('PUT', `${V3}/user/${enc(u.userId)}/account_data/m.frac`, '{"order":0.25}', 200, undefined, 'fraction in account data');
  });

  it('an event over the PDU limit is 413 M_TOO_LARGE on both, and nothing is sent', async () => {
    const big = JSON.stringify({ msgtype: 'm.text', body: 'x'.repeat(70_000) });
    await both('PUT', `${V3}/rooms/${enc(roomId)}/send/m.room.message/big-${seq}`, big, 413, 'M_TOO_LARGE', 'oversized event');
    const msgs = await u.get(`${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
    assert.ok(!msgs.body.chunk.some((e: any) => e.type === 'm.room.message' && String(e.content.body).length > 60_000));
  });

  it('prototype keys are plain data on both: stored and returned as own keys, nothing polluted', async () => {
    const text = '{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},"v":1}';
    await both('PUT', `${V3}/user/${enc(u.userId)}/account_data/m.proto.http`, text, 200, undefined, 'prototype keys in account data');
    const http = await overHttp(srv.url, u.token, 'GET', `${V3}/user/${enc(u.userId)}/account_data/m.proto.http`);
    assert.equal(http.status, 200);
    // JSON.parse (here) makes "__proto__" an own key too: the server gave it back as data.
    assert.ok(Object.prototype.hasOwnProperty.call(http.body, '__proto__'), JSON.stringify(http.body));
    assert.deepEqual(http.body.constructor, { prototype: { x: 1 } });
    assert.equal(({} as any).polluted, undefined);
    // A filter whose only content hides behind __proto__ is the same filter on both.
    await both('POST', `${V3}/user/${enc(u.userId)}/filter`, '{"__proto__":{"room":{"timeline":{"limit":"x"}}}}', 200, undefined, 'prototype key in a filter');
  });

  it('NUL in path parameters is 400 M_INVALID_PARAM on both', async () => {
    await both('PUT', `${V3}/rooms/${enc(roomId)}/send/${enc('m.x\u0000y')}/nul1`, '{"a":1}', 400, 'M_INVALID_PARAM', 'NUL in event type');
    await both('PUT', `${V3}/rooms/${enc(roomId)}/state/m.custom/${enc('k\u0000j')}`, '{"a":1}', 400, 'M_INVALID_PARAM', 'NUL in state key');
    await both('GET', `${V3}/user/${enc(u.userId)}/account_data/${enc('m.a\u0000b')}`, undefined, 400, 'M_INVALID_PARAM', 'NUL in account-data type');
    // The send frame builds its path from fields: the same refusal.
    const id = `nul-send-${++seq}`;
    c.send({ type: 'send', id, room_id: roomId, event_type: 'm.x\u0000y', txn_id: 't', content: { a: 1 } });
    const f = await waitFor('the send frame answer', () => c.frames.find((x) => x.type === 'response' && x.id === id));
    assert.deepEqual([f.status, f.body.errcode], [400, 'M_INVALID_PARAM']);
  });

  it('wrong methods are 405 and unknown paths 404, M_UNRECOGNIZED on both', async () => {
    await both('DELETE', `${V3}/login`, undefined, 405, 'M_UNRECOGNIZED', 'DELETE /login');
    await both('GET', `${V3}/rooms/${enc(roomId)}/send/m.room.message/t1`, undefined, 405, 'M_UNRECOGNIZED', 'GET on a PUT route');
    await both('POST', `${V3}/account/whoami`, '{}', 405, 'M_UNRECOGNIZED', 'POST on a GET route');
    await both('GET', `${V3}/no/such/thing`, undefined, 404, 'M_UNRECOGNIZED', 'unknown path');
    await both('GET', '/_matrix/client/v9/account/whoami', undefined, 404, 'M_UNRECOGNIZED', 'unknown version');
  });

  it('a missing token is 401 M_MISSING_TOKEN on both (a frame sent before authenticating)', async () => {
    const http = await overHttp(srv.url, undefined, 'GET', `${V3}/account/whoami`);
    // No Authorization header: the socket waits for an auth frame; a request before it is answered.
    const anon = await rawConnect(socketUrl(srv.url));
    const sock = await overSocket(anon, 'GET', `${V3}/account/whoami`);
    same(http, sock, 401, 'M_MISSING_TOKEN', 'missing token');
    const closed = await anon.closed;
    assert.equal(closed.code, 4001);
  });

  it('a revoked token is 401 M_UNKNOWN_TOKEN on both, and the socket then closes with 4001', async () => {
    const v = await makeUser(srv, 'revoked');
    const s = await rawConnect(socketUrl(srv.url), bearer(v.token!));
    await waitFor('the first sync frame', () => s.frames.some((f) => f.type === 'sync'));
    const ok = await overSocket(s, 'GET', `${V3}/account/whoami`);
    assert.equal(ok.status, 200);
    // Revoked behind the socket's back, as another process does it: the device (and its tokens)
    // deleted in the store, with its device-list record, but no revocation broadcast reaching
    // this process. The record drops the checked-token cache (src/users/token-cache.ts).
    const { userId, deviceId } = await srv.hearth.services.accounts.authenticate(v.token!);
    assert.equal(await srv.hearth.store.devices.deleteDevice(userId, deviceId), true);
    await srv.hearth.store.e2ee.deleteDeviceE2ee(userId, deviceId);
    const http = await overHttp(srv.url, v.token, 'GET', `${V3}/account/whoami`);
    const sock = await overSocket(s, 'GET', `${V3}/account/whoami`);
    same(http, sock, 401, 'M_UNKNOWN_TOKEN', 'revoked token');
    const closed = await s.closed;
    assert.equal(closed.code, 4001);
  });
});

const generous = { per_second: 1000, burst: 1000 };

describe('REST and socket request frames share the per-user rate limits', function () {
  let srv: TestServer;

  before(async () => {
    srv = await startTestServer({
      limits: {
        rate_limits: {
          enabled: true,
          login: generous,
          login_failures_per_address: generous,
          login_failures_per_account_address: generous,
          registration: generous,
          write: { per_second: 0.01, burst: 4 },
          message: { per_second: 0.01, burst: 3 },
        },
      },
    });
  });
  after(() => srv.stop());

  it('the write bucket runs out after the same number of requests on each transport, with the same 429', async () => {
    const api = new Api(srv.url);
    const a = await api.register('ratehttp');
    const b = await api.register('ratesock');
    const c = await rawConnect(socketUrl(srv.url), bearer(b.token!));
    await waitFor('the first sync frame', () => c.frames.some((f) => f.type === 'sync'));
    const viaHttp: Answer[] = [];
    const viaSock: Answer[] = [];
    for (let i = 0; i < 6; i++) {
      viaHttp.push(await overHttp(srv.url, a.token, 'PUT', `${V3}/presence/${enc(a.userId)}/status`, '{"presence":"online"}'));
      viaSock.push(await overSocket(c, 'PUT', `${V3}/presence/${enc(b.userId)}/status`, '{"presence":"online"}'));
    }
    const shape = (xs: Answer[]) => xs.map((x) => `${x.status} ${x.body.errcode ?? ''}`.trim());
    assert.deepEqual(shape(viaSock), shape(viaHttp));
    assert.deepEqual(shape(viaHttp), ['200', '200', '200', '200', '429 M_LIMIT_EXCEEDED', '429 M_LIMIT_EXCEEDED']);
    assert.ok(viaSock[5].body.retry_after_ms > 0, JSON.stringify(viaSock[5].body));
    // One bucket per user, whatever the transport: the socket user is also refused over REST.
    const rest = await overHttp(srv.url, b.token, 'PUT', `${V3}/presence/${enc(b.userId)}/status`, '{"presence":"online"}');
    assert.equal(rest.status, 429);
    c.ws.close(1000);
  });

  it('the message bucket limits send frames exactly as it limits PUT /send', async () => {
    const api = new Api(srv.url);
    const a = await api.register('msghttp');
    const b = await api.register('msgsock');
    const roomA = (await a.post(`${V3}/createRoom`, {})).body.room_id;
    const roomB = (await b.post(`${V3}/createRoom`, {})).body.room_id;
    const c = await rawConnect(socketUrl(srv.url), bearer(b.token!));
    await waitFor('the first sync frame', () => c.frames.some((f) => f.type === 'sync'));
    const viaHttp: string[] = [];
    const viaSock: string[] = [];
    for (let i = 0; i < 5; i++) {
      const h = await overHttp(srv.url, a.token, 'PUT', `${V3}/rooms/${enc(roomA)}/send/m.room.message/m${i}`, '{"msgtype":"m.text","body":"x"}');
      viaHttp.push(`${h.status} ${h.body.errcode ?? ''}`.trim());
      const id = `m${i}`;
      c.send({ type: 'send', id, room_id: roomB, event_type: 'm.room.message', txn_id: `m${i}`, content: { msgtype: 'm.text', body: 'x' } });
      const f = await waitFor(`response ${id}`, () => c.frames.find((x) => x.type === 'response' && x.id === id));
      viaSock.push(`${f.status} ${f.body.errcode ?? ''}`.trim());
    }
    assert.deepEqual(viaSock, viaHttp);
    assert.ok(viaHttp.includes('429 M_LIMIT_EXCEEDED'), viaHttp.join(', '));
    assert.equal(viaHttp[0], '200');
    c.ws.close(1000);
  });
});
