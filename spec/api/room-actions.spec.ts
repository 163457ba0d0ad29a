// Room actions over real HTTP (spec: POST /join, PUT /rooms/{roomId}/state, DELETE
// /directory/room/{roomAlias}, GET /rooms/{roomId}/messages): what the SyTest room tests check
// beyond the happy paths.

import { assert } from '../helpers/assert.js';
import { createRoom, ok, roomPath as room, V3, type User, serverPerSuite } from '../helpers/fixtures.js';
import { enc } from '../helpers/server.js';

describe('room actions', function () {
  this.timeout(30_000);
  const { users, send, next } = serverPerSuite('ra');
  const member = async (viewer: User, roomId: string, userId: string) => ok(viewer.get(room(roomId, `state/m.room.member/${enc(userId)}`)), 'member');

  it('extra keys of a POST /join body reach the member event', async () => {
    const [a, b, c] = await users(3);
    const roomId = await createRoom(a, { preset: 'public_chat', room_alias_name: `join${next()}` });
    await ok(b.post(`${V3}/join/${enc(roomId)}`, { foo: 'bar', reason: 'hello' }), 'join');
    const mb = await member(a, roomId, b.userId);
    assert.equal(mb.membership, 'join');
    assert.equal(mb.foo, 'bar');
    assert.equal(mb.reason, 'hello');
    await ok(c.post(room(roomId, 'join'), { 'org.example.key': 7, membership: 'leave' }), 'join');
    const mc = await member(a, roomId, c.userId);
    assert.equal(mc.membership, 'join', 'a membership key in the body cannot change what the request does');
    assert.equal(mc['org.example.key'], 7);
  });

  it('PUT state/m.room.member with membership join joins a public room', async () => {
    const [a, b] = await users(2);
    const roomId = await createRoom(a, { preset: 'public_chat' });
    const r = await ok(b.put(room(roomId, `state/m.room.member/${enc(b.userId)}`), { membership: 'join', displayname: 'Bee' }), 'PUT join');
    assert.equal(typeof r.event_id, 'string');
    const joined = (await ok(b.get(`${V3}/joined_rooms`), 'joined_rooms')).joined_rooms;
    assert.ok(joined.includes(roomId));
    assert.equal((await member(a, roomId, b.userId)).displayname, 'Bee');
    // Not to a private room without an invite, and not someone else's membership.
    const priv = await createRoom(a, { preset: 'private_chat' });
    const refused = await b.put(room(priv, `state/m.room.member/${enc(b.userId)}`), { membership: 'join' });
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    const [c] = await users(1);
    const other = await b.put(room(roomId, `state/m.room.member/${enc(c.userId)}`), { membership: 'join' });
    assert.equal(other.status, 403, JSON.stringify(other.body));
  });

  it('setting identical state twice returns the existing event and adds none', async () => {
    const [a, b] = await users(2);
    const roomId = await createRoom(a, { preset: 'public_chat' });
    await ok(b.post(room(roomId, 'join'), {}), 'join');
    await ok(a.put(room(roomId, 'state/m.room.power_levels'), { ...(await ok(a.get(room(roomId, 'state/m.room.power_levels')), 'pl')), events_default: 0, state_default: 0 }), 'pl');
    const first = await ok(a.put(room(roomId, 'state/m.room.topic'), { topic: 'same' }), 'topic');
    const again = await ok(a.put(room(roomId, 'state/m.room.topic'), { topic: 'same' }), 'topic again');
    assert.equal(again.event_id, first.event_id);
    const msgs = await ok(a.get(room(roomId, 'messages?dir=b&limit=50')), 'messages');
    assert.equal(msgs.chunk.filter((e: any) => e.type === 'm.room.topic' && e.content.topic === 'same').length, 1);
    // A different sender or content is a real change.
    const byB = await ok(b.put(room(roomId, 'state/m.room.topic'), { topic: 'same' }), 'topic by b');
    assert.notEqual(byB.event_id, first.event_id);
    const changed = await ok(a.put(room(roomId, 'state/m.room.topic'), { topic: 'other' }), 'topic other');
    assert.notEqual(changed.event_id, byB.event_id);
  });

  it('deleting an alias removes it from m.room.canonical_alias', async () => {
    const [a] = await users(1);
    const k = next();
    const local = `canon${k}`;
    const roomId = await createRoom(a, { preset: 'public_chat', room_alias_name: local });
    const alias = `#${local}:localhost`;
    const alt = `#alt${k}:localhost`;
    await ok(a.put(`${V3}/directory/room/${enc(alt)}`, { room_id: roomId }), 'alt alias');
    await ok(a.put(room(roomId, 'state/m.room.canonical_alias'), { alias, alt_aliases: [alt] }), 'canonical');
    await ok(a.req('DELETE', `${V3}/directory/room/${enc(alias)}`), 'delete');
    assert.deepEqual(await ok(a.get(room(roomId, 'state/m.room.canonical_alias')), 'state'), { alt_aliases: [alt] });
    await ok(a.req('DELETE', `${V3}/directory/room/${enc(alt)}`), 'delete alt');
    assert.deepEqual(await ok(a.get(room(roomId, 'state/m.room.canonical_alias')), 'state'), { alt_aliases: [] });
  });

  it('/messages on a room the user left never shows events after the leave', async () => {
    for (const visibility of ['shared', 'world_readable', 'joined', 'invited']) {
      const [a, b] = await users(2);
      const roomId = await createRoom(a, { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: visibility } }] });
      await ok(b.post(room(roomId, 'join'), {}), 'join');
      await send(a, roomId, 'before leave');
      await ok(b.post(room(roomId, 'leave'), {}), 'leave');
      await send(a, roomId, 'after leave');
      for (const q of ['dir=b&limit=50', 'dir=f&limit=50']) {
        const m = await ok(b.get(room(roomId, `messages?${q}`)), 'messages');
        const bodies = m.chunk.map((e: any) => e.content?.body);
        assert.ok(!bodies.includes('after leave'), `${visibility} ${q}: ${JSON.stringify(bodies)}`);
        assert.ok(bodies.includes('before leave'), `${visibility} ${q}: history up to the leave stays`);
      }
    }
  });
});
