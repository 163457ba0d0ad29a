// Read receipts and read markers over real HTTP (Client-Server API v1.12 "Receipts" and
// "Fully read markers"): POST /rooms/{id}/receipt/{type}/{eventId} with thread_id, m.receipt in
// /sync ephemeral, private receipts only for their owner, /read_markers (m.fully_read as room
// account data), receipts clearing unread counts, receipts never moving backwards, and errors.

import { assert } from '../helpers/assert.js';
import { makeUser, ok, roomPath as room, roomWith, sendEvent, syncOk, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

/** One flattened receipt from an m.receipt content: {eventId: {type: {userId: data}}}. */
interface Flat {
  eventId: string;
  type: string;
  userId: string;
  data: any;
}

describe('receipts and read markers', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let carol: User;
  let txn = 0;

  const send = (who: User, roomId: string, content: Record<string, unknown>) => sendEvent(who, roomId, 'm.room.message', `rc${++txn}`, content, 'send');
  const text = (who: User, roomId: string, body: string) => send(who, roomId, { msgtype: 'm.text', body });
  const sync = (who: User, since?: string, timeout = 0) => syncOk(who, { since, timeout });
  /** A 1:1 room (alice + bob) with `n` messages from alice. */
  async function dm(n: number): Promise<{ roomId: string; events: string[] }> {
    const roomId = await roomWith(alice, [bob]);
    const events: string[] = [];
    for (let i = 0; i < n; i++) events.push(await text(alice, roomId, `message ${i}`));
    return { roomId, events };
  }
  function receipts(s: any, roomId: string): Flat[] {
    const out: Flat[] = [];
    for (const e of s.rooms?.join?.[roomId]?.ephemeral?.events ?? []) {
      if (e.type !== 'm.receipt') continue;
      for (const [eventId, byType] of Object.entries<any>(e.content)) {
        for (const [type, byUser] of Object.entries<any>(byType)) {
          for (const [userId, data] of Object.entries<any>(byUser)) out.push({ eventId, type, userId, data });
        }
      }
    }
    return out;
  }
  const unread = (s: any, roomId: string) => s.rooms?.join?.[roomId]?.unread_notifications;
  const receipt = (who: User, roomId: string, type: string, eventId: string, body: unknown = {}) =>
    who.post(room(roomId, `receipt/${type}/${enc(eventId)}`), body);

  before(async () => {
    srv = await startTestServer();
    [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((u) => makeUser(srv, u)));
  });
  after(async () => srv?.stop());

  it('an m.read receipt reaches the other member as m.receipt {eventId: {"m.read": {userId: {ts}}}} in /sync ephemeral', async () => {
    const { roomId, events } = await dm(2);
    const since = (await sync(alice)).next_batch;
    const before = Date.now();
    assert.deepEqual(await ok(receipt(bob, roomId, 'm.read', events[0]), 'receipt'), {});

    const s = await sync(alice, since);
    const ev = (s.rooms.join[roomId]?.ephemeral.events ?? []).find((e: any) => e.type === 'm.receipt');
    assert.ok(ev, `alice gets an m.receipt: ${JSON.stringify(s.rooms.join[roomId])}`);
    assert.equal(ev.room_id, undefined, 'ephemeral events in /sync carry no room_id');
    const data = ev.content[events[0]]?.['m.read']?.[bob.userId];
    assert.ok(data, `content shape {eventId: {m.read: {userId: …}}}: ${JSON.stringify(ev.content)}`);
    assert.equal(typeof data.ts, 'number');
    assert.ok(data.ts >= before - 1000 && data.ts <= Date.now() + 1000, `ts is the receipt time: ${data.ts}`);
    assert.equal('thread_id' in data, false, 'an unthreaded receipt has no thread_id');

    // An initial sync carries the current receipts of the room too.
    const initial = receipts(await sync(alice), roomId);
    assert.ok(initial.some((r) => r.eventId === events[0] && r.type === 'm.read' && r.userId === bob.userId), JSON.stringify(initial));
  });

  it('thread_id is stored and echoed: "main" and a thread root are separate receipts', async () => {
    const { roomId, events } = await dm(1);
    const root = events[0];
    const reply = await send(alice, roomId, { msgtype: 'm.text', body: 'in thread', 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
    const main = await text(alice, roomId, 'after the thread');
    const since = (await sync(alice)).next_batch;

    await ok(receipt(bob, roomId, 'm.read', main, { thread_id: 'main' }), 'main receipt');
    await ok(receipt(bob, roomId, 'm.read', reply, { thread_id: root }), 'thread receipt');

    const got = receipts(await sync(alice, since), roomId).filter((r) => r.userId === bob.userId);
    assert.deepEqual(
      got.map((r) => [r.eventId, r.type, r.data.thread_id]).sort(),
      [
        [main, 'm.read', 'main'],
        [reply, 'm.read', root],
      ].sort(),
      JSON.stringify(got),
    );
    // Both survive side by side (one per thread), also in an initial sync.
    const initial = receipts(await sync(alice), roomId).filter((r) => r.userId === bob.userId);
    assert.ok(initial.some((r) => r.eventId === main && r.data.thread_id === 'main'), JSON.stringify(initial));
    assert.ok(initial.some((r) => r.eventId === reply && r.data.thread_id === root), JSON.stringify(initial));
  });

  it('m.read.private reaches only the user\'s own devices, never another member', async () => {
    const { roomId, events } = await dm(2);
    const aliceSince = (await sync(alice)).next_batch;
    const bobSince = (await sync(bob)).next_batch;
    await ok(receipt(bob, roomId, 'm.read.private', events[1]), 'private receipt');

    const own = receipts(await sync(bob, bobSince), roomId);
    assert.ok(
      own.some((r) => r.eventId === events[1] && r.type === 'm.read.private' && r.userId === bob.userId),
      `bob sees his private receipt: ${JSON.stringify(own)}`,
    );
    // Bob's other device, on an initial sync.
    const l = await srv.hearth.services.accounts.login(bob.userId, undefined, null, null);
    const bob2 = new Api(srv.url, l.access_token) as User;
    const other = receipts(await sync(bob2), roomId);
    assert.ok(other.some((r) => r.eventId === events[1] && r.type === 'm.read.private' && r.userId === bob.userId), JSON.stringify(other));

    for (const s of [await sync(alice, aliceSince), await sync(alice)]) {
      const seen = receipts(s, roomId);
      assert.deepEqual(seen.filter((r) => r.type === 'm.read.private'), [], 'alice never sees m.read.private');
      assert.deepEqual(seen.filter((r) => r.userId === bob.userId && r.eventId === events[1]), [], 'nor a receipt of bob on that event');
      assert.ok(!JSON.stringify(s).includes('m.read.private'), 'no trace of the private receipt anywhere in alice\'s sync');
    }
  });

  it('POST /read_markers stores m.fully_read as room account data (in /sync) and carries m.read and m.read.private', async () => {
    const { roomId, events } = await dm(3);
    const aliceSince = (await sync(alice)).next_batch;
    const bobSince = (await sync(bob)).next_batch;
    assert.deepEqual(
      await ok(bob.post(room(roomId, 'read_markers'), { 'm.fully_read': events[0], 'm.read': events[1], 'm.read.private': events[2] }), 'read_markers'),
      {},
    );

    const sb = await sync(bob, bobSince);
    const ad = sb.rooms.join[roomId]?.account_data?.events ?? [];
    assert.deepEqual(ad.find((e: any) => e.type === 'm.fully_read')?.content, { event_id: events[0] }, JSON.stringify(ad));
    const own = receipts(sb, roomId);
    assert.ok(own.some((r) => r.eventId === events[1] && r.type === 'm.read' && r.userId === bob.userId), JSON.stringify(own));
    assert.ok(own.some((r) => r.eventId === events[2] && r.type === 'm.read.private' && r.userId === bob.userId), JSON.stringify(own));
    const got = await ok(bob.get(`${V3}/user/${enc(bob.userId)}/rooms/${enc(roomId)}/account_data/m.fully_read`), 'GET m.fully_read');
    assert.deepEqual(got, { event_id: events[0] });
    // Initial sync carries it too.
    const init = (await sync(bob)).rooms.join[roomId].account_data.events;
    assert.deepEqual(init.find((e: any) => e.type === 'm.fully_read')?.content, { event_id: events[0] });

    const sa = receipts(await sync(alice, aliceSince), roomId);
    assert.ok(sa.some((r) => r.eventId === events[1] && r.type === 'm.read' && r.userId === bob.userId), JSON.stringify(sa));
    assert.deepEqual(sa.filter((r) => r.type === 'm.read.private'), []);
    // m.fully_read is the reader's own: alice has none.
    assert.equal((await alice.get(`${V3}/user/${enc(alice.userId)}/rooms/${enc(roomId)}/account_data/m.fully_read`)).status, 404);

    // Only m.fully_read: moves the marker.
    await ok(bob.post(room(roomId, 'read_markers'), { 'm.fully_read': events[2] }), 'read_markers 2');
    assert.deepEqual(await ok(bob.get(`${V3}/user/${enc(bob.userId)}/rooms/${enc(roomId)}/account_data/m.fully_read`), 'GET'), { event_id: events[2] });
  });

  it('a public receipt clears notification counts up to its event, a private one the rest', async () => {
    const { roomId, events } = await dm(3);
    const s0 = await sync(bob);
    assert.deepEqual(unread(s0, roomId), { notification_count: 3, highlight_count: 0 }, 'three 1:1 messages notify bob');

    await ok(receipt(bob, roomId, 'm.read', events[1]), 'receipt');
    const s1 = await sync(bob, s0.next_batch);
    assert.deepEqual(unread(s1, roomId), { notification_count: 1, highlight_count: 0 }, 'the incremental sync after the receipt has the new count');

    await ok(receipt(bob, roomId, 'm.read.private', events[2]), 'private receipt');
    const s2 = await sync(bob, s1.next_batch);
    assert.deepEqual(unread(s2, roomId), { notification_count: 0, highlight_count: 0 }, 'a private receipt clears too');
    assert.deepEqual(unread(await sync(bob), roomId), { notification_count: 0, highlight_count: 0 });
  });

  it('a receipt never moves backwards: an older event after a newer one changes nothing', async () => {
    const { roomId, events } = await dm(3);
    await ok(receipt(bob, roomId, 'm.read', events[2]), 'newer receipt');
    await ok(receipt(bob, roomId, 'm.read.private', events[2]), 'newer private receipt');
    const aliceSince = (await sync(alice)).next_batch;
    const bobSince = (await sync(bob)).next_batch;
    await ok(receipt(bob, roomId, 'm.read', events[0]), 'older receipt (accepted, ignored)');
    await ok(receipt(bob, roomId, 'm.read.private', events[1]), 'older private receipt (accepted, ignored)');

    const inc = receipts(await sync(alice, aliceSince), roomId).filter((r) => r.userId === bob.userId);
    assert.deepEqual(inc, [], `no receipt change is announced: ${JSON.stringify(inc)}`);
    const incBob = receipts(await sync(bob, bobSince), roomId).filter((r) => r.userId === bob.userId);
    assert.deepEqual(incBob, [], `not to bob either: ${JSON.stringify(incBob)}`);
    const now = receipts(await sync(bob), roomId).filter((r) => r.userId === bob.userId);
    assert.deepEqual(
      now.map((r) => [r.type, r.eventId]).sort(),
      [
        ['m.read', events[2]],
        ['m.read.private', events[2]],
      ].sort(),
      'both receipts still point at the newest event',
    );

    // Counts stay cleared up to the newer event.
    const later = await text(alice, roomId, 'one more');
    await ok(receipt(bob, roomId, 'm.read', events[1]), 'older again');
    assert.deepEqual(unread(await sync(bob), roomId), { notification_count: 1, highlight_count: 0 }, 'only the new message is unread');
    assert.ok(later);
  });

  it('a long-polling member is woken by a receipt', async () => {
    const { roomId, events } = await dm(1);
    const since = (await sync(alice)).next_batch;
    // The poll's timeout (60 s) outlasts the test (20 s): any answer was a wake, which the content below shows; no wall-clock bound for a loaded machine to overrun.
    const polling = sync(alice, since, 60_000);
    await new Promise((r) => setTimeout(r, 200));
    await ok(receipt(bob, roomId, 'm.read', events[0]), 'receipt');
    const s = await polling;
    assert.ok(receipts(s, roomId).some((r) => r.eventId === events[0] && r.userId === bob.userId), JSON.stringify(s.rooms));
  });

  it('errors: unknown event or an event of another room → 404 M_NOT_FOUND; non-member → 403 M_FORBIDDEN; unknown type → 400', async () => {
    const { roomId, events } = await dm(1);
    const other = await dm(1);
    const unknown = await receipt(bob, roomId, 'm.read', '$doesnotexist');
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    assert.equal(unknown.body.errcode, 'M_NOT_FOUND');
    const elsewhere = await receipt(bob, roomId, 'm.read', other.events[0]);
    assert.equal(elsewhere.status, 404, `an event of another room: ${JSON.stringify(elsewhere.body)}`);
    const priv = await receipt(bob, roomId, 'm.read.private', '$doesnotexist');
    assert.equal(priv.status, 404);

    for (const type of ['m.read', 'm.read.private']) {
      const r = await receipt(carol, roomId, type, events[0]);
      assert.equal(r.status, 403, `${type} by a non-member: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.errcode, 'M_FORBIDDEN');
    }
    const markers = await carol.post(room(roomId, 'read_markers'), { 'm.fully_read': events[0], 'm.read': events[0] });
    assert.equal(markers.status, 403, `read_markers by a non-member: ${JSON.stringify(markers.body)}`);
    const onlyMarker = await carol.post(room(roomId, 'read_markers'), { 'm.fully_read': events[0] });
    assert.equal(onlyMarker.status, 403, `read_markers with only m.fully_read by a non-member: ${JSON.stringify(onlyMarker.body)}`);
    const fullyUnknown = await bob.post(room(roomId, 'read_markers'), { 'm.fully_read': '$nope' });
    assert.equal(fullyUnknown.status, 404, JSON.stringify(fullyUnknown.body));

    const badThread = await receipt(bob, roomId, 'm.read', events[0], { thread_id: '$notanevent' });
    assert.equal(badThread.status, 400, `thread_id that is neither "main" nor an event of the room: ${JSON.stringify(badThread.body)}`);
    const bad = await receipt(bob, roomId, 'm.bogus', events[0]);
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    // Nothing was stored by the failures: carol's receipt is not visible.
    const seen = receipts(await sync(alice), roomId);
    assert.deepEqual(seen.filter((r) => r.userId === carol.userId), []);
  });
});
