// Spaces over real HTTP: GET /_matrix/client/v1/rooms/{roomId}/hierarchy (Client-Server API
// "Spaces") and the /publicRooms filters generic_search_term and room_types.

import { assert } from '../helpers/assert.js';
import { createRoom, expectError, makeUser, ok, roomPath, V1, V3, type User } from '../helpers/fixtures.js';
import { enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('spaces and room directory filters', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: User;
  let bob: User;

  const hierarchy = (who: User, roomId: string, q = '') => who.get(`${V1}/rooms/${enc(roomId)}/hierarchy${q ? `?${q}` : ''}`);
  const addChild = (space: string, child: string, content: Record<string, unknown> = { via: ['localhost'] }) =>
    ok(alice.put(roomPath(space, `state/m.space.child/${enc(child)}`), content), 'add child');
  const ids = (body: any) => body.rooms.map((r: any) => r.room_id);
  // Unordered children sort by origin_server_ts, then room ID: two sent in the same millisecond
  // would sort by their random IDs, so the test lets the clock move between them.
  const nextMs = () => new Promise((r) => setTimeout(r, 3));

  before(async () => {
    srv = await startTestServer();
    [alice, bob] = await Promise.all([makeUser(srv, 'alice'), makeUser(srv, 'bob')]);
  });
  after(async () => srv?.stop());

  it('walks children depth-first in spec order, hides rooms bob may not see and what is behind them', async () => {
    const space = await createRoom(alice, { preset: 'public_chat', name: 'Space', creation_content: { type: 'm.space' } });
    const sub = await createRoom(alice, { preset: 'public_chat', name: 'Subspace', creation_content: { type: 'm.space' } });
    const a = await createRoom(alice, { preset: 'public_chat', name: 'A' });
    const b = await createRoom(alice, { preset: 'public_chat', name: 'B', topic: 'bee' });
    const hidden = await createRoom(alice, { preset: 'private_chat', name: 'Hidden', creation_content: { type: 'm.space' } });
    const behindHidden = await createRoom(alice, { preset: 'public_chat', name: 'Behind hidden' });
    const restricted = await createRoom(alice, { preset: 'private_chat', name: 'Members of A' });
    await ok(alice.put(roomPath(restricted, 'state/m.room.join_rules/'), { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: a }] }), 'restricted');
    await addChild(space, b, { via: ['localhost'] });
    await nextMs();
    await addChild(space, sub, { via: ['localhost'], order: 'a' }); // ordered children come first
    await addChild(space, hidden, { via: ['localhost'], order: 'b' });
    await addChild(space, restricted, { via: ['localhost'] });
    await nextMs();
    await addChild(space, '!remote:elsewhere.example', { via: ['elsewhere.example'] });
    await addChild(space, a, {}); // no via: not a child
    await addChild(sub, a, { via: ['localhost'], suggested: true });
    await addChild(hidden, behindHidden);
    await addChild(sub, space); // a cycle
    await ok(alice.put(roomPath(b, 'state/m.space.parent/' + enc(space)), { via: ['localhost'], canonical: true }), 'parent');

    const forAlice = await ok(hierarchy(alice, space), 'alice');
    assert.deepEqual(ids(forAlice), [space, sub, a, hidden, behindHidden, b, restricted]);
    const root = forAlice.rooms[0];
    assert.equal(root.room_type, 'm.space');
    assert.equal(root.name, 'Space');
    assert.equal(root.join_rule, 'public');
    assert.equal(root.num_joined_members, 1);
    assert.equal(typeof root.room_version, 'string');
    assert.deepEqual(root.children_state.map((c: any) => c.state_key), [sub, hidden, b, restricted, '!remote:elsewhere.example']);
    assert.equal(typeof root.children_state[0].origin_server_ts, 'number');
    assert.equal(root.children_state[0].type, 'm.space.child');
    assert.deepEqual(forAlice.rooms.find((r: any) => r.room_id === restricted).allowed_room_ids, [a]);
    assert.equal(forAlice.next_batch, undefined);

    const forBob = await ok(hierarchy(bob, space), 'bob');
    assert.deepEqual(ids(forBob), [space, sub, a, b], 'private room, what is behind it and the restricted room are hidden');
    await ok(bob.post(roomPath(a, 'join'), {}), 'bob joins A');
    const afterJoin = await ok(hierarchy(bob, space), 'bob after joining A');
    assert.deepEqual(ids(afterJoin), [space, sub, a, b, restricted], 'joined to an allowed room: the restricted room shows');

    expectError(await hierarchy(bob, hidden), 403, 'M_FORBIDDEN');
    expectError(await hierarchy(bob, '!nowhere:localhost'), 403, 'M_FORBIDDEN');

    const shallow = await ok(hierarchy(alice, space, 'max_depth=0'), 'depth 0');
    assert.deepEqual(ids(shallow), [space]);
    const depth1 = await ok(hierarchy(alice, space, 'max_depth=1'), 'depth 1');
    assert.deepEqual(ids(depth1), [space, sub, hidden, b, restricted]);
    const suggested = await ok(hierarchy(alice, space, 'suggested_only=true'), 'suggested');
    assert.deepEqual(ids(suggested), [space], 'only suggested children are followed');
    const subSuggested = await ok(hierarchy(alice, sub, 'suggested_only=true'), 'sub suggested');
    assert.deepEqual(ids(subSuggested), [sub, a]);

    // Paging: every room once, in the same order as the single page.
    const paged: string[] = [];
    let from: string | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await ok(hierarchy(alice, space, `limit=2${from ? `&from=${enc(from)}` : ''}`), 'page');
      assert.ok(page.rooms.length <= 2);
      paged.push(...ids(page));
      from = page.next_batch;
      if (!from) break;
    }
    assert.deepEqual(paged, ids(forAlice));
    const first = await ok(hierarchy(alice, space, 'limit=2'), 'first page');
    expectError(await hierarchy(alice, space, `limit=2&max_depth=1&from=${enc(first.next_batch)}`), 400, 'M_INVALID_PARAM');
    expectError(await hierarchy(alice, sub, `from=${enc(first.next_batch)}`), 400, 'M_INVALID_PARAM');
    expectError(await hierarchy(alice, space, 'from=nonsense'), 400, 'M_INVALID_PARAM');
    expectError(await hierarchy(alice, space, 'limit=0'), 400, 'M_INVALID_PARAM');
    expectError(await hierarchy(alice, space, 'max_depth=-1'), 400, 'M_INVALID_PARAM');
    expectError(await hierarchy(alice, space, 'suggested_only=maybe'), 400, 'M_INVALID_PARAM');
  });

  it('/publicRooms filters by generic_search_term (name, topic, alias) and room_types, and accepts since: null', async () => {
    const dir = (body: Record<string, unknown>) => ok(bob.post(`${V3}/publicRooms`, body), 'publicRooms');
    const space = await createRoom(alice, { preset: 'public_chat', visibility: 'public', name: 'Gardening space', creation_content: { type: 'm.space' } });
    const plain = await createRoom(alice, { preset: 'public_chat', visibility: 'public', name: 'Veg patch', topic: 'Tomatoes and more' });
    const aliased = await createRoom(alice, { preset: 'public_chat', visibility: 'public', room_alias_name: 'compost' });
    const custom = await createRoom(alice, { preset: 'public_chat', visibility: 'public', name: 'Custom', creation_content: { type: 'org.example.board' } });
    const chunkIds = (b: any) => b.chunk.map((c: any) => c.room_id).sort();

    assert.deepEqual(chunkIds(await dir({ filter: { generic_search_term: 'TOMATO' } })), [plain]);
    assert.deepEqual(chunkIds(await dir({ filter: { generic_search_term: 'compost' } })), [aliased]);
    assert.deepEqual(chunkIds(await dir({ filter: { generic_search_term: 'garden' } })), [space]);
    assert.deepEqual(chunkIds(await dir({ filter: { room_types: ['m.space'] } })), [space]);
    assert.deepEqual(chunkIds(await dir({ filter: { room_types: [null] } })), [aliased, plain].sort());
    assert.deepEqual(chunkIds(await dir({ filter: { room_types: [null, 'org.example.board'] } })), [aliased, custom, plain].sort());
    const spaceChunk = (await dir({ filter: { room_types: ['m.space'] } })).chunk[0];
    assert.equal(spaceChunk.room_type, 'm.space');
    const nulls = await dir({ since: null, limit: null, server: null, filter: { generic_search_term: null, room_types: null } });
    assert.equal(nulls.chunk.length, 4);
    expectError(await bob.post(`${V3}/publicRooms`, { filter: { room_types: [7] } }), 400, 'M_BAD_JSON');
  });
});
