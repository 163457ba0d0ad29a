import { assert } from '../helpers/assert.js';
import { SOCKET_PATH, UNSTABLE_FEATURE } from '../../src/sync/socket/protocol.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';
import { bearer, frames, openSocket, rawConnect, refusal, sleep, socketUrl, within, type User } from './helpers.js';

describe('websocket sync: connecting and authentication', function () {
  const AUTH_TIMEOUT = 300;
  let srv: TestServer;
  let alice: User;

  before(async () => {
    srv = await startTestServer({ websocket: { auth_timeout_ms: AUTH_TIMEOUT } });
    alice = await new Api(srv.url).register('alice');
  });
  after(async () => srv.stop());

  it('advertises the extension in /versions', async () => {
    const r = await new Api(srv.url).get('/_matrix/client/versions');
    assert.equal(r.status, 200);
    assert.equal(UNSTABLE_FEATURE, 'io.hearth.sync.ws');
    assert.equal(r.body.unstable_features['io.hearth.sync.ws'], true);
  });

  it('connects with the Authorization header and streams as that user', async () => {
    const s = await openSocket(srv.url, alice);
    const [first] = await frames(s, 1);
    assert.match(first.next_batch, /^h1_\d+_\d+$/);
    const who = await s.sock.request('GET', '/_matrix/client/v3/account/whoami');
    assert.equal(who.status, 200);
    assert.equal(who.body.user_id, alice.userId);
    assert.equal(who.body.device_id, alice.deviceId);
    assert.equal((await s.sock.close()).code, 1000);
  });

  it('connects with an auth first frame instead of the header', async () => {
    const s = await openSocket(srv.url, alice, { authFrame: true });
    const [first] = await frames(s, 1);
    assert.match(first.next_batch, /^h1_\d+_\d+$/);
    const who = await s.sock.request('GET', '/_matrix/client/v3/account/whoami');
    assert.equal(who.status, 200);
    assert.equal(who.body.user_id, alice.userId);
    await s.sock.close();
  });

  it('sends nothing before the auth frame, and starts streaming once it arrives', async () => {
    const c = await rawConnect(socketUrl(srv.url));
    await sleep(AUTH_TIMEOUT / 2);
    assert.equal(c.frames.length, 0, `no frames before authentication: ${JSON.stringify(c.frames)}`);
    c.send({ type: 'auth', access_token: alice.token });
    const deadline = Date.now() + 3000;
    while (!c.frames.some((f) => f.type === 'sync') && Date.now() < deadline) await sleep(10);
    const sync = c.frames.find((f) => f.type === 'sync');
    assert.ok(sync, `a sync frame after auth; got ${JSON.stringify(c.frames)}`);
    // Authenticated in time: the auth timer must not close it afterwards.
    const closed = await within(c.closed, AUTH_TIMEOUT + 300, null);
    assert.equal(closed, null, `socket closed after a timely auth: ${JSON.stringify(closed)}`);
    c.ws.close(1000);
  });

  it('closes with 4001 when no auth arrives within auth_timeout_ms', async () => {
    const opened = Date.now();
    const c = await rawConnect(socketUrl(srv.url));
    const closed = await within(c.closed, AUTH_TIMEOUT + 2000, null);
    assert.ok(closed, 'socket closed');
    assert.equal(closed.code, 4001);
    const elapsed = closed.at - opened;
    assert.ok(elapsed >= AUTH_TIMEOUT - 50, `not before the timeout (${elapsed} ms)`);
    assert.ok(elapsed < AUTH_TIMEOUT + 1500, `soon after the timeout (${elapsed} ms)`);
  });

  it('answers a bad token in the header with M_UNKNOWN_TOKEN and closes 4001', async () => {
    const c = await rawConnect(socketUrl(srv.url), bearer('hth_not_a_real_token'));
    const closed = await within(c.closed, 3000, null);
    assert.ok(closed, 'socket closed');
    assert.equal(closed.code, 4001);
    const err = c.frames.find((f) => f.type === 'error');
    assert.ok(err, `an error frame; got ${JSON.stringify(c.frames)}`);
    assert.equal(err.errcode, 'M_UNKNOWN_TOKEN');
    assert.equal(c.frames.filter((f) => f.type === 'sync').length, 0, 'no sync frames for a bad token');
  });

  it('answers a bad token in the auth frame with M_UNKNOWN_TOKEN and closes 4001', async () => {
    const c = await rawConnect(socketUrl(srv.url));
    c.send({ type: 'auth', access_token: 'hth_not_a_real_token' });
    const closed = await within(c.closed, 3000, null);
    assert.ok(closed, 'socket closed');
    assert.equal(closed.code, 4001);
    assert.equal(c.frames.find((f) => f.type === 'error')?.errcode, 'M_UNKNOWN_TOKEN');
  });

  it('refuses the upgrade of an unknown path under /_matrix/client/unstable with HTTP 404', async () => {
    for (const path of ['/_matrix/client/unstable/io.hearth.sync/nope', '/_matrix/client/unstable/org.example/ws']) {
      const r = await refusal(socketUrl(srv.url, {}, path), bearer(alice.token!));
      assert.equal(r.status, 404, path);
      assert.equal(r.body.errcode, 'M_UNRECOGNIZED', path);
    }
    assert.notEqual(SOCKET_PATH, '/_matrix/client/unstable/io.hearth.sync/nope');
  });

  it('closes with 4002 on a frame that is not JSON', async () => {
    const c = await rawConnect(socketUrl(srv.url), bearer(alice.token!));
    await sleep(50);
    c.sendText('this is {not json');
    const closed = await within(c.closed, 3000, null);
    assert.ok(closed, 'socket closed');
    assert.equal(closed.code, 4002);
  });

  it('closes with 4002 on a non-JSON frame before authentication too', async () => {
    const c = await rawConnect(socketUrl(srv.url));
    c.sendText('\u0000\u0001garbage');
    const closed = await within(c.closed, 3000, null);
    assert.ok(closed, 'socket closed');
    assert.equal(closed.code, 4002);
  });

  it('closes with 4002 on a JSON frame of an unknown type (protocol.ts: BAD_FRAME covers "not a known frame type")', async () => {
    const c = await rawConnect(socketUrl(srv.url), bearer(alice.token!));
    await sleep(50);
    c.send({ type: 'no-such-frame-type', id: 'x1' });
    const closed = await within(c.closed, 2000, null);
    if (!closed) c.ws.terminate();
    assert.ok(closed, `socket stayed open after an unknown frame type; frames: ${JSON.stringify(c.frames.filter((f) => f.type !== 'sync'))}`);
    assert.equal(closed.code, 4002);
  });

  it('a bad `filter` parameter gets an error frame, then the socket closes with 4002 (header and auth frame)', async () => {
    for (const filter of ['{not json', JSON.stringify({ room: { timeline: { limit: 'ten' } } }), '99999999']) {
      const viaHeader = await rawConnect(socketUrl(srv.url, { filter }), bearer(alice.token!));
      const viaFrame = await rawConnect(socketUrl(srv.url));
      viaFrame.send({ type: 'auth', access_token: alice.token!, filter });
      for (const [how, c] of [['header', viaHeader], ['auth frame', viaFrame]] as const) {
        const closed = await within(c.closed, 3000, null);
        if (!closed) c.ws.terminate();
        assert.ok(closed, `${how}, filter ${filter}: socket stayed open; frames ${JSON.stringify(c.frames)}`);
        assert.equal(closed.code, 4002, `${how}, filter ${filter}`);
        assert.equal(c.frames[0]?.type, 'error', `${how}: the error frame comes first`);
        assert.equal(typeof c.frames[0].errcode, 'string');
        assert.equal(c.frames.filter((f) => f.type === 'sync').length, 0);
      }
    }
  });

  it('closes with 4002 when `since` is not a token', async () => {
    const c = await rawConnect(socketUrl(srv.url, { since: 'garbage-token' }), bearer(alice.token!));
    const closed = await within(c.closed, 3000, null);
    assert.ok(closed, 'socket closed');
    assert.equal(closed.code, 4002);
    assert.equal(c.frames.find((f) => f.type === 'error')?.errcode, 'M_INVALID_PARAM');
  });

  it('answers a ping frame with a pong carrying the same id', async () => {
    const c = await rawConnect(socketUrl(srv.url), bearer(alice.token!));
    c.send({ type: 'ping', id: 'p-42' });
    const deadline = Date.now() + 3000;
    while (!c.frames.some((f) => f.type === 'pong') && Date.now() < deadline) await sleep(10);
    assert.deepEqual(c.frames.find((f) => f.type === 'pong'), { type: 'pong', id: 'p-42' });
    c.ws.close(1000);
  });
});

