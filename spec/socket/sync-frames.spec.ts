import { assert } from '../helpers/assert.js';
import { enc, startTestServer, type TestServer } from '../helpers/server.js';
import {
  BIG_TIMELINE,
  TimelineReader,
  aliceAndBobInRoom,
  allTexts,
  assertExactlyOnceInOrder,
  frames,
  openSocket,
  roomSection,
  sendText,
  tokenStream,
  waitFor,
  type Body,
  type User,
} from './helpers.js';

/** Removes what legitimately differs between two reads of the same data (event age). */
function stable(v: any): any {
  if (Array.isArray(v)) return v.map(stable);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (k !== 'age') out[k] = stable(x);
    return out;
  }
  return v;
}

function messagesIn(body: Body, roomId: string): string[] {
  return (roomSection(body, roomId)?.timeline?.events ?? []).filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body);
}

describe('websocket sync: frames are /sync responses', function () {
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let roomId: string;

  before(async () => {
    srv = await startTestServer();
    ({ alice, bob, roomId } = await aliceAndBobInRoom(srv.url));
    await sendText(alice, roomId, 'before-connect');
  });
  after(async () => srv.stop());

  it('first frame without since is an initial sync with the /sync shape and the joined rooms’ m.room.create', async () => {
    const s = await openSocket(srv.url, bob);
    const [first] = await frames(s, 1);
    const http = await bob.get('/_matrix/client/v3/sync?timeout=0');
    assert.equal(http.status, 200);
    // Same top-level sections as /sync, same room section layout.
    assert.deepEqual(Object.keys(first).sort(), Object.keys(http.body).sort());
    assert.deepEqual(Object.keys(first.rooms).sort(), ['invite', 'join', 'knock', 'leave']);
    assert.match(first.next_batch, /^h1_\d+_\d+$/);
    const section = roomSection(first, roomId);
    assert.ok(section, 'the joined room is in rooms.join');
    assert.deepEqual(Object.keys(section).sort(), Object.keys(http.body.rooms.join[roomId]).sort());
    const all = [...section.state.events, ...section.timeline.events];
    assert.ok(all.some((e: any) => e.type === 'm.room.create'), 'initial sync includes m.room.create');
    assert.ok(messagesIn(first, roomId).includes('before-connect'));
    // The same data as the initial /sync (modulo event age).
    assert.deepEqual(stable(section.timeline), stable(http.body.rooms.join[roomId].timeline));
    assert.deepEqual(stable(section.state), stable(http.body.rooms.join[roomId].state));
    await s.sock.close();
  });

  it('after each frame the socket parks on the rooms it is joined to as of that frame: a room joined over the socket and left over REST', async () => {
    // Between frames the socket parks on the rooms the last frame's build watched (not read
    // again). No safety poll helps here (poll_ms is an hour): a message reaches the socket only
    // if it parked on the right rooms after the invite, the join and the leave.
    const s = await openSocket(srv.url, alice);
    await frames(s, 1);
    const created = await bob.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', invite: [alice.userId] });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const second = created.body.room_id as string;
    await waitFor('the invite frame', () => s.bodies.some((b) => b.rooms?.invite?.[second]));
    const joined = await s.sock.request('POST', `/_matrix/client/v3/join/${enc(second)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    await waitFor('the join frame', () => s.bodies.some((b) => roomSection(b, second)));
    await sendText(bob, second, 'in-the-joined-room');
    await waitFor('the message in the room joined after the socket opened', () => s.bodies.some((b) => messagesIn(b, second).includes('in-the-joined-room')), 3000);
    await sendText(bob, roomId, 'in-the-first-room');
    await waitFor('the message in the first room', () => s.bodies.some((b) => messagesIn(b, roomId).includes('in-the-first-room')), 3000);
    const left = await alice.post(`/_matrix/client/v3/rooms/${enc(second)}/leave`, {});
    assert.equal(left.status, 200, JSON.stringify(left.body));
    await waitFor('the leave frame', () => s.bodies.some((b) => b.rooms?.leave?.[second]));
    const after = s.bodies.length;
    await sendText(bob, second, 'after-leaving');
    await sendText(bob, roomId, 'still-here');
    await waitFor('the message in the room still joined', () => s.bodies.slice(after).some((b) => messagesIn(b, roomId).includes('still-here')), 3000);
    assert.ok(!s.bodies.slice(after).some((b) => messagesIn(b, second).length > 0 || roomSection(b, second)), 'nothing of the room left');
    await s.sock.close();
  });

  it('incremental frames equal /sync?since= over the same range', async () => {
    const s = await openSocket(srv.url, bob);
    const [first] = await frames(s, 1);
    const ev = await sendText(alice, roomId, 'incremental-1');
    const body = await waitFor('the frame with incremental-1', () => s.bodies.find((b) => messagesIn(b, roomId).includes('incremental-1')));
    const http = await bob.get(`/_matrix/client/v3/sync?timeout=0&since=${enc(s.bodies[s.bodies.indexOf(body) - 1].next_batch)}`);
    assert.equal(http.status, 200);
    assert.deepEqual(Object.keys(body).sort(), Object.keys(http.body).sort());
    assert.deepEqual(
      roomSection(body, roomId).timeline.events.map((e: any) => e.event_id),
      http.body.rooms.join[roomId].timeline.events.map((e: any) => e.event_id),
    );
    assert.deepEqual(roomSection(body, roomId).timeline.events.map((e: any) => e.event_id), [ev]);
    assert.equal(roomSection(body, roomId).timeline.limited, false);
    assert.ok(tokenStream(body.next_batch) > tokenStream(first.next_batch), 'next_batch advances');
    const sec = roomSection(body, roomId);
    assert.equal(sec.state.events.some((e: any) => e.type === 'm.room.create'), false, 'incremental frame is not a full sync');
    await s.sock.close();
  });

  it('streams both ways between two users, REST and socket `send`, in the room’s one order', async () => {
    const readerA = new TimelineReader(alice, roomId);
    const readerB = new TimelineReader(bob, roomId);
    const a = await openSocket(srv.url, alice, { reader: readerA, filter: BIG_TIMELINE });
    const b = await openSocket(srv.url, bob, { reader: readerB, filter: BIG_TIMELINE });
    await frames(a, 1);
    await frames(b, 1);
    const skipA = readerA.texts.length;
    const skipB = readerB.texts.length;
    const sent: string[] = [];
    for (let i = 0; i < 6; i++) {
      // Alternate transports and senders: REST and socket send frames, alice and bob.
      const text = `both-${i}`;
      if (i % 4 === 0) await sendText(alice, roomId, text);
      else if (i % 4 === 1) assert.equal((await b.sock.send(roomId, 'm.room.message', `bs-${i}`, { msgtype: 'm.text', body: text })).status, 200);
      else if (i % 4 === 2) assert.equal((await a.sock.send(roomId, 'm.room.message', `as-${i}`, { msgtype: 'm.text', body: text })).status, 200);
      else await sendText(bob, roomId, text);
      sent.push(text);
    }
    await waitFor('alice to see all', () => readerA.texts.length - skipA >= sent.length);
    await waitFor('bob to see all', () => readerB.texts.length - skipB >= sent.length);
    const order = (await allTexts(alice, roomId)).filter((t) => t.startsWith('both-'));
    assert.deepEqual(order, sent, 'server order is the send order (sequential sends)');
    assertExactlyOnceInOrder(readerA.texts.slice(skipA), order, 'alice');
    assertExactlyOnceInOrder(readerB.texts.slice(skipB), order, 'bob');
    await a.sock.close();
    await b.sock.close();
  });
});

describe('websocket sync: tokens are interchangeable with the REST API', function () {
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let roomId: string;
  let token: string;
  const older: string[] = ['tok-1', 'tok-2', 'tok-3'];
  const newer: string[] = ['tok-4', 'tok-5', 'tok-6'];

  before(async () => {
    srv = await startTestServer();
    ({ alice, bob, roomId } = await aliceAndBobInRoom(srv.url));
    const s = await openSocket(srv.url, bob, { filter: BIG_TIMELINE });
    await frames(s, 1);
    for (const t of older) await sendText(alice, roomId, t);
    const last = await waitFor('a frame with tok-3', () => s.bodies.find((b) => messagesIn(b, roomId).includes('tok-3')));
    token = last.next_batch;
    await s.sock.close();
    for (const t of newer) await sendText(alice, roomId, t);
  });
  after(async () => srv.stop());

  it('/sync?since=<frame token> returns exactly what came after it', async () => {
    const r = await bob.get(`/_matrix/client/v3/sync?timeout=0&since=${enc(token)}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(messagesIn(r.body, roomId), newer);
    assert.equal(r.body.rooms.join[roomId].timeline.limited, false);
  });

  it('/messages?from=<frame token>&dir=b returns what came at or before it', async () => {
    const r = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=3&from=${enc(token)}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.chunk.map((e: any) => e.content.body), [...older].reverse());
  });

  it('/messages?from=<frame token>&dir=f returns what came after it', async () => {
    const r = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=f&limit=10&from=${enc(token)}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body), newer);
  });

  it('a frame’s timeline prev_batch pages back with /messages', async () => {
    const s = await openSocket(srv.url, bob, { since: token });
    const [f] = await frames(s, 1);
    await s.sock.close();
    const tl = roomSection(f, roomId).timeline;
    assert.deepEqual(messagesIn(f, roomId), newer);
    const r = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=3&from=${enc(tl.prev_batch)}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.chunk.map((e: any) => e.content.body), [...older].reverse());
  });

  it('/keys/changes?from=<frame token> accepts it', async function () {
    const r = await bob.get(`/_matrix/client/v3/keys/changes?from=${enc(token)}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(Array.isArray(r.body.changed), JSON.stringify(r.body));
    assert.ok(Array.isArray(r.body.left), JSON.stringify(r.body));
  });

  it('a /sync next_batch works as the socket’s since', async () => {
    const r = await bob.get(`/_matrix/client/v3/sync?timeout=0&since=${enc(token)}`);
    await sendText(alice, roomId, 'tok-7');
    const s = await openSocket(srv.url, bob, { since: r.body.next_batch });
    const [f] = await frames(s, 1);
    await s.sock.close();
    assert.deepEqual(messagesIn(f, roomId), ['tok-7']);
  });
});
