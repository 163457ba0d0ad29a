import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('rooms, sending and /sync over HTTP', function () {
  let srv: TestServer;
  let api: Api;
  let alice: Awaited<ReturnType<Api['register']>>;
  let bob: Awaited<ReturnType<Api['register']>>;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
    alice = await api.register('alice');
    bob = await api.register('bob');
  });
  after(async () => srv.stop());

  it('creates a room whose events are real PDUs with reference-hash IDs', async () => {
    const r = await alice.post('/_matrix/client/v3/createRoom', { name: 'Hello', topic: 't' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.match(r.body.room_id, /^![A-Za-z0-9_-]{43}$/, 'v12 (default): the room ID is the create event hash');
    const state = await alice.get(`/_matrix/client/v3/rooms/${enc(r.body.room_id)}/state`);
    assert.equal(state.status, 200);
    const types = state.body.map((e: { type: string }) => e.type).sort();
    assert.deepEqual(types, [
      'm.room.create', 'm.room.guest_access', 'm.room.history_visibility', 'm.room.join_rules',
      'm.room.member', 'm.room.name', 'm.room.power_levels', 'm.room.topic',
    ]);
    for (const e of state.body) assert.match(e.event_id, /^\$[A-Za-z0-9_-]{43}$/);
    const create = state.body.find((e: { type: string }) => e.type === 'm.room.create');
    assert.equal(create.content.room_version, '12');
    assert.equal(r.body.room_id, '!' + create.event_id.slice(1));
    assert.equal(create.content.creator, undefined);
  });

  it('invite, join, send both ways, and receive by incremental sync', async () => {
    const { body: room } = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', invite: [bob.userId] });
    const roomId = room.room_id as string;
    const bobInitial = await bob.get('/_matrix/client/v3/sync?timeout=0');
    assert.equal(bobInitial.status, 200);
    const inv = bobInitial.body.rooms.invite[roomId];
    assert.ok(inv, 'bob sees the invite');
    const own = inv.invite_state.events.find((e: any) => e.type === 'm.room.member' && e.state_key === bob.userId);
    assert.equal(own.content.membership, 'invite');
    assert.ok(inv.invite_state.events.some((e: any) => e.type === 'm.room.create'));

    const j = await bob.post(`/_matrix/client/v3/join/${enc(roomId)}`);
    assert.equal(j.status, 200, JSON.stringify(j.body));
    const afterJoin = await bob.get(`/_matrix/client/v3/sync?since=${bobInitial.body.next_batch}&timeout=0`);
    const joined = afterJoin.body.rooms.join[roomId];
    assert.ok(joined, 'room appears in join after joining');
    const allEvents = [...joined.state.events, ...joined.timeline.events];
    assert.ok(allEvents.some((e: any) => e.type === 'm.room.create'), 'newly joined room includes m.room.create');

    // Long-poll wakes on alice's message.
    const since = afterJoin.body.next_batch;
    // The poll's timeout (60 s) outlasts the test (20 s): any answer was a wake, which the content below shows; no wall-clock bound for a loaded machine to overrun.
    const poll = bob.get(`/_matrix/client/v3/sync?since=${since}&timeout=60000`);
    await new Promise((r) => setTimeout(r, 50));
    const sent = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'hi bob' });
    assert.equal(sent.status, 200);
    const got = await poll;
    const tl = got.body.rooms.join[roomId].timeline.events;
    assert.deepEqual(tl.map((e: any) => e.event_id), [sent.body.event_id]);
    assert.equal(tl[0].unsigned.transaction_id, undefined, 'transaction_id only for the sending device');

    const back = await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'hi alice' });
    assert.equal(back.status, 200);
    const aliceSync = await alice.get('/_matrix/client/v3/sync?timeout=0');
    const aliceTl = aliceSync.body.rooms.join[roomId].timeline.events;
    const last = aliceTl[aliceTl.length - 1];
    assert.equal(last.content.body, 'hi alice');
    const mine = aliceTl.find((e: any) => e.event_id === sent.body.event_id);
    assert.equal(mine.unsigned.transaction_id, 't1', 'sender device sees its transaction_id');
  });

  it('makes sends idempotent per device and txnId', async () => {
    const { body: room } = await alice.post('/_matrix/client/v3/createRoom', {});
    const path = `/_matrix/client/v3/rooms/${enc(room.room_id)}/send/m.room.message/same-txn`;
    const [a, b] = await Promise.all([
      alice.put(path, { msgtype: 'm.text', body: 'once' }),
      alice.put(path, { msgtype: 'm.text', body: 'once' }),
    ]);
    assert.equal(a.body.event_id, b.body.event_id);
    const msgs = await alice.get(`/_matrix/client/v3/rooms/${enc(room.room_id)}/messages?dir=b&limit=50`);
    assert.equal(msgs.body.chunk.filter((e: any) => e.type === 'm.room.message').length, 1);
  });

  it('paginates back to m.room.create and omits end at the start of history', async () => {
    const { body: room } = await alice.post('/_matrix/client/v3/createRoom', {});
    const roomId = room.room_id as string;
    for (let i = 0; i < 25; i++) {
      await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/p${i}`, { msgtype: 'm.text', body: `m${i}` });
    }
    const seen: string[] = [];
    let from: string | undefined;
    for (let page = 0; page < 20; page++) {
      const q = from ? `&from=${enc(from)}` : '';
      const r = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=7${q}`);
      assert.equal(r.status, 200);
      seen.push(...r.body.chunk.map((e: any) => e.type));
      if (r.body.end === undefined) break;
      from = r.body.end;
    }
    assert.equal(seen[seen.length - 1], 'm.room.create');
    assert.equal(seen.filter((t) => t === 'm.room.message').length, 25);
  });

  it('hides a private room from non-members and history after leaving', async () => {
    const { body: room } = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', invite: [bob.userId] });
    const roomId = room.room_id as string;
    const eve = await api.register('eve');
    const denied = await eve.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b`);
    assert.equal(denied.status, 403);
    assert.equal(denied.body.errcode, 'M_FORBIDDEN');
    await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/join`);
    await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/before`, { msgtype: 'm.text', body: 'before leave' });
    await bob.post(`/_matrix/client/v3/rooms/${enc(roomId)}/leave`);
    await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/after`, { msgtype: 'm.text', body: 'after leave' });
    const msgs = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
    const bodies = msgs.body.chunk.map((e: any) => e.content.body).filter(Boolean);
    assert.ok(bodies.includes('before leave'));
    assert.ok(!bodies.includes('after leave'));
  });
});