describe('websocket sync: frames sent right after connecting', function () {
  let srv: TestServer;
  let alice: User;

  before(async () => {
    srv = await startTestServer();
    alice = await new Api(srv.url).register('alice');
  });
  after(async () => srv.stop());

  it('answers a request sent immediately after open (header auth)', async () => {
    for (let i = 0; i < 5; i++) {
      const s = await openSocket(srv.url, alice);
      const who = await within(s.sock.request('GET', '/_matrix/client/v3/account/whoami'), 3000, null);
      assert.ok(who, 'a response frame');
      assert.equal(who.status, 200, `attempt ${i}: ${JSON.stringify(who.body)} errors=${JSON.stringify(s.errors)}`);
      assert.equal(who.body.user_id, alice.userId);
      await s.sock.close();
    }
  });

  it('answers a request sent immediately after the auth frame (same tick)', async () => {
    for (let i = 0; i < 5; i++) {
      const s = await openSocket(srv.url, alice, { authFrame: true });
      const who = await within(s.sock.request('GET', '/_matrix/client/v3/account/whoami'), 3000, null);
      assert.ok(who, 'a response frame');
      assert.equal(who.status, 200, `attempt ${i}: ${JSON.stringify(who.body)} errors=${JSON.stringify(s.errors)}`);
      assert.equal(who.body.user_id, alice.userId);
      await s.sock.close();
    }
  });
});
