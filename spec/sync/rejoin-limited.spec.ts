// A user who was kicked (or left) and later rejoins holds the room's earlier timeline already:
// the incremental /sync that first shows the room joined again must say `limited: true` (with a
// prev_batch to paginate from), as for any newly joined room with history, or the client appends
// the resent history after what it has. A kick and rejoin both inside one sync range are an
// ordinary incremental section (the gap events, no history resent).

import { assert } from '../helpers/assert.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { createRoom, makeUser, ok, roomPath, syncOk, type User } from '../helpers/fixtures.js';

const BIG = { room: { timeline: { limit: 50 } } };

function send(u: User, roomId: string, txn: string, body: string): Promise<{ event_id: string }> {
  return ok(u.put(roomPath(roomId, `send/m.room.message/${txn}`), { msgtype: 'm.text', body }), `send ${body}`);
}

describe('sync: rejoining after a kick', function () {
  this.timeout(30000);
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => srv?.stop());

  async function kickedRoom(tag: string): Promise<{ alice: User; bob: User; roomId: string; early: string[] }> {
    const alice = await makeUser(srv, `${tag}a`);
    const bob = await makeUser(srv, `${tag}b`);
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await ok(bob.post(roomPath(roomId, 'join'), {}), 'join');
    const early: string[] = [];
    for (let i = 1; i <= 3; i++) early.push((await send(alice, roomId, `${tag}e${i}`, `early ${i}`)).event_id);
    return { alice, bob, roomId, early };
  }

  it('the first sync after the rejoin is limited with a prev_batch when history precedes it', async function () {
    const { alice, bob, roomId, early } = await kickedRoom('rk');
    const s0 = await syncOk(bob, { filter: BIG });
    const had = s0.rooms.join[roomId].timeline.events.map((e: any) => e.event_id);
    for (const id of early) assert.ok(had.includes(id), 'bob had the early history');

    await ok(alice.post(roomPath(roomId, 'kick'), { user_id: bob.userId, reason: 'out' }), 'kick');
    const s1 = await syncOk(bob, { since: s0.next_batch, filter: BIG });
    assert.ok(s1.rooms.leave[roomId], 'bob sees the room left');
    await send(alice, roomId, 'rkl1', 'while away');
    await ok(bob.post(roomPath(roomId, 'join'), {}), 'rejoin');

    const s2 = await syncOk(bob, { since: s1.next_batch, filter: BIG });
    const section = s2.rooms.join[roomId];
    assert.ok(section, `the room is joined again: ${JSON.stringify(s2.rooms)}`);
    const tl = section.timeline;
    assert.equal(tl.events.at(-1)?.content?.membership, 'join', 'the timeline ends with the rejoin');
    assert.equal(tl.limited, true, 'the rejoined room is limited: the client must drop what it holds');
    assert.equal(typeof tl.prev_batch, 'string', 'with a prev_batch');
    // The prev_batch paginates into history the client may read.
    const back = await ok(bob.get(`${roomPath(roomId, 'messages')}?dir=b&limit=50&from=${encodeURIComponent(tl.prev_batch)}`), 'messages');
    const shown = new Set(tl.events.map((e: any) => e.event_id));
    const older = (back.chunk as any[]).map((e) => e.event_id);
    assert.ok(older.every((id) => !shown.has(id)), 'pagination from prev_batch does not repeat the timeline');
    assert.ok(
      [...shown, ...older].includes(early[0]),
      'the early history stays reachable (in the timeline or before prev_batch)',
    );
    // Next incremental sync: nothing resent.
    const s3 = await syncOk(bob, { since: s2.next_batch, filter: BIG });
    assert.equal(s3.rooms.join[roomId], undefined, 'nothing new: no section');
  });

  it('a first join followed by a profile change is not a rejoin: the whole small room, not limited', async function () {
    const alice = await makeUser(srv, 'rfa');
    const bob = await makeUser(srv, 'rfb');
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await send(alice, roomId, 'rf1', 'before bob');
    const s0 = await syncOk(bob, { filter: BIG });
    await ok(bob.post(roomPath(roomId, 'join'), {}), 'join');
    await ok(bob.put(roomPath(roomId, `state/m.room.member/${encodeURIComponent(bob.userId)}`), { membership: 'join', displayname: 'Bobby' }), 'rename');
    const s1 = await syncOk(bob, { since: s0.next_batch, filter: BIG });
    const tl = s1.rooms.join[roomId]?.timeline;
    assert.ok(tl, 'the newly joined room is there');
    assert.equal(tl.events[0].type, 'm.room.create', 'the timeline reaches the start of the room');
    assert.equal(tl.limited, false, 'nothing precedes it and the client had nothing');
  });

  it('a kick and rejoin inside one sync range are an incremental section without the old history', async function () {
    const { alice, bob, roomId, early } = await kickedRoom('rq');
    const s0 = await syncOk(bob, { filter: BIG });
    await ok(alice.post(roomPath(roomId, 'kick'), { user_id: bob.userId }), 'kick');
    const away = (await send(alice, roomId, 'rql1', 'while away')).event_id;
    await ok(bob.post(roomPath(roomId, 'join'), {}), 'rejoin');
    const s1 = await syncOk(bob, { since: s0.next_batch, filter: BIG });
    const tl = s1.rooms.join[roomId]?.timeline;
    assert.ok(tl, 'the room has an incremental section');
    const ids = tl.events.map((e: any) => e.event_id);
    for (const id of early) assert.ok(!ids.includes(id), 'history the client has is not resent');
    assert.deepEqual(
      tl.events.map((e: any) => e.content?.membership ?? e.content?.body),
      ['leave', 'while away', 'join'].filter((x) => x !== 'while away' || ids.includes(away)),
      'the gap: kick, (visible messages), rejoin',
    );
    assert.equal(tl.limited, false, 'the gap fits the timeline');
  });
});
