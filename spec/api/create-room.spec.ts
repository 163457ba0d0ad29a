// POST /createRoom over real HTTP, checked against the Matrix Client-Server API v1.12
// ("Creation" of rooms: presets, initial_state, aliases, power level overrides, room versions)
// and the v10/v11 room version specs (create event `creator`, event ID format, hashes).

import { assert } from '../helpers/assert.js';
import { createHash } from 'node:crypto';
import { V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

/** Canonical JSON (spec appendix): sorted keys, no insignificant whitespace. */
function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(',')}}`;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** v11 redaction algorithm, enough for m.room.create (content kept) and m.room.message (content dropped). */
function redactV11(pdu: Record<string, any>): Record<string, any> {
  const keep = ['event_id', 'type', 'room_id', 'sender', 'state_key', 'content', 'hashes', 'signatures', 'depth', 'prev_events', 'auth_events', 'origin_server_ts'];
  const out: Record<string, any> = {};
  for (const k of keep) if (k in pdu) out[k] = pdu[k];
  if (pdu.type !== 'm.room.create') out.content = {};
  return out;
}

describe('POST /createRoom', function () {
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

  async function create(body: Record<string, unknown>, who: User = alice): Promise<string> {
    const r = await who.post(`${V3}/createRoom`, body);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // The default version is 12, whose room IDs are a hash with no server part.
    if (body.room_version === undefined || body.room_version === '12') assert.match(r.body.room_id, /^![A-Za-z0-9_-]{43}$/);
    else assert.match(r.body.room_id, /^!.+:localhost$/);
    return r.body.room_id as string;
  }
  async function state(roomId: string, who: User = alice): Promise<any[]> {
    const r = await who.get(`${V3}/rooms/${enc(roomId)}/state`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  }
  const find = (events: any[], type: string, stateKey = '') => events.find((e) => e.type === type && e.state_key === stateKey);

  it('public_chat preset: join_rules public, history_visibility shared', async () => {
    const roomId = await create({ preset: 'public_chat' });
    const s = await state(roomId);
    assert.equal(find(s, 'm.room.join_rules')?.content.join_rule, 'public');
    assert.equal(find(s, 'm.room.history_visibility')?.content.history_visibility, 'shared');
    const ga = find(s, 'm.room.guest_access');
    assert.ok(!ga || ga.content.guest_access === 'forbidden', 'public_chat must not allow guests');
    // Anyone can join a public room without an invite.
    const j = await bob.post(`${V3}/rooms/${enc(roomId)}/join`, {});
    assert.equal(j.status, 200, JSON.stringify(j.body));
  });

  it('private_chat preset: join_rules invite, guest_access can_join; a non-invited user cannot join', async () => {
    const roomId = await create({ preset: 'private_chat' });
    const s = await state(roomId);
    assert.equal(find(s, 'm.room.join_rules')?.content.join_rule, 'invite');
    assert.equal(find(s, 'm.room.history_visibility')?.content.history_visibility, 'shared');
    assert.equal(find(s, 'm.room.guest_access')?.content.guest_access, 'can_join');
    const j = await bob.post(`${V3}/rooms/${enc(roomId)}/join`, {});
    assert.equal(j.status, 403, JSON.stringify(j.body));
    assert.equal(j.body.errcode, 'M_FORBIDDEN');
  });

  it('without a preset, visibility decides: public → public_chat, default → private_chat', async () => {
    const pub = await create({ visibility: 'public' });
    assert.equal(find(await state(pub), 'm.room.join_rules')?.content.join_rule, 'public');
    const priv = await create({});
    assert.equal(find(await state(priv), 'm.room.join_rules')?.content.join_rule, 'invite');
  });

  it('trusted_private_chat preset (v11): join_rules invite and invitees get the creator\'s power level (100)', async () => {
    const roomId = await create({ preset: 'trusted_private_chat', invite: [bob.userId], room_version: '11' });
    const s = await state(roomId);
    assert.equal(find(s, 'm.room.join_rules')?.content.join_rule, 'invite');
    const pl = find(s, 'm.room.power_levels').content;
    assert.equal(pl.users[alice.userId], 100);
    assert.equal(pl.users[bob.userId], 100);
    assert.equal(find(s, 'm.room.create').content.additional_creators, undefined);
    // And the power is real: after joining, bob may change the room name.
    assert.equal((await bob.post(`${V3}/rooms/${enc(roomId)}/join`, {})).status, 200);
    const put = await bob.put(`${V3}/rooms/${enc(roomId)}/state/m.room.name`, { name: 'bob was here' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
  });

  it('trusted_private_chat preset (v12 default): invitees become additional creators, outside power_levels.users', async () => {
    const roomId = await create({ preset: 'trusted_private_chat', invite: [bob.userId], creation_content: { additional_creators: [bob.userId] } });
    const s = await state(roomId);
    assert.equal(find(s, 'm.room.join_rules')?.content.join_rule, 'invite');
    assert.deepEqual(find(s, 'm.room.create').content.additional_creators, [bob.userId], 'deduplicated with creation_content');
    const pl = find(s, 'm.room.power_levels').content;
    assert.equal(pl.users[alice.userId], undefined, 'v12: creators have infinite power and are not listed');
    assert.equal(pl.users[bob.userId], undefined);
    assert.equal(pl.events['m.room.tombstone'], 150, 'v12: tombstones need more than any listed user can have');
    // And the power is real: after joining, bob may change the room name.
    assert.equal((await bob.post(`${V3}/rooms/${enc(roomId)}/join`, {})).status, 200);
    const put = await bob.put(`${V3}/rooms/${enc(roomId)}/state/m.room.name`, { name: 'bob was here' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
  });

  it('private_chat does not raise invitees\' power level', async () => {
    const roomId = await create({ preset: 'private_chat', invite: [bob.userId] });
    const pl = find(await state(roomId), 'm.room.power_levels').content;
    assert.equal(pl.users[bob.userId], undefined);
    assert.equal(pl.users_default ?? 0, 0);
  });

  it('invite + is_direct: the invite member event carries is_direct: true and the invitee sees it in /sync', async () => {
    const roomId = await create({ preset: 'trusted_private_chat', invite: [bob.userId], is_direct: true });
    const s = await state(roomId);
    const inv = find(s, 'm.room.member', bob.userId);
    assert.ok(inv, 'invite member event in state');
    assert.equal(inv.content.membership, 'invite');
    assert.equal(inv.content.is_direct, true);
    assert.equal(inv.sender, alice.userId);
    const sync = await bob.get(`${V3}/sync?timeout=0`);
    const room = sync.body.rooms.invite[roomId];
    assert.ok(room, 'room in rooms.invite');
    const own = room.invite_state.events.find((e: any) => e.type === 'm.room.member' && e.state_key === bob.userId);
    assert.equal(own.content.is_direct, true);
  });

  it('without is_direct the invite carries no is_direct flag', async () => {
    const roomId = await create({ invite: [bob.userId] });
    const inv = find(await state(roomId), 'm.room.member', bob.userId);
    assert.equal(inv.content.membership, 'invite');
    assert.notEqual(inv.content.is_direct, true);
  });

  it('initial_state (m.room.encryption) appears in state and overrides preset defaults', async () => {
    const roomId = await create({
      preset: 'private_chat',
      initial_state: [
        { type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } },
        { type: 'm.room.history_visibility', content: { history_visibility: 'joined' } },
        { type: 'org.example.custom', state_key: 'k', content: { x: 1 } },
      ],
    });
    const s = await state(roomId);
    assert.deepEqual(find(s, 'm.room.encryption')?.content, { algorithm: 'm.megolm.v1.aes-sha2' });
    assert.equal(find(s, 'm.room.history_visibility')?.content.history_visibility, 'joined');
    assert.equal(s.filter((e) => e.type === 'm.room.history_visibility').length, 1);
    assert.deepEqual(find(s, 'org.example.custom', 'k')?.content, { x: 1 });
  });

  it('name and topic keys set state and take precedence over initial_state', async () => {
    const roomId = await create({
      name: 'The Name',
      topic: 'The Topic',
      initial_state: [{ type: 'm.room.name', state_key: '', content: { name: 'from initial_state' } }],
    });
    const s = await state(roomId);
    assert.equal(find(s, 'm.room.name')?.content.name, 'The Name');
    assert.equal(find(s, 'm.room.topic')?.content.topic, 'The Topic');
    const n = await alice.get(`${V3}/rooms/${enc(roomId)}/state/m.room.name`);
    assert.deepEqual(n.body, { name: 'The Name' });
  });

  it('room_alias_name creates #alias:localhost, resolvable through the directory, and sets m.room.canonical_alias', async () => {
    const roomId = await create({ preset: 'public_chat', room_alias_name: 'lobby' });
    const r = await api.get(`${V3}/directory/room/${enc('#lobby:localhost')}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.room_id, roomId);
    assert.ok(Array.isArray(r.body.servers) && r.body.servers.includes('localhost'));
    const ca = find(await state(roomId), 'm.room.canonical_alias');
    assert.equal(ca?.content.alias, '#lobby:localhost');
  });

  it('a taken alias is refused with 400 M_ROOM_IN_USE and creates no room', async () => {
    await create({ room_alias_name: 'taken' });
    const before = (await bob.get(`${V3}/joined_rooms`)).body.joined_rooms.length;
    const r = await bob.post(`${V3}/createRoom`, { room_alias_name: 'taken' });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.errcode, 'M_ROOM_IN_USE');
    assert.equal((await bob.get(`${V3}/joined_rooms`)).body.joined_rooms.length, before);
  });

  it('two concurrent requests for the same alias: one room gets it, the other request gets 400 M_ROOM_IN_USE', async () => {
    const count = async (u: User) => (await u.get(`${V3}/joined_rooms`)).body.joined_rooms.length as number;
    const before = [await count(alice), await count(bob)];
    const [a, b] = await Promise.all([
      alice.post(`${V3}/createRoom`, { room_alias_name: 'race' }),
      bob.post(`${V3}/createRoom`, { room_alias_name: 'race' }),
    ]);
    const grown = [(await count(alice)) - before[0], (await count(bob)) - before[1]];
    const statuses = [a.status, b.status].sort();
    assert.deepEqual(statuses, [200, 400], `got ${a.status} ${JSON.stringify(a.body)} / ${b.status} ${JSON.stringify(b.body)}; new joined rooms: ${grown}`);
    const loser = a.status === 400 ? a : b;
    const winner = a.status === 200 ? a : b;
    assert.equal(loser.body.errcode, 'M_ROOM_IN_USE');
    assert.deepEqual(grown.sort(), [0, 1], 'the refused request leaves no orphan room');
    const r = await api.get(`${V3}/directory/room/${enc('#race:localhost')}`);
    assert.equal(r.body.room_id, winner.body.room_id);
  });

  it('an unknown alias resolves to 404 M_NOT_FOUND', async () => {
    const r = await api.get(`${V3}/directory/room/${enc('#nowhere:localhost')}`);
    assert.equal(r.status, 404);
    assert.equal(r.body.errcode, 'M_NOT_FOUND');
  });

  it('power_level_content_override is merged over the defaults', async () => {
    const roomId = await create({ power_level_content_override: { events_default: 20, kick: 75, events: { 'm.room.name': 10 } } });
    const pl = find(await state(roomId), 'm.room.power_levels').content;
    assert.equal(pl.events_default, 20);
    assert.equal(pl.kick, 75);
    assert.equal(pl.events['m.room.name'], 10);
    assert.equal(pl.users[alice.userId], undefined, 'v12: the creator is not listed (infinite power)');
    assert.equal(typeof pl.ban, 'number', 'unrelated defaults are kept');
    assert.equal(typeof pl.state_default, 'number');
  });

  it('an override that makes the initial state invalid is 400 M_INVALID_ROOM_STATE and leaves no half-created room', async () => {
    const before = (await alice.get(`${V3}/joined_rooms`)).body.joined_rooms.length;
    const r = await alice.post(`${V3}/createRoom`, {
      name: 'cannot name it',
      power_level_content_override: { users: { [alice.userId]: 0 }, state_default: 50, events: { 'm.room.name': 50 } },
    });
    assert.equal(r.status, 400, `${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(r.body.errcode, 'M_INVALID_ROOM_STATE');
    const after = (await alice.get(`${V3}/joined_rooms`)).body.joined_rooms.length;
    assert.equal(after, before, 'the failed request must not leave alice joined to a broken room');
  });

  it("room_version '10' gives a create event with creator; '11' and '12' (default) without", async () => {
    const v10 = await create({ room_version: '10' });
    const c10 = find(await state(v10), 'm.room.create');
    assert.equal(c10.content.room_version, '10');
    assert.equal(c10.content.creator, alice.userId);
    const v11 = await create({ room_version: '11' });
    const c11 = find(await state(v11), 'm.room.create');
    assert.equal(c11.content.room_version, '11');
    assert.ok(!('creator' in c11.content));
    assert.equal(c11.sender, alice.userId);
    const v12 = await create({});
    const c12 = find(await state(v12), 'm.room.create');
    assert.equal(c12.content.room_version, '12');
    assert.ok(!('creator' in c12.content));
    assert.equal(v12, '!' + c12.event_id.slice(1), 'v12 room ID = create event ID with the ! sigil');
  });

  it('an unsupported room version is refused with 400 M_UNSUPPORTED_ROOM_VERSION', async () => {
    const r = await alice.post(`${V3}/createRoom`, { room_version: '999' });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.errcode, 'M_UNSUPPORTED_ROOM_VERSION');
  });

  it('every created event is a plausible client event, fetchable by GET /rooms/{id}/event/{id}', async () => {
    const t0 = Date.now();
    const roomId = await create({ name: 'fields', topic: 't', invite: [bob.userId], room_alias_name: 'fields' });
    const s = await state(roomId);
    assert.ok(s.length >= 8, `expected the full initial state, got ${s.length}`);
    const ids = new Set<string>();
    for (const e of s) {
      assert.match(e.event_id, /^\$[A-Za-z0-9_-]{43}$/, 'v4+ event ID: $ + 43 url-safe base64 chars');
      ids.add(e.event_id);
      assert.equal(e.room_id, roomId);
      assert.equal(e.sender, alice.userId);
      assert.equal(typeof e.state_key, 'string');
      assert.equal(typeof e.content, 'object');
      assert.ok(e.origin_server_ts >= t0 - 5000 && e.origin_server_ts <= Date.now() + 5000, 'origin_server_ts is now-ish');
      const one = await alice.get(`${V3}/rooms/${enc(roomId)}/event/${enc(e.event_id)}`);
      assert.equal(one.status, 200, JSON.stringify(one.body));
      assert.equal(one.body.event_id, e.event_id);
      assert.equal(one.body.type, e.type);
      assert.equal(one.body.state_key, e.state_key);
      assert.deepEqual(one.body.content, e.content);
      assert.equal(one.body.origin_server_ts, e.origin_server_ts);
      if (one.body.unsigned?.age !== undefined) assert.ok(one.body.unsigned.age >= 0);
    }
    assert.equal(ids.size, s.length, 'event IDs are unique');
  });

  for (const version of ['11', '12']) it(`v${version} events are real PDUs: depth, prev_events, auth_events, content hash and reference-hash event ID`, async () => {
    const roomId = await create({ name: 'pdu', room_version: version });
    const sent = await alice.put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/pdu1`, { msgtype: 'm.text', body: 'hash me' });
    assert.equal(sent.status, 200);
    const filter = JSON.stringify({ event_format: 'federation', room: { rooms: [roomId], timeline: { limit: 50 } } });
    const sync = await alice.get(`${V3}/sync?timeout=0&filter=${enc(filter)}`);
    assert.equal(sync.status, 200, JSON.stringify(sync.body));
    const room = sync.body.rooms.join[roomId];
    const events: any[] = [...room.state.events, ...room.timeline.events];
    const byId = new Map(events.map((e) => [e.event_id, e]));
    const createEv = events.find((e) => e.type === 'm.room.create');
    const msg = events.find((e) => e.event_id === sent.body.event_id);
    assert.ok(createEv && msg, 'create and message present');
    assert.deepEqual(createEv.prev_events, []);
    assert.deepEqual(createEv.auth_events, []);
    for (const e of events) {
      assert.equal(typeof e.depth, 'number');
      assert.ok(typeof e.hashes?.sha256 === 'string', 'hashes.sha256');
      assert.ok(e.signatures?.localhost && Object.keys(e.signatures.localhost).some((k) => k.startsWith('ed25519:')), 'signed by localhost');
      if (e.type === 'm.room.create') continue;
      if (version === '12') assert.ok(!e.auth_events.includes(createEv.event_id), `v12: ${e.type} does not cite the create event`);
      else assert.ok(e.auth_events.includes(createEv.event_id), `${e.type} cites the create event in auth_events`);
      assert.ok(e.prev_events.length >= 1);
      for (const p of e.prev_events) {
        const prev = byId.get(p);
        if (prev) assert.ok(prev.depth < e.depth, 'depth grows along prev_events');
      }
    }
    if (version === '12') {
      assert.ok(!('room_id' in createEv), 'the v12 create PDU has no room_id');
      assert.equal(roomId, '!' + createEv.event_id.slice(1));
    }
    for (const e of [createEv, msg]) {
      const pdu: Record<string, any> = { ...e };
      delete pdu.event_id;
      delete pdu.unsigned;
      // Content hash: canonical JSON without unsigned, signatures, hashes (unpadded standard base64).
      const forContent = { ...pdu };
      delete forContent.signatures;
      delete forContent.hashes;
      assert.equal(e.hashes.sha256, sha256(canonical(forContent)).toString('base64').replace(/=+$/, ''), `content hash of ${e.type}`);
      // Reference hash: redact, drop signatures/unsigned, canonical JSON, sha256, url-safe base64.
      const red = redactV11(pdu);
      delete red.signatures;
      assert.equal(e.event_id, '$' + sha256(canonical(red)).toString('base64url'), `event ID of ${e.type}`);
    }
  });
});
