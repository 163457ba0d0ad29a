// Rooms of every version 1..12 over real HTTP: /capabilities lists them, createRoom makes each,
// and in each one send, /sync, /messages back to m.room.create, redact, kick and ban work with
// the version's event format (v1/v2 server IDs, v3 standard base64, v4+ URL-safe, v12 hash room IDs).

import { assert } from '../helpers/assert.js';
import { createRoom, expectError, ok, roomPath as room, sendEvent, syncOk, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

const VERSIONS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12'];

const EVENT_ID: Record<string, RegExp> = {
  server: /^\$[A-Za-z0-9]+:localhost$/,
  base64: /^\$[A-Za-z0-9+/]{43}$/,
  url: /^\$[A-Za-z0-9_-]{43}$/,
};
const eventIdFormat = (v: string): RegExp => (Number(v) <= 2 ? EVENT_ID.server : v === '3' ? EVENT_ID.base64 : EVENT_ID.url);

let txn = 0;

describe('room versions 1-12 over HTTP', function () {
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let carol: User;

  before(async () => {
    srv = await startTestServer();
    const api = new Api(srv.url);
    [alice, bob, carol] = await Promise.all([api.register('alice'), api.register('bob'), api.register('carol')]);
  });
  after(async () => srv.stop());

  it('GET /capabilities lists 1-12 as stable with 12 as the default', async () => {
    const caps = await ok(alice.get(`${V3}/capabilities`), 'capabilities');
    const rv = caps.capabilities['m.room_versions'];
    assert.equal(rv.default, '12');
    assert.deepEqual(Object.keys(rv.available).sort((a, b) => Number(a) - Number(b)), VERSIONS);
    for (const v of VERSIONS) assert.equal(rv.available[v], 'stable');
  });

  it('an unknown version is 400 M_UNSUPPORTED_ROOM_VERSION', async () => {
    for (const v of ['13', '0', 'org.example.custom']) {
      expectError(await alice.post(`${V3}/createRoom`, { room_version: v }), 400, 'M_UNSUPPORTED_ROOM_VERSION');
    }
  });

  for (const version of VERSIONS) {
    describe(`room version ${version}`, () => {
      let roomId: string;
      let createId: string;
      const sent: string[] = [];

      before(async () => {
        roomId = await createRoom(alice, { room_version: version, preset: 'public_chat', name: `v${version}` });
      });

      it('createRoom: the ID format, the create event and the creator\'s power', async () => {
        if (version === '12') assert.match(roomId, /^![A-Za-z0-9_-]{43}$/);
        else assert.match(roomId, /^![A-Za-z0-9_-]+:localhost$/);
        const state: any[] = await ok(alice.get(room(roomId, 'state')), 'state');
        const create = state.find((e) => e.type === 'm.room.create');
        createId = create.event_id;
        assert.equal(create.content.room_version, version);
        assert.equal(create.room_id, roomId, 'clients see room_id on every event, v12 create too');
        if (Number(version) <= 10) assert.equal(create.content.creator, alice.userId);
        else assert.equal(create.content.creator, undefined);
        if (version === '12') assert.equal(roomId, '!' + createId.slice(1));
        for (const e of state) assert.match(e.event_id, eventIdFormat(version), `${e.type} ID`);
        const pl = state.find((e) => e.type === 'm.room.power_levels').content;
        if (version === '12') assert.equal(pl.users[alice.userId], undefined, 'v12 creators are not in power_levels.users');
        else assert.equal(pl.users[alice.userId], 100);
        assert.equal(pl.events['m.room.tombstone'], version === '12' ? 150 : 100, 'v12 puts tombstones above every listed user');
      });

      it('join and send; both see the messages in /sync', async () => {
        await ok(bob.post(`${V3}/join/${enc(roomId)}`, {}), 'bob joins');
        await ok(carol.post(`${V3}/join/${enc(roomId)}`, {}), 'carol joins');
        for (const [who, body] of [[alice, 'a1'], [bob, 'b1'], [carol, 'c1'], [alice, 'a2']] as const) {
          const id = await sendEvent(who, roomId, 'm.room.message', `rv${++txn}`, { msgtype: 'm.text', body }, `send ${body}`);
          assert.match(id, eventIdFormat(version));
          sent.push(id);
        }
        const sync = await syncOk(bob, {});
        const timeline = sync.rooms.join[roomId].timeline.events.map((e: any) => e.event_id);
        for (const id of sent) assert.ok(timeline.includes(id), `bob's /sync has ${id}`);
      });

      it('a federation-format read shows the version\'s PDU shape', async () => {
        const filter = JSON.stringify({ event_format: 'federation', room: { rooms: [roomId], timeline: { limit: 3 } } });
        const sync = await ok(alice.get(`${V3}/sync?timeout=0&filter=${enc(filter)}`), 'sync federation format');
        const last = sync.rooms.join[roomId].timeline.events.at(-1);
        assert.equal(last.event_id, sent.at(-1));
        if (Number(version) <= 2) {
          assert.ok(Array.isArray(last.prev_events[0]) && typeof last.prev_events[0][1].sha256 === 'string', 'v1/v2 references are pairs');
          assert.ok(last.auth_events.every((r: any) => Array.isArray(r) && typeof r[0] === 'string'));
        } else {
          assert.equal(typeof last.prev_events[0], 'string');
        }
        if (version === '12') assert.ok(!last.auth_events.includes(createId), 'v12 events do not cite the create event');
        else assert.ok(last.auth_events.flat().includes(createId), 'the create event is an auth event');
      });

      it('/messages paginates back to m.room.create', async () => {
        let from: string | undefined;
        const seen: any[] = [];
        for (let page = 0; page < 20; page++) {
          const qs = `dir=b&limit=4${from ? `&from=${enc(from)}` : ''}`;
          const r = await ok(alice.get(room(roomId, `messages?${qs}`)), 'messages');
          seen.push(...r.chunk);
          if (!r.end || r.chunk.length === 0) break;
          from = r.end;
        }
        const types = seen.map((e) => e.type);
        assert.equal(types.at(-1), 'm.room.create', 'the oldest event is the create event');
        assert.equal(seen.at(-1).event_id, createId);
        for (const id of sent) assert.ok(seen.some((e) => e.event_id === id));
        // Newest first, and the whole room exactly once.
        assert.equal(new Set(seen.map((e) => e.event_id)).size, seen.length);
      });

      it('redact: own event and, as the creator, someone else\'s', async () => {
        const own = sent[0];
        const others = sent[1];
        for (const target of [own, others]) {
          const r = await ok(alice.put(room(roomId, `redact/${enc(target)}/rd${++txn}`), { reason: 'test' }), 'redact');
          assert.match(r.event_id, eventIdFormat(version));
          const ev = await ok(alice.get(room(roomId, `event/${enc(target)}`)), 'get redacted');
          assert.deepEqual(ev.content, {}, 'content is gone');
          assert.equal(ev.unsigned.redacted_because.event_id, r.event_id);
          const redaction = await ok(alice.get(room(roomId, `event/${enc(r.event_id)}`)), 'get redaction');
          assert.equal(redaction.redacts, target, 'redacts at top level for every version');
          assert.equal(redaction.content.redacts, target, 'and in content for every version');
        }
        // bob (power 0) may not redact carol's event.
        expectError(await bob.put(room(roomId, `redact/${enc(sent[2])}/rd${++txn}`), {}), 403, 'M_FORBIDDEN');
      });

      it('kick and ban; the kicked may rejoin, the banned may not', async () => {
        await ok(alice.post(room(roomId, 'kick'), { user_id: bob.userId, reason: 'out' }), 'kick');
        expectError(await bob.put(room(roomId, `send/m.room.message/k${++txn}`), { msgtype: 'm.text', body: 'x' }), 403, 'M_FORBIDDEN');
        await ok(bob.post(`${V3}/join/${enc(roomId)}`, {}), 'rejoin after kick (public room)');
        await ok(alice.post(room(roomId, 'ban'), { user_id: carol.userId }), 'ban');
        expectError(await carol.post(`${V3}/join/${enc(roomId)}`, {}), 403, 'M_FORBIDDEN');
        // A member without power cannot kick the creator.
        expectError(await bob.post(room(roomId, 'kick'), { user_id: alice.userId }), 403, 'M_FORBIDDEN');
        const member = await ok(alice.get(room(roomId, `state/m.room.member/${enc(carol.userId)}`)), 'carol member');
        assert.equal(member.membership, 'ban');
        await ok(alice.post(room(roomId, 'unban'), { user_id: carol.userId }), 'unban');
        await ok(carol.post(`${V3}/join/${enc(roomId)}`, {}), 'join after unban');
      });
    });
  }

  it('v12: additional_creators from creation_content are creators, outside power_levels, with power over a 100 user', async () => {
    const roomId = await createRoom(alice, {
      preset: 'private_chat',
      invite: [bob.userId, carol.userId],
      creation_content: { additional_creators: [bob.userId] },
      power_level_content_override: { users: { [carol.userId]: 100 } },
    });
    const state: any[] = await ok(alice.get(room(roomId, 'state')), 'state');
    const create = state.find((e) => e.type === 'm.room.create');
    assert.deepEqual(create.content.additional_creators, [bob.userId]);
    const pl = state.find((e) => e.type === 'm.room.power_levels').content;
    assert.equal(pl.users[alice.userId], undefined);
    assert.equal(pl.users[bob.userId], undefined);
    assert.equal(pl.users[carol.userId], 100);
    await ok(bob.post(room(roomId, 'join'), {}), 'bob joins');
    await ok(carol.post(room(roomId, 'join'), {}), 'carol joins');
    // carol (100) cannot kick bob (creator), bob can kick carol.
    expectError(await carol.post(room(roomId, 'kick'), { user_id: bob.userId }), 403, 'M_FORBIDDEN');
    await ok(bob.post(room(roomId, 'kick'), { user_id: carol.userId }), 'creator kicks a 100 user');
    // Creators may not be put into power_levels.users.
    expectError(await alice.put(room(roomId, 'state/m.room.power_levels'), { ...pl, users: { [bob.userId]: 50 } }), 403, 'M_FORBIDDEN');
  });

  it('v12: bad additional_creators are 400, and listing a creator in the override is refused', async () => {
    expectError(await alice.post(`${V3}/createRoom`, { creation_content: { additional_creators: 'nope' } }), 400, 'M_BAD_JSON');
    expectError(await alice.post(`${V3}/createRoom`, { creation_content: { additional_creators: ['not-a-user'] } }), 400, 'M_BAD_JSON');
    const r = await alice.post(`${V3}/createRoom`, { power_level_content_override: { users: { [alice.userId]: 100 } } });
    expectError(r, 400, 'M_INVALID_ROOM_STATE');
  });

  it('two identical v12 createRoom requests at once get two rooms', async () => {
    const [a, b] = await Promise.all([alice.post(`${V3}/createRoom`, {}), alice.post(`${V3}/createRoom`, {})]);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(b.status, 200, JSON.stringify(b.body));
    assert.notEqual(a.body.room_id, b.body.room_id);
  });

  it('v12 room IDs work with aliases and joins by alias', async () => {
    const r = await ok(alice.post(`${V3}/createRoom`, { preset: 'public_chat', room_alias_name: 'v12alias' }), 'create');
    const resolved = await ok(bob.get(`${V3}/directory/room/${enc('#v12alias:localhost')}`), 'resolve');
    assert.equal(resolved.room_id, r.room_id);
    const joined = await ok(bob.post(`${V3}/join/${enc('#v12alias:localhost')}`, {}), 'join by alias');
    assert.equal(joined.room_id, r.room_id);
    // An unknown hash-shaped room ID is simply not found.
    expectError(await bob.post(`${V3}/join/${enc('!' + 'A'.repeat(43))}`, {}), 404, 'M_NOT_FOUND');
  });
});
