// Room state over real HTTP against the Client-Server API v1.12:
// GET/PUT /rooms/{roomId}/state/{eventType}/{stateKey}, GET /rooms/{roomId}/state, and the
// m.room.canonical_alias checks (M_BAD_ALIAS).

import { assert } from '../helpers/assert.js';
import { roomPath, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('room state over HTTP', function () {
  let srv: TestServer;
  let api: Api;
  let alice: User;
  let bob: User;
  let eve: User;
  let roomId: string;

  const room = (rest: string, id = roomId) => roomPath(id, rest);

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
    [alice, bob, eve] = await Promise.all([api.register('alice'), api.register('bob'), api.register('eve')]);
    const r = await alice.post(`${V3}/createRoom`, { preset: 'private_chat', invite: [bob.userId], name: 'Original' });
    assert.equal(r.status, 200);
    roomId = r.body.room_id;
    assert.equal((await bob.post(room('join'), {})).status, 200);
  });
  after(async () => srv.stop());

  it('PUT/GET state with an empty state key, without and with a trailing slash', async () => {
    const a = await alice.put(room('state/m.room.name'), { name: 'No slash' });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.match(a.body.event_id, /^\$[A-Za-z0-9_-]{43}$/);
    const g1 = await bob.get(room('state/m.room.name'));
    assert.equal(g1.status, 200, JSON.stringify(g1.body));
    assert.deepEqual(g1.body, { name: 'No slash' });
    const g1s = await bob.get(room('state/m.room.name/'));
    assert.equal(g1s.status, 200, `GET with trailing slash: ${g1s.status} ${JSON.stringify(g1s.body)}`);
    assert.deepEqual(g1s.body, { name: 'No slash' });

    const b = await alice.put(room('state/m.room.name/'), { name: 'With slash' });
    assert.equal(b.status, 200, `PUT with trailing slash: ${b.status} ${JSON.stringify(b.body)}`);
    assert.notEqual(b.body.event_id, a.body.event_id);
    const g2 = await bob.get(room('state/m.room.name'));
    assert.deepEqual(g2.body, { name: 'With slash' });
  });

  it('PUT/GET state with a state key', async () => {
    const put = await alice.put(room('state/org.example.widget/key%201'), { v: 1 });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const got = await bob.get(room('state/org.example.widget/key%201'));
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.deepEqual(got.body, { v: 1 });
    // A different key of the same type is a different piece of state.
    const other = await bob.get(room('state/org.example.widget/key2'));
    assert.equal(other.status, 404);
    const empty = await bob.get(room('state/org.example.widget'));
    assert.equal(empty.status, 404, 'the empty state key is distinct from "key 1"');
    // A state key that is a user ID (the common case for per-user state).
    const mine = await alice.put(room(`state/org.example.pref/${enc(alice.userId)}`), { on: true });
    assert.equal(mine.status, 200, JSON.stringify(mine.body));
    assert.deepEqual((await bob.get(room(`state/org.example.pref/${enc(alice.userId)}`))).body, { on: true });
  });

  it('GET of unknown state is 404 M_NOT_FOUND', async () => {
    const r = await alice.get(room('state/org.example.nothing'));
    assert.equal(r.status, 404);
    assert.equal(r.body.errcode, 'M_NOT_FOUND');
    const k = await alice.get(room('state/m.room.member/%40nobody%3Alocalhost'));
    assert.equal(k.status, 404);
    assert.equal(k.body.errcode, 'M_NOT_FOUND');
  });

  it('a PL-0 member cannot set m.room.name (403) and the name is unchanged', async () => {
    const before = (await alice.get(room('state/m.room.name'))).body;
    const r = await bob.put(room('state/m.room.name'), { name: 'bob rules' });
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.equal(r.body.errcode, 'M_FORBIDDEN');
    assert.deepEqual((await alice.get(room('state/m.room.name'))).body, before);
    // ...nor the power levels.
    const pl = (await alice.get(room('state/m.room.power_levels'))).body;
    const r2 = await bob.put(room('state/m.room.power_levels'), { ...pl, users: { ...pl.users, [bob.userId]: 100 } });
    assert.equal(r2.status, 403, JSON.stringify(r2.body));
  });

  it('GET /state lists the current state, one event per (type, state_key)', async () => {
    await alice.put(room('state/m.room.topic'), { topic: 'first' });
    await alice.put(room('state/m.room.topic'), { topic: 'second' });
    const r = await bob.get(room('state'));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(Array.isArray(r.body));
    const keys = r.body.map((e: any) => `${e.type}|${e.state_key}`);
    assert.equal(new Set(keys).size, keys.length, 'no duplicate (type, state_key)');
    const topic = r.body.filter((e: any) => e.type === 'm.room.topic');
    assert.equal(topic.length, 1);
    assert.deepEqual(topic[0].content, { topic: 'second' });
    for (const t of ['m.room.create', 'm.room.power_levels', 'm.room.join_rules', 'm.room.history_visibility', 'm.room.name']) {
      assert.ok(keys.includes(`${t}|`), `state has ${t}`);
    }
    assert.ok(keys.includes(`m.room.member|${alice.userId}`));
    assert.ok(keys.includes(`m.room.member|${bob.userId}`));
    for (const e of r.body) {
      assert.equal(typeof e.event_id, 'string');
      assert.equal(typeof e.sender, 'string');
      assert.equal(e.room_id, roomId);
    }
    // Each listed event is the one GET /state/{type}/{key} returns.
    const name = r.body.find((e: any) => e.type === 'm.room.name');
    assert.deepEqual((await bob.get(room('state/m.room.name'))).body, name.content);
  });

  it('a non-member cannot read the state of a private room (403)', async () => {
    for (const p of ['state', 'state/m.room.name', 'state/m.room.create']) {
      const r = await eve.get(room(p));
      assert.equal(r.status, 403, `${p}: ${r.status} ${JSON.stringify(r.body)}`);
      assert.equal(r.body.errcode, 'M_FORBIDDEN');
    }
    const put = await eve.put(room('state/org.example.x'), { a: 1 });
    assert.equal(put.status, 403, JSON.stringify(put.body));
  });

  it('an invited user who has not joined cannot read the room state (403)', async () => {
    const r = await alice.post(`${V3}/createRoom`, { preset: 'private_chat', name: 'secret', invite: [eve.userId] });
    const id = r.body.room_id as string;
    for (const p of ['state', 'state/m.room.name']) {
      const g = await eve.get(room(p, id));
      const shown = Array.isArray(g.body) ? g.body.map((e: any) => e.type) : g.body;
      assert.equal(g.status, 403, `${p} as invitee: ${g.status} ${JSON.stringify(shown)}`);
      assert.equal(g.body.errcode, 'M_FORBIDDEN');
    }
    const put = await eve.put(room('state/org.example.x', id), { a: 1 });
    assert.equal(put.status, 403, JSON.stringify(put.body));
    assert.equal((await eve.post(room('leave', id), {})).status, 200);
  });

  it('m.room.create cannot be sent again; the original stays', async () => {
    const before = (await alice.get(room('state/m.room.create'))).body;
    const r = await alice.put(room('state/m.room.create'), { room_version: '10' });
    assert.ok(r.status === 400 || r.status === 403, `${r.status} ${JSON.stringify(r.body)}`);
    assert.deepEqual((await alice.get(room('state/m.room.create'))).body, before);
  });

  it('a member who left reads the state as of their departure, not later changes', async () => {
    const r = await alice.post(`${V3}/createRoom`, { preset: 'public_chat', name: 'before' });
    const id = r.body.room_id as string;
    assert.equal((await eve.post(room('join', id), {})).status, 200);
    assert.equal((await eve.post(room('leave', id), {})).status, 200);
    assert.equal((await alice.put(room('state/m.room.name', id), { name: 'after' })).status, 200);
    const got = await eve.get(room('state/m.room.name', id));
    if (got.status === 200) assert.deepEqual(got.body, { name: 'before' }, 'must not leak state set after leaving');
    else assert.equal(got.status, 403);
  });

  it('a banned member reads no state (403, as Synapse), unless the room is world-readable', async () => {
    const r = await alice.post(`${V3}/createRoom`, { preset: 'public_chat', name: 'banning' });
    const id = r.body.room_id as string;
    assert.equal((await eve.post(room('join', id), {})).status, 200);
    assert.equal((await eve.get(room('state/m.room.name', id))).status, 200);
    assert.equal((await alice.post(room('ban', id), { user_id: eve.userId })).status, 200);
    for (const path of ['state/m.room.name', `state/m.room.member/${enc(eve.userId)}`, 'state', 'members']) {
      const got = await eve.get(room(path, id));
      assert.equal(got.status, 403, `${path}: ${JSON.stringify(got.body)}`);
      assert.equal(got.body.errcode, 'M_FORBIDDEN');
    }
    assert.equal((await alice.put(room('state/m.room.history_visibility', id), { history_visibility: 'world_readable' })).status, 200);
    assert.deepEqual((await eve.get(room('state/m.room.name', id))).body, { name: 'banning' });
  });

  it('m.room.canonical_alias must point to an alias of this room (else 400 M_BAD_ALIAS)', async () => {
    const other = await alice.post(`${V3}/createRoom`, { room_alias_name: 'elsewhere' });
    assert.equal(other.status, 200);
    const bad = await alice.put(room('state/m.room.canonical_alias'), { alias: '#elsewhere:localhost' });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.equal(bad.body.errcode, 'M_BAD_ALIAS');
    const badAlt = await alice.put(room('state/m.room.canonical_alias'), { alt_aliases: ['#elsewhere:localhost'] });
    assert.equal(badAlt.status, 400, JSON.stringify(badAlt.body));
    assert.equal(badAlt.body.errcode, 'M_BAD_ALIAS');
    const missing = await alice.put(room('state/m.room.canonical_alias'), { alias: '#unknown-alias:localhost' });
    assert.equal(missing.status, 400, JSON.stringify(missing.body));
    assert.equal(missing.body.errcode, 'M_BAD_ALIAS');
    const none = await alice.get(room('state/m.room.canonical_alias'));
    assert.equal(none.status, 404, 'no canonical alias was stored');

    // Pointing at one of this room's own aliases is fine.
    const own = await alice.put(`${V3}/directory/room/${enc('#here:localhost')}`, { room_id: roomId });
    assert.equal(own.status, 200, JSON.stringify(own.body));
    const good = await alice.put(room('state/m.room.canonical_alias'), { alias: '#here:localhost' });
    assert.equal(good.status, 200, JSON.stringify(good.body));
    assert.deepEqual((await bob.get(room('state/m.room.canonical_alias'))).body, { alias: '#here:localhost' });
  });
});
