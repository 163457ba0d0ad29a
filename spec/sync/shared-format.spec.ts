// A room's new event woken into several members' long-polls is shaped once (EventFormatter's
// shared-part cache) and each member gets the same shared part with only its own per-viewer
// fields on top: unsigned.transaction_id reaches the sending device alone. A redaction is never
// hidden by a cached unredacted part.

import { assert } from '../helpers/assert.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';
import { createRoom, makeUser, ok, roomPath, syncOk, syncPath, type User } from '../helpers/fixtures.js';

/** The event without its per-viewer fields, serialized: what every viewer must share byte for byte. */
function sharedPart(e: Record<string, any>): string {
  const unsigned = { ...e.unsigned };
  delete unsigned.age;
  delete unsigned.transaction_id;
  return JSON.stringify({ ...e, unsigned });
}

/** Long-polls from `since` until a response carries `eventId` in the room's timeline; that event. */
async function pollFor(api: Api, who: string, since: string, roomId: string, eventId: () => string | undefined): Promise<any> {
  for (let i = 0; i < 20; i++) {
    const b = await ok(api.get(syncPath({ since, timeout: 20000 })), `long-poll ${who}`);
    const id = eventId();
    const found = timelineOf(b, roomId).filter((e) => e.event_id === id);
    if (found.length > 0) {
      assert.equal(found.length, 1, `${who} got the event once`);
      return found[0];
    }
    since = b.next_batch;
  }
  throw new Error(`${who} never got the event`);
}

function timelineOf(body: any, roomId: string): any[] {
  return body.rooms?.join?.[roomId]?.timeline?.events ?? [];
}

describe('sync: shared event formatting', function () {
  this.timeout(30000);
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => srv?.stop());

  it('members woken by one event get byte-identical shared parts; only the sending device gets transaction_id', async function () {
    const alice = await makeUser(srv, 'sfa');
    const bob = await makeUser(srv, 'sfb');
    const carol = await makeUser(srv, 'sfc');
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    for (const u of [bob, carol]) await ok(u.post(roomPath(roomId, 'join'), {}), 'join');
    // A second device of the sender: same user, but it did not send, so no transaction_id.
    const l = await srv.hearth.services.accounts.login(alice.userId, undefined, null, null);
    const alice2 = new Api(srv.url, l.access_token);
    const readers: Array<{ who: string; api: Api }> = [
      { who: 'alice (sending device)', api: alice },
      { who: 'bob', api: bob },
      { who: 'carol', api: carol },
      { who: 'alice (other device)', api: alice2 },
    ];
    const since = await Promise.all(readers.map(async (r) => (await syncOk(r.api)).next_batch as string));

    const before = srv.hearth.services.formatter.cacheStats();
    // Every reader parks, then one event wakes them all.
    let sentId: string | undefined;
    const polls = readers.map((r, i) => pollFor(r.api, r.who, since[i], roomId, () => sentId));
    await new Promise((res) => setTimeout(res, 300));
    sentId = (await ok(alice.put(roomPath(roomId, 'send/m.room.message/txn-shared-1'), { msgtype: 'm.text', body: 'to all' }), 'send')).event_id;
    const events = await Promise.all(polls);
    const after = srv.hearth.services.formatter.cacheStats();
    const shared = events.map(sharedPart);
    for (let i = 1; i < shared.length; i++) assert.equal(shared[i], shared[0], `${readers[i].who}'s shared part equals the sender's`);
    assert.equal(events[0].unsigned.transaction_id, 'txn-shared-1', 'the sending device gets its transaction_id');
    for (let i = 1; i < events.length; i++) {
      assert.equal(events[i].unsigned.transaction_id, undefined, `${readers[i].who} gets no transaction_id`);
      assert.equal(typeof events[i].unsigned.age, 'number', `${readers[i].who} gets an age`);
    }
    // The shared part was built once for the event; every other viewer reused it.
    assert.equal(after.misses - before.misses, 1, `one build for one event (${JSON.stringify({ before, after })})`);
    assert.ok(after.hits - before.hits >= readers.length - 1, `the other viewers hit the cache (${JSON.stringify({ before, after })})`);
    assert.ok(after.size <= after.bound, 'the cache stays within its bound');
  });

  it('a redaction after the shared part was cached reaches every member redacted', async function () {
    const alice = await makeUser(srv, 'sra');
    const bob: User = await makeUser(srv, 'srb');
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await ok(bob.post(roomPath(roomId, 'join'), {}), 'join');
    const sent = await ok(alice.put(roomPath(roomId, 'send/m.room.message/t1'), { msgtype: 'm.text', body: 'secret' }), 'send');
    const a0 = await syncOk(alice);
    const b0 = await syncOk(bob);
    for (const b of [a0, b0]) assert.equal(timelineOf(b, roomId).find((e) => e.event_id === sent.event_id)?.content.body, 'secret');
    const r = await ok(alice.put(roomPath(roomId, `redact/${encodeURIComponent(sent.event_id)}/r1`), { reason: 'oops' }), 'redact');
    // Both an incremental sync (the redaction) and a fresh initial sync (the target) see it redacted.
    for (const [who, api, since] of [['alice', alice, a0.next_batch], ['bob', bob, b0.next_batch]] as const) {
      const inc = await syncOk(api, { since });
      assert.ok(timelineOf(inc, roomId).some((e) => e.event_id === r.event_id), `${who} gets the redaction`);
      const full = await syncOk(api);
      const target = timelineOf(full, roomId).find((e) => e.event_id === sent.event_id);
      assert.ok(target, `${who}'s initial sync has the target`);
      assert.deepEqual(target.content, {}, `${who} sees the target redacted`);
      assert.equal(target.unsigned.redacted_because?.event_id, r.event_id, `${who} sees redacted_because`);
    }
  });
});
