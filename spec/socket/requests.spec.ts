import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import {
  aliceAndBobInRoom,
  bearer,
  ephemeralOf,
  frames,
  openSocket,
  rawConnect,
  sleep,
  socketUrl,
  waitFor,
  within,
  type User,
} from './helpers.js';

async function countMessages(user: User, roomId: string, text: string): Promise<number> {
  const r = await user.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=1000`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.chunk.filter((e: any) => e.type === 'm.room.message' && e.content.body === text).length;
}

describe('websocket sync: request and send frames', function () {
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let eve: User;
  let roomId: string;

  before(async () => {
    srv = await startTestServer();
    ({ alice, bob, others: [eve], roomId } = await aliceAndBobInRoom(srv.url, ['eve']));
  });
  after(async () => srv.stop());

  it('a request frame GET /account/whoami answers 200 with the user_id', async () => {
    const s = await openSocket(srv.url, alice);
    await frames(s, 1);
    const r = await s.sock.request('GET', '/_matrix/client/v3/account/whoami');
    assert.equal(r.type, 'response');
    assert.equal(r.status, 200);
    assert.equal(r.body.user_id, alice.userId);
    await s.sock.close();
  });

  it('a send frame returns the event_id of the event it created', async () => {
    const s = await openSocket(srv.url, alice);
    await frames(s, 1);
    const r = await s.sock.send(roomId, 'm.room.message', 'send-frame-1', { msgtype: 'm.text', body: 'via send frame' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.match(r.body.event_id as string, /^\$[A-Za-z0-9_-]{43}$/);
    const ev = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(r.body.event_id as string)}`);
    assert.equal(ev.status, 200, JSON.stringify(ev.body));
    assert.equal(ev.body.content.body, 'via send frame');
    assert.equal(ev.body.sender, alice.userId);
    await s.sock.close();
  });

  it('a send or request on a closed HearthSocket answers status 0 at once with its id, and nothing is sent', async () => {
    const s = await openSocket(srv.url, alice);
    await frames(s, 1);
    await s.sock.close();
    const sent = await within(s.sock.send(roomId, 'm.room.message', 'after-close-1', { msgtype: 'm.text', body: 'never sent' }), 1000, 'hung' as const);
    assert.notEqual(sent, 'hung', 'a send on a closed socket must not wait forever');
    if (sent === 'hung') return;
    assert.equal(sent.status, 0);
    assert.match(sent.id, /^s\d+$/);
    assert.equal(sent.body.errcode, 'M_UNKNOWN');
    const req = await within(s.sock.request('GET', '/_matrix/client/v3/account/whoami'), 1000, 'hung' as const);
    assert.notEqual(req, 'hung');
    if (req !== 'hung') assert.equal(req.status, 0);
    assert.equal(await countMessages(alice, roomId, 'never sent'), 0);
  });

  it('a retried txnId (same socket, after reconnecting, and over REST) returns the same event_id and creates nothing new', async () => {
    const text = 'idempotent-once';
    const txn = 'txn-idem-1';
    const content = { msgtype: 'm.text', body: text };
    const s1 = await openSocket(srv.url, alice);
    await frames(s1, 1);
    const first = await s1.sock.send(roomId, 'm.room.message', txn, content);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const eventId = first.body.event_id;
    const again = await s1.sock.send(roomId, 'm.room.message', txn, content);
    assert.equal(again.status, 200);
    assert.equal(again.body.event_id, eventId, 'same socket retry');
    // Concurrent retries on one socket.
    const both = await Promise.all([s1.sock.send(roomId, 'm.room.message', txn, content), s1.sock.send(roomId, 'm.room.message', txn, content)]);
    assert.deepEqual(both.map((r) => r.body.event_id), [eventId, eventId], 'concurrent retries');
    s1.sock.kill();
    await s1.sock.closed;

    const s2 = await openSocket(srv.url, alice);
    await frames(s2, 1);
    const afterReconnect = await s2.sock.send(roomId, 'm.room.message', txn, content);
    assert.equal(afterReconnect.status, 200);
    assert.equal(afterReconnect.body.event_id, eventId, 'retry after reconnecting');
    const viaRequest = await s2.sock.request('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${txn}`, content);
    assert.equal(viaRequest.body.event_id, eventId, 'retry as a generic request frame');
    await s2.sock.close();

    const rest = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${txn}`, content);
    assert.equal(rest.status, 200);
    assert.equal(rest.body.event_id, eventId, 'retry over REST with the same token/device');
    assert.equal(await countMessages(bob, roomId, text), 1, 'exactly one event in /messages');
  });

  it('the same txnId from another device is another transaction', async () => {
    const login = await new Api(srv.url).post('/_matrix/client/v3/login', {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: 'alice' },
      password: 'correct horse battery',
    });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    const other = Object.assign(new Api(srv.url, login.body.access_token), { userId: alice.userId, deviceId: login.body.device_id as string });
    const content = { msgtype: 'm.text', body: 'per-device-txn' };
    const s1 = await openSocket(srv.url, alice);
    const s2 = await openSocket(srv.url, other);
    const a = await s1.sock.send(roomId, 'm.room.message', 'txn-dev', content);
    const b = await s2.sock.send(roomId, 'm.room.message', 'txn-dev', content);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.notEqual(a.body.event_id, b.body.event_id);
    assert.equal(await countMessages(bob, roomId, 'per-device-txn'), 2);
    await s1.sock.close();
    await s2.sock.close();
  });

  it('a failing request answers 403 M_FORBIDDEN in its response frame and the socket stays open', async () => {
    const s = await openSocket(srv.url, eve);
    await frames(s, 1);
    const denied = await s.sock.send(roomId, 'm.room.message', 'eve-1', { msgtype: 'm.text', body: 'let me in' });
    assert.equal(denied.type, 'response');
    assert.equal(denied.status, 403, JSON.stringify(denied.body));
    assert.equal(denied.body.errcode, 'M_FORBIDDEN');
    const notFound = await s.sock.request('GET', '/_matrix/client/v3/no/such/endpoint');
    assert.equal(notFound.status, 404);
    assert.equal(notFound.body.errcode, 'M_UNRECOGNIZED');
    const bad = await s.sock.request('POST', '/_matrix/client/v3/createRoom', { preset: 42 } as never);
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    // Still open and still serving.
    assert.equal(await within(s.sock.closed, 200, 'open'), 'open');
    const who = await s.sock.request('GET', '/_matrix/client/v3/account/whoami');
    assert.equal(who.status, 200);
    assert.equal(who.body.user_id, eve.userId);
    assert.equal(await countMessages(alice, roomId, 'let me in'), 0);
    await s.sock.close();
  });

  it('a slow request does not hold up later frames (responses are matched by id, not by order)', async () => {
    const s = await openSocket(srv.url, bob);
    const [first] = await frames(s, 1);
    // A request that legitimately takes a while: a long-poll with nothing to return.
    const started = Date.now();
    const slow = s.sock.request('GET', `/_matrix/client/v3/sync?timeout=2500&since=${enc(first.next_batch)}&filter=${enc('{"room":{"rooms":[]},"presence":{"types":[]}}')}`);
    await new Promise((r) => setTimeout(r, 20));
    const who = await s.sock.request('GET', '/_matrix/client/v3/account/whoami');
    const whoMs = Date.now() - started;
    assert.equal(who.status, 200);
    const slowRes = await slow;
    assert.equal(slowRes.status, 200);
    await s.sock.close();
    assert.ok(whoMs < 1000, `whoami behind a 2.5 s request took ${whoMs} ms`);
  });

  it('answers a request frame with an invalid path by a response with its id (not an id-less error the client cannot match)', async () => {
    const c = await rawConnect(socketUrl(srv.url), bearer(alice.token!));
    await waitFor('the first sync frame', () => c.frames.some((f) => f.type === 'sync'));
    c.send({ type: 'request', id: 'bad-path-1', method: 'GET', path: 'https://elsewhere.example/x' });
    await sleep(300);
    const answer = c.frames.find((f) => f.type === 'response' && f.id === 'bad-path-1');
    const other = c.frames.filter((f) => f.type !== 'sync');
    c.ws.close(1000);
    assert.ok(answer, `a response frame with id bad-path-1 (HearthSocket.request() waits on it forever otherwise); got ${JSON.stringify(other)}`);
    assert.ok(answer.status >= 400 && answer.status < 500, JSON.stringify(answer));
  });
});

describe('websocket sync: typing and receipts over the socket', function () {
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let roomId: string;

  before(async () => {
    srv = await startTestServer();
    ({ alice, bob, roomId } = await aliceAndBobInRoom(srv.url));
  });
  after(async () => srv.stop());

  it('typing set over one socket arrives at the other user’s socket as m.typing', async () => {
    const a = await openSocket(srv.url, alice);
    const b = await openSocket(srv.url, bob);
    await frames(a, 1);
    await frames(b, 1);
    const on = await a.sock.request('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 10000 });
    assert.equal(on.status, 200, JSON.stringify(on.body));
    const typing = (ids: string[]) => (body: any) =>
      ephemeralOf(body, roomId).some((e) => e.type === 'm.typing' && JSON.stringify(e.content.user_ids) === JSON.stringify(ids));
    await waitFor('bob to see alice typing', () => b.bodies.some(typing([alice.userId])));
    const off = await a.sock.request('PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: false });
    assert.equal(off.status, 200);
    await waitFor('bob to see alice stop typing', () => b.bodies.some(typing([])));
    const start = b.bodies.findIndex(typing([alice.userId]));
    const stop = b.bodies.findIndex(typing([]));
    assert.ok(start < stop, 'start before stop');
    await a.sock.close();
    await b.sock.close();
  });

  it('a read receipt posted over one socket arrives at the other user’s socket as m.receipt', async () => {
    const a = await openSocket(srv.url, alice);
    const b = await openSocket(srv.url, bob);
    await frames(a, 1);
    await frames(b, 1);
    const sent = await a.sock.send(roomId, 'm.room.message', 'rcpt-1', { msgtype: 'm.text', body: 'read me' });
    const eventId = sent.body.event_id as string;
    await waitFor('bob to get the message', () => b.bodies.some((x) => JSON.stringify(x).includes(eventId)));
    const r = await b.sock.request('POST', `/_matrix/client/v3/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const receipt = await waitFor('alice to see bob’s receipt', () =>
      a.bodies
        .flatMap((x) => ephemeralOf(x, roomId))
        .find((e) => e.type === 'm.receipt' && e.content?.[eventId]?.['m.read']?.[bob.userId]),
    );
    assert.equal(typeof receipt.content[eventId]['m.read'][bob.userId].ts, 'number');
    await a.sock.close();
    await b.sock.close();
  });

  it('typing set over REST reaches the socket as well', async () => {
    const b = await openSocket(srv.url, bob);
    await frames(b, 1);
    const n = b.bodies.length;
    const r = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 5000 });
    assert.equal(r.status, 200);
    await waitFor('m.typing on the socket', () =>
      b.bodies.slice(n).some((x) => ephemeralOf(x, roomId).some((e) => e.type === 'm.typing' && e.content.user_ids.includes(alice.userId))),
    );
    await b.sock.close();
  });
});
