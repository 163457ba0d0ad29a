// POST /rooms/{roomId}/upgrade over real HTTP, against the Client-Server spec "Room Upgrades"
// (server behaviour): the tombstone, the new room's predecessor, the copied state and power
// levels (upgrader raised while copying, then restored), bans, moved aliases and canonical
// alias, the old room's restricted power levels, the directory entry, sync for members, errors,
// rate limiting and /capabilities' m.room_versions.

import { assert } from '../helpers/assert.js';
import { expectError, makeUser, ok, V3, type User } from '../helpers/fixtures.js';
import { enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('POST /rooms/{roomId}/upgrade', function () {
  this.timeout(30000);
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let carol: User;

  before(async () => {
    srv = await startTestServer();
    [alice, bob, carol] = await Promise.all([makeUser(srv, 'alice', 'Alice'), makeUser(srv, 'bob'), makeUser(srv, 'carol')]);
  });
  after(async () => srv.stop());

  const room = (id: string) => `${V3}/rooms/${enc(id)}`;
  async function create(body: Record<string, unknown>, who: User = alice): Promise<string> {
    return (await ok(who.post(`${V3}/createRoom`, body), 'createRoom')).room_id;
  }
  async function state(roomId: string, who: User = alice): Promise<any[]> {
    return ok(who.get(`${room(roomId)}/state`), 'state');
  }
  const find = (events: any[], type: string, stateKey = '') => events.find((e) => e.type === type && e.state_key === stateKey);
  async function upgrade(roomId: string, version: string, who: User = alice): Promise<string> {
    const body = await ok(who.post(`${room(roomId)}/upgrade`, { new_version: version }), 'upgrade');
    assert.match(body.replacement_room, /^!/);
    assert.notEqual(body.replacement_room, roomId);
    return body.replacement_room;
  }
  async function join(roomId: string, who: User): Promise<void> {
    await ok(who.post(`${room(roomId)}/join`, {}), `${who.userId} joins`);
  }
  async function timeline(roomId: string, who: User = alice): Promise<any[]> {
    const r = await ok(who.get(`${room(roomId)}/messages?dir=f&limit=100`), 'messages');
    return r.chunk;
  }

  it('10 -> 11: tombstone in the old room, predecessor (room and tombstone event) in the new one, upgrader joined as creator', async () => {
    const oldId = await create({ room_version: '10', preset: 'public_chat', name: 'Lobby' });
    const newId = await upgrade(oldId, '11');

    const tomb = find(await state(oldId), 'm.room.tombstone');
    assert.ok(tomb, 'old room has m.room.tombstone');
    assert.equal(tomb.sender, alice.userId);
    assert.equal(tomb.content.replacement_room, newId);
    assert.equal(typeof tomb.content.body, 'string');

    const s = await state(newId);
    const createEv = find(s, 'm.room.create');
    assert.equal(createEv.content.room_version, '11');
    assert.equal(createEv.sender, alice.userId);
    assert.equal(createEv.content.creator, undefined, 'v11 create events carry no creator');
    assert.deepEqual(createEv.content.predecessor, { room_id: oldId, event_id: tomb.event_id });
    assert.equal(find(s, 'm.room.member', alice.userId)?.content.membership, 'join');
    assert.equal(find(s, 'm.room.member', alice.userId)?.content.displayname, 'Alice');
    assert.equal(find(s, 'm.room.name')?.content.name, 'Lobby');

    // The tombstone is the old room's last event, and the new room shows up in joined_rooms.
    const old = await timeline(oldId);
    assert.ok(old.findIndex((e) => e.event_id === tomb.event_id) >= 0);
    const joined = (await ok(alice.get(`${V3}/joined_rooms`), 'joined_rooms')).joined_rooms;
    assert.ok(joined.includes(newId), 'new room in joined_rooms');
  });

  it('copies name, topic, avatar, join rules, guest access, history visibility, server ACL, encryption and power levels', async () => {
    const acl = { allow: ['*'], deny: ['evil.example'], allow_ip_literals: false };
    const oldId = await create({
      room_version: '10',
      preset: 'private_chat',
      name: 'Secret',
      topic: 'plans',
      initial_state: [
        { type: 'm.room.avatar', content: { url: 'mxc://localhost/abc' } },
        { type: 'm.room.server_acl', content: acl },
        { type: 'm.room.encryption', content: { algorithm: 'm.megolm.v1.aes-sha2' } },
        { type: 'm.room.history_visibility', content: { history_visibility: 'joined' } },
        { type: 'm.room.guest_access', content: { guest_access: 'forbidden' } },
        { type: 'x.custom.state', content: { keep: 'out' } },
      ],
      power_level_content_override: { users: { [alice.userId]: 100, [bob.userId]: 50 }, events_default: 10, events: { 'm.room.topic': 75, 'm.room.tombstone': 100, 'm.room.power_levels': 100 } },
    });
    const before = await state(oldId);
    const newId = await upgrade(oldId, '11');
    const after = await state(newId);
    for (const type of ['m.room.name', 'm.room.topic', 'm.room.avatar', 'm.room.join_rules', 'm.room.guest_access', 'm.room.history_visibility', 'm.room.server_acl', 'm.room.encryption', 'm.room.power_levels']) {
      assert.deepEqual(find(after, type)?.content, find(before, type)?.content, `${type} copied`);
    }
    assert.equal(find(after, 'x.custom.state'), undefined, 'state outside the list is not copied');
    assert.equal(find(after, 'm.room.join_rules').content.join_rule, 'invite');
    // Memberships are not transferred (only the upgrader's own join).
    assert.equal(find(after, 'm.room.member', bob.userId), undefined);
  });

  it('an absent guest_access stays forbidden in the new room (not the preset default)', async () => {
    const oldId = await create({ room_version: '10', preset: 'public_chat' });
    assert.equal(find(await state(oldId), 'm.room.guest_access'), undefined);
    const newId = await upgrade(oldId, '11');
    assert.equal(find(await state(newId), 'm.room.guest_access')?.content.guest_access, 'forbidden');
  });

  it('a moderator allowed to tombstone is raised to copy the state, then gets their own level back', async () => {
    const levels = {
      users: { [alice.userId]: 100, [bob.userId]: 60 },
      state_default: 50,
      events: { 'm.room.tombstone': 60, 'm.room.power_levels': 100, 'm.room.history_visibility': 100, 'm.room.server_acl': 90 },
    };
    const oldId = await create({ room_version: '10', preset: 'public_chat', power_level_content_override: levels });
    await join(oldId, bob);
    const oldPl = find(await state(oldId), 'm.room.power_levels').content;

    const newId = await upgrade(oldId, '11', bob);
    const pls = (await timeline(newId, bob)).filter((e) => e.type === 'm.room.power_levels');
    assert.equal(pls.length, 2, 'raised levels first, then the restored ones');
    assert.equal(pls[0].content.users[bob.userId], 100, 'raised to the highest level any copied event needs');
    assert.deepEqual(pls[1].content, oldPl, 'the final levels are the old room\'s');
    assert.equal(find(await state(newId, bob), 'm.room.create').sender, bob.userId);
    // Bob (60) cannot lower Alice (100), and the copy did not have to.
    assert.equal(pls[1].content.users[alice.userId], 100);
  });

  it('copies bans, so a banned user cannot follow the tombstone', async () => {
    const oldId = await create({ room_version: '10', preset: 'public_chat' });
    await join(oldId, carol);
    await ok(alice.post(`${room(oldId)}/ban`, { user_id: carol.userId, reason: 'spam' }), 'ban');
    const newId = await upgrade(oldId, '11');
    const ban = find(await state(newId), 'm.room.member', carol.userId);
    assert.equal(ban?.content.membership, 'ban');
    assert.equal(ban?.content.reason, 'spam');
    expectError(await carol.post(`${room(newId)}/join`, {}), 403, 'M_FORBIDDEN');
  });

  it('a ban the upgrader cannot repeat (the banned user outranks them) is skipped; the upgrade goes through', async () => {
    const levels = { users: { [alice.userId]: 100, [bob.userId]: 60 }, events: { 'm.room.tombstone': 60, 'm.room.power_levels': 100 } };
    const oldId = await create({ room_version: '10', preset: 'public_chat', power_level_content_override: levels });
    await join(oldId, bob);
    await join(oldId, carol);
    await ok(alice.post(`${room(oldId)}/ban`, { user_id: carol.userId }), 'ban');
    const pl = find(await state(oldId), 'm.room.power_levels').content;
    await ok(alice.put(`${room(oldId)}/state/m.room.power_levels`, { ...pl, users: { ...pl.users, [carol.userId]: 100 } }), 'carol promoted while banned');

    const newId = await upgrade(oldId, '11', bob);
    const s = await state(newId, bob);
    assert.equal(find(s, 'm.room.member', carol.userId), undefined, 'bob (raised to 100) cannot ban a 100');
    assert.equal(find(s, 'm.room.power_levels').content.users[carol.userId], 100, 'levels copied all the same');
    assert.equal(find(await state(oldId), 'm.room.tombstone')?.content.replacement_room, newId);
  });

  it('moves local aliases and the canonical alias to the new room', async () => {
    const oldId = await create({ room_version: '10', preset: 'public_chat', room_alias_name: 'upg-main' });
    await ok(alice.put(`${V3}/directory/room/${enc('#upg-alt:localhost')}`, { room_id: oldId }), 'alt alias');
    await ok(alice.put(`${room(oldId)}/state/m.room.canonical_alias`, { alias: '#upg-main:localhost', alt_aliases: ['#upg-alt:localhost'] }), 'canonical alias');

    const newId = await upgrade(oldId, '11');
    for (const a of ['#upg-main:localhost', '#upg-alt:localhost']) {
      const r = await ok(alice.get(`${V3}/directory/room/${enc(a)}`), `resolve ${a}`);
      assert.equal(r.room_id, newId, `${a} points at the new room`);
    }
    assert.deepEqual((await ok(alice.get(`${room(oldId)}/aliases`), 'old aliases')).aliases, []);
    assert.deepEqual((await ok(alice.get(`${room(newId)}/aliases`), 'new aliases')).aliases.sort(), ['#upg-alt:localhost', '#upg-main:localhost']);
    assert.deepEqual(find(await state(newId), 'm.room.canonical_alias')?.content, { alias: '#upg-main:localhost', alt_aliases: ['#upg-alt:localhost'] });
    assert.deepEqual(find(await state(oldId), 'm.room.canonical_alias')?.content, {}, 'the old room no longer advertises them');
    // Joining by alias now lands in the new room.
    assert.equal((await ok(bob.post(`${V3}/join/${enc('#upg-main:localhost')}`, {}), 'join by alias')).room_id, newId);
  });

  it('restricts the old room: events_default and invite rise to 50, so members stop chatting there', async () => {
    const oldId = await create({ room_version: '10', preset: 'public_chat' });
    await join(oldId, bob);
    await ok(bob.put(`${room(oldId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'before' }), 'bob talks');
    await upgrade(oldId, '11');
    const pl = find(await state(oldId), 'm.room.power_levels').content;
    assert.equal(pl.events_default, 50);
    assert.equal(pl.invite, 50);
    expectError(await bob.put(`${room(oldId)}/send/m.room.message/t2`, { msgtype: 'm.text', body: 'after' }), 403, 'M_FORBIDDEN');
    expectError(await bob.post(`${room(oldId)}/invite`, { user_id: carol.userId }), 403, 'M_FORBIDDEN');
  });

  it('with users_default 50 the old room needs 51', async () => {
    const oldId = await create({ room_version: '10', preset: 'public_chat', power_level_content_override: { users_default: 50 } });
    await upgrade(oldId, '11');
    const pl = find(await state(oldId), 'm.room.power_levels').content;
    assert.equal(pl.events_default, 51);
    assert.equal(pl.invite, 51);
  });

  it('members get m.room.tombstone in /sync and can follow it into a public room', async () => {
    const oldId = await create({ room_version: '10', preset: 'public_chat' });
    await join(oldId, bob);
    const since = (await ok(bob.get(`${V3}/sync?timeout=0`), 'initial sync')).next_batch;
    const newId = await upgrade(oldId, '11');
    const sync = await ok(bob.get(`${V3}/sync?timeout=0&since=${enc(since)}`), 'incremental sync');
    const events: any[] = sync.rooms.join[oldId].timeline.events;
    const tomb = events.find((e) => e.type === 'm.room.tombstone');
    assert.ok(tomb, 'the tombstone arrives in the old room\'s timeline');
    assert.equal(tomb.state_key, '');
    assert.equal(tomb.content.replacement_room, newId);
    await join(tomb.content.replacement_room, bob);
    await ok(bob.put(`${room(newId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'here now' }), 'bob talks in the new room');
  });

  it('a long poll waiting on the old room wakes for the tombstone', async () => {
    const oldId = await create({ room_version: '10', preset: 'public_chat' });
    await join(oldId, bob);
    const since = (await ok(bob.get(`${V3}/sync?timeout=0`), 'initial sync')).next_batch;
    const poll = bob.get(`${V3}/sync?timeout=10000&since=${enc(since)}`);
    await new Promise((r) => setTimeout(r, 100));
    const newId = await upgrade(oldId, '11');
    const sync = await ok(poll, 'long poll');
    const seen = (sync.rooms?.join?.[oldId]?.timeline.events ?? []).map((e: any) => e.type);
    // The poll may return at the first event of the upgrade; a second one then has the rest.
    if (!seen.includes('m.room.tombstone')) {
      const next = await ok(bob.get(`${V3}/sync?timeout=5000&since=${enc(sync.next_batch)}`), 'second poll');
      seen.push(...next.rooms.join[oldId].timeline.events.map((e: any) => e.type));
    }
    assert.ok(seen.includes('m.room.tombstone'), JSON.stringify(seen));
    assert.ok(newId);
  });

  it('tags and per-room push rules carry over when a member joins the new room (and for the upgrader at once)', async () => {
    const oldId = await create({ room_version: '10', preset: 'public_chat' });
    await join(oldId, bob);
    const tag = (who: User, id: string) => `${V3}/user/${enc(who.userId)}/rooms/${enc(id)}/tags`;
    const rule = (kind: string, id: string) => `${V3}/pushrules/global/${kind}/${enc(id)}`;
    await ok(bob.put(`${tag(bob, oldId)}/u.work`, { order: 0.25 }), 'bob tags');
    await ok(alice.put(`${tag(alice, oldId)}/m.favourite`, {}), 'alice tags');
    await ok(bob.put(rule('room', oldId), { actions: ['notify', { set_tweak: 'sound', value: 'default' }] }), 'room rule');
    await ok(bob.put(rule('override', oldId), { actions: [], conditions: [{ kind: 'event_match', key: 'room_id', pattern: oldId }] }), 'mute rule');
    // Carol was never in the old room: joining the new one gives her nothing of the kind.
    await ok(carol.put(rule('room', '!unrelated:localhost'), { actions: ['notify'] }), 'carol rule');

    const newId = await upgrade(oldId, '11');
    assert.deepEqual((await ok(alice.get(tag(alice, newId)), 'alice tags')).tags, { 'm.favourite': {} }, 'the upgrader\'s tags move at once');
    await join(newId, bob);
    assert.deepEqual((await ok(bob.get(tag(bob, newId)), 'bob tags')).tags, { 'u.work': { order: 0.25 } });
    const roomRule = await ok(bob.get(rule('room', newId)), 'room rule copied');
    assert.deepEqual(roomRule.actions, ['notify', { set_tweak: 'sound', value: 'default' }]);
    const mute = await ok(bob.get(rule('override', newId)), 'mute copied');
    assert.deepEqual(mute.conditions, [{ kind: 'event_match', key: 'room_id', pattern: newId }]);
    assert.deepEqual(mute.actions, []);
    // The old room's rules stay; joining again does not duplicate anything.
    await ok(bob.get(rule('room', oldId)), 'old rule kept');
    await join(newId, bob);
    const all = await ok(bob.get(`${V3}/pushrules/`), 'all rules');
    assert.equal(all.global.room.filter((r: any) => r.rule_id === newId).length, 1);

    await join(newId, carol);
    expectError(await carol.get(rule('room', newId)), 404, 'M_NOT_FOUND');
    assert.deepEqual((await ok(carol.get(tag(carol, newId)), 'carol tags')).tags, {});
  });

  it('a direct chat stays direct: the new room joins the old one in m.direct, for the upgrader and for members who follow', async () => {
    // Public, so bob can follow the tombstone without a new invite.
    const oldId = await create({ room_version: '10', preset: 'public_chat', is_direct: true, invite: [bob.userId] });
    await join(oldId, bob);
    const direct = (who: User) => `${V3}/user/${enc(who.userId)}/account_data/m.direct`;
    await ok(alice.put(direct(alice), { [bob.userId]: [oldId], '@someone:localhost': ['!other:localhost'] }), 'alice m.direct');
    await ok(bob.put(direct(bob), { [alice.userId]: [oldId] }), 'bob m.direct');
    const newId = await upgrade(oldId, '11');
    assert.deepEqual(await ok(alice.get(direct(alice)), 'alice after'), { [bob.userId]: [oldId, newId], '@someone:localhost': ['!other:localhost'] });
    assert.deepEqual(await ok(bob.get(direct(bob)), 'bob before joining'), { [alice.userId]: [oldId] });
    await join(newId, bob);
    assert.deepEqual(await ok(bob.get(direct(bob)), 'bob after'), { [alice.userId]: [oldId, newId] });
    await join(newId, bob);
    assert.deepEqual(await ok(bob.get(direct(bob)), 'bob again'), { [alice.userId]: [oldId, newId] }, 'not added twice');
  });

  it('moves the room directory entry', async () => {
    const oldId = await create({ room_version: '10', preset: 'public_chat', visibility: 'public', name: 'Listed' });
    const newId = await upgrade(oldId, '11');
    assert.equal((await ok(alice.get(`${V3}/directory/list/room/${enc(newId)}`), 'new')).visibility, 'public');
    assert.equal((await ok(alice.get(`${V3}/directory/list/room/${enc(oldId)}`), 'old')).visibility, 'private');
    const listed = (await ok(alice.get(`${V3}/publicRooms`), 'publicRooms')).chunk.map((c: any) => c.room_id);
    assert.ok(listed.includes(newId), 'new room listed');
    assert.ok(!listed.includes(oldId), 'old room unlisted');
  });

  it('a space stays a space and keeps its children', async () => {
    const child = await create({ room_version: '10' });
    const oldId = await create({
      room_version: '10',
      creation_content: { type: 'm.space' },
      initial_state: [
        { type: 'm.space.child', state_key: child, content: { via: ['localhost'] } },
        { type: 'm.space.child', state_key: '!gone:localhost', content: {} },
      ],
    });
    const newId = await upgrade(oldId, '11');
    const s = await state(newId);
    assert.equal(find(s, 'm.room.create').content.type, 'm.space');
    assert.deepEqual(find(s, 'm.space.child', child)?.content, { via: ['localhost'] });
    assert.equal(find(s, 'm.space.child', '!gone:localhost'), undefined, 'removed children stay removed');
  });

  it('a room without a type gets none; m.federate false is kept', async () => {
    const oldId = await create({ room_version: '10', creation_content: { 'm.federate': false } });
    const newId = await upgrade(oldId, '11');
    const c = find(await state(newId), 'm.room.create').content;
    assert.equal(c.type, undefined);
    assert.equal(c['m.federate'], false);
  });

  it('a room can be upgraded along a chain; each tombstone names the next room', async () => {
    const first = await create({ room_version: '10', preset: 'public_chat' });
    const second = await upgrade(first, '11');
    const third = await upgrade(second, '11');
    assert.equal(find(await state(second), 'm.room.tombstone').content.replacement_room, third);
    assert.equal(find(await state(third), 'm.room.create').content.predecessor.room_id, second);
  });

  it('a repeated request while the upgrade runs gets the same replacement room; another user\'s concurrent upgrade is refused', async () => {
    const oldId = await create({ room_version: '10', preset: 'public_chat', power_level_content_override: { users: { [alice.userId]: 100, [bob.userId]: 100 } } });
    await join(oldId, bob);
    // Through the service, so both calls are certainly in flight together.
    const upgrades = srv.hearth.services.upgrades;
    const [a, b] = await Promise.all([upgrades.upgrade(alice, oldId, '11'), upgrades.upgrade(alice, oldId, '11')]);
    assert.equal(a, b);
    const first = upgrades.upgrade(alice, oldId, '11');
    await assert.rejects(upgrades.upgrade(bob, oldId, '11'), (err: any) => err.errcode === 'M_UNKNOWN' && err.status === 400);
    await assert.rejects(upgrades.upgrade(alice, oldId, '10'), (err: any) => err.errcode === 'M_UNKNOWN', 'another version at once is refused too');
    const c = await first;
    assert.notEqual(c, a, 'once finished, a room may be upgraded again (the spec allows it)');
    // ... and the newest tombstone wins.
    const d = await upgrade(oldId, '11', bob);
    assert.equal(find(await state(oldId), 'm.room.tombstone').content.replacement_room, d);
  });

  describe('to and from room version 12 (privileged creators, room IDs from the create event)', () => {
    const levelsOf = async (roomId: string, who: User = alice) => find(await state(roomId, who), 'm.room.power_levels').content;

    it('11 -> 12: the room ID is the create event\'s hash, predecessor names the room only, the upgrader is creator and not in users', async () => {
      const oldId = await create({ room_version: '11', preset: 'public_chat', name: 'Twelve', power_level_content_override: { users: { [alice.userId]: 100, [bob.userId]: 50 } } });
      await join(oldId, bob);
      const newId = await upgrade(oldId, '12');
      assert.match(newId, /^![A-Za-z0-9_-]{43}$/, 'v12 room IDs have no server part');
      assert.equal(find(await state(oldId), 'm.room.tombstone').content.replacement_room, newId);

      const s = await state(newId);
      const c = find(s, 'm.room.create');
      assert.equal(c.sender, alice.userId);
      assert.equal(c.content.room_version, '12');
      assert.deepEqual(c.content.predecessor, { room_id: oldId }, 'no event_id: the tombstone names this room, so it cannot be cited');
      assert.equal(c.content.additional_creators, undefined);
      const pl = find(s, 'm.room.power_levels').content;
      assert.equal(pl.users[alice.userId], undefined, 'creators are never listed');
      assert.equal(pl.users[bob.userId], 50, 'everyone else keeps their level');
      assert.equal(pl.events['m.room.tombstone'], 100, 'already above state_default: kept');
      assert.equal(find(s, 'm.room.name')?.content.name, 'Twelve');
      const pls = (await timeline(newId)).filter((e) => e.type === 'm.room.power_levels');
      assert.equal(pls.length, 1, 'a creator needs no temporary raise');
      // Alice's power is the creator's: she may give bob more than 100.
      await ok(alice.put(`${room(newId)}/state/m.room.power_levels`, { ...pl, users: { [bob.userId]: 500 } }), 'creator sets 500');
    });

    it('a tombstone level not above state_default is raised to 150 in the v12 room (spec: createRoom for v12)', async () => {
      const oldId = await create({ room_version: '11', preset: 'public_chat', power_level_content_override: { events: { 'm.room.name': 50 } } });
      const newId = await upgrade(oldId, '12');
      assert.deepEqual((await levelsOf(newId)).events, { 'm.room.name': 50, 'm.room.tombstone': 150 });
      const upTo11 = await upgrade(oldId, '11');
      assert.deepEqual((await levelsOf(upTo11)).events, { 'm.room.name': 50 }, 'earlier versions copy it unchanged');
    });

    it('a moderator with the tombstone level becomes the v12 creator; the old creator keeps their listed level', async () => {
      const oldId = await create({ room_version: '11', preset: 'public_chat', power_level_content_override: { users: { [alice.userId]: 100, [bob.userId]: 60 }, events: { 'm.room.tombstone': 60 } } });
      await join(oldId, bob);
      const newId = await upgrade(oldId, '12', bob);
      const c = find(await state(newId, bob), 'm.room.create');
      assert.equal(c.sender, bob.userId);
      const pl = await levelsOf(newId, bob);
      assert.deepEqual(pl.users, { [alice.userId]: 100 });
      assert.equal(pl.events['m.room.tombstone'], 60, 'a tombstone level above state_default is kept');
    });

    it('additional_creators: become co-creators in v12, are refused when not user IDs, and are ignored for earlier versions', async () => {
      const oldId = await create({ room_version: '11', preset: 'public_chat', power_level_content_override: { users: { [alice.userId]: 100, [carol.userId]: 40 } } });
      expectError(await alice.post(`${room(oldId)}/upgrade`, { new_version: '12', additional_creators: ['not-a-user'] }), 400, 'M_BAD_JSON');
      assert.equal(find(await state(oldId), 'm.room.tombstone'), undefined, 'nothing written');

      const eleven = (await ok(alice.post(`${room(oldId)}/upgrade`, { new_version: '11', additional_creators: [carol.userId] }), 'upgrade to 11')).replacement_room;
      assert.equal(find(await state(eleven), 'm.room.create').content.additional_creators, undefined);

      const twelve = (await ok(alice.post(`${room(eleven)}/upgrade`, { new_version: '12', additional_creators: [carol.userId, carol.userId, alice.userId] }), 'upgrade to 12')).replacement_room;
      assert.deepEqual(find(await state(twelve), 'm.room.create').content.additional_creators, [carol.userId]);
      const pl = await levelsOf(twelve);
      assert.equal(pl.users[carol.userId], undefined, 'co-creators are not listed either');
      assert.equal(pl.users[alice.userId], undefined);
      await join(twelve, carol);
      // Carol, a creator, outranks everyone: she may upgrade the room herself (tombstone 150).
      await upgrade(twelve, '12', carol);
    });

    it('12 -> 12 moves creatorship: the old creator is not carried over unless named again', async () => {
      const oldId = await create({ room_version: '12', preset: 'public_chat' });
      await join(oldId, bob);
      const pl0 = await levelsOf(oldId);
      await ok(alice.put(`${room(oldId)}/state/m.room.power_levels`, { ...pl0, users: { ...pl0.users, [bob.userId]: 150 } }), 'bob to 150');
      const newId = await upgrade(oldId, '12', bob);
      const c = find(await state(newId, bob), 'm.room.create');
      assert.equal(c.sender, bob.userId);
      assert.equal(c.content.additional_creators, undefined);
      const pl = await levelsOf(newId, bob);
      assert.equal(pl.users[bob.userId], undefined);
      assert.equal(pl.users[alice.userId], undefined, 'alice was a creator, not a listed user');
    });

    it('12 -> 11: creators keep their power as the room\'s top level', async () => {
      const oldId = await create({ room_version: '12', preset: 'public_chat', power_level_content_override: { users: { [bob.userId]: 120 } } });
      const oldPl = await levelsOf(oldId);
      assert.equal(oldPl.events['m.room.tombstone'], 150, 'v12 createRoom: only creators may tombstone');
      const newId = await upgrade(oldId, '11');
      const pl = await levelsOf(newId);
      assert.equal(pl.users[alice.userId], 150, 'above everyone listed (bob, 120) and able to send anything (tombstone 150)');
      assert.equal(pl.users[bob.userId], 120);
      assert.equal(find(await state(newId), 'm.room.create').content.creator, undefined);
      await ok(alice.put(`${room(newId)}/state/m.room.topic`, { topic: 'still in charge' }), 'alice sends state');
    });

    it('12 -> 11 where a user outranks every event level: the creator goes one above them', async () => {
      const oldId = await create({ room_version: '12', preset: 'public_chat', power_level_content_override: { users: { [bob.userId]: 300 } } });
      const pl = await levelsOf(await upgrade(oldId, '11'));
      assert.deepEqual(pl.users, { [alice.userId]: 301, [bob.userId]: 300 });
    });

    it('a v12 room can be upgraded by its creator with no power_levels entry at all', async () => {
      const oldId = await create({ room_version: '12', preset: 'private_chat', name: 'v12 first' });
      assert.equal((await levelsOf(oldId)).users[alice.userId], undefined);
      const newId = await upgrade(oldId, '12');
      assert.equal(find(await state(newId), 'm.room.name')?.content.name, 'v12 first');
      assert.deepEqual(find(await state(newId), 'm.room.create').content.predecessor, { room_id: oldId });
    });
  });

  describe('errors', () => {
    let roomId: string;
    before(async () => {
      roomId = await create({ room_version: '10', preset: 'public_chat' });
      await join(roomId, bob);
    });

    it('unknown version: 400 M_UNSUPPORTED_ROOM_VERSION, nothing written', async () => {
      for (const v of ['9999', 'org.example.custom', '1.5']) {
        expectError(await alice.post(`${room(roomId)}/upgrade`, { new_version: v }), 400, 'M_UNSUPPORTED_ROOM_VERSION');
      }
      assert.equal(find(await state(roomId), 'm.room.tombstone'), undefined);
    });

    it('a member without the tombstone level: 403 M_FORBIDDEN and no new room', async () => {
      const before = (await ok(bob.get(`${V3}/joined_rooms`), 'joined')).joined_rooms.length;
      expectError(await bob.post(`${room(roomId)}/upgrade`, { new_version: '11' }), 403, 'M_FORBIDDEN');
      assert.equal((await ok(bob.get(`${V3}/joined_rooms`), 'joined')).joined_rooms.length, before, 'no room created for bob');
      assert.equal(find(await state(roomId), 'm.room.tombstone'), undefined);
    });

    it('not in the room: 403 M_FORBIDDEN; no such room: 404 M_NOT_FOUND (as Synapse)', async () => {
      expectError(await carol.post(`${room(roomId)}/upgrade`, { new_version: '11' }), 403, 'M_FORBIDDEN');
      expectError(await alice.post(`${room('!nope:localhost')}/upgrade`, { new_version: '11' }), 404, 'M_NOT_FOUND');
      expectError(await alice.post(`${room('!fail:unknown')}/upgrade`, { new_version: '11' }), 404, 'M_NOT_FOUND');
      // A member who left may not upgrade either.
      const left = await create({ room_version: '10' });
      await ok(alice.post(`${room(left)}/leave`, {}), 'leave');
      expectError(await alice.post(`${room(left)}/upgrade`, { new_version: '11' }), 403, 'M_FORBIDDEN');
    });

    it('bad bodies: 400', async () => {
      expectError(await alice.post(`${room(roomId)}/upgrade`, {}), 400, 'M_MISSING_PARAM');
      expectError(await alice.post(`${room(roomId)}/upgrade`, { new_version: 11 }), 400, 'M_BAD_JSON');
      expectError(await alice.post(`${room(roomId)}/upgrade`, { new_version: '' }), 400, 'M_BAD_JSON');
      expectError(await alice.post(`${room(roomId)}/upgrade`, { new_version: 'x'.repeat(100) }), 400, 'M_BAD_JSON');
      expectError(await alice.post(`${room(roomId)}/upgrade`, '[1,2]'), 400, 'M_BAD_JSON');
      expectError(await alice.post(`${room(roomId)}/upgrade`, '{"new_version":'), 400, 'M_NOT_JSON');
      expectError(await alice.post(`${room(roomId)}/upgrade`, { new_version: '11', additional_creators: 'me' }), 400, 'M_BAD_JSON');
      // Prototype keys are data, never a way around the schema.
      expectError(await alice.post(`${room(roomId)}/upgrade`, '{"__proto__":{"new_version":"11"}}'), 400, 'M_MISSING_PARAM');
      expectError(await alice.post(`${room(roomId)}/upgrade`, '{"new_version":{"__proto__":{"x":1}}}'), 400, 'M_BAD_JSON');
      expectError(await alice.post(`${room(roomId)}/upgrade`, '{"new_version":"11","additional_creators":[{"__proto__":{}}]}'), 400, 'M_BAD_JSON');
      assert.equal(find(await state(roomId), 'm.room.tombstone'), undefined);
    });

    it('no access token: 401 M_MISSING_TOKEN', async () => {
      const r = await fetch(`${srv.url}${room(roomId)}/upgrade`, { method: 'POST', body: '{"new_version":"11"}', headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 401);
      assert.equal((await r.json()).errcode, 'M_MISSING_TOKEN');
    });
  });

  it('/capabilities m.room_versions: the default is available, and every available version can be upgraded to', async () => {
    const caps = (await ok(alice.get(`${V3}/capabilities`), 'capabilities')).capabilities['m.room_versions'];
    assert.equal(typeof caps.default, 'string');
    assert.equal(caps.available[caps.default], 'stable', 'the default version is available and stable');
    const versions = Object.keys(caps.available);
    assert.ok(versions.length > 1, 'more than one version');
    for (const v of versions) {
      assert.equal(caps.available[v], 'stable');
      const oldId = await create({ preset: 'public_chat' });
      const newId = await upgrade(oldId, v);
      assert.equal(find(await state(newId), 'm.room.create').content.room_version, v, `upgraded to ${v}`);
    }
    // A room created without room_version gets the advertised default.
    const plain = await create({});
    assert.equal(find(await state(plain), 'm.room.create').content.room_version, caps.default);
  });
});

describe('POST /rooms/{roomId}/upgrade rate limit', function () {
  this.timeout(30000);
  let srv: TestServer;
  after(async () => srv?.stop());

  it('spends from the write limit: past the burst, 429 M_LIMIT_EXCEEDED', async () => {
    srv = await startTestServer({ limits: { rate_limits: { enabled: true, write: { per_second: 0.01, burst: 3 } } } });
    const alice = await makeUser(srv, 'alice');
    const roomId = (await ok(alice.post(`${V3}/createRoom`, { room_version: '10' }), 'createRoom')).room_id;
    const seen: number[] = [];
    for (let i = 0; i < 4; i++) seen.push((await alice.post(`${V3}/rooms/${enc(roomId)}/upgrade`, { new_version: '11' })).status);
    assert.deepEqual(seen.slice(0, 3), [200, 200, 200]);
    assert.equal(seen[3], 429);
  });
});
