// A /sync timeline whose newest events are all hidden by history visibility is read further back
// (src/sync/timeline-fill.ts), as Synapse does: a member who comes back to a `joined`-history room
// after many messages still gets, in the timeline, the state events that happened meanwhile (a
// join) and the visible history before them, never a message they may not see; an incremental
// timeline never reaches back past `since`.

import { assert } from '../helpers/assert.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { createRoom, makeUser, ok, roomPath, syncOk, type User } from '../helpers/fixtures.js';

const TEN = { room: { timeline: { limit: 10 } } };

function send(u: User, roomId: string, txn: string, body: string): Promise<{ event_id: string }> {
  return ok(u.put(roomPath(roomId, `send/m.room.message/${txn}`), { msgtype: 'm.text', body }), `send ${body}`);
}

describe('sync: a timeline thinned by history visibility', function () {
  this.timeout(30000);
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => srv?.stop());

  it('a rejoin after many hidden messages shows the meanwhile join and earlier visible events, no hidden message', async () => {
    const [creator, syncer, invitee] = await Promise.all([makeUser(srv, 'fc'), makeUser(srv, 'fs'), makeUser(srv, 'fi')]);
    const roomId = await createRoom(creator, { preset: 'public_chat' });
    await ok(syncer.post(roomPath(roomId, 'join'), {}), 'join');
    await ok(creator.put(roomPath(roomId, 'state/m.room.history_visibility'), { history_visibility: 'joined' }), 'joined history');
    await ok(creator.post(roomPath(roomId, 'invite'), { user_id: invitee.userId }), 'invite');
    const s0 = await syncOk(syncer, { filter: TEN });
    await ok(syncer.post(roomPath(roomId, 'leave'), {}), 'leave');
    const inviteeJoin = (await ok(invitee.post(roomPath(roomId, 'join'), {}), 'invitee join')).event_id as string | undefined;
    const hidden: string[] = [];
    for (let i = 1; i <= 25; i++) hidden.push((await send(creator, roomId, `fm${i}`, `hidden ${i}`)).event_id);
    await ok(syncer.post(roomPath(roomId, 'join'), {}), 'rejoin');

    const s1 = await syncOk(syncer, { since: s0.next_batch, filter: TEN });
    const tl = s1.rooms.join[roomId].timeline;
    const events = tl.events as any[];
    assert.ok(events.length > 2 && events.length <= 10, `filled up to the limit: ${events.length}`);
    const join = events.find((e) => e.type === 'm.room.member' && e.state_key === invitee.userId);
    assert.equal(join?.content.membership, 'join', `the invitee's join is in the timeline: ${JSON.stringify(events.map((e) => [e.type, e.state_key]))}`);
    if (inviteeJoin) assert.equal(join.event_id, inviteeJoin);
    assert.ok(events.every((e) => !hidden.includes(e.event_id)), 'no message from while the syncer was away');
    assert.equal(events.at(-1).state_key, syncer.userId, 'the timeline ends with the rejoin');
    const leave = events.find((e) => e.type === 'm.room.member' && e.state_key === syncer.userId && e.content.membership === 'leave');
    assert.ok(leave, 'the visible history before it (the syncer leaving) is there too');
    // Joined at since, so an incremental section: every visible event since then is there.
    assert.equal(tl.limited, false, 'nothing visible was skipped');
  });

  it('an incremental timeline does not reach back past since', async () => {
    const [creator, watcher] = await Promise.all([makeUser(srv, 'gc'), makeUser(srv, 'gw')]);
    const roomId = await createRoom(creator, { preset: 'private_chat', invite: [watcher.userId] });
    await ok(creator.put(roomPath(roomId, 'state/m.room.history_visibility'), { history_visibility: 'joined' }), 'joined history');
    const before = await send(creator, roomId, 'gb', 'before since');
    const s0 = await syncOk(watcher, { filter: TEN });
    for (let i = 1; i <= 12; i++) await send(creator, roomId, `gm${i}`, `hidden ${i}`);
    await ok(watcher.post(roomPath(roomId, 'join'), {}), 'join');
    const s1 = await syncOk(watcher, { since: s0.next_batch, filter: TEN });
    const events = (s1.rooms.join[roomId].timeline.events as any[]) ?? [];
    assert.ok(events.every((e) => e.event_id !== before.event_id), 'nothing at or before since');
    assert.ok(events.every((e) => e.type !== 'm.room.message'), `no hidden message: ${JSON.stringify(events.map((e) => e.content.body))}`);
    assert.equal(events.at(-1)?.state_key, watcher.userId);
  });
});
