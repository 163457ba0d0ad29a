// Relations, threads and bundled aggregations over real HTTP (Client-Server API v1.12
// "Relationships between events" / "Aggregations of child events", "Threading", "Event
// replacements", "Reference relations"): /v1/rooms/{id}/relations, /v1/rooms/{id}/threads, and
// unsigned["m.relations"] on /event, /messages and /sync.

import { assert } from '../helpers/assert.js';
import { makeUser, ok, roomPath, roomWith, sendEvent, V1, V3, type User } from '../helpers/fixtures.js';
import { enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('relations, threads and bundled aggregations', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let carol: User;
  let mallory: User;
  let roomId: string;
  let txn = 0;

  const room = (rest: string, id = roomId) => roomPath(id, rest);
  const send = (who: User, content: Record<string, unknown>, type = 'm.room.message', id = roomId) => sendEvent(who, id, type, `rl${++txn}`, content, `send ${type}`);
  const text = (who: User, body: string) => send(who, { msgtype: 'm.text', body });
  const threadReply = (who: User, root: string, body: string) =>
    send(who, { msgtype: 'm.text', body, 'm.relates_to': { rel_type: 'm.thread', event_id: root, is_falling_back: true, 'm.in_reply_to': { event_id: root } } });
  const edit = (who: User, target: string, body: string, type = 'm.room.message') =>
    send(who, { msgtype: 'm.text', body: `* ${body}`, 'm.new_content': { msgtype: 'm.text', body }, 'm.relates_to': { rel_type: 'm.replace', event_id: target } }, type);
  const relations = (who: User, path: string, query = '') => ok(who.get(`${V1}/rooms/${enc(roomId)}/relations/${path}${query}`), `relations ${path}${query}`);
  const getEvent = (who: User, id: string) => ok(who.get(room(`event/${enc(id)}`)), 'GET event');
  const rel = (ev: any) => ev?.unsigned?.['m.relations'];
  const ids = (chunk: any[]) => chunk.map((e) => e.event_id);

  before(async () => {
    srv = await startTestServer();
    [alice, bob, carol, mallory] = await Promise.all(['alice', 'bob', 'carol', 'mallory'].map((u) => makeUser(srv, u)));
    roomId = await roomWith(alice, [bob, carol]);
  });
  after(async () => srv?.stop());

  describe('GET /v1/rooms/{id}/relations/{eventId}[/{relType}[/{eventType}]]', () => {
    let root: string;
    let t: string[];
    let reaction: string;
    let reference: string;
    let unrelated: string;

    before(async () => {
      root = await text(alice, 'root for relations');
      t = [];
      t.push(await threadReply(bob, root, 'r0'));
      reaction = await send(carol, { 'm.relates_to': { rel_type: 'm.annotation', event_id: root, key: '👍' } }, 'm.reaction');
      t.push(await threadReply(alice, root, 'r1'));
      reference = await send(bob, { msgtype: 'm.text', body: 'see above', 'm.relates_to': { rel_type: 'm.reference', event_id: root } });
      t.push(await threadReply(bob, root, 'r2'));
      unrelated = await text(alice, 'not related');
    });

    it('returns every child, newest first by default; never unrelated events or the parent', async () => {
      const res = await relations(alice, enc(root));
      assert.deepEqual(ids(res.chunk), [t[2], reference, t[1], reaction, t[0]]);
      assert.ok(!ids(res.chunk).includes(unrelated) && !ids(res.chunk).includes(root));
      assert.equal(res.next_batch, undefined, 'all fit');
      for (const e of res.chunk) assert.equal(e.room_id, roomId);
    });

    it('filters by relType and by relType + eventType', async () => {
      assert.deepEqual(ids((await relations(alice, `${enc(root)}/m.thread`)).chunk), [t[2], t[1], t[0]]);
      assert.deepEqual(ids((await relations(alice, `${enc(root)}/m.annotation`)).chunk), [reaction]);
      assert.deepEqual(ids((await relations(alice, `${enc(root)}/m.annotation/m.reaction`)).chunk), [reaction]);
      assert.deepEqual(ids((await relations(alice, `${enc(root)}/m.annotation/m.room.message`)).chunk), []);
      assert.deepEqual(ids((await relations(alice, `${enc(root)}/m.thread/m.room.message`)).chunk), [t[2], t[1], t[0]]);
      assert.deepEqual(ids((await relations(alice, `${enc(root)}/m.reference`)).chunk), [reference]);
      assert.deepEqual((await relations(alice, `${enc(root)}/m.replace`)).chunk, []);
    });

    it('paginates: limit, from = next_batch, dir=f', async () => {
      const p1 = await relations(alice, `${enc(root)}/m.thread`, '?limit=2');
      assert.deepEqual(ids(p1.chunk), [t[2], t[1]]);
      assert.equal(typeof p1.next_batch, 'string');
      const p2 = await relations(alice, `${enc(root)}/m.thread`, `?limit=2&from=${enc(p1.next_batch)}`);
      assert.deepEqual(ids(p2.chunk), [t[0]]);
      assert.equal(p2.next_batch, undefined, 'the last page has no next_batch');

      const f1 = await relations(alice, `${enc(root)}/m.thread`, '?dir=f&limit=2');
      assert.deepEqual(ids(f1.chunk), [t[0], t[1]], 'dir=f: oldest first');
      assert.equal(typeof f1.next_batch, 'string');
      const f2 = await relations(alice, `${enc(root)}/m.thread`, `?dir=f&limit=2&from=${enc(f1.next_batch)}`);
      assert.deepEqual(ids(f2.chunk), [t[2]]);

      const all = await relations(alice, enc(root), '?limit=1');
      const seen: string[] = [...ids(all.chunk)];
      let next = all.next_batch;
      for (let i = 0; next && i < 10; i++) {
        const p = await relations(alice, enc(root), `?limit=1&from=${enc(next)}`);
        seen.push(...ids(p.chunk));
        next = p.next_batch;
      }
      assert.deepEqual(seen, [t[2], reference, t[1], reaction, t[0]], 'page by page, every child once');
      const badDir = await alice.get(`${V1}/rooms/${enc(roomId)}/relations/${enc(root)}?dir=x`);
      assert.equal(badDir.status, 400);
    });

    it('unknown parent → 404; a non-member → 404/403 and learns nothing', async () => {
      const unknown = await alice.get(`${V1}/rooms/${enc(roomId)}/relations/${enc('$nope')}`);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.errcode, 'M_NOT_FOUND');
      const outsider = await mallory.get(`${V1}/rooms/${enc(roomId)}/relations/${enc(root)}`);
      assert.ok(outsider.status === 404 || outsider.status === 403, `${outsider.status} ${JSON.stringify(outsider.body)}`);
      assert.equal(outsider.body.chunk, undefined);
    });
  });

  describe('threads', () => {
    let a: string;
    let b: string;
    let lastA: string;

    before(async () => {
      const { room_id } = await ok(alice.post(`${V3}/createRoom`, { preset: 'private_chat', invite: [bob.userId, carol.userId] }), 'createRoom');
      roomId = room_id;
      await ok(bob.post(room('join'), {}), 'join');
      await ok(carol.post(room('join'), {}), 'join');
      a = await text(alice, 'thread A');
      b = await text(carol, 'thread B');
      await threadReply(alice, a, 'a1');
      await threadReply(bob, b, 'b1');
      lastA = await threadReply(alice, a, 'a2');
    });

    it('GET /v1/rooms/{id}/threads lists roots, most recent activity first, with the m.thread bundle', async () => {
      const res = await ok(alice.get(`${V1}/rooms/${enc(roomId)}/threads`), 'threads');
      assert.deepEqual(ids(res.chunk), [a, b]);
      const th = rel(res.chunk[0])?.['m.thread'];
      assert.equal(th?.count, 2, JSON.stringify(res.chunk[0].unsigned));
      assert.equal(th.latest_event.event_id, lastA);

      // New activity in B moves it to the front.
      const lastB = await threadReply(carol, b, 'b2');
      const res2 = await ok(alice.get(`${V1}/rooms/${enc(roomId)}/threads?include=all`), 'threads');
      assert.deepEqual(ids(res2.chunk), [b, a]);
      assert.equal(rel(res2.chunk[0])['m.thread'].latest_event.event_id, lastB);

      const p1 = await ok(alice.get(`${V1}/rooms/${enc(roomId)}/threads?limit=1`), 'page 1');
      assert.deepEqual(ids(p1.chunk), [b]);
      assert.equal(typeof p1.next_batch, 'string');
      const p2 = await ok(alice.get(`${V1}/rooms/${enc(roomId)}/threads?limit=1&from=${enc(p1.next_batch)}`), 'page 2');
      assert.deepEqual(ids(p2.chunk), [a]);
    });

    it('include=participated: threads the user started or replied to', async () => {
      // alice: root of A and replies in A → A only. bob: replied in B → B only.
      // carol: root of B (sent no reply to A) → B only.
      const mine = async (u: User) => ids((await ok(u.get(`${V1}/rooms/${enc(roomId)}/threads?include=participated`), 'participated')).chunk);
      assert.deepEqual(await mine(alice), [a]);
      assert.deepEqual(await mine(bob), [b]);
      assert.deepEqual(await mine(carol), [b]);
      const bad = await alice.get(`${V1}/rooms/${enc(roomId)}/threads?include=mine`);
      assert.equal(bad.status, 400);
      const outsider = await mallory.get(`${V1}/rooms/${enc(roomId)}/threads`);
      assert.equal(outsider.status, 403);
    });

    it('m.thread is bundled on the root in /event, /messages and /sync, with current_user_participated per viewer', async () => {
      const viaEvent = async (u: User) => rel(await getEvent(u, a))?.['m.thread'];
      const ta = await viaEvent(alice);
      assert.deepEqual({ count: ta?.count, latest: ta?.latest_event?.event_id, me: ta?.current_user_participated }, { count: 2, latest: lastA, me: true });
      assert.equal(ta.latest_event.content.body, 'a2', 'latest_event is the full event');
      assert.equal(ta.latest_event.sender, alice.userId);
      assert.equal((await viaEvent(bob))?.current_user_participated, false, 'bob took no part in thread A');
      assert.equal(rel(await getEvent(carol, b))?.['m.thread']?.current_user_participated, true, 'the root sender participated (MSC3816)');

      const msgs = await ok(alice.get(room(`messages?dir=b&limit=50`)), '/messages');
      const rootInMessages = msgs.chunk.find((e: any) => e.event_id === a);
      assert.equal(rel(rootInMessages)?.['m.thread']?.count, 2, JSON.stringify(rootInMessages?.unsigned));
      assert.equal(rel(rootInMessages)['m.thread'].latest_event.event_id, lastA);

      const s = await ok(alice.get(`${V3}/sync?timeout=0&filter=${enc(JSON.stringify({ room: { rooms: [roomId], timeline: { limit: 50 } } }))}`), 'sync');
      const rootInSync = s.rooms.join[roomId].timeline.events.find((e: any) => e.event_id === a);
      assert.ok(rootInSync, 'root in the sync timeline');
      assert.equal(rel(rootInSync)?.['m.thread']?.count, 2, JSON.stringify(rootInSync.unsigned));
      assert.equal(rel(rootInSync)['m.thread'].latest_event.event_id, lastA);
      assert.equal(rel(rootInSync)['m.thread'].current_user_participated, true);

      // Incremental sync: a new reply arrives; a root that is in the timeline carries the new count.
      const since = s.next_batch;
      const newRoot = await text(bob, 'fresh root');
      const reply = await threadReply(carol, newRoot, 'fresh reply');
      const s2 = await ok(alice.get(`${V3}/sync?timeout=0&since=${enc(since)}`), 'incremental sync');
      const fresh = s2.rooms.join[roomId].timeline.events.find((e: any) => e.event_id === newRoot);
      assert.equal(rel(fresh)?.['m.thread']?.latest_event?.event_id, reply, JSON.stringify(fresh?.unsigned));
      assert.equal(rel(fresh)['m.thread'].current_user_participated, false);
    });
  });

  describe('m.replace and m.reference bundles', () => {
    it('bundles the latest edit by the original sender with the same type; ignores edits by others', async () => {
      const orig = await text(alice, 'original text');
      const e1 = await edit(alice, orig, 'first edit');
      const e2 = await edit(alice, orig, 'second edit');
      const byBob = await edit(bob, orig, 'bob rewrites it');
      const ev = await getEvent(carol, orig);
      const replace = rel(ev)?.['m.replace'];
      assert.equal(replace?.event_id, e2, `latest valid edit bundled: ${JSON.stringify(rel(ev))} (e1 ${e1}, bob ${byBob})`);
      assert.equal(replace.sender, alice.userId);
      assert.equal(replace.content['m.new_content'].body, 'second edit', 'the full edit event is bundled');
      assert.equal(ev.content.body, 'original text', 'the original content is served unchanged');

      // Only bob edited this one: nothing to bundle.
      const other = await text(alice, 'only bob edits this');
      await edit(bob, other, 'hijacked');
      assert.equal(rel(await getEvent(carol, other))?.['m.replace'], undefined, 'an edit by another user is not bundled');

      // Same sender, different event type: not a valid replacement.
      const typed = await text(alice, 'typed original');
      await edit(alice, typed, 'wrong type', 'org.example.custom');
      assert.equal(rel(await getEvent(carol, typed))?.['m.replace'], undefined, 'an edit of another type is not bundled');

      // The bundle is also on /messages.
      const msgs = await ok(carol.get(room('messages?dir=b&limit=20')), '/messages');
      assert.equal(rel(msgs.chunk.find((e: any) => e.event_id === orig))?.['m.replace']?.event_id, e2);
    });

    it('bundles m.reference as {chunk: [{event_id}]}', async () => {
      const target = await text(alice, 'referenced');
      const r1 = await send(bob, { msgtype: 'm.text', body: 'ref 1', 'm.relates_to': { rel_type: 'm.reference', event_id: target } });
      const r2 = await send(carol, { msgtype: 'm.text', body: 'ref 2', 'm.relates_to': { rel_type: 'm.reference', event_id: target } });
      const ref = rel(await getEvent(alice, target))?.['m.reference'];
      assert.ok(ref, 'm.reference bundle present');
      assert.deepEqual(ref.chunk.map((c: any) => c.event_id).sort(), [r1, r2].sort());
      for (const c of ref.chunk) assert.deepEqual(Object.keys(c), ['event_id']);
    });
  });
});
