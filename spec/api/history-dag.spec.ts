// /messages on a forked room over HTTP: a branch received through room input after local events
// of greater depth is paged in topological (depth, stream) order, with tokens that resume
// exactly; /sync still delivers it in stream order.

import { assert } from '../helpers/assert.js';
import { join } from 'node:path';
import { createRoom, ok, roomPath as room, sendEvent, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { buildPdu } from '../helpers/pdu-builder.js';
import { loadOrCreateSigningKey } from '../../src/protocol/keyfile.js';
import { parsePaginationToken } from '../../src/sync/token.js';

describe('/messages on a forked room', function () {
  let srv: TestServer;
  let alice: User;

  before(async () => {
    srv = await startTestServer();
    alice = await new Api(srv.url).register('alice');
  });
  after(async () => srv.stop());

  it('pages a received branch by depth, not by arrival, and resumes from its tokens', async function () {
    const roomId = await createRoom(alice, { preset: 'public_chat', room_version: '11' });
    let n = 0;
    const send = (body: string) => sendEvent(alice, roomId, 'm.room.message', `f${++n}`, { msgtype: 'm.text', body }, body);
    await send('m1');
    const [fork] = await srv.hearth.store.rooms.getForwardExtremities(roomId);
    const forkDepth = (await srv.hearth.store.rooms.getEvent(fork))?.pdu.depth as number;
    await send('m2');
    await send('m3');
    await send('m4');

    const key = await loadOrCreateSigningKey(join(srv.dataDir, 'signing.key'));
    const state = await srv.hearth.store.rooms.getCurrentState(roomId);
    const auth = state.filter((e) => e.type === 'm.room.create' || e.type === 'm.room.power_levels' || (e.type === 'm.room.member' && e.stateKey === alice.userId));
    const r1 = buildPdu(
      { roomId, sender: alice.userId, type: 'm.room.message', content: { msgtype: 'm.text', body: 'r1' }, prevEvents: [fork], authEvents: auth.map((e) => e.eventId), depth: forkDepth + 1 },
      'localhost',
      key,
    );
    const out = await srv.hearth.roomInput.receive(roomId, r1.pdu, 'localhost');
    assert.equal(out.outcome, 'accepted');
    assert.equal((await srv.hearth.store.rooms.getForwardExtremities(roomId)).length, 2);

    const bodies: string[] = [];
    let from: string | undefined;
    for (let i = 0; i < 10 && bodies.length < 5; i++) {
      const q = `dir=b&limit=2${from ? `&from=${enc(from)}` : ''}`;
      const r = await ok(alice.get(room(roomId, `messages?${q}`)), 'messages');
      bodies.push(...r.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body));
      assert.ok(r.end, 'more history');
      assert.ok(parsePaginationToken(r.end).topo, 'a topological token');
      from = r.end;
    }
    // m2 and r1 share a depth; r1 arrived later, so it comes first going backwards.
    assert.deepEqual(bodies.slice(0, 5), ['m4', 'm3', 'r1', 'm2', 'm1']);

    // Forward from the fork point's token covers both branches in depth order.
    const back = await ok(alice.get(room(roomId, `messages?dir=b&limit=50`)), 'all');
    const m1 = back.chunk.find((e: any) => e.content?.body === 'm1');
    const ctx = await ok(alice.get(room(roomId, `context/${enc(m1.event_id)}?limit=4`)), 'context');
    assert.deepEqual(ctx.events_after.map((e: any) => e.content.body), ['m2', 'r1']);
    const fwd = await ok(alice.get(room(roomId, `messages?dir=f&limit=10&from=${enc(ctx.end)}`)), 'forward');
    assert.deepEqual(fwd.chunk.map((e: any) => e.content.body), ['m3', 'm4']);

    // /sync delivers by stream order: r1 is the newest event.
    const sync = await ok(alice.get(`${V3}/sync?timeout=0`), 'sync');
    const timeline = sync.rooms.join[roomId].timeline.events;
    assert.equal(timeline[timeline.length - 1].event_id, r1.eventId);

    // A rejected event and an outlier take stream positions but reach neither /sync nor /messages.
    const carol = '@carol:localhost';
    const rejected = buildPdu(
      { roomId, sender: carol, type: 'm.room.message', content: { msgtype: 'm.text', body: 'not a member' }, prevEvents: [r1.eventId], authEvents: auth.filter((e) => e.type !== 'm.room.member').map((e) => e.eventId), depth: forkDepth + 2 },
      'localhost',
      key,
    );
    assert.equal((await srv.hearth.roomInput.receive(roomId, rejected.pdu, 'localhost')).outcome, 'rejected');
    const outlier = buildPdu(
      { roomId, sender: alice.userId, type: 'm.room.message', content: { msgtype: 'm.text', body: 'orphan' }, prevEvents: [`$${'B'.repeat(43)}`], authEvents: auth.map((e) => e.eventId), depth: forkDepth + 9 },
      'localhost',
      key,
    );
    assert.equal((await srv.hearth.roomInput.receive(roomId, outlier.pdu, 'localhost')).outcome, 'outlier');
    await send('after');
    const next = await ok(alice.get(`${V3}/sync?timeout=0&since=${enc(sync.next_batch)}`), 'incremental sync');
    const newer = next.rooms.join[roomId].timeline.events.map((e: any) => e.content.body);
    assert.deepEqual(newer, ['after']);
    const latest = await ok(alice.get(room(roomId, 'messages?dir=b&limit=3')), 'latest');
    assert.ok(!latest.chunk.some((e: any) => e.event_id === rejected.eventId || e.event_id === outlier.eventId));
  });
});
