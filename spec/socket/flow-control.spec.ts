import { assert } from '../helpers/assert.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';
import {
  BIG_TIMELINE,
  TimelineReader,
  aliceAndBobInRoom,
  allTexts,
  assertExactlyOnceInOrder,
  bearer,
  frames,
  openSocket,
  rawConnect,
  refusal,
  roomSection,
  sendText,
  sharedRoom,
  sleep,
  socketUrl,
  spyOnCloses,
  waitFor,
  within,
  type RawClient,
  type Recorded,
  type User,
} from './helpers.js';
import { HEARTBEAT_CHUNK } from '../../src/sync/socket/socket-server.js';

function messageTexts(body: any, roomId: string): string[] {
  return (roomSection(body, roomId)?.timeline?.events ?? []).filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body);
}

describe('websocket sync: slow consumers are cut off with a bounded buffer', function () {
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let roomId: string;

  before(async () => {
    srv = await startTestServer({ websocket: { max_buffered_bytes: 2048 } });
    ({ alice, bob, roomId } = await aliceAndBobInRoom(srv.url));
  });
  after(async () => srv.stop());

  it('closes a socket that stops reading with 4008 and a resume token, stays healthy, and resuming loses nothing', async () => {
    const c = await rawConnect(socketUrl(srv.url, { filter: BIG_TIMELINE }), bearer(bob.token!));
    await waitFor('the initial frame', () => c.frames.some((f) => f.type === 'sync'));
    const initialToken = c.frames.find((f) => f.type === 'sync').body.next_batch as string;
    // Stop reading: the kernel buffers fill, then the server's own buffer.
    (c.ws as unknown as { _socket: Socket })._socket.pause();

    const pad = 'x'.repeat(60_000);
    const send8 = (from: number) =>
      Promise.all(Array.from({ length: 8 }, (_, j) => sendText(alice, roomId, `slow-${String(from + j).padStart(3, '0')} ${pad}`)));
    const spy = spyOnCloses();
    let sent = 0;
    let afterClose = 0;
    try {
      // Until the server gives up on the socket (loopback kernel buffers take a few MB first).
      while (!spy.calls.some((x) => x.code === 4008) && sent < 400) {
        await send8(sent);
        sent += 8;
      }
      assert.ok(spy.calls.some((x) => x.code === 4008), `the server closed the socket with 4008 after ${sent} messages of 60 kB`);
      // More after the decision: a bounded server neither sends nor queues these for the dead socket.
      await send8(sent);
      sent += 8;
      afterClose = 8;
    } finally {
      spy.restore();
    }
    const total = sent;
    const health = await new Api(srv.url).get('/health');
    assert.equal(health.status, 200, 'the server is healthy while the consumer is stuck');
    assert.equal(health.body, 'OK');

    // Read again: we get what was buffered, then the close frame (the server cuts a peer that does
    // not finish the close handshake after 2 s, so read well within that).
    (c.ws as unknown as { _socket: Socket })._socket.resume();
    const closed = await within(c.closed, 5000, null);
    assert.ok(closed, 'the client saw the close');
    assert.equal(closed.code, 4008, `close code (reason ${closed.reason})`);
    assert.ok(closed.json && typeof closed.json === 'object', `JSON close reason: ${closed.reason}`);
    const syncFrames = c.frames.filter((f) => f.type === 'sync');
    const tokens = syncFrames.map((f) => f.body.next_batch as string);
    const resume = closed.json.resume as string | undefined;
    if (resume !== undefined) assert.ok(tokens.includes(resume), `resume ${resume} is the token of a frame the client received (${tokens.slice(-3)})`);

    // Bounded: the server stopped producing instead of queueing the backlog.
    const delivered = syncFrames.flatMap((f) => messageTexts(f.body, roomId));
    assert.ok(delivered.length <= total - afterClose, `nothing sent after the close decision was delivered (${delivered.length} of ${total})`);

    const want = (await allTexts(alice, roomId)).filter((t) => t.startsWith('slow-'));
    assert.equal(want.length, total);

    // Resuming from the server's resume token (or the initial token when none was confirmed).
    const from = resume ?? initialToken;
    const upTo = syncFrames.slice(0, tokens.indexOf(from) + 1).flatMap((f) => messageTexts(f.body, roomId));
    const r1 = new TimelineReader(bob, roomId, from);
    const s1 = await openSocket(srv.url, bob, { reader: r1, filter: BIG_TIMELINE, since: from });
    await waitFor('the rest after the resume token', () => [...upTo, ...r1.texts].filter((t) => t.startsWith('slow-')).length >= total, 10000);
    await sleep(50);
    await s1.sock.close();
    assertExactlyOnceInOrder([...upTo, ...r1.texts].filter((t) => t.startsWith('slow-')), want, 'resume token');

    // Resuming from the last frame actually processed.
    const last = tokens[tokens.length - 1];
    const r2 = new TimelineReader(bob, roomId, last);
    const s2 = await openSocket(srv.url, bob, { reader: r2, filter: BIG_TIMELINE, since: last });
    await waitFor('the rest after the last processed token', () => [...delivered, ...r2.texts].length >= total, 10000);
    await sleep(50);
    await s2.sock.close();
    assertExactlyOnceInOrder([...delivered, ...r2.texts], want, 'last processed token');
    assert.equal((await new Api(srv.url).get('/health')).status, 200);
  });

  it('bounds response frames too: a client that sends requests but does not read is cut off with 4008', async () => {
    const room = await sharedRoom(alice, bob);
    const pad = 'y'.repeat(60_000);
    for (let i = 0; i < 40; i += 8) {
      await Promise.all(Array.from({ length: 8 }, (_, j) => sendText(alice, room, `resp-${i + j} ${pad}`)));
    }
    // A small timeline so the sync frames themselves stay tiny.
    const c = await rawConnect(socketUrl(srv.url, { filter: JSON.stringify({ room: { timeline: { limit: 1 } } }) }), bearer(bob.token!));
    await waitFor('the initial frame', () => c.frames.some((f) => f.type === 'sync'));
    (c.ws as unknown as { _socket: Socket })._socket.pause();
    // 20 requests whose answers are ~2.4 MB each (~48 MB): far beyond kernel buffers + 2 KiB.
    const N = 20;
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/messages?dir=b&limit=40`;
    const spy = spyOnCloses();
    try {
      for (let i = 0; i < N; i++) c.send({ type: 'request', id: `big-${i}`, method: 'GET', path });
      // Give the server the time to answer them all (or to give up on the socket).
      const deadline = Date.now() + 1500;
      while (!spy.calls.some((x) => x.code === 4008) && Date.now() < deadline) await sleep(20);
    } finally {
      spy.restore();
    }
    assert.equal((await new Api(srv.url).get('/health')).status, 200);
    (c.ws as unknown as { _socket: Socket })._socket.resume();
    const closed = await within(c.closed, 5000, null);
    if (!closed) c.ws.terminate();
    const responses = c.frames.filter((f) => f.type === 'response').length;
    // Loopback kernel buffers hold a few MB (2-4 of these answers); everything beyond was queued
    // in the server's memory past max_buffered_bytes.
    assert.ok(responses <= 6, `the server queued ${responses} of ${N} ~2.4 MB responses for a client that was not reading (max_buffered_bytes 2048)`);
    assert.ok(closed, 'the server closed the socket');
    assert.equal(closed.code, 4008);
  });
});

describe('websocket sync: heartbeats', function () {
  let srv: TestServer;
  let alice: User;

  before(async () => {
    srv = await startTestServer({ websocket: { heartbeat_ms: 200 } });
    alice = await new Api(srv.url).register('alice');
  });
  after(async () => srv.stop());

  it('closes a client that does not answer pings with 4010 within ~1 s; a normal client stays connected', async () => {
    const normal = await openSocket(srv.url, alice);
    await frames(normal, 1);
    const opened = Date.now();
    const mute = await rawConnect(socketUrl(srv.url), { ...bearer(alice.token!), autoPong: false });
    let pings = 0;
    mute.ws.on('ping', () => pings++);
    const closed = await within(mute.closed, 1500, null);
    if (!closed) mute.ws.terminate();
    assert.ok(closed, 'the mute client was closed');
    assert.equal(closed.code, 4010);
    assert.ok(closed.at - opened <= 1000, `closed within ~1 s (${closed.at - opened} ms)`);
    assert.ok(pings >= 1, 'it was pinged');
    const token = mute.frames.filter((f) => f.type === 'sync').map((f) => f.body.next_batch).pop();
    if (closed.json?.resume !== undefined) assert.equal(closed.json.resume, token, 'resume is the last frame written');

    // Over the same span (and a bit more), the ponging client stays.
    await sleep(Math.max(0, 1200 - (Date.now() - opened)));
    assert.equal(await within(normal.sock.closed, 0, 'open'), 'open', 'the normal client is still connected');
    const who = await normal.sock.request('GET', '/_matrix/client/v3/account/whoami');
    assert.equal(who.status, 200);
    await normal.sock.close();
  });
});

describe('websocket sync: a heartbeat over more sockets than one turn pings', function () {
  let srv: TestServer;
  let alice: User;
  const clients: RawClient[] = [];

  before(async () => {
    srv = await startTestServer({ websocket: { heartbeat_ms: 400 } });
    alice = await new Api(srv.url).register('alice');
  });
  after(async () => {
    for (const c of clients) c.ws.terminate();
    await srv.stop();
  });

  it(`pings every socket past the first ${HEARTBEAT_CHUNK} (a chunk per turn), keeps the answering ones and closes a mute one opened last`, async function () {
    this.timeout(60_000);
    const n = HEARTBEAT_CHUNK + 12;
    const pings: number[] = [];
    for (let i = 0; i < n; i++) {
      const c = await rawConnect(socketUrl(srv.url), bearer(alice.token!));
      pings.push(0);
      c.ws.on('ping', () => pings[i]++);
      clients.push(c);
    }
    // Opened last, so it comes after the first chunk of every heartbeat.
    const mute = await rawConnect(socketUrl(srv.url), { ...bearer(alice.token!), autoPong: false });
    let mutePings = 0;
    mute.ws.on('ping', () => mutePings++);
    clients.push(mute);
    const closed = await within(mute.closed, 5000, null);
    assert.ok(closed, 'the mute socket was closed');
    assert.equal(closed.code, 4010);
    assert.ok(mutePings >= 1, 'the mute socket was pinged before it was closed');
    await waitFor('every answering socket pinged twice', () => pings.every((p) => p >= 2), 5000);
    const open = clients.slice(0, n).filter((c) => c.ws.readyState === c.ws.OPEN).length;
    assert.equal(open, n, 'every socket that answers its pings stays open');
  });
});

describe('websocket sync: shedding over max_connections', function () {
  const SHED = 2000;
  let srv: TestServer;
  let alice: User;
  const open: Recorded[] = [];

  before(async () => {
    srv = await startTestServer({ websocket: { max_connections: 3, shed_retry_ms: SHED } });
    alice = await new Api(srv.url).register('alice');
  });
  after(async () => {
    for (const s of open) s.sock.kill();
    await srv.stop();
  });

  it('refuses the 4th connection with 503 M_LIMIT_EXCEEDED and a jittered retry_after_ms', async () => {
    for (let i = 0; i < 3; i++) open.push(await openSocket(srv.url, alice));
    for (const s of open) await frames(s, 1);
    const values: number[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await refusal(socketUrl(srv.url), bearer(alice.token!));
      assert.equal(r.status, 503);
      assert.equal(r.body.errcode, 'M_LIMIT_EXCEEDED');
      const ms = r.body.retry_after_ms;
      assert.equal(typeof ms, 'number');
      assert.ok(ms >= SHED && ms <= 2 * SHED, `retry_after_ms ${ms} within [${SHED}, ${2 * SHED}]`);
      values.push(ms);
    }
    assert.ok(new Set(values).size > 1, `jitter: not all equal (${values})`);
    // The typed client surfaces the refusal too.
    const extra = openSocket(srv.url, alice);
    await assert.rejects(extra, (err: any) => err.status === 503 && err.body?.errcode === 'M_LIMIT_EXCEEDED');
  });

  it('the Retry-After header agrees with retry_after_ms in the body', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await refusal(socketUrl(srv.url), bearer(alice.token!));
      assert.equal(r.status, 503);
      const header = Number(r.headers['retry-after']);
      assert.equal(header, Math.ceil(r.body.retry_after_ms / 1000), `Retry-After ${header} vs retry_after_ms ${r.body.retry_after_ms}`);
    }
  });

  it('accepts a new connection once one closes', async () => {
    await open.pop()!.sock.close();
    const s = await waitFor('a free slot', async () => {
      try {
        return await openSocket(srv.url, alice);
      } catch {
        return undefined;
      }
    }, 3000, 20);
    open.push(s);
    await frames(s, 1);
  });

  it('an unknown path still gets 404 (not 503) when full', async () => {
    const r = await refusal(socketUrl(srv.url, {}, '/_matrix/client/unstable/io.hearth.sync/other'), bearer(alice.token!));
    assert.equal(r.status, 404);
  });
});

describe('websocket sync: graceful shutdown', function () {
  let dir: string;
  let srv: TestServer | undefined;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'hearth-socket-stop-'));
  });
  after(async () => {
    await srv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('closes sockets with 1001 and a resume token that works on the restarted server', async () => {
    srv = await startTestServer({}, dir);
    const { alice, bob, roomId } = await aliceAndBobInRoom(srv.url);
    const reader = new TimelineReader(bob, roomId);
    const b = await openSocket(srv.url, bob, { reader, filter: BIG_TIMELINE });
    await frames(b, 1);
    for (let i = 0; i < 5; i++) await sendText(alice, roomId, `stop-${i}`);
    await waitFor('bob to have 5', () => reader.texts.length >= 5);
    await sleep(50);

    const started = Date.now();
    await srv.stop();
    const stopMs = Date.now() - started;
    srv = undefined;
    const closed = await within(b.sock.closed, 2000, null);
    assert.ok(closed, 'the socket was closed by the shutdown');
    assert.equal(closed.code, 1001);
    assert.ok(closed.reason.resume, `a resume token in the reason: ${JSON.stringify(closed.reason)}`);
    assert.equal(closed.reason.resume, b.sock.lastToken, 'resume is the last frame the client processed');
    assert.ok(stopMs < 5000, `stop() finished promptly with sockets open (${stopMs} ms)`);

    // Same data directory, new process-equivalent: the token resumes exactly after stop-4.
    srv = await startTestServer({}, dir);
    const alice2 = new Api(srv.url, alice.token) as User;
    Object.assign(alice2, { userId: alice.userId, deviceId: alice.deviceId });
    const bob2 = Object.assign(new Api(srv.url, bob.token), { userId: bob.userId, deviceId: bob.deviceId });
    await sendText(alice2, roomId, 'after-restart');
    const r2 = new TimelineReader(bob2, roomId, closed.reason.resume);
    const b2 = await openSocket(srv.url, bob2, { reader: r2, filter: BIG_TIMELINE, since: closed.reason.resume });
    await waitFor('the message sent after the restart', () => r2.texts.length >= 1);
    await sleep(100);
    await b2.sock.close();
    assert.deepEqual(r2.texts, ['after-restart']);
    assertExactlyOnceInOrder([...reader.texts, ...r2.texts], [...Array.from({ length: 5 }, (_, i) => `stop-${i}`), 'after-restart'], 'across the restart');
  });
});
