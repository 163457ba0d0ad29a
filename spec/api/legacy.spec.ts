// Deprecated endpoints over real HTTP (Client-Server API v1.12 old_sync.yaml, peeking_events.yaml,
// room_initial_sync.yaml; POST /rooms/{roomId}/send/{eventType} from before r0): GET /events
// with from and timeout, its room_id form for world-readable rooms, GET /initialSync,
// GET /rooms/{roomId}/initialSync, and sends without a txnId.

import { assert } from '../helpers/assert.js';
import { createRoom, expectError, makeUser, ok, roomPath, sendEvent, syncOk, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('deprecated endpoints', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let txn = 0;

  before(async () => {
    srv = await startTestServer({ registration: { allow_guests: true } });
    [alice, bob] = await Promise.all([makeUser(srv, 'alice'), makeUser(srv, 'bob')]);
  });
  after(async () => srv.stop());

  const events = (who: Api, q: Record<string, string | number>) =>
    ok(who.get(`${V3}/events?${new URLSearchParams(Object.entries(q).map(([k, v]) => [k, String(v)]))}`), 'events');
  const say = (who: User, roomId: string, body: string) => sendEvent(who, roomId, 'm.room.message', `l${++txn}`, { msgtype: 'm.text', body }, 'send');

  describe('GET /events', function () {
    it('starts at "now" without from, then streams room events with room_id, from end to end', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      const first = await events(alice, { timeout: 0 });
      assert.equal(typeof first.start, 'string');
      assert.equal(typeof first.end, 'string');
      assert.deepEqual(first.chunk, [], 'nothing new since now');
      const id = await say(alice, roomId, 'one');
      const next = await events(alice, { from: first.end, timeout: 0 });
      assert.equal(next.start, first.end);
      const msg = next.chunk.find((e: any) => e.event_id === id);
      assert.ok(msg, JSON.stringify(next.chunk));
      assert.equal(msg.room_id, roomId);
      assert.equal(msg.content.body, 'one');
      assert.deepEqual((await events(alice, { from: next.end, timeout: 0 })).chunk, [], 'caught up');
    });

    it('a long-poll wakes for a new event; its tokens are /sync tokens', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      const since = (await syncOk(alice, {})).next_batch;
      // The poll's timeout (60 s) outlasts the test (20 s): any answer was a wake, which the content below shows; no wall-clock bound for a loaded machine to overrun.
      const parked = events(alice, { from: since, timeout: 60_000 });
      await new Promise((r) => setTimeout(r, 200));
      const id = await say(alice, roomId, 'wake up');
      const res = await parked;
      assert.ok(res.chunk.some((e: any) => e.event_id === id));
      // The end token continues a /sync.
      const s = await syncOk(alice, { since: res.end });
      assert.equal(s.rooms?.join?.[roomId], undefined, 'nothing after end');
    });

    it('carries invites (the member event), presence with content.user_id, and account data', async () => {
      const start = (await events(bob, { timeout: 0 })).end;
      const roomId = await createRoom(alice, { preset: 'private_chat', invite: [bob.userId] });
      await ok(bob.put(`${V3}/presence/${enc(bob.userId)}/status`, { presence: 'online', status_msg: 'here' }), 'presence');
      await ok(bob.put(`${V3}/user/${enc(bob.userId)}/account_data/my.type`, { cats: true }), 'account data');
      const res = await events(bob, { from: start, timeout: 0 });
      const invite = res.chunk.find((e: any) => e.type === 'm.room.member' && e.state_key === bob.userId);
      assert.ok(invite, JSON.stringify(res.chunk));
      assert.equal(invite.room_id, roomId);
      assert.equal(invite.content.membership, 'invite');
      const presence = res.chunk.find((e: any) => e.type === 'm.presence');
      assert.equal(presence?.content.user_id, bob.userId, JSON.stringify(res.chunk));
      assert.deepEqual(res.chunk.find((e: any) => e.type === 'my.type')?.content, { cats: true });
    });

    it('does not consume to-device messages: /sync still delivers them', async () => {
      const since = (await syncOk(bob, {})).next_batch;
      await ok(alice.put(`${V3}/sendToDevice/m.test/td${++txn}`, { messages: { [bob.userId]: { [bob.deviceId]: { hello: 1 } } } }), 'sendToDevice');
      const e = await events(bob, { from: since, timeout: 0 });
      await events(bob, { from: e.end, timeout: 0 });
      const s = await syncOk(bob, { since });
      assert.deepEqual(s.to_device.events.map((m: any) => m.content), [{ hello: 1 }]);
    });

    it('room_id peeks into a world-readable room one has not joined; other rooms are 403', async () => {
      const open = await createRoom(alice, { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', content: { history_visibility: 'world_readable' } }] });
      const shared = await createRoom(alice, { preset: 'public_chat' });
      const carol = await makeUser(srv, 'carol');
      const start = (await events(carol, { room_id: open, timeout: 0 })).end;
      const parked = events(carol, { room_id: open, from: start, timeout: 10000 });
      await new Promise((r) => setTimeout(r, 200));
      const id = await say(alice, open, 'mice');
      const res = await parked;
      assert.deepEqual(res.chunk.map((e: any) => e.event_id), [id]);
      assert.equal(res.chunk[0].room_id, open);
      await ok(alice.put(roomPath(open, `typing/${enc(alice.userId)}`), { typing: true, timeout: 5000 }), 'typing');
      const typing = await events(carol, { room_id: open, from: res.end, timeout: 0 });
      assert.deepEqual(typing.chunk.filter((e: any) => e.type === 'm.typing').map((e: any) => e.content.user_ids), [[alice.userId]]);
      await ok(alice.post(roomPath(open, `receipt/m.read/${enc(id)}`), {}), 'receipt');
      const receipt = await events(carol, { room_id: open, from: typing.end, timeout: 5000 });
      const r = receipt.chunk.find((e: any) => e.type === 'm.receipt');
      assert.ok(r?.content[id]['m.read'][alice.userId], JSON.stringify(receipt.chunk));
      assert.equal(r.room_id, open);
      await ok(alice.put(`${V3}/presence/${enc(alice.userId)}/status`, { presence: 'online', status_msg: 'lemurs' }), 'presence');
      const p = await events(carol, { room_id: open, from: receipt.end, timeout: 5000 });
      assert.deepEqual(p.chunk.filter((e: any) => e.type === 'm.presence').map((e: any) => [e.content.user_id, e.content.status_msg]), [[alice.userId, 'lemurs']]);
      await say(alice, shared, 'private');
      expectError(await carol.get(`${V3}/events?room_id=${enc(shared)}&timeout=0`), 403, 'M_FORBIDDEN');
    });

    it('guests peek with room_id but may not use the global stream', async () => {
      const r = await new Api(srv.url).post(`${V3}/register?kind=guest`, {});
      const guest = new Api(srv.url, r.body.access_token);
      expectError(await guest.get(`${V3}/events?timeout=0`), 403, 'M_GUEST_ACCESS_FORBIDDEN');
      const open = await createRoom(alice, { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', content: { history_visibility: 'world_readable' } }] });
      await events(guest, { room_id: open, timeout: 0 });
    });

    it('refuses a malformed from token with 400', async () => {
      expectError(await alice.get(`${V3}/events?from=garbage&timeout=0`), 400, 'M_INVALID_PARAM');
    });
  });

  describe('GET /initialSync', function () {
    it('lists joined rooms with messages, current state and visibility; invites with their event; presence and account data', async () => {
      const dave = await makeUser(srv, 'dave');
      await ok(dave.put(`${V3}/user/${enc(dave.userId)}/account_data/my.global`, { a: 1 }), 'account data');
      const roomId = await createRoom(dave, { preset: 'public_chat', name: 'Den', visibility: 'public' });
      await say(dave, roomId, 'hello');
      await ok(dave.put(`${V3}/user/${enc(dave.userId)}/rooms/${enc(roomId)}/tags/u.work`, { order: 0.5 }), 'tag');
      const invitedTo = await createRoom(alice, { preset: 'private_chat', invite: [dave.userId] });
      const res = await ok(dave.get(`${V3}/initialSync?limit=2`), 'initialSync');
      assert.equal(typeof res.end, 'string');
      const room = res.rooms.find((x: any) => x.room_id === roomId);
      assert.equal(room.membership, 'join');
      assert.equal(room.visibility, 'public');
      assert.equal(room.messages.chunk.length, 2, 'limit');
      assert.equal(room.messages.chunk[1].content.body, 'hello');
      assert.ok(room.messages.chunk.every((e: any) => e.room_id === roomId));
      assert.equal(typeof room.messages.start, 'string');
      const types = room.state.map((e: any) => e.type);
      for (const t of ['m.room.create', 'm.room.power_levels', 'm.room.name', 'm.room.member']) assert.ok(types.includes(t), `state has ${t}: ${types}`);
      assert.deepEqual(room.account_data.find((e: any) => e.type === 'm.tag')?.content, { tags: { 'u.work': { order: 0.5 } } });
      const inv = res.rooms.find((x: any) => x.room_id === invitedTo);
      assert.equal(inv.membership, 'invite');
      assert.equal(inv.invite.content.membership, 'invite');
      assert.ok(Array.isArray(res.presence));
      assert.deepEqual(res.account_data.map((e: any) => e.type), ['my.global'], 'what the user stored (no m.push_rules)');
      assert.deepEqual(res.account_data[0].content, { a: 1 });
      // The end token continues the event stream.
      const id = await say(dave, roomId, 'after');
      assert.ok((await events(dave, { from: res.end, timeout: 0 })).chunk.some((e: any) => e.event_id === id));
    });

    it('shows left rooms only with archived=true', async () => {
      const erin = await makeUser(srv, 'erin');
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await ok(erin.post(roomPath(roomId, 'join'), {}), 'join');
      await ok(erin.post(roomPath(roomId, 'leave'), {}), 'leave');
      assert.equal((await ok(erin.get(`${V3}/initialSync`), 'initialSync')).rooms.find((x: any) => x.room_id === roomId), undefined);
      const archived = await ok(erin.get(`${V3}/initialSync?archived=true`), 'archived');
      assert.equal(archived.rooms.find((x: any) => x.room_id === roomId)?.membership, 'leave');
    });
  });

  describe('GET /rooms/{roomId}/initialSync', function () {
    it('gives a member the room: membership, messages, state, visibility', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat', name: 'Lobby' });
      const id = await say(alice, roomId, 'hi');
      const res = await ok(alice.get(`${V3}/rooms/${enc(roomId)}/initialSync`), 'room initialSync');
      assert.equal(res.room_id, roomId);
      assert.equal(res.membership, 'join');
      assert.equal(res.visibility, 'private');
      assert.equal(res.messages.chunk[res.messages.chunk.length - 1].event_id, id);
      assert.equal(typeof res.messages.end, 'string');
      assert.equal(typeof res.messages.start, 'string', 'start is always there, also at the start of history');
      assert.ok(res.state.some((e: any) => e.type === 'm.room.name' && e.content.name === 'Lobby'));
      assert.ok(Array.isArray(res.presence));
      assert.ok(Array.isArray(res.account_data));
    });

    it('non-members: 403 for a private-history room; a world-readable one shows only what non-members may see', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await say(alice, roomId, 'private');
      expectError(await bob.get(`${V3}/rooms/${enc(roomId)}/initialSync`), 403, 'M_FORBIDDEN');
      await ok(alice.put(roomPath(roomId, 'state/m.room.history_visibility'), { history_visibility: 'world_readable' }), 'world_readable');
      await say(alice, roomId, 'public');
      const res = await ok(bob.get(`${V3}/rooms/${enc(roomId)}/initialSync`), 'room initialSync');
      assert.equal(res.membership, undefined);
      // The change to world_readable itself is visible (the setting after it allows it).
      assert.deepEqual(
        res.messages.chunk.map((e: any) => [e.type, e.content.history_visibility ?? e.content.body]),
        [['m.room.history_visibility', 'world_readable'], ['m.room.message', 'public']],
      );
      assert.ok(res.state.some((e: any) => e.type === 'm.room.create'));
      // Its end token streams what comes next, not old presence or typing.
      await ok(alice.put(`${V3}/presence/${enc(alice.userId)}/status`, { presence: 'online', status_msg: 'earlier' }), 'presence');
      const later = await ok(bob.get(`${V3}/rooms/${enc(roomId)}/initialSync`), 'room initialSync');
      assert.deepEqual((await events(bob, { room_id: roomId, from: later.messages.end, timeout: 0 })).chunk, []);
      const id = await say(alice, roomId, 'next');
      assert.deepEqual((await events(bob, { room_id: roomId, from: later.messages.end, timeout: 0 })).chunk.map((e: any) => e.event_id), [id]);
    });
  });

  describe('POST /rooms/{roomId}/send/{eventType}', function () {
    it('sends without a txnId (each call a new event); non-members get 403', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      const a = await ok(alice.post(roomPath(roomId, 'send/m.room.message'), { msgtype: 'm.text', body: 'legacy' }), 'send');
      const b = await ok(alice.post(roomPath(roomId, 'send/m.room.message'), { msgtype: 'm.text', body: 'legacy' }), 'send again');
      assert.notEqual(a.event_id, b.event_id);
      const ev = await ok(alice.get(roomPath(roomId, `event/${enc(a.event_id)}`)), 'event');
      assert.equal(ev.content.body, 'legacy');
      expectError(await bob.post(roomPath(roomId, 'send/m.room.message'), { msgtype: 'm.text', body: 'x' }), 403, 'M_FORBIDDEN');
    });
  });

  describe('POST /rooms/{roomId}/redact/{eventId}', function () {
    it('redacts without a txnId; the reason is kept; non-members get 403', async () => {
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      const sent = await ok(alice.post(roomPath(roomId, 'send/m.room.message'), { msgtype: 'm.text', body: 'to go' }), 'send');
      const red = await ok(alice.post(roomPath(roomId, `redact/${enc(sent.event_id)}`), { reason: 'oops' }), 'redact');
      const redaction = await ok(alice.get(roomPath(roomId, `event/${enc(red.event_id)}`)), 'redaction');
      assert.equal(redaction.type, 'm.room.redaction');
      assert.equal(redaction.content.reason, 'oops');
      const gone = await ok(alice.get(roomPath(roomId, `event/${enc(sent.event_id)}`)), 'redacted event');
      assert.deepEqual(gone.content, {});
      expectError(await bob.post(roomPath(roomId, `redact/${enc(sent.event_id)}`), {}), 403, 'M_FORBIDDEN');
    });
  });
});
