// History over real HTTP against the Client-Server API v1.12: GET /rooms/{roomId}/messages,
// /context/{eventId}, /event/{eventId}, history visibility ("Server behaviour" of
// m.room.history_visibility) and redactions (PUT /rooms/{roomId}/redact/{eventId}/{txnId}).

import { assert } from '../helpers/assert.js';
import { createRoom, ok, roomPath as room, sendEvent, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

let txnSeq = 0;

describe('room history over HTTP', function () {
  let srv: TestServer;
  let api: Api;
  let alice: User;
  let bob: User;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
    [alice, bob] = await Promise.all([api.register('alice'), api.register('bob')]);
  });
  after(async () => srv.stop());

  const create = (body: Record<string, unknown>, who: User = alice) => createRoom(who, body);
  const send = (who: User, roomId: string, body: string) => sendEvent(who, roomId, 'm.room.message', `h${++txnSeq}`, { msgtype: 'm.text', body }, `send ${body}`);
  async function token(who: User): Promise<string> {
    return (await ok(who.get(`${V3}/sync?timeout=0&filter=${enc(JSON.stringify({ room: { timeline: { limit: 1 } } }))}`), 'sync')).next_batch;
  }
  function messages(who: User, roomId: string, q: Record<string, string | number>): Promise<any> {
    const qs = Object.entries(q).map(([k, v]) => `${k}=${enc(String(v))}`).join('&');
    return ok(who.get(room(roomId, `messages?${qs}`)), `messages ${qs}`);
  }
  const ids = (events: any[]) => events.map((e) => e.event_id);

  describe('/messages', () => {
    let roomId: string;
    let t0: string;
    let t1: string;
    let tMid: string;
    const sent: string[] = [];

    before(async () => {
      roomId = await create({ preset: 'public_chat', name: 'history' });
      await ok(bob.post(room(roomId, 'join'), {}), 'join');
      t0 = await token(alice);
      for (let i = 0; i < 20; i++) {
        sent.push(await send(i % 2 ? bob : alice, roomId, `m${i}`));
        if (i === 9) tMid = await token(alice);
      }
      t1 = await token(alice);
    });

    it('dir=f pages forward from a token with limit; start echoes from; end continues', async () => {
      const seen: string[] = [];
      let from = t0;
      for (let page = 0; page < 10; page++) {
        const r = await messages(alice, roomId, { dir: 'f', from, limit: 6 });
        assert.equal(r.start, from, 'start equals the given from');
        seen.push(...ids(r.chunk));
        if (r.chunk.length === 0 || r.end === undefined) break;
        from = r.end;
      }
      assert.deepEqual(seen, sent);
    });

    it('dir=f at the live end returns an empty chunk and no end', async () => {
      const r = await messages(alice, roomId, { dir: 'f', from: t1, limit: 10 });
      assert.deepEqual(r.chunk, []);
      assert.equal(r.start, t1);
      assert.equal(r.end, undefined, 'no further events: end omitted');
    });

    it('from/to bound a range in both directions', async () => {
      const f = await messages(alice, roomId, { dir: 'f', from: t0, to: tMid, limit: 100 });
      assert.deepEqual(ids(f.chunk), sent.slice(0, 10));
      const f2 = await messages(alice, roomId, { dir: 'f', from: tMid, to: t1, limit: 100 });
      assert.deepEqual(ids(f2.chunk), sent.slice(10));
      const b = await messages(alice, roomId, { dir: 'b', from: t1, to: t0, limit: 100 });
      assert.deepEqual(ids(b.chunk), [...sent].reverse());
      assert.equal(b.start, t1);
      const b2 = await messages(alice, roomId, { dir: 'b', from: tMid, to: t0, limit: 3 });
      assert.deepEqual(ids(b2.chunk), sent.slice(7, 10).reverse());
      assert.equal(typeof b2.end, 'string', 'more events before: end present');
      const b3 = await messages(alice, roomId, { dir: 'b', from: b2.end, to: t0, limit: 100 });
      assert.deepEqual(ids(b3.chunk), sent.slice(0, 7).reverse(), 'end continues without gap or overlap');
    });

    it('dir=b pages back to m.room.create and omits end at the start of history', async () => {
      const seen: any[] = [];
      let from = t1;
      let pages = 0;
      for (; pages < 30; pages++) {
        const r = await messages(bob, roomId, { dir: 'b', from, limit: 7 });
        assert.equal(r.start, from);
        seen.push(...r.chunk);
        if (r.end === undefined) break;
        assert.notEqual(r.end, from, 'end must make progress');
        from = r.end;
      }
      assert.ok(pages < 30, 'pagination terminates');
      assert.equal(seen[seen.length - 1].type, 'm.room.create');
      assert.equal(new Set(ids(seen)).size, seen.length, 'no duplicates');
      assert.deepEqual(ids(seen.filter((e) => e.type === 'm.room.message')), [...sent].reverse());
      const afterEnd = await messages(bob, roomId, { dir: 'b', from: t0, limit: 100 });
      assert.equal(afterEnd.end, undefined);
      assert.equal(afterEnd.chunk[afterEnd.chunk.length - 1].type, 'm.room.create');
    });

    it('works without from: dir=b starts at the latest event', async () => {
      const r = await messages(alice, roomId, { dir: 'b', limit: 3 });
      assert.deepEqual(ids(r.chunk), sent.slice(-3).reverse());
      assert.equal(typeof r.start, 'string');
      const next = await messages(alice, roomId, { dir: 'b', limit: 3, from: r.end });
      assert.deepEqual(ids(next.chunk), sent.slice(-6, -3).reverse());
      // The start token of a from-less request is usable for forward paging: nothing newer yet.
      const fwd = await messages(alice, roomId, { dir: 'f', from: r.start, limit: 10 });
      assert.deepEqual(fwd.chunk, []);
    });

    it('applies a RoomEventFilter: types, not_types, senders', async () => {
      const only = await messages(alice, roomId, { dir: 'b', from: t1, limit: 100, filter: JSON.stringify({ types: ['m.room.message'] }) });
      assert.deepEqual(ids(only.chunk), [...sent].reverse());
      const not = await messages(alice, roomId, { dir: 'b', from: t1, limit: 100, filter: JSON.stringify({ not_types: ['m.room.message'] }) });
      assert.ok(not.chunk.length > 0);
      assert.ok(not.chunk.every((e: any) => e.type !== 'm.room.message'));
      const bobs = await messages(alice, roomId, { dir: 'f', from: t0, limit: 100, filter: JSON.stringify({ senders: [bob.userId] }) });
      assert.deepEqual(ids(bobs.chunk), sent.filter((_, i) => i % 2 === 1));
      const limited = await messages(alice, roomId, { dir: 'b', from: t1, limit: 3, filter: JSON.stringify({ types: ['m.room.member'] }) });
      assert.ok(limited.chunk.length > 0 && limited.chunk.every((e: any) => e.type === 'm.room.member'), 'filter before limit');
    });

    it('lazy_load_members in the filter adds the senders\' member events as state', async () => {
      const r = await messages(alice, roomId, { dir: 'b', from: tMid, limit: 1, filter: JSON.stringify({ lazy_load_members: true }) });
      assert.equal(r.chunk.length, 1);
      const sender = r.chunk[0].sender;
      assert.ok(Array.isArray(r.state), 'state present');
      const members = r.state.filter((e: any) => e.type === 'm.room.member').map((e: any) => e.state_key);
      assert.ok(members.includes(sender), 'sender member included');
      assert.ok(members.length <= 2, `only relevant members: ${members}`);
    });

    it('rejects a malformed token and a bad dir with 400', async () => {
      const bad = await alice.get(room(roomId, 'messages?dir=b&from=garbage'));
      assert.equal(bad.status, 400, JSON.stringify(bad.body));
      const dir = await alice.get(room(roomId, 'messages?dir=x'));
      assert.equal(dir.status, 400, JSON.stringify(dir.body));
    });

    it('/context returns events around an event, state, and tokens usable with /messages', async () => {
      const target = sent[10];
      const c = await ok(alice.get(room(roomId, `context/${enc(target)}?limit=4`)), 'context');
      assert.equal(c.event.event_id, target);
      assert.equal(c.event.content.body, 'm10');
      const before = ids(c.events_before);
      const after = ids(c.events_after);
      assert.ok(before.length + after.length <= 4, 'limit applies to the sum');
      assert.ok(before.length > 0 && after.length > 0);
      assert.deepEqual(before, sent.slice(10 - before.length, 10).reverse(), 'events_before: reverse-chronological, adjacent');
      assert.deepEqual(after, sent.slice(11, 11 + after.length), 'events_after: chronological, adjacent');
      const stateTypes = c.state.map((e: any) => e.type);
      assert.ok(stateTypes.includes('m.room.create') && stateTypes.includes('m.room.member'));
      assert.equal(typeof c.start, 'string');
      assert.equal(typeof c.end, 'string');
      const back = await messages(alice, roomId, { dir: 'b', from: c.start, limit: 2 });
      assert.deepEqual(ids(back.chunk), sent.slice(10 - before.length - 2, 10 - before.length).reverse(), 'start continues backwards');
      const fwd = await messages(alice, roomId, { dir: 'f', from: c.end, limit: 2 });
      assert.deepEqual(ids(fwd.chunk), sent.slice(11 + after.length, 13 + after.length), 'end continues forwards');
      const zero = await ok(alice.get(room(roomId, `context/${enc(target)}?limit=0`)), 'context limit 0');
      assert.equal(zero.event.event_id, target);
      assert.deepEqual([...zero.events_before, ...zero.events_after], []);
    });

    it('GET /rooms/{id}/event/{unknown} is 404 M_NOT_FOUND, also for an event of another room', async () => {
      const r = await alice.get(room(roomId, `event/${enc('$doesnotexistdoesnotexistdoesnotexistdoesnot')}`));
      assert.equal(r.status, 404, JSON.stringify(r.body));
      assert.equal(r.body.errcode, 'M_NOT_FOUND');
      const other = await create({});
      const otherEv = await send(alice, other, 'elsewhere');
      const wrong = await alice.get(room(roomId, `event/${enc(otherEv)}`));
      assert.equal(wrong.status, 404, JSON.stringify(wrong.body));
      const ctx = await alice.get(room(roomId, `context/${enc('$doesnotexistdoesnotexistdoesnotexistdoesnot')}`));
      assert.equal(ctx.status, 404, JSON.stringify(ctx.body));
      const good = await ok(alice.get(room(roomId, `event/${enc(sent[3])}`)), 'event');
      assert.equal(good.content.body, 'm3');
    });

    it('/context in a room the user may not read is 403 M_FORBIDDEN, as /messages is; world_readable rooms are readable', async () => {
      const priv = await create({ preset: 'private_chat' });
      const ev = await send(alice, priv, 'private words');
      const carol = await api.register(`carol${++txnSeq}`);
      for (const id of [ev, '$doesnotexistdoesnotexistdoesnotexistdoesnot']) {
        const r = await carol.get(room(priv, `context/${enc(id)}`));
        assert.equal(r.status, 403, JSON.stringify(r.body));
        assert.equal(r.body.errcode, 'M_FORBIDDEN', 'the same answer whether or not the event exists');
      }
      const msgs = await carol.get(room(priv, 'messages?dir=b'));
      assert.equal(msgs.status, 403, JSON.stringify(msgs.body));
      await ok(alice.put(room(priv, 'state/m.room.history_visibility'), { history_visibility: 'world_readable' }), 'world_readable');
      const open = await send(alice, priv, 'public words');
      const seen = await ok(carol.get(room(priv, `context/${enc(open)}`)), 'context of a world_readable room');
      assert.equal(seen.event.content.body, 'public words');
      const earlier = await carol.get(room(priv, `context/${enc(ev)}`));
      assert.equal(earlier.status, 404, `an event from before world_readable stays invisible: ${JSON.stringify(earlier.body)}`);
      const missing = await carol.get(room(priv, `context/${enc('$doesnotexistdoesnotexistdoesnotexistdoesnot')}`));
      assert.equal(missing.status, 404, JSON.stringify(missing.body));
    });
  });

  describe('history visibility', () => {
    /** alice: "before invite", invites bob, "between", bob joins, "after join". Returns the bodies bob can see. */
    async function scenario(visibility: string): Promise<{ roomId: string; visible: string[]; hidden: Record<string, string> }> {
      const roomId = await create({
        preset: 'private_chat',
        initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: visibility } }],
      });
      const hidden: Record<string, string> = {};
      hidden['before invite'] = await send(alice, roomId, 'before invite');
      await ok(alice.post(room(roomId, 'invite'), { user_id: bob.userId }), 'invite');
      hidden['between'] = await send(alice, roomId, 'between');
      await ok(bob.post(room(roomId, 'join'), {}), 'join');
      hidden['after join'] = await send(alice, roomId, 'after join');
      const r = await messages(bob, roomId, { dir: 'b', limit: 100 });
      const visible = r.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body).reverse();
      return { roomId, visible, hidden };
    }
    async function canFetch(roomId: string, eventId: string): Promise<boolean> {
      const r = await bob.get(room(roomId, `event/${enc(eventId)}`));
      assert.ok(r.status === 200 || r.status === 404, `event: ${r.status} ${JSON.stringify(r.body)}`);
      return r.status === 200;
    }

    it('joined: a user who joins later cannot see messages from before their join', async () => {
      const { roomId, visible, hidden } = await scenario('joined');
      assert.deepEqual(visible, ['after join']);
      assert.equal(await canFetch(roomId, hidden['before invite']), false);
      assert.equal(await canFetch(roomId, hidden['between']), false);
      assert.equal(await canFetch(roomId, hidden['after join']), true);
      const s = await ok(bob.get(`${V3}/sync?timeout=0`), 'sync');
      const bodies = s.rooms.join[roomId].timeline.events.map((e: any) => e.content.body).filter(Boolean);
      assert.ok(!bodies.includes('before invite') && !bodies.includes('between'), `sync leaked ${bodies}`);
      assert.ok(bodies.includes('after join'));
      const hiddenCtx = await bob.get(room(roomId, `context/${enc(hidden['before invite'])}`));
      assert.equal(hiddenCtx.status, 404, `context of an invisible event: ${hiddenCtx.status}`);
      const ctx = await bob.get(room(roomId, `context/${enc(hidden['after join'])}?limit=10`));
      assert.equal(ctx.status, 200);
      const around = [...ctx.body.events_before, ...ctx.body.events_after].map((e: any) => e.content.body).filter(Boolean);
      assert.ok(!around.includes('before invite') && !around.includes('between'), `context leaked ${around}`);
    });

    it('shared: a user who joins later sees the earlier messages', async () => {
      const { roomId, visible, hidden } = await scenario('shared');
      assert.deepEqual(visible, ['before invite', 'between', 'after join']);
      assert.equal(await canFetch(roomId, hidden['before invite']), true);
    });

    it('a history_visibility change is visible if the setting before or after it allows it', async () => {
      const roomId = await create({ preset: 'public_chat' });
      await send(alice, roomId, 'members only');
      const opened = (await ok(alice.put(room(roomId, 'state/m.room.history_visibility'), { history_visibility: 'world_readable' }), 'open')).event_id;
      await send(alice, roomId, 'for everyone');
      // A user who never joined sees the switch to world_readable (allowed by the setting after
      // it) and what was sent since, nothing from before.
      const outsider = await new Api(srv.url).register('outsider');
      const r = await ok(outsider.get(room(roomId, 'messages?dir=b&limit=100')), 'messages');
      assert.deepEqual(r.chunk.map((e: any) => e.content.body ?? e.content.history_visibility).reverse(), ['world_readable', 'for everyone']);
      assert.equal(r.chunk[1].event_id, opened);
    });

    it('invited: the user sees messages from their invite on', async () => {
      const { roomId, visible, hidden } = await scenario('invited');
      assert.deepEqual(visible, ['between', 'after join']);
      assert.equal(await canFetch(roomId, hidden['before invite']), false);
      assert.equal(await canFetch(roomId, hidden['between']), true);
    });
  });

  describe('redaction', () => {
    let roomId: string;
    let a1: string;
    let b1: string;
    let b2: string;

    before(async () => {
      roomId = await create({ preset: 'public_chat' });
      await ok(bob.post(room(roomId, 'join'), {}), 'join');
      a1 = await send(alice, roomId, 'alice says');
      b1 = await send(bob, roomId, 'bob says once');
      b2 = await send(bob, roomId, 'bob says twice');
    });

    it('a PL-0 member cannot redact someone else\'s event (403), the event stays intact', async () => {
      const r = await bob.put(room(roomId, `redact/${enc(a1)}/no`), { reason: 'nope' });
      assert.equal(r.status, 403, JSON.stringify(r.body));
      assert.equal(r.body.errcode, 'M_FORBIDDEN');
      const ev = await ok(alice.get(room(roomId, `event/${enc(a1)}`)), 'event');
      assert.equal(ev.content.body, 'alice says');
      assert.equal(ev.unsigned?.redacted_because, undefined);
    });

    it('a member can redact their own event: content emptied in /event and /messages, with unsigned.redacted_because', async () => {
      const r = await ok(bob.put(room(roomId, `redact/${enc(b1)}/own`), { reason: 'typo' }), 'redact');
      assert.match(r.event_id, /^\$[A-Za-z0-9_-]{43}$/);
      const msgs = await messages(alice, roomId, { dir: 'b', limit: 20 });
      const inList = msgs.chunk.find((e: any) => e.event_id === b1);
      assert.deepEqual(inList.content, {});
      assert.equal(inList.unsigned?.redacted_because?.event_id, r.event_id);
      assert.equal(inList.unsigned?.redacted_because?.type, 'm.room.redaction', '/messages: redacted_because is the full redaction event');
      const redaction = msgs.chunk.find((e: any) => e.event_id === r.event_id);
      assert.ok(redaction, 'the redaction itself is in the timeline');
      assert.ok(redaction.redacts === b1 || redaction.content?.redacts === b1);
      // Others are untouched.
      assert.equal(msgs.chunk.find((e: any) => e.event_id === b2).content.body, 'bob says twice');
      // GET /event must show the same: the full redaction event in redacted_because.
      const ev = await ok(alice.get(room(roomId, `event/${enc(b1)}`)), 'event');
      assert.deepEqual(ev.content, {});
      assert.equal(ev.type, 'm.room.message');
      assert.equal(ev.sender, bob.userId);
      assert.equal(ev.event_id, b1);
      const because = ev.unsigned?.redacted_because;
      assert.ok(because, 'unsigned.redacted_because');
      assert.equal(because.event_id, r.event_id);
      assert.equal(ev.unsigned?.redacted_by, r.event_id, 'unsigned.redacted_by: the redaction event ID (as Synapse)');
      assert.equal(inList.unsigned?.redacted_by, r.event_id, '/messages: unsigned.redacted_by');
      assert.equal(because.type, 'm.room.redaction');
      assert.equal(because.sender, bob.userId);
      assert.ok(because.redacts === b1 || because.content?.redacts === b1);
      assert.equal(because.content?.reason, 'typo');
    });

    it('the room creator (PL 100) can redact others\' events; the redaction txn is idempotent', async () => {
      const path = room(roomId, `redact/${enc(b2)}/same-txn`);
      const first = await ok(alice.put(path, {}), 'redact');
      const again = await ok(alice.put(path, {}), 'redact retry');
      assert.equal(again.event_id, first.event_id, 'same txn, same redaction event');
      const ev = await ok(bob.get(room(roomId, `event/${enc(b2)}`)), 'event');
      assert.deepEqual(ev.content, {});
      assert.equal(ev.unsigned?.redacted_because?.event_id, first.event_id);
      const msgs = await messages(alice, roomId, { dir: 'b', limit: 50 });
      const redactions = msgs.chunk.filter((e: any) => e.type === 'm.room.redaction' && (e.redacts === b2 || e.content?.redacts === b2));
      assert.equal(redactions.length, 1);
      // Another txnId is another redaction.
      const other = await ok(alice.put(room(roomId, `redact/${enc(a1)}/other-txn`), {}), 'redact a1');
      assert.notEqual(other.event_id, first.event_id);
    });

    it("the sending device sees its own txnId as the redaction's unsigned.transaction_id", async () => {
      const target = await send(alice, roomId, 'to be redacted');
      const red = await ok(alice.put(room(roomId, `redact/${enc(target)}/my-txn-42`), {}), 'redact');
      const s = await ok(alice.get(`${V3}/sync?timeout=0&filter=${enc(JSON.stringify({ room: { rooms: [roomId], timeline: { limit: 5 } } }))}`), 'sync');
      const ev = s.rooms.join[roomId].timeline.events.find((e: any) => e.event_id === red.event_id);
      assert.ok(ev, 'redaction in the timeline');
      assert.equal(ev.unsigned?.transaction_id, 'my-txn-42', 'exactly the txnId the client used in the URL');
      const other = await ok(bob.get(room(roomId, `event/${enc(red.event_id)}`)), 'event as bob');
      assert.equal(other.unsigned?.transaction_id, undefined, 'never to other users');
    });

    it('transaction IDs are scoped per request path: /send with another event type or /redact is a new request', async () => {
      const first = await ok(alice.put(room(roomId, 'send/m.room.message/shared-txn'), { msgtype: 'm.text', body: 'first' }), 'send');
      const retry = await ok(alice.put(room(roomId, 'send/m.room.message/shared-txn'), { msgtype: 'm.text', body: 'first' }), 'retry');
      assert.equal(retry.event_id, first.event_id, 'same path: a retransmission');
      const red = await ok(alice.put(room(roomId, `redact/${enc(first.event_id)}/shared-txn`), {}), 'redact');
      assert.notEqual(red.event_id, first.event_id, 'another endpoint: distinct');
      const other = await ok(alice.put(room(roomId, 'send/org.example.other/shared-txn'), { n: 1 }), 'other type');
      assert.notEqual(other.event_id, first.event_id, 'another path (event type): not a retransmission');
      const ev = await ok(alice.get(room(roomId, `event/${enc(other.event_id)}`)), 'event');
      assert.equal(ev.type, 'org.example.other');
    });

    it('redacting a state event redacts it in the current state too', async () => {
      const t = await ok(alice.put(room(roomId, 'state/m.room.topic'), { topic: 'secret topic' }), 'topic');
      await ok(alice.put(room(roomId, `redact/${enc(t.event_id)}/topic`), { reason: 'oops' }), 'redact topic');
      const now = await ok(bob.get(room(roomId, 'state/m.room.topic')), 'topic state');
      assert.deepEqual(now, {}, 'GET /state returns the redacted content');
      const all = await ok(bob.get(room(roomId, 'state')), 'state');
      const inList = all.find((e: any) => e.type === 'm.room.topic');
      assert.equal(inList.event_id, t.event_id);
      assert.deepEqual(inList.content, {});
    });

    it('redactions reach /sync: the redacted event shows emptied content', async () => {
      const s = await ok(bob.get(`${V3}/sync?timeout=0&filter=${enc(JSON.stringify({ room: { rooms: [roomId], timeline: { limit: 20 } } }))}`), 'sync');
      const tl: any[] = s.rooms.join[roomId].timeline.events;
      const ev = tl.find((e) => e.event_id === b1);
      assert.deepEqual(ev.content, {});
      assert.ok(ev.unsigned?.redacted_because);
    });
  });
});
