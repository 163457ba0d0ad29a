// Ordering under concurrency over real HTTP: many senders into one room, sends into many rooms,
// and stream tokens from /sync used with /messages and /members (Client-Server API v1.12: a room
// has one order every client sees; next_batch/prev_batch are valid pagination tokens).

import { assert } from '../helpers/assert.js';
import { ok, roomPath as room, syncOk, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('event ordering under concurrency', function () {
  let srv: TestServer;
  let api: Api;
  let users: User[];
  let alice: User;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
    users = await Promise.all(Array.from({ length: 21 }, (_, i) => api.register(`user${i}`)));
    alice = users[20];
  });
  after(async () => srv.stop());

  const sync = (who: User, since: string | undefined, filter: object, timeout = 0) => syncOk(who, { since, filter, timeout });
  /** Every event after `from` in room order, paging forward. */
  async function allForward(who: User, roomId: string, from: string, pageSize = 37): Promise<any[]> {
    const out: any[] = [];
    let f = from;
    for (let i = 0; i < 100; i++) {
      const r = await ok(who.get(room(roomId, `messages?dir=f&limit=${pageSize}&from=${enc(f)}`)), 'messages f');
      out.push(...r.chunk);
      if (r.chunk.length === 0 || r.end === undefined) return out;
      f = r.end;
    }
    throw new Error('forward pagination did not terminate');
  }
  /** Every event back to `to` in reverse room order, paging backward from the latest. */
  async function allBackward(who: User, roomId: string, to: string, pageSize = 23): Promise<any[]> {
    const out: any[] = [];
    let from: string | undefined;
    for (let i = 0; i < 100; i++) {
      const q = from ? `&from=${enc(from)}` : '';
      const r = await ok(who.get(room(roomId, `messages?dir=b&limit=${pageSize}&to=${enc(to)}${q}`)), 'messages b');
      out.push(...r.chunk);
      if (r.chunk.length === 0 || r.end === undefined) return out;
      from = r.end;
    }
    throw new Error('backward pagination did not terminate');
  }
  const ids = (events: any[]) => events.map((e) => e.event_id as string);

  /**
   * Follows a room through incremental syncs until `done()`; a limited timeline is completed from
   * /messages between the old since and prev_batch, as clients do.
   */
  function follow(who: User, roomId: string, since: string, done: () => boolean) {
    const filter = { room: { rooms: [roomId], timeline: { limit: 100 } } };
    const events: any[] = [];
    let limitedCount = 0;
    const run = (async () => {
      let s = since;
      const deadline = Date.now() + 20000;
      while (Date.now() < deadline) {
        const finished = done();
        const res = await sync(who, s, filter, finished ? 0 : 1000);
        const r = res.rooms.join[roomId];
        if (r) {
          if (r.timeline.limited) {
            limitedCount++;
            const gap = await ok(who.get(room(roomId, `messages?dir=f&limit=1000&from=${enc(s)}&to=${enc(r.timeline.prev_batch)}`)), 'gap');
            events.push(...gap.chunk);
          }
          events.push(...r.timeline.events);
        }
        s = res.next_batch;
        if (finished && !r) return;
      }
      throw new Error('sync follower timed out');
    })();
    return { run, events, limited: () => limitedCount };
  }

  it('20 concurrent senders × 10 messages: all acknowledged, one order for every reader, the same as /sync', async () => {
    const senders = users.slice(0, 20);
    const roomId = (await ok(alice.post(`${V3}/createRoom`, { preset: 'public_chat' }), 'createRoom')).room_id as string;
    await Promise.all(senders.map((u) => ok(u.post(room(roomId, 'join'), {}), `join ${u.userId}`)));
    const t0 = (await sync(alice, undefined, { room: { rooms: [roomId], timeline: { limit: 1 } } })).next_batch as string;

    let sending = true;
    const follower = follow(alice, roomId, t0, () => !sending);
    const acks = await Promise.all(
      senders.map(async (u, i) => {
        const mine: string[] = [];
        for (let j = 0; j < 10; j++) {
          const r = await u.put(room(roomId, `send/m.room.message/ord-${j}`), { msgtype: 'm.text', body: `${i}:${j}` });
          assert.equal(r.status, 200, `sender ${i} message ${j}: ${r.status} ${JSON.stringify(r.body)}`);
          mine.push(r.body.event_id);
        }
        return mine;
      }),
    );
    sending = false;
    const acked = acks.flat();
    assert.equal(acked.length, 200);
    assert.equal(new Set(acked).size, 200, 'every send got its own event');

    const [fwdA, fwdB, backC] = await Promise.all([
      allForward(alice, roomId, t0),
      allForward(senders[3], roomId, t0, 50),
      allBackward(senders[7], roomId, t0),
    ]);
    const order = ids(fwdA);
    assert.equal(order.length, 200, `readers see all 200 once, got ${order.length}`);
    assert.equal(new Set(order).size, 200, 'no duplicates in /messages');
    assert.deepEqual([...order].sort(), [...acked].sort(), '/messages holds exactly the acknowledged events');
    assert.deepEqual(ids(fwdB), order, 'a second reader sees the same order');
    assert.deepEqual(ids(backC).reverse(), order, 'backward pagination is the exact reverse');
    for (const [i, mine] of acks.entries()) {
      const pos = mine.map((id) => order.indexOf(id));
      assert.deepEqual(pos, [...pos].sort((a, b) => a - b), `sender ${i}'s messages keep their send order`);
    }
    const bodies = fwdA.map((e) => e.content.body);
    for (const [i, mine] of acks.entries()) {
      for (const [j, id] of mine.entries()) assert.equal(bodies[order.indexOf(id)], `${i}:${j}`, 'event content matches the send');
    }

    await follower.run;
    const synced = ids(follower.events.filter((e) => e.type === 'm.room.message'));
    assert.equal(new Set(synced).size, synced.length, 'no event twice through /sync');
    assert.deepEqual(synced, order, `/sync order equals /messages order (limited ${follower.limited()} times)`);
  });

  it('concurrent sends to many rooms: each room complete, per-sender ordered, nothing leaks across rooms', async () => {
    const [bob, carol] = users;
    const rooms: string[] = [];
    for (let i = 0; i < 10; i++) {
      rooms.push((await ok(alice.post(`${V3}/createRoom`, { preset: 'public_chat', name: `r${i}` }), 'createRoom')).room_id);
    }
    await Promise.all(rooms.flatMap((r) => [bob, carol].map((u) => ok(u.post(room(r, 'join'), {}), 'join'))));
    const filter = { room: { rooms, timeline: { limit: 100 } } };
    const t0 = (await sync(alice, undefined, { room: { rooms, timeline: { limit: 1 } } })).next_batch as string;

    const sent = new Map<string, Map<string, string[]>>(); // room -> sender -> event ids
    await Promise.all(
      rooms.flatMap((r, ri) =>
        [alice, bob, carol].map(async (u) => {
          const list: string[] = [];
          for (let j = 0; j < 5; j++) {
            const res = await ok(u.put(room(r, `send/m.room.message/many-${ri}-${j}`), { msgtype: 'm.text', body: `${ri}/${u.userId}/${j}` }), 'send');
            list.push(res.event_id);
          }
          if (!sent.has(r)) sent.set(r, new Map());
          sent.get(r)!.set(u.userId, list);
        }),
      ),
    );

    const s = await sync(alice, t0, filter);
    for (const [ri, r] of rooms.entries()) {
      const msgs = (await allForward(bob, r, t0)).filter((e) => e.type === 'm.room.message');
      const order = ids(msgs);
      assert.equal(order.length, 15, `room ${ri}: 15 messages, got ${order.length}`);
      assert.equal(new Set(order).size, 15);
      for (const e of msgs) assert.ok(e.content.body.startsWith(`${ri}/`), `room ${ri} got ${e.content.body}`);
      for (const [u, list] of sent.get(r)!) {
        const pos = list.map((id) => order.indexOf(id));
        assert.ok(pos.every((p) => p >= 0), `all of ${u}'s events in room ${ri}`);
        assert.deepEqual(pos, [...pos].sort((a, b) => a - b), `${u} keeps send order in room ${ri}`);
      }
      const tl = s.rooms.join[r]?.timeline;
      assert.ok(tl, `room ${ri} in the incremental sync`);
      assert.equal(tl.limited, false);
      assert.deepEqual(ids(tl.events.filter((e: any) => e.type === 'm.room.message')), order, `room ${ri}: /sync order equals /messages order`);
    }
  });

  it('stream tokens from /sync work as /messages from/to in both directions and as /members?at=', async () => {
    const [bob, carol] = users;
    const roomId = (await ok(alice.post(`${V3}/createRoom`, { preset: 'public_chat' }), 'createRoom')).room_id as string;
    await ok(bob.post(room(roomId, 'join'), {}), 'join');
    const f = { room: { rooms: [roomId], timeline: { limit: 2 } } };
    const s1 = await sync(alice, undefined, f);
    const t1 = s1.next_batch as string;

    const joined = await ok(carol.post(room(roomId, 'join'), {}), 'carol joins');
    assert.equal(joined.room_id, roomId);
    const msgs: string[] = [];
    for (let i = 0; i < 3; i++) msgs.push((await ok(alice.put(room(roomId, `send/m.room.message/tok-${i}`), { msgtype: 'm.text', body: `t${i}` }), 'send')).event_id);
    const s2 = await sync(alice, t1, f);
    const t2 = s2.next_batch as string;
    assert.equal(s2.rooms.join[roomId].timeline.limited, true, '4 new events, limit 2');

    const fwd = await ok(alice.get(room(roomId, `messages?dir=f&limit=50&from=${enc(t1)}&to=${enc(t2)}`)), 'f');
    assert.deepEqual(fwd.chunk.map((e: any) => [e.type, e.state_key ?? e.content.body]), [
      ['m.room.member', carol.userId], ['m.room.message', 't0'], ['m.room.message', 't1'], ['m.room.message', 't2'],
    ]);
    const back = await ok(alice.get(room(roomId, `messages?dir=b&limit=50&from=${enc(t2)}&to=${enc(t1)}`)), 'b');
    assert.deepEqual(ids(back.chunk), ids(fwd.chunk).reverse());
    const fromNext = await ok(alice.get(room(roomId, `messages?dir=f&limit=50&from=${enc(t2)}`)), 'f from next_batch');
    assert.deepEqual(fromNext.chunk, [], 'nothing after next_batch yet');

    // prev_batch works in both directions too: backwards before the timeline, forwards into it.
    const prev = s2.rooms.join[roomId].timeline.prev_batch as string;
    const intoTimeline = await ok(alice.get(room(roomId, `messages?dir=f&limit=2&from=${enc(prev)}`)), 'f from prev_batch');
    assert.deepEqual(ids(intoTimeline.chunk), ids(s2.rooms.join[roomId].timeline.events));
    const beforeTimeline = await ok(alice.get(room(roomId, `messages?dir=b&limit=2&from=${enc(prev)}`)), 'b from prev_batch');
    assert.deepEqual(ids(beforeTimeline.chunk), [msgs[0], fwd.chunk[0].event_id]);

    const m = (chunk: any[]) => Object.fromEntries(chunk.map((e: any) => [e.state_key, e.content.membership]));
    const at1 = await ok(alice.get(room(roomId, `members?at=${enc(t1)}`)), 'members at t1');
    assert.deepEqual(m(at1.chunk), { [alice.userId]: 'join', [bob.userId]: 'join' });
    const at2 = await ok(alice.get(room(roomId, `members?at=${enc(t2)}`)), 'members at t2');
    assert.deepEqual(m(at2.chunk), { [alice.userId]: 'join', [bob.userId]: 'join', [carol.userId]: 'join' });
    const atPrev = await ok(alice.get(room(roomId, `members?at=${enc(prev)}`)), 'members at prev_batch');
    assert.equal(m(atPrev.chunk)[carol.userId], 'join', 'carol joined before the timeline start');
  });
});
