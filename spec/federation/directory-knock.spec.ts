// Two real Hearth servers: B asks A's public room directory and a space's hierarchy over
// federation (signed requests, as B's own key), and users of B knock on rooms of A through the
// client API (POST /knock with server_name -> make_knock/send_knock).

import assert from 'node:assert/strict';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { freePort, serverName, signedRequest, signingKeyOf, startFederated, syncUntil, waitFor, type User } from '../helpers/federation.js';
import type { SigningKey } from '../../src/protocol/types.js';

describe('federation: public rooms, space hierarchy and knocking between two servers', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let alice: User;
  let bob: User;
  let keyB: SigningKey;
  const askA = (method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown) => signedRequest(serverName(b), keyB, a, method, path, body);
  const create = async (body: object) => {
    const r = await alice.post('/_matrix/client/v3/createRoom', body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.room_id as string;
  };

  before(async () => {
    a = await startFederated(await freePort());
    b = await startFederated(await freePort());
    alice = await new Api(a.url).register('alice');
    bob = await new Api(b.url).register('bob');
    keyB = await signingKeyOf(b);
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('GET and POST /publicRooms list A\'s published rooms, with search, paging and type checks', async () => {
    const listed = await create({ preset: 'public_chat', visibility: 'public', name: 'Findable lounge', topic: 'over federation' });
    await create({ preset: 'public_chat', visibility: 'public', name: 'Second room' });
    await create({ preset: 'public_chat', name: 'Not published' });
    const all = await askA('GET', '/_matrix/federation/v1/publicRooms?limit=10');
    assert.equal(all.status, 200, JSON.stringify(all.body));
    assert.equal(all.body.total_room_count_estimate, 2);
    const chunk = all.body.chunk.find((r: any) => r.room_id === listed);
    assert.deepEqual({ name: chunk.name, topic: chunk.topic, join_rule: chunk.join_rule, members: chunk.num_joined_members }, { name: 'Findable lounge', topic: 'over federation', join_rule: 'public', members: 1 });
    const page = await askA('GET', '/_matrix/federation/v1/publicRooms?limit=1');
    assert.equal(page.body.chunk.length, 1);
    const next = await askA('GET', `/_matrix/federation/v1/publicRooms?limit=1&since=${enc(page.body.next_batch)}`);
    assert.equal(next.body.chunk.length, 1);
    assert.notEqual(next.body.chunk[0].room_id, page.body.chunk[0].room_id);
    const found = await askA('POST', '/_matrix/federation/v1/publicRooms', { limit: 10, filter: { generic_search_term: 'findable' } });
    assert.equal(found.status, 200, JSON.stringify(found.body));
    assert.deepEqual(found.body.chunk.map((r: any) => r.room_id), [listed]);
    const none = await askA('POST', '/_matrix/federation/v1/publicRooms', { filter: { generic_search_term: 'no such room' } });
    assert.deepEqual(none.body.chunk, []);
    const bad = await askA('POST', '/_matrix/federation/v1/publicRooms', { limit: 'ten' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.errcode, 'M_BAD_JSON');
    assert.equal((await askA('GET', '/_matrix/federation/v1/publicRooms?limit=-1')).status, 400);
    // Unsigned: refused like every federation request.
    const { fedRequest } = await import('../helpers/federation.js');
    assert.equal((await fedRequest(a.hearth.federation!.url, 'GET', '/_matrix/federation/v1/publicRooms', {})).status, 401);
  });

  it('GET /hierarchy: the space and its children B could join; private ones as inaccessible_children; unknown ones left out', async () => {
    const space = await create({ preset: 'public_chat', name: 'Space', creation_content: { type: 'm.space' } });
    const open = await create({ preset: 'public_chat', name: 'Open child' });
    const closed = await create({ preset: 'private_chat', name: 'Closed child' });
    const unknown = `!unknown${Date.now()}:${serverName(a)}`;
    const via = [serverName(a)];
    for (const [child, extra] of [[open, { suggested: true }], [closed, {}], [unknown, {}]] as const) {
      const r = await alice.put(`/_matrix/client/v3/rooms/${enc(space)}/state/m.space.child/${enc(child)}`, { via, ...extra });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const res = await askA('GET', `/_matrix/federation/v1/hierarchy/${enc(space)}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.room.room_id, space);
    assert.equal(res.body.room.room_type, 'm.space');
    assert.equal(res.body.room.name, 'Space');
    assert.deepEqual(res.body.room.children_state.map((e: any) => e.state_key).sort(), [open, closed, unknown].sort());
    assert.ok(res.body.room.children_state.every((e: any) => e.type === 'm.space.child' && typeof e.origin_server_ts === 'number'));
    assert.deepEqual(res.body.children.map((c: any) => c.room_id), [open]);
    assert.equal(res.body.children[0].name, 'Open child');
    assert.equal(res.body.children[0].room_version, '12');
    assert.deepEqual(res.body.inaccessible_children, [closed]);
    const suggested = await askA('GET', `/_matrix/federation/v1/hierarchy/${enc(space)}?suggested_only=true`);
    assert.deepEqual(suggested.body.room.children_state.map((e: any) => e.state_key), [open]);
    assert.deepEqual(suggested.body.inaccessible_children, []);
    // A room B has no way into, and a room A does not know: 404.
    assert.equal((await askA('GET', `/_matrix/federation/v1/hierarchy/${enc(closed)}`)).status, 404);
    assert.equal((await askA('GET', `/_matrix/federation/v1/hierarchy/${enc(unknown)}`)).status, 404);
    assert.equal((await askA('GET', `/_matrix/federation/v1/hierarchy/${enc(space)}?suggested_only=maybe`)).status, 400);
  });

  it('bob@B knocks on a knock room of A (POST /knock with server_name); alice sees it, invites him, and he joins', async () => {
    const room = await create({ preset: 'private_chat', name: 'Knock here', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] });
    const noVia = await bob.post(`/_matrix/client/v3/knock/${enc(room)}`, { reason: 'hello?' });
    assert.equal(noVia.status, 404, 'a v12 room ID names no server');
    const k = await bob.post(`/_matrix/client/v3/knock/${enc(room)}?server_name=${enc(serverName(a))}`, { reason: 'let me in' });
    assert.equal(k.status, 200, JSON.stringify(k.body));
    assert.equal(k.body.room_id, room);
    const m = await alice.get(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.member/${enc(bob.userId)}`);
    assert.equal(m.status, 200, JSON.stringify(m.body));
    assert.deepEqual({ membership: m.body.membership, reason: m.body.reason }, { membership: 'knock', reason: 'let me in' });
    assert.equal((await b.hearth.store.rooms.getMembership(room, bob.userId))?.membership, 'knock', 'B records the knock');
    const knocked = await syncUntil(bob, (body) => body.rooms?.knock?.[room]);
    const own = knocked.knock_state.events.find((e: any) => e.type === 'm.room.member' && e.state_key === bob.userId);
    assert.equal(own?.content.membership, 'knock');
    const inv = await alice.post(`/_matrix/client/v3/rooms/${enc(room)}/invite`, { user_id: bob.userId });
    assert.equal(inv.status, 200, JSON.stringify(inv.body));
    await syncUntil(bob, (body) => body.rooms?.invite?.[room]);
    const j = await bob.post(`/_matrix/client/v3/join/${enc(room)}`, {});
    assert.equal(j.status, 200, JSON.stringify(j.body));
    await waitFor(async () => (await alice.get(`/_matrix/client/v3/rooms/${enc(room)}/joined_members`)).body.joined?.[bob.userId] !== undefined, 10_000, 'A to see bob joined');
  });

  it('a knock on a room whose join rule is not knock is refused with A\'s M_FORBIDDEN', async () => {
    const room = await create({ preset: 'private_chat' });
    const k = await bob.post(`/_matrix/client/v3/knock/${enc(room)}?server_name=${enc(serverName(a))}`, {});
    assert.equal(k.status, 403, JSON.stringify(k.body));
    assert.equal(k.body.errcode, 'M_FORBIDDEN');
    assert.equal((await a.hearth.store.rooms.getMembership(room, bob.userId)), null);
  });

  it('make_knock checks the versions, the user\'s server, and send_knock answers knock_room_state', async () => {
    const room = await create({ preset: 'private_chat', name: 'Direct knock', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] });
    const path = (user: string, ver: string) => `/_matrix/federation/v1/make_knock/${enc(room)}/${enc(user)}${ver}`;
    const old = await askA('GET', path(bob.userId, '?ver=1&ver=6'));
    assert.equal(old.status, 400, JSON.stringify(old.body));
    assert.equal(old.body.errcode, 'M_INCOMPATIBLE_ROOM_VERSION');
    assert.equal((await askA('GET', path(bob.userId, ''))).body.errcode, 'M_MISSING_PARAM');
    assert.equal((await askA('GET', path(alice.userId, '?ver=12'))).status, 403, 'not a user of the asking server');
    const made = await askA('GET', path(bob.userId, '?ver=12'));
    assert.equal(made.status, 200, JSON.stringify(made.body));
    assert.equal(made.body.room_version, '12');
    assert.equal(made.body.event.content.membership, 'knock');
    const { signEvent, computeEventId } = await import('../../src/protocol/events.js');
    const draft = { ...made.body.event, origin_server_ts: Date.now() };
    const signed = signEvent(draft, serverName(b), keyB, '12');
    const eventId = computeEventId(signed, '12');
    const sent = await askA('PUT', `/_matrix/federation/v1/send_knock/${enc(room)}/${enc(eventId)}`, signed);
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const types = sent.body.knock_room_state.map((e: any) => e.type);
    assert.ok(types.includes('m.room.create') && types.includes('m.room.join_rules') && types.includes('m.room.name'), JSON.stringify(types));
    assert.equal(sent.body.knock_room_state.find((e: any) => e.type === 'm.room.name').content.name, 'Direct knock');
    // The event ID in the path must be the event's.
    const again = await askA('PUT', `/_matrix/federation/v1/send_knock/${enc(room)}/${enc('$wrong')}`, signed);
    assert.equal(again.status, 400);
  });

  it('a user of A knocks on a knock room of A locally through the same endpoint', async () => {
    const room = await create({ preset: 'private_chat', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] });
    const carol = await new Api(a.url).register('carol');
    const k = await carol.post(`/_matrix/client/v3/knock/${enc(room)}`, { reason: 'local' });
    assert.equal(k.status, 200, JSON.stringify(k.body));
    const m = await alice.get(`/_matrix/client/v3/rooms/${enc(room)}/state/m.room.member/${enc(carol.userId)}`);
    assert.equal(m.body.membership, 'knock');
    const sync = await carol.get('/_matrix/client/v3/sync');
    const types = sync.body.rooms.knock[room].knock_state.events.map((e: any) => e.type);
    assert.ok(types.includes('m.room.join_rules') && types.includes('m.room.member'), JSON.stringify(types));
    assert.equal(sync.body.rooms.join[room], undefined);
    const twice = await alice.post(`/_matrix/client/v3/knock/${enc(room)}`, {});
    assert.equal(twice.status, 403, 'a joined member cannot knock');
  });
});
