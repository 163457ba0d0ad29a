// Room aliases, the public room directory and the user directory over real HTTP
// (Client-Server API v1.12 "Room aliases", "Listing rooms", "User directory").

import { assert } from '../helpers/assert.js';
import { createRoom as create, makeUser, ok, roomPath as room, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('directory', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let mallory: User;
  let anon: Api;

  const alias = (a: string) => `${V3}/directory/room/${enc(a)}`;

  before(async () => {
    srv = await startTestServer();
    [alice, bob, mallory] = await Promise.all([makeUser(srv, 'alice'), makeUser(srv, 'bob'), makeUser(srv, 'mallory')]);
    anon = new Api(srv.url);
  });
  after(async () => srv?.stop());

  describe('room aliases', () => {
    it('PUT/GET/DELETE /directory/room/{alias} and GET /rooms/{id}/aliases', async () => {
      const roomId = await create(alice, { preset: 'private_chat' });
      assert.deepEqual(await ok(alice.put(alias('#coffee:localhost'), { room_id: roomId }), 'PUT alias'), {});
      const got = await ok(bob.get(alias('#coffee:localhost')), 'GET alias');
      assert.equal(got.room_id, roomId);
      assert.deepEqual(got.servers, ['localhost']);
      const unauth = await anon.get(alias('#coffee:localhost'));
      assert.equal(unauth.status, 200, 'resolving an alias needs no login');

      const dup = await bob.put(alias('#coffee:localhost'), { room_id: roomId });
      assert.ok(dup.status === 409 || dup.status === 403, `an existing alias: ${dup.status}`);
      const dupOwner = await alice.put(alias('#coffee:localhost'), { room_id: roomId });
      assert.equal(dupOwner.status, 409, JSON.stringify(dupOwner.body));

      await ok(alice.put(alias('#tea:localhost'), { room_id: roomId }), 'second alias');
      const list = await ok(alice.get(room(roomId, 'aliases')), 'aliases');
      assert.deepEqual([...list.aliases].sort(), ['#coffee:localhost', '#tea:localhost']);
      const stranger = await bob.get(room(roomId, 'aliases'));
      assert.equal(stranger.status, 403, `a non-member listing aliases of a private room: ${JSON.stringify(stranger.body)}`);

      // Joining by alias works.
      await ok(alice.post(room(roomId, 'invite'), { user_id: bob.userId }), 'invite');
      const joined = await ok(bob.post(`${V3}/join/${enc('#coffee:localhost')}`, {}), 'join by alias');
      assert.equal(joined.room_id, roomId);

      // A plain member who did not create the alias may not delete it.
      const notMine = await bob.req('DELETE', alias('#coffee:localhost'));
      assert.equal(notMine.status, 403, JSON.stringify(notMine.body));
      assert.deepEqual(await ok(alice.req('DELETE', alias('#coffee:localhost')), 'DELETE'), {});
      const gone = await bob.get(alias('#coffee:localhost'));
      assert.equal(gone.status, 404);
      assert.equal(gone.body.errcode, 'M_NOT_FOUND');
      assert.deepEqual((await ok(alice.get(room(roomId, 'aliases')), 'aliases')).aliases, ['#tea:localhost']);
      assert.equal((await alice.req('DELETE', alias('#coffee:localhost'))).status, 404, 'deleting twice');
    });

    it('refuses bad aliases and non-members', async () => {
      const roomId = await create(alice, { preset: 'private_chat' });
      const other = await mallory.put(alias('#mallory:localhost'), { room_id: roomId });
      assert.equal(other.status, 403, `a non-member creating an alias: ${JSON.stringify(other.body)}`);
      const remote = await alice.put(alias('#x:elsewhere.org'), { room_id: roomId });
      assert.equal(remote.status, 400, `an alias of another server: ${JSON.stringify(remote.body)}`);
      const malformed = await alice.put(alias('nohash:localhost'), { room_id: roomId });
      assert.equal(malformed.status, 400, JSON.stringify(malformed.body));
      assert.equal((await alice.get(alias('#never:localhost'))).status, 404);
    });

    it('m.room.canonical_alias must name aliases that point to the room', async () => {
      const roomId = await create(alice, { preset: 'private_chat' });
      const otherRoom = await create(alice, { preset: 'private_chat' });
      await ok(alice.put(alias('#canon:localhost'), { room_id: roomId }), 'alias');
      await ok(alice.put(alias('#alt:localhost'), { room_id: roomId }), 'alt alias');
      await ok(alice.put(alias('#elsewhere:localhost'), { room_id: otherRoom }), 'alias of another room');
      const state = (c: unknown) => alice.put(room(roomId, 'state/m.room.canonical_alias'), c);

      await ok(state({ alias: '#canon:localhost', alt_aliases: ['#alt:localhost'] }), 'valid canonical alias');
      const cur = await ok(alice.get(room(roomId, 'state/m.room.canonical_alias')), 'GET state');
      assert.deepEqual(cur, { alias: '#canon:localhost', alt_aliases: ['#alt:localhost'] });

      const missing = await state({ alias: '#missing:localhost' });
      assert.equal(missing.status, 400);
      assert.equal(missing.body.errcode, 'M_BAD_ALIAS');
      const wrongRoom = await state({ alias: '#elsewhere:localhost' });
      assert.equal(wrongRoom.status, 400);
      assert.equal(wrongRoom.body.errcode, 'M_BAD_ALIAS');
      const badAlt = await state({ alias: '#canon:localhost', alt_aliases: ['#missing:localhost'] });
      assert.equal(badAlt.body.errcode, 'M_BAD_ALIAS');
      const malformed = await state({ alias: 'not an alias' });
      assert.equal(malformed.status, 400);
      assert.equal(malformed.body.errcode, 'M_INVALID_PARAM');
      const notArray = await state({ alt_aliases: '#alt:localhost' });
      assert.equal(notArray.status, 400);
      // Nothing changed by the refusals.
      assert.deepEqual(await ok(alice.get(room(roomId, 'state/m.room.canonical_alias')), 'GET state'), cur);
      // Removing the canonical alias (empty content) is allowed.
      await ok(state({}), 'empty canonical alias');
    });
  });

  describe('public room directory', () => {
    let r1: string;
    let r2: string;
    let r3: string;
    let hidden: string;

    before(async () => {
      // Distinct member counts make the order (most members first) predictable.
      r1 = await create(alice, { visibility: 'public', preset: 'public_chat', name: 'Gardening club', topic: 'tomatoes and roses', room_alias_name: 'garden' });
      r2 = await create(alice, { visibility: 'public', preset: 'public_chat', name: 'Chess', topic: 'openings' });
      r3 = await create(bob, { preset: 'public_chat', name: 'Knitting' });
      hidden = await create(alice, { preset: 'private_chat', name: 'Secret gardening' });
      await ok(bob.post(room(r1, 'join'), {}), 'bob joins r1');
      await ok(mallory.post(room(r1, 'join'), {}), 'mallory joins r1');
      await ok(bob.post(room(r2, 'join'), {}), 'bob joins r2');
    });

    it('GET /publicRooms lists published rooms with their summary; limit and since paginate with next_batch', async () => {
      const all = await ok(anon.get(`${V3}/publicRooms`), 'GET /publicRooms without auth');
      const ids = all.chunk.map((c: any) => c.room_id);
      assert.deepEqual(ids, [r1, r2], 'published rooms only, most members first');
      assert.equal(all.total_room_count_estimate, 2);
      assert.equal(all.next_batch, undefined, 'everything fits: no next_batch');
      const g = all.chunk[0];
      assert.equal(g.name, 'Gardening club');
      assert.equal(g.topic, 'tomatoes and roses');
      assert.equal(g.canonical_alias, '#garden:localhost');
      assert.equal(g.num_joined_members, 3);
      assert.equal(g.world_readable, false);
      assert.equal(g.guest_can_join, false);
      assert.equal(g.join_rule, 'public');

      const p1 = await ok(alice.get(`${V3}/publicRooms?limit=1`), 'page 1');
      assert.deepEqual(p1.chunk.map((c: any) => c.room_id), [r1]);
      assert.equal(typeof p1.next_batch, 'string');
      const p2 = await ok(alice.get(`${V3}/publicRooms?limit=1&since=${enc(p1.next_batch)}`), 'page 2');
      assert.deepEqual(p2.chunk.map((c: any) => c.room_id), [r2]);
      assert.equal(p2.next_batch, undefined);
      assert.equal(typeof p2.prev_batch, 'string');
      const back = await ok(alice.get(`${V3}/publicRooms?limit=1&since=${enc(p2.prev_batch)}`), 'prev page');
      assert.deepEqual(back.chunk.map((c: any) => c.room_id), [r1]);
      assert.ok(!ids.includes(hidden) && !ids.includes(r3));
    });

    it('POST /publicRooms: limit, since and filter.generic_search_term', async () => {
      const p1 = await ok(alice.post(`${V3}/publicRooms`, { limit: 1 }), 'POST page 1');
      assert.deepEqual(p1.chunk.map((c: any) => c.room_id), [r1]);
      const p2 = await ok(alice.post(`${V3}/publicRooms`, { limit: 1, since: p1.next_batch }), 'POST page 2');
      assert.deepEqual(p2.chunk.map((c: any) => c.room_id), [r2]);

      const byTopic = await ok(alice.post(`${V3}/publicRooms`, { filter: { generic_search_term: 'ROSES' } }), 'search topic');
      assert.deepEqual(byTopic.chunk.map((c: any) => c.room_id), [r1], 'case-insensitive topic match');
      const byName = await ok(alice.post(`${V3}/publicRooms`, { filter: { generic_search_term: 'chess' } }), 'search name');
      assert.deepEqual(byName.chunk.map((c: any) => c.room_id), [r2]);
      const gardening = await ok(alice.post(`${V3}/publicRooms`, { filter: { generic_search_term: 'gardening' } }), 'search');
      assert.deepEqual(gardening.chunk.map((c: any) => c.room_id), [r1], 'the unpublished "Secret gardening" stays hidden');
      const none = await ok(alice.post(`${V3}/publicRooms`, { filter: { generic_search_term: 'zzzz-nothing' } }), 'search none');
      assert.deepEqual(none.chunk, []);
      const badSince = await alice.post(`${V3}/publicRooms`, { since: 'garbage' });
      assert.equal(badSince.status, 400);
      const unauthPost = await anon.post(`${V3}/publicRooms`, {});
      assert.equal(unauthPost.status, 401, 'POST needs authentication');
    });

    it('GET/PUT /directory/list/room/{id}: publishing needs moderator power; the listing follows', async () => {
      assert.deepEqual(await ok(anon.get(`${V3}/directory/list/room/${enc(r1)}`), 'GET visibility'), { visibility: 'public' });
      assert.deepEqual(await ok(anon.get(`${V3}/directory/list/room/${enc(r3)}`), 'GET visibility'), { visibility: 'private' });
      assert.equal((await anon.get(`${V3}/directory/list/room/${enc('!nope:localhost')}`)).status, 404);

      // mallory is a plain member of r1 (power 0); alice is not in r3 at all.
      const plain = await mallory.put(`${V3}/directory/list/room/${enc(r1)}`, { visibility: 'private' });
      assert.equal(plain.status, 403, JSON.stringify(plain.body));
      assert.equal(plain.body.errcode, 'M_FORBIDDEN');
      const outsider = await alice.put(`${V3}/directory/list/room/${enc(r3)}`, { visibility: 'public' });
      assert.equal(outsider.status, 403);
      assert.deepEqual(await ok(anon.get(`${V3}/directory/list/room/${enc(r3)}`), 'unchanged'), { visibility: 'private' });

      await ok(bob.put(`${V3}/directory/list/room/${enc(r3)}`, { visibility: 'public' }), 'bob publishes his room');
      assert.deepEqual(await ok(anon.get(`${V3}/directory/list/room/${enc(r3)}`), 'GET'), { visibility: 'public' });
      const listed = await ok(alice.get(`${V3}/publicRooms`), 'GET /publicRooms');
      assert.ok(listed.chunk.some((c: any) => c.room_id === r3 && c.name === 'Knitting'), JSON.stringify(listed.chunk.map((c: any) => c.name)));

      await ok(bob.put(`${V3}/directory/list/room/${enc(r3)}`, { visibility: 'private' }), 'unpublish');
      const after = await ok(alice.get(`${V3}/publicRooms`), 'GET /publicRooms');
      assert.ok(!after.chunk.some((c: any) => c.room_id === r3));
      const bad = await bob.put(`${V3}/directory/list/room/${enc(r3)}`, { visibility: 'sideways' });
      assert.equal(bad.status, 400);
    });
  });

  describe('user directory', () => {
    let searcher: User;

    before(async () => {
      searcher = await makeUser(srv, 'searcher');
      const friend = await makeUser(srv, 'friendly1', 'Friendly Fiona');
      const friend2 = await makeUser(srv, 'friendly2', 'Friendly Fred');
      const pub = await makeUser(srv, 'friendly3', 'Friendly Public Pat');
      const stranger = await makeUser(srv, 'friendly4', 'Friendly Stranger');
      // searcher shares a private room with friend and friend2.
      const shared = await create(searcher, { preset: 'private_chat', invite: [friend.userId, friend2.userId] });
      await ok(friend.post(room(shared, 'join'), {}), 'join');
      await ok(friend2.post(room(shared, 'join'), {}), 'join');
      // pub is in a public, published room the searcher is not in.
      await create(pub, { visibility: 'public', preset: 'public_chat', name: 'Pat\'s place' });
      // stranger is only in a private room of their own.
      await create(stranger, { preset: 'private_chat' });
    });

    it('finds users who share a room and users in public rooms, not strangers; limited', async () => {
      const res = await ok(searcher.post(`${V3}/user_directory/search`, { search_term: 'friendly' }), 'search');
      const ids = res.results.map((r: any) => r.user_id).sort();
      assert.deepEqual(ids, ['@friendly1:localhost', '@friendly2:localhost', '@friendly3:localhost'], JSON.stringify(res));
      assert.equal(res.limited, false);
      const fiona = res.results.find((r: any) => r.user_id === '@friendly1:localhost');
      assert.equal(fiona.display_name, 'Friendly Fiona');

      const byName = await ok(searcher.post(`${V3}/user_directory/search`, { search_term: 'fio' }), 'search by display name prefix');
      assert.deepEqual(byName.results.map((r: any) => r.user_id), ['@friendly1:localhost']);
      const byPublic = await ok(searcher.post(`${V3}/user_directory/search`, { search_term: 'pat' }), 'public room member');
      assert.deepEqual(byPublic.results.map((r: any) => r.user_id), ['@friendly3:localhost']);
      const stranger = await ok(searcher.post(`${V3}/user_directory/search`, { search_term: 'stranger' }), 'stranger');
      assert.deepEqual(stranger.results, [], 'a user sharing no room and in no public room is not found');
      const byId = await ok(searcher.post(`${V3}/user_directory/search`, { search_term: '@friendly4:localhost' }), 'stranger by id');
      assert.deepEqual(byId.results, []);

      const lim = await ok(searcher.post(`${V3}/user_directory/search`, { search_term: 'friendly', limit: 2 }), 'limit 2');
      assert.equal(lim.results.length, 2);
      assert.equal(lim.limited, true);
      const bad = await searcher.post(`${V3}/user_directory/search`, {});
      assert.equal(bad.status, 400, 'search_term is required');
    });

    it('follows the join rule and history visibility of a room the searcher shares', async () => {
      const owner = await makeUser(srv, 'dirowner');
      const member = await makeUser(srv, 'dirmember', 'Wandering Wilma');
      const r = await create(owner, { preset: 'private_chat', invite: [member.userId] });
      await ok(member.post(room(r, 'join'), {}), 'join');
      const found = async () =>
        (await ok(member.post(`${V3}/user_directory/search`, { search_term: 'wilma' }), 'search')).results.map((u: any) => u.user_id);
      const state = (type: string, content: object) => ok(owner.put(room(r, `state/${type}`), content), type);
      assert.deepEqual(await found(), [], 'sharing a room with others is not sharing it with oneself');
      await state('m.room.join_rules', { join_rule: 'public' });
      assert.deepEqual(await found(), [member.userId], 'in a public room');
      await state('m.room.join_rules', { join_rule: 'invite' });
      assert.deepEqual(await found(), [], 'the room is invite-only again');
      await state('m.room.history_visibility', { history_visibility: 'world_readable' });
      assert.deepEqual(await found(), [member.userId], 'in a world-readable room');
      await state('m.room.history_visibility', { history_visibility: 'shared' });
      assert.deepEqual(await found(), [], 'neither public nor world-readable');
      const byOwner = await ok(owner.post(`${V3}/user_directory/search`, { search_term: 'wilma' }), 'owner searches');
      assert.deepEqual(byOwner.results.map((u: any) => u.user_id), [member.userId], 'the owner shares the room with her');
    });
  });
});
