// MSC2753 peeking over HTTP (src/sync/peeks.ts, src/sync/peek-sections.ts): POST /peek puts a
// local world_readable room under rooms.peek in the peeking device's /sync, full on the first
// sync after the peek and incremental after; other devices see nothing; unpeek moves it to
// rooms.leave once and stops it; a join ends it for good; refusals carry the MSC's errors; with
// experimental.msc2753_peeking off the endpoints are unknown and /versions does not list it.

import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

const ON = { experimental: { msc2753_peeking: true } };
type Client = Api & { userId: string; deviceId: string };
type Ev = { type: string; content: Record<string, unknown>; event_id: string };

async function room(api: Api, visibility: string, extra: Record<string, unknown> = {}): Promise<string> {
  const created = await api.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', ...extra });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const roomId: string = created.body.room_id;
  const hv = await api.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.history_visibility/`, { history_visibility: visibility });
  assert.equal(hv.status, 200, JSON.stringify(hv.body));
  return roomId;
}

async function say(api: Api, roomId: string, body: string): Promise<string> {
  const res = await api.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${Math.random().toString(36).slice(2)}`, { msgtype: 'm.text', body });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.event_id;
}

async function sync(api: Api, since?: string, timeout = 0): Promise<any> {
  const res = await api.get(`/_matrix/client/v3/sync?timeout=${timeout}${since ? `&since=${enc(since)}` : ''}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

async function login(srv: TestServer, user: string): Promise<Api> {
  const res = await new Api(srv.url).post('/_matrix/client/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password: 'correct horse battery' });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return new Api(srv.url, res.body.access_token);
}

const bodies = (section: any): unknown[] => section.timeline.events.map((e: Ev) => e.content.body).filter((b: unknown) => b !== undefined);

describe('MSC2753 peeking', function () {
  this.timeout(30_000);

  describe('with experimental.msc2753_peeking', function () {
    let srv: TestServer;
    let alice: Client;
    let n = 0;
    before(async () => {
      srv = await startTestServer(ON);
      alice = await new Api(srv.url).register('alice');
    });
    after(async () => srv.stop());
    const newUser = () => new Api(srv.url).register(`peeker${++n}`);

    it('is advertised in /versions', async function () {
      const v = await new Api(srv.url).get('/_matrix/client/versions');
      assert.equal(v.body.unstable_features['org.matrix.msc2753'], true);
    });

    it('peeks by room ID: a full section first (history visible to non-members, the state before it), then only new events, nothing when quiet', async function () {
      const roomId = await room(alice, 'shared');
      // Sent while the room was not world_readable: members only, never shown to a peeker.
      await say(alice, roomId, 'before world_readable');
      const hv = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.history_visibility/`, { history_visibility: 'world_readable' });
      assert.equal(hv.status, 200);
      const bob = await newUser();
      let since: string = (await sync(bob)).next_batch;
      const peek = await bob.post(`/_matrix/client/v3/peek/${enc(roomId)}`, {});
      assert.equal(peek.status, 200, JSON.stringify(peek.body));
      assert.equal(peek.body.room_id, roomId);
      await say(alice, roomId, 'something to peek');

      const first = await sync(bob, since);
      const section = first.rooms.peek[roomId];
      assert.ok(section, JSON.stringify(first.rooms));
      // The room's history is visible to non-members from the change to world_readable on (that
      // event itself included, as a boundary); the state before it comes as state.
      assert.deepEqual(section.timeline.events.map((e: Ev) => e.type), ['m.room.history_visibility', 'm.room.message']);
      assert.equal(section.timeline.events[0].content.history_visibility, 'world_readable');
      assert.deepEqual(bodies(section), ['something to peek']);
      const stateTypes = section.state.events.map((e: Ev) => e.type);
      for (const t of ['m.room.create', 'm.room.power_levels', 'm.room.join_rules', 'm.room.member']) assert.ok(stateTypes.includes(t), `${t} in ${stateTypes}`);
      assert.equal(section.timeline.limited, false, 'nothing earlier is visible to the peeker');
      assert.equal(typeof section.timeline.prev_batch, 'string');
      assert.deepEqual(Object.keys(first.rooms.join), [], 'bob joined nothing');
      since = first.next_batch;

      const quiet = await sync(bob, since);
      assert.equal(quiet.rooms.peek[roomId], undefined, 'an unchanged peeked room is left out');

      await say(alice, roomId, 'something else to peek');
      const third = await sync(bob, since);
      assert.deepEqual(third.rooms.peek[roomId].timeline.events.map((e: Ev) => e.content.body), ['something else to peek']);
      assert.equal(third.rooms.peek[roomId].timeline.limited, false);
      assert.deepEqual(third.rooms.peek[roomId].state.events, []);

      // An initial sync of the same device shows the peek in full too.
      const initial = await sync(bob);
      assert.deepEqual(bodies(initial.rooms.peek[roomId]), ['something to peek', 'something else to peek']);
    });

    it('wakes a parked long-poll of the peeking device with the peek, then with new events', async function () {
      const roomId = await room(alice, 'world_readable');
      await say(alice, roomId, 'already there');
      const bob = await newUser();
      let since: string = (await sync(bob)).next_batch;
      // The poll's timeout (60 s) outlasts the test (20 s): any answer was a wake, which the content below shows; no wall-clock bound for a loaded machine to overrun.
      const first = sync(bob, since, 60_000);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await bob.post(`/_matrix/client/v3/peek/${enc(roomId)}`, {})).status, 200);
      const peeked = await first;
      assert.deepEqual(bodies(peeked.rooms.peek[roomId]), ['already there']);
      since = peeked.next_batch;

      const parked = sync(bob, since, 60_000);
      await new Promise((r) => setTimeout(r, 200));
      await say(alice, roomId, 'wake up');
      const res = await parked;
      assert.deepEqual(bodies(res.rooms.peek[roomId]), ['wake up']);
      const stats = srv.hearth.services.sync.modelStats().find((c) => c.name === 'device_peeks');
      assert.ok(stats && stats.hits > 0, 'the device\'s peeks came from the read model');
    });

    it('peeks by alias', async function () {
      const roomId = await room(alice, 'world_readable', { room_alias_name: 'peekable' });
      const bob = await newUser();
      const since: string = (await sync(bob)).next_batch;
      const peek = await bob.post(`/_matrix/client/v3/peek/${enc('#peekable:localhost')}`, {});
      assert.equal(peek.status, 200, JSON.stringify(peek.body));
      assert.equal(peek.body.room_id, roomId);
      await say(alice, roomId, 'via alias');
      assert.deepEqual(bodies((await sync(bob, since)).rooms.peek[roomId]).slice(-1), ['via alias']);
    });

    it('shows the peek only to the device that peeked', async function () {
      const roomId = await room(alice, 'world_readable');
      const bob = await newUser();
      const other = await login(srv, bob.userId);
      const otherSince: string = (await sync(other)).next_batch;
      assert.equal((await bob.post(`/_matrix/client/v3/peek/${enc(roomId)}`, {})).status, 200);
      await say(alice, roomId, 'for one device');
      assert.ok((await sync(bob)).rooms.peek[roomId]);
      const initial = await sync(other);
      assert.deepEqual(Object.keys(initial.rooms.peek), []);
      const incremental = await sync(other, otherSince);
      assert.deepEqual(Object.keys(incremental.rooms.peek ?? {}), []);
    });

    it('a device ID used again after the device was deleted (logout) does not inherit its peeks', async function () {
      const roomId = await room(alice, 'world_readable');
      const bob = await newUser();
      const loginAs = async () => {
        const res = await new Api(srv.url).post('/_matrix/client/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: bob.userId }, password: 'correct horse battery', device_id: 'REUSED' });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        return new Api(srv.url, res.body.access_token);
      };
      const first = await loginAs();
      assert.equal((await first.post(`/_matrix/client/v3/peek/${enc(roomId)}`, {})).status, 200);
      assert.ok((await sync(first)).rooms.peek[roomId], 'peeking, and the read model holds the device\'s peeks');
      assert.equal((await first.post('/_matrix/client/v3/logout', {})).status, 200);
      const second = await loginAs();
      assert.deepEqual(Object.keys((await sync(second)).rooms.peek), []);
      const un = await second.post(`/_matrix/client/v3/rooms/${enc(roomId)}/unpeek`, {});
      assert.equal(un.status, 400);
      assert.equal(un.body.errcode, 'M_BAD_STATE');
    });

    for (const visibility of ['shared', 'invited', 'joined']) {
      it(`refuses a room with ${visibility} history_visibility: 403 M_FORBIDDEN`, async function () {
        const roomId = await room(alice, visibility);
        const bob = await newUser();
        const res = await bob.post(`/_matrix/client/v3/peek/${enc(roomId)}`, {});
        assert.equal(res.status, 403, JSON.stringify(res.body));
        assert.equal(res.body.errcode, 'M_FORBIDDEN');
        assert.equal((await sync(bob)).rooms.peek[roomId], undefined);
      });
    }

    it('refuses unknown rooms and aliases (404 M_NOT_FOUND), joined users (400 M_BAD_STATE) and non-IDs (400)', async function () {
      const bob = await newUser();
      const unknown = await bob.post(`/_matrix/client/v3/peek/${enc('!nowhere:localhost')}`, {});
      assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
      assert.equal(unknown.body.errcode, 'M_NOT_FOUND');
      const alias = await bob.post(`/_matrix/client/v3/peek/${enc('#nothing:localhost')}`, {});
      assert.equal(alias.status, 404);
      assert.equal(alias.body.errcode, 'M_NOT_FOUND');
      const roomId = await room(alice, 'world_readable');
      const joined = await alice.post(`/_matrix/client/v3/peek/${enc(roomId)}`, {});
      assert.equal(joined.status, 400, JSON.stringify(joined.body));
      assert.equal(joined.body.errcode, 'M_BAD_STATE');
      const bad = await bob.post(`/_matrix/client/v3/peek/${enc('nonsense')}`, {});
      assert.equal(bad.status, 400);
      assert.equal(typeof bad.body.errcode, 'string');
      const badBody = await bob.post(`/_matrix/client/v3/peek/${enc(roomId)}`, { servers: 'x' });
      assert.equal(badBody.status, 400);
    });

    it('unpeek: the room goes to rooms.leave once with the events before it, then nothing; a second unpeek is 400 M_BAD_STATE', async function () {
      const roomId = await room(alice, 'world_readable');
      const bob = await newUser();
      assert.equal((await bob.post(`/_matrix/client/v3/peek/${enc(roomId)}`, {})).status, 200);
      let since: string = (await sync(bob)).next_batch;
      await say(alice, roomId, 'last one seen');
      const un = await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/unpeek`, {});
      assert.equal(un.status, 200, JSON.stringify(un.body));
      assert.deepEqual(un.body, {});
      await say(alice, roomId, 'after the unpeek');
      const res = await sync(bob, since);
      assert.equal(res.rooms.peek[roomId], undefined);
      assert.deepEqual(bodies(res.rooms.leave[roomId]), ['last one seen']);
      since = res.next_batch;
      await say(alice, roomId, 'still unpeeked');
      const later = await sync(bob, since);
      assert.equal(later.rooms.peek[roomId], undefined);
      assert.equal(later.rooms.leave[roomId], undefined, 'the end is reported once');
      assert.equal((await sync(bob)).rooms.peek[roomId], undefined);
      const again = await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/unpeek`, {});
      assert.equal(again.status, 400);
      assert.equal(again.body.errcode, 'M_BAD_STATE');

      // Peeking again starts over with a full section.
      assert.equal((await bob.post(`/_matrix/client/v3/peek/${enc(roomId)}`, {})).status, 200);
      const re = await sync(bob, later.next_batch);
      assert.equal(re.rooms.peek[roomId].timeline.events.at(-1).content.body, 'still unpeeked');
    });

    it('a room that stops being world_readable shows the peeker no newer event, in the timeline or the state', async function () {
      const roomId = await room(alice, 'world_readable');
      await say(alice, roomId, 'while world_readable');
      const bob = await newUser();
      assert.equal((await bob.post(`/_matrix/client/v3/peek/${enc(roomId)}`, {})).status, 200);
      const since: string = (await sync(bob)).next_batch;
      assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.history_visibility/`, { history_visibility: 'joined' })).status, 200);
      assert.equal((await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: 'members only' })).status, 200);
      // More hidden events than the timeline's refill reads back through (timeline-fill.ts): the
      // section is limited with no visible event, so its state runs up to the end of the range.
      for (let i = 0; i < 60; i++) await say(alice, roomId, `members only ${i}`);
      const filter = enc(JSON.stringify({ room: { timeline: { limit: 1 } } }));
      for (const from of [since, undefined]) {
        const res = await bob.get(`/_matrix/client/v3/sync?timeout=0&filter=${filter}${from ? `&since=${enc(from)}` : ''}`);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const section = res.body.rooms.peek?.[roomId];
        const shown = section ? [...section.timeline.events, ...section.state.events] : [];
        assert.equal(JSON.stringify(shown).includes('members only'), false, `${from ? 'incremental' : 'initial'}: ${JSON.stringify(section)}`);
        assert.equal(shown.some((e: Ev) => e.type === 'm.room.topic'), false, JSON.stringify(shown));
      }
    });

    it('joining ends the peek: the room moves to rooms.join and does not come back under rooms.peek after leaving', async function () {
      const roomId = await room(alice, 'world_readable');
      const bob = await newUser();
      assert.equal((await bob.post(`/_matrix/client/v3/peek/${enc(roomId)}`, {})).status, 200);
      let since: string = (await sync(bob)).next_batch;
      assert.equal((await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/join`, {})).status, 200);
      const joined = await sync(bob, since);
      assert.ok(joined.rooms.join[roomId]);
      assert.equal(joined.rooms.peek[roomId], undefined);
      since = joined.next_batch;
      assert.equal((await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/leave`, {})).status, 200);
      since = (await sync(bob, since)).next_batch;
      await say(alice, roomId, 'after bob left');
      const after = await sync(bob, since);
      assert.equal(after.rooms.peek[roomId], undefined);
      assert.equal((await sync(bob)).rooms.peek[roomId], undefined);
    });

    it('gives the same responses without the read model', async function () {
      const roomId = await room(alice, 'world_readable');
      const bob = await newUser();
      const since: string = (await sync(bob)).next_batch;
      assert.equal((await bob.post(`/_matrix/client/v3/peek/${enc(roomId)}`, {})).status, 200);
      await say(alice, roomId, 'compare');
      const svc = srv.hearth.services.sync;
      const filter = await srv.hearth.services.syncFilters.resolve(bob.userId, undefined);
      const req = { userId: bob.userId, deviceId: bob.deviceId, since, filter, timeoutMs: 0, fullState: false, acknowledgeSince: false };
      const withModel = await svc.sync(req);
      const without = await svc.withoutModel().sync(req);
      assert.ok((withModel.rooms as any).peek[roomId]);
      const noAge = (r: unknown) => JSON.parse(JSON.stringify(r, (k, v) => (k === 'age' ? undefined : v)));
      assert.deepEqual(noAge(without), noAge(withModel));
    });
  });

  describe('with the flag off (default)', function () {
    let srv: TestServer;
    before(async () => {
      srv = await startTestServer();
    });
    after(async () => srv.stop());

    it('answers 404 M_UNRECOGNIZED, does not advertise it and has no rooms.peek', async function () {
      const alice = await new Api(srv.url).register('alice');
      const roomId = await room(alice, 'world_readable');
      const bob = await new Api(srv.url).register('bob');
      for (const path of [`/_matrix/client/v3/peek/${enc(roomId)}`, `/_matrix/client/v3/rooms/${enc(roomId)}/unpeek`]) {
        const res = await bob.post(path, {});
        assert.equal(res.status, 404, path);
        assert.equal(res.body.errcode, 'M_UNRECOGNIZED');
      }
      const v = await new Api(srv.url).get('/_matrix/client/versions');
      assert.equal(v.body.unstable_features['org.matrix.msc2753'], undefined);
      assert.equal((await sync(bob)).rooms.peek, undefined);
    });
  });
});
