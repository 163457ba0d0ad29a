// The Synapse admin API subset over real HTTP (the shapes synadm and Synapse Admin read): users,
// devices, whois, rooms, members, room deletion with block and purge, purge_history,
// server_version; and that a non-admin gets 403 M_FORBIDDEN everywhere.

import { assert } from '../helpers/assert.js';
import { createRoom, expectError, makeUser, ok, passwordLogin, roomPath, sendEvent, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('Synapse admin API', function () {
  this.timeout(20000);
  let srv: TestServer;
  let root: User;
  let alice: User;
  let bob: User;
  const A = '/_synapse/admin';

  before(async () => {
    srv = await startTestServer();
    const accounts = srv.hearth.services.accounts;
    const rootId = await accounts.createAccount('root', null, true);
    const l = await accounts.login(rootId, undefined, null, null);
    root = Object.assign(new Api(srv.url, l.access_token), { userId: rootId, deviceId: l.device_id });
    [alice, bob] = await Promise.all([makeUser(srv, 'alice', 'Alice A'), makeUser(srv, 'bob')]);
  });
  after(async () => srv?.stop());

  it('refuses non-admins and anonymous callers', async () => {
    const paths: Array<[string, string]> = [
      ['GET', '/v1/server_version'],
      ['GET', '/v2/users'],
      ['GET', `/v2/users/${enc(bob.userId)}`],
      ['PUT', `/v2/users/${enc('@x:localhost')}`],
      ['POST', `/v1/deactivate/${enc(bob.userId)}`],
      ['POST', `/v1/reset_password/${enc(bob.userId)}`],
      ['GET', `/v2/users/${enc(bob.userId)}/devices`],
      ['GET', `/v1/whois/${enc(bob.userId)}`],
      ['PUT', `/v1/users/${enc(bob.userId)}/admin`],
      ['GET', `/v1/users/${enc(bob.userId)}/joined_rooms`],
      ['GET', `/v1/rooms/${enc('!x:localhost')}/state`],
      ['GET', '/v1/rooms'],
      ['DELETE', `/v1/rooms/${enc('!x:localhost')}`],
      ['DELETE', `/v2/rooms/${enc('!x:localhost')}`],
      ['POST', `/v1/purge_history/${enc('!x:localhost')}`],
    ];
    for (const [method, path] of paths) {
      expectError(await alice.req(method, A + path, method === 'GET' ? undefined : {}), 403, 'M_FORBIDDEN');
      expectError(await new Api(srv.url).req(method, A + path, method === 'GET' ? undefined : {}), 401, 'M_MISSING_TOKEN');
    }
    assert.equal((await ok(bob.get(`${V3}/account/whoami`), 'bob untouched')).user_id, bob.userId);
  });

  it('server_version, users list and query, create and modify, devices and whois', async () => {
    const v = await ok(root.get(`${A}/v1/server_version`), 'version');
    assert.match(v.server_version, /^Hearth \d+\.\d+\.\d+/);

    const list = await ok(root.get(`${A}/v2/users?from=0&limit=2`), 'list');
    assert.deepEqual(list.users.map((u: any) => u.name), ['@alice:localhost', '@bob:localhost']);
    assert.equal(list.total, 3);
    assert.equal(list.next_token, '2');
    const u0 = list.users[0];
    for (const k of ['name', 'admin', 'deactivated', 'is_guest', 'displayname', 'avatar_url', 'creation_ts', 'shadow_banned', 'erased', 'user_type', 'locked']) {
      assert.ok(k in u0, `list entry has ${k}`);
    }
    const rest = await ok(root.get(`${A}/v2/users?from=2&limit=2`), 'page 2');
    assert.deepEqual(rest.users.map((u: any) => u.name), ['@root:localhost']);
    assert.equal(rest.next_token, undefined);
    const named = await ok(root.get(`${A}/v2/users?name=alice%20a&guests=false`), 'by display name');
    assert.deepEqual(named.users.map((u: any) => u.name), ['@alice:localhost']);

    const one = await ok(root.get(`${A}/v2/users/${enc(alice.userId)}`), 'query');
    assert.equal(one.displayname, 'Alice A');
    assert.equal(one.admin, false);
    assert.deepEqual(one.threepids, []);
    expectError(await root.get(`${A}/v2/users/${enc('@nobody:localhost')}`), 404, 'M_NOT_FOUND');

    const created = await root.put(`${A}/v2/users/${enc('@carol:localhost')}`, { password: 'carol pw', displayname: 'Carol', admin: true });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.name, '@carol:localhost');
    assert.equal(created.body.admin, true);
    assert.equal((await passwordLogin(new Api(srv.url), 'carol', 'carol pw')).status, 200, 'carol can log in');
    const modified = await root.put(`${A}/v2/users/${enc('@carol:localhost')}`, { displayname: 'Caroline', admin: false });
    assert.equal(modified.status, 200);
    assert.equal(modified.body.displayname, 'Caroline');
    assert.equal(modified.body.admin, false);
    assert.equal((await ok(root.get(`${A}/v1/users/${enc('@carol:localhost')}/admin`), 'is admin')).admin, false);
    expectError(await root.put(`${A}/v2/users/${enc('@x:elsewhere.example')}`, {}), 400, 'M_INVALID_PARAM');
    expectError(await root.put(`${A}/v2/users/${enc('@carol:localhost')}`, { admin: 'yes' }), 400, 'M_BAD_JSON');

    await ok(alice.get(`${V3}/account/whoami`), 'alice seen'); // records last-seen
    const devices = await ok(root.get(`${A}/v2/users/${enc(alice.userId)}/devices`), 'devices');
    assert.equal(devices.total, 1);
    assert.equal(devices.devices[0].device_id, alice.deviceId);
    assert.equal(devices.devices[0].user_id, alice.userId);
    const whois = await ok(root.get(`${A}/v1/whois/${enc(alice.userId)}`), 'whois');
    assert.equal(whois.user_id, alice.userId);
    const sessions = whois.devices[alice.deviceId].sessions;
    assert.equal(sessions[0].connections[0].ip, '127.0.0.1');
    assert.equal(typeof sessions[0].connections[0].last_seen, 'number');
  });

  it('reset_password logs out by default; deactivate with erase leaves rooms and clears the profile', async () => {
    const dave = await makeUser(srv, 'dave', 'Dave');
    await ok(root.post(`${A}/v1/reset_password/${enc(dave.userId)}`, { new_password: 'new dave pw' }), 'reset');
    expectError(await dave.get(`${V3}/account/whoami`), 401, 'M_UNKNOWN_TOKEN');
    assert.equal((await passwordLogin(new Api(srv.url), 'dave', 'new dave pw')).status, 200);
    expectError(await root.post(`${A}/v1/reset_password/${enc(dave.userId)}`, {}), 400, 'M_MISSING_PARAM');

    const erin = await makeUser(srv, 'erin', 'Erin');
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await ok(erin.post(roomPath(roomId, 'join'), {}), 'erin joins');
    const res = await ok(root.post(`${A}/v1/deactivate/${enc(erin.userId)}`, { erase: true }), 'deactivate');
    assert.equal(res.id_server_unbind_result, 'success');
    expectError(await erin.get(`${V3}/account/whoami`), 401, 'M_UNKNOWN_TOKEN');
    const q = await ok(root.get(`${A}/v2/users/${enc(erin.userId)}`), 'query erin');
    assert.equal(q.deactivated, true);
    assert.equal(q.displayname, null);
    const members = await ok(root.get(`${A}/v1/rooms/${enc(roomId)}/members`), 'members');
    assert.deepEqual(members.members, [alice.userId]);
    const hidden = await ok(root.get(`${A}/v2/users`), 'default list');
    assert.ok(!hidden.users.some((u: any) => u.name === erin.userId), 'deactivated users are left out by default');
    const shown = await ok(root.get(`${A}/v2/users?deactivated=true`), 'with deactivated');
    assert.ok(shown.users.some((u: any) => u.name === erin.userId));

    expectError(await root.put(`${A}/v2/users/${enc(erin.userId)}`, { deactivated: false }), 400, 'M_INVALID_PARAM');
    await ok(root.put(`${A}/v2/users/${enc(erin.userId)}`, { deactivated: false, password: 'erin again' }), 'reactivate');
    assert.equal((await passwordLogin(new Api(srv.url), 'erin', 'erin again')).status, 200);
  });

  it('lists rooms with details and members, ordered and searchable', async () => {
    const a = await createRoom(alice, { preset: 'public_chat', name: 'Aardvarks', topic: 'tt' });
    await ok(bob.post(roomPath(a, 'join'), {}), 'bob joins');
    const z = await createRoom(bob, { preset: 'private_chat', name: 'Zebras' });
    const byName = await ok(root.get(`${A}/v1/rooms?search_term=a&order_by=name`), 'rooms');
    const names = byName.rooms.map((r: any) => r.name);
    assert.ok(names.indexOf('Aardvarks') < names.indexOf('Zebras'));
    const entry = byName.rooms.find((r: any) => r.room_id === a);
    assert.equal(entry.joined_members, 2);
    assert.equal(entry.joined_local_members, 2);
    assert.equal(entry.creator, alice.userId);
    assert.equal(entry.join_rules, 'public');
    assert.equal(typeof entry.version, 'string');
    assert.equal(typeof entry.state_events, 'number');
    const searched = await ok(root.get(`${A}/v1/rooms?search_term=zebra`), 'search');
    assert.deepEqual(searched.rooms.map((r: any) => r.room_id), [z]);
    assert.equal(searched.total_rooms, 1);
    const paged = await ok(root.get(`${A}/v1/rooms?limit=1&order_by=joined_members`), 'paged');
    assert.equal(paged.rooms.length, 1);
    assert.equal(paged.next_batch, 1);
    assert.equal(paged.offset, 0);
    const details = await ok(root.get(`${A}/v1/rooms/${enc(a)}`), 'details');
    assert.equal(details.topic, 'tt');
    assert.equal(details.name, 'Aardvarks');
    assert.equal(details.joined_local_devices, 2);
    expectError(await root.get(`${A}/v1/rooms/${enc('!none:localhost')}`), 404, 'M_NOT_FOUND');
    expectError(await root.get(`${A}/v1/rooms?order_by=colour`), 400, 'M_INVALID_PARAM');

    const state = await ok(root.get(`${A}/v1/rooms/${enc(a)}/state`), 'state');
    const topic = state.state.find((e: any) => e.type === 'm.room.topic');
    assert.equal(topic.content.topic, 'tt');
    assert.equal(typeof topic.event_id, 'string');
    assert.ok(state.state.some((e: any) => e.type === 'm.room.member' && e.state_key === bob.userId));
    const joined = await ok(root.get(`${A}/v1/users/${enc(bob.userId)}/joined_rooms`), 'joined rooms');
    assert.ok(joined.joined_rooms.includes(a) && joined.joined_rooms.includes(z));
    assert.equal(joined.total, joined.joined_rooms.length);

    await ok(root.put(`${A}/v1/users/${enc(bob.userId)}/admin`, { admin: true }), 'make admin');
    assert.equal((await ok(root.get(`${A}/v1/users/${enc(bob.userId)}/admin`), 'bob admin')).admin, true);
    assert.equal((await ok(bob.get(`${A}/v1/server_version`), 'bob may now')).server_version.startsWith('Hearth'), true);
    await ok(root.put(`${A}/v1/users/${enc(bob.userId)}/admin`, { admin: false }), 'revoke');
    expectError(await bob.get(`${A}/v1/server_version`), 403, 'M_FORBIDDEN');
    expectError(await root.put(`${A}/v1/users/${enc(bob.userId)}/admin`, {}), 400, 'M_MISSING_PARAM');
  });

  it('deletes a room: members leave, aliases go, block stops rejoining, purge removes it', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat', room_alias_name: 'doomed', visibility: 'public' });
    await ok(bob.post(roomPath(roomId, 'join'), {}), 'bob joins');
    await sendEvent(alice, roomId, 'm.room.message', 'd1', { msgtype: 'm.text', body: 'findable doomed text' }, 'send');
    expectError(await root.req('DELETE', `${A}/v1/rooms/${enc(roomId)}`, { new_room_user_id: root.userId }), 400, 'M_INVALID_PARAM');
    const res = await ok(root.req('DELETE', `${A}/v1/rooms/${enc(roomId)}`, { block: true, purge: true }), 'delete');
    assert.deepEqual(res.kicked_users.sort(), [alice.userId, bob.userId].sort());
    assert.deepEqual(res.failed_to_kick_users, []);
    assert.deepEqual(res.local_aliases, ['#doomed:localhost']);
    expectError(await bob.post(roomPath(roomId, 'join'), {}), 403, 'M_FORBIDDEN');
    expectError(await alice.get(`${V3}/directory/room/${enc('#doomed:localhost')}`), 404, 'M_NOT_FOUND');
    expectError(await root.get(`${A}/v1/rooms/${enc(roomId)}`), 404, 'M_NOT_FOUND');
    const search = await ok(alice.post(`${V3}/search`, { search_categories: { room_events: { search_term: 'findable' } } }), 'search');
    assert.deepEqual(search.search_categories.room_events.results, []);
    const rooms = await ok(root.get(`${A}/v1/rooms?limit=1000`), 'rooms');
    assert.ok(!rooms.rooms.some((r: any) => r.room_id === roomId));
    const sync = await ok(bob.get(`${V3}/sync?timeout=0`), 'sync after delete');
    assert.ok(!(roomId in (sync.rooms?.join ?? {})), 'bob is no longer joined');

    // v2, without purge: the room stays in the database, members are out, status is final.
    const kept = await createRoom(alice, { preset: 'public_chat' });
    const v2 = await ok(root.req('DELETE', `${A}/v2/rooms/${enc(kept)}`, { purge: false }), 'delete v2');
    assert.equal(typeof v2.delete_id, 'string');
    const status = await ok(root.get(`${A}/v2/rooms/delete_status/${v2.delete_id}`), 'status');
    assert.equal(status.status, 'complete');
    assert.deepEqual(status.shutdown_room.kicked_users, [alice.userId]);
    const byRoom = await ok(root.get(`${A}/v2/rooms/${enc(kept)}/delete_status`), 'status by room');
    assert.equal(byRoom.results[0].delete_id, v2.delete_id);
    const details = await ok(root.get(`${A}/v1/rooms/${enc(kept)}`), 'kept details');
    assert.equal(details.joined_members, 0);
    await ok(alice.post(roomPath(kept, 'join'), {}), 'not blocked: alice may rejoin');
    expectError(await root.req('DELETE', `${A}/v1/rooms/${enc('!gone:localhost')}`, {}), 404, 'M_NOT_FOUND');
  });

  it('purge_history removes older messages (local only when asked) and reports completion', async () => {
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    const before = (await ok(alice.get(`${V3}/sync?timeout=0`), 'sync before')).next_batch;
    const old1 = await sendEvent(alice, roomId, 'm.room.message', 'p1', { msgtype: 'm.text', body: 'old one' }, 'send');
    const old2 = await sendEvent(alice, roomId, 'm.room.message', 'p2', { msgtype: 'm.text', body: 'old two' }, 'send');
    const cut = await sendEvent(alice, roomId, 'm.room.message', 'p3', { msgtype: 'm.text', body: 'cut here' }, 'send');
    const keep = await sendEvent(alice, roomId, 'm.room.message', 'p4', { msgtype: 'm.text', body: 'newest' }, 'send');
    const messages = async () =>
      (await ok(alice.get(roomPath(roomId, 'messages?dir=b&limit=50')), 'messages')).chunk.map((e: any) => e.event_id) as string[];

    const noop = await ok(root.post(`${A}/v1/purge_history/${enc(roomId)}`, { purge_up_to_event_id: cut }), 'purge local kept');
    assert.equal(typeof noop.purge_id, 'string');
    assert.ok((await messages()).includes(old1), 'local events stay without delete_local_events');
    const res = await ok(root.post(`${A}/v1/purge_history/${enc(roomId)}/${enc(cut)}`, { delete_local_events: true }), 'purge');
    const left = await messages();
    assert.ok(!left.includes(old1) && !left.includes(old2), 'older messages are gone');
    assert.ok(left.includes(cut) && left.includes(keep), 'the given event and later ones stay');
    assert.ok(left.length >= 4, 'state events stay');
    // /sync must not serve the purged messages from the read model's memory.
    const filter = enc(JSON.stringify({ room: { rooms: [roomId], timeline: { limit: 50 } } }));
    const sync = await ok(alice.get(`${V3}/sync?timeout=0&since=${enc(before)}&filter=${filter}`), 'sync');
    const timeline = sync.rooms.join[roomId].timeline.events.map((e: any) => e.event_id);
    assert.ok(timeline.includes(keep), 'the sync timeline has the newest event');
    assert.ok(!timeline.includes(old1) && !timeline.includes(old2), 'purged messages are not synced');
    assert.deepEqual(await ok(root.get(`${A}/v1/purge_history_status/${res.purge_id}`), 'status'), { status: 'complete' });
    expectError(await root.get(`${A}/v1/purge_history_status/unknown`), 404, 'M_NOT_FOUND');
    expectError(await root.post(`${A}/v1/purge_history/${enc(roomId)}`, {}), 400, 'M_MISSING_PARAM');
    expectError(await root.post(`${A}/v1/purge_history/${enc('!none:localhost')}`, { purge_up_to_ts: 1 }), 404, 'M_NOT_FOUND');
    const byTs = await ok(root.post(`${A}/v1/purge_history/${enc(roomId)}`, { purge_up_to_ts: Date.now() + 60_000, delete_local_events: true }), 'by ts');
    assert.equal(typeof byTs.purge_id, 'string');
    assert.ok((await messages()).includes(keep), 'the forward extremity always stays');
  });
});
