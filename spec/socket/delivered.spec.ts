// Delivered receipts (sent -> delivered -> read): docs/websocket.md "Delivered receipts".

import { assert } from '../helpers/assert.js';
import { HearthSocket } from '../../src/client/hearth-socket.js';
import { DELIVERED_EVENT_TYPE } from '../../src/sync/filter.js';
import { ok, roomPath, V3, type User } from '../helpers/fixtures.js';
import { enc, startTestServer, type TestServer } from '../helpers/server.js';
import { aliceAndBobInRoom, sendText, waitFor } from './helpers.js';

type Body = { next_batch: string; rooms?: any };

/** Delivered and read markers a socket has seen in one room, per event then user. */
class Watcher {
  readonly delivered = new Map<string, Set<string>>();
  readonly read = new Map<string, Set<string>>();
  readonly receiptTypes = new Set<string>();
  readonly sock: HearthSocket;

  constructor(baseUrl: string, token: string, roomId: string, delivered: boolean) {
    this.sock = new HearthSocket({
      baseUrl,
      accessToken: token,
      delivered,
      onSync: (body: Body) => {
        for (const e of body.rooms?.join?.[roomId]?.ephemeral?.events ?? []) {
          if (e.type === DELIVERED_EVENT_TYPE) add(this.delivered, e.content);
          if (e.type === 'm.receipt') {
            for (const byType of Object.values(e.content) as Array<Record<string, Record<string, unknown>>>) {
              for (const t of Object.keys(byType)) this.receiptTypes.add(t);
            }
            add(this.read, Object.fromEntries(Object.entries(e.content).map(([ev, byType]) => [ev, (byType as any)['m.read'] ?? {}])));
          }
        }
      },
    });
  }
}

function add(target: Map<string, Set<string>>, content: Record<string, Record<string, unknown>>): void {
  for (const [eventId, users] of Object.entries(content)) {
    const set = target.get(eventId) ?? new Set<string>();
    for (const u of Object.keys(users)) set.add(u);
    target.set(eventId, set);
  }
}

/** One long-poll round trip that acknowledges everything the first one returned. */
async function syncTwice(u: User): Promise<string> {
  const first = await ok(u.get(`${V3}/sync?timeout=0`), 'initial sync');
  const second = await ok(u.get(`${V3}/sync?timeout=0&since=${enc(first.next_batch)}`), 'acknowledging sync');
  return second.next_batch;
}

describe('delivered receipts: sent -> delivered -> read', function () {
  this.timeout(20000);
  let srv: TestServer;

  beforeEach(async () => {
    srv = await startTestServer();
  });
  afterEach(async () => srv.stop());

  it('follows one event in a 1:1 room through sent, delivered (long-poll ack) and read', async () => {
    const { alice, bob, roomId } = await aliceAndBobInRoom(srv.url);
    const watch = new Watcher(srv.url, alice.token!, roomId, true);
    await watch.sock.connect();

    const eventId = await sendText(alice, roomId, 'are you there?'); // sent: acknowledged with an event ID
    assert.match(eventId, /^\$/);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(watch.delivered.get(eventId)?.has(bob.userId) ?? false, false, 'not delivered before bob synced past it');

    await syncTwice(bob); // bob's second /sync acknowledges the first, which carried the event
    await waitFor('delivered to bob', () => watch.delivered.get(eventId)?.has(bob.userId));
    assert.equal(watch.read.get(eventId)?.has(bob.userId) ?? false, false, 'delivered is not read');

    await ok(bob.post(roomPath(roomId, `receipt/m.read/${enc(eventId)}`), {}), 'read receipt');
    await waitFor('read by bob', () => watch.read.get(eventId)?.has(bob.userId));
    assert.ok(!watch.receiptTypes.has(DELIVERED_EVENT_TYPE), 'delivered never appears inside m.receipt');
    await watch.sock.close();
  });

  it('tells per member in a group room ("delivered to 2 of 3"), from socket acks and long-poll acks', async () => {
    const { alice, bob, others, roomId } = await aliceAndBobInRoom(srv.url, ['carol', 'dave']);
    const [carol, dave] = others;
    for (const u of others) {
      await ok(alice.post(roomPath(roomId, 'invite'), { user_id: u.userId }), 'invite');
      await ok(u.post(roomPath(roomId, 'join'), {}), 'join');
    }
    const watch = new Watcher(srv.url, alice.token!, roomId, true);
    await watch.sock.connect();

    // carol reads over a socket, which acknowledges each frame it processed.
    const carolSock = new HearthSocket({ baseUrl: srv.url, accessToken: carol.token! });
    await carolSock.connect();
    await new Promise((r) => setTimeout(r, 100));

    const eventId = await sendText(alice, roomId, 'hello group');
    await syncTwice(bob);
    await waitFor('delivered to bob and carol', () => {
      const s = watch.delivered.get(eventId);
      return s?.has(bob.userId) && s.has(carol.userId);
    });
    await new Promise((r) => setTimeout(r, 200));
    const to = watch.delivered.get(eventId)!;
    assert.ok(!to.has(dave.userId), 'dave never synced, so it is not delivered to him');
    assert.ok(!to.has(alice.userId), 'the sender is not listed');
    assert.equal([bob, carol, dave].filter((u) => to.has(u.userId)).length, 2);
    await carolSock.close();
    await watch.sock.close();
  });

  it('goes only to clients that opt in: the socket parameter or a filter naming the type', async () => {
    const { alice, bob, roomId } = await aliceAndBobInRoom(srv.url);
    const plain = new Watcher(srv.url, alice.token!, roomId, false);
    await plain.sock.connect();
    const optIn = JSON.stringify({ room: { ephemeral: { types: ['m.receipt', DELIVERED_EVENT_TYPE] } } });
    // Alice's other client opts in by filter before she sends (markers exist for opted-in senders).
    const since = (await ok(alice.get(`${V3}/sync?timeout=0&filter=${enc(optIn)}`), 'alice initial')).next_batch;

    const eventId = await sendText(alice, roomId, 'ping');
    await syncTwice(bob);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(plain.delivered.size, 0, 'a socket without delivered=true gets no delivered events');

    const wildcard = JSON.stringify({ room: { ephemeral: { types: ['*'] } } });
    const noOptIn = await ok(alice.get(`${V3}/sync?timeout=0&since=${enc(since)}&filter=${enc(wildcard)}`), 'wildcard filter');
    const evs = noOptIn.rooms?.join?.[roomId]?.ephemeral?.events ?? [];
    assert.ok(!evs.some((e: any) => e.type === DELIVERED_EVENT_TYPE), 'a wildcard does not opt in');

    const withOptIn = await ok(alice.get(`${V3}/sync?timeout=0&since=${enc(since)}&filter=${enc(optIn)}`), 'opt-in filter');
    const got = (withOptIn.rooms?.join?.[roomId]?.ephemeral?.events ?? []).find((e: any) => e.type === DELIVERED_EVENT_TYPE);
    assert.ok(got, 'naming the type in room.ephemeral.types opts in');
    assert.ok(got.content[eventId]?.[bob.userId]?.ts > 0);
    await plain.sock.close();
  });

  it('writes nothing for senders who never opted in', async () => {
    const { alice, bob, roomId } = await aliceAndBobInRoom(srv.url);
    await sendText(alice, roomId, 'nobody asked');
    await syncTwice(bob);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(await srv.hearth.store.delivery.getRoomDelivered([roomId]), []);
  });

  it('never moves backwards and costs one marker per (room, user), not one per message', async () => {
    const { alice, bob, roomId } = await aliceAndBobInRoom(srv.url);
    const optIn = JSON.stringify({ room: { ephemeral: { types: [DELIVERED_EVENT_TYPE] } } });
    await ok(alice.get(`${V3}/sync?timeout=0&filter=${enc(optIn)}`), 'alice opts in');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await sendText(alice, roomId, `m${i}`));
    await syncTwice(bob);
    const store = srv.hearth.store;
    await waitFor('marker written', async () => (await store.delivery.getRoomDelivered([roomId])).length > 0);
    const markers = await store.delivery.getRoomDelivered([roomId]);
    assert.deepEqual(markers.map((m) => [m.userId, m.eventId]), [[bob.userId, ids[4]]], 'one row for bob, at the newest event');
    // An older position acknowledged later changes nothing.
    await bob.get(`${V3}/sync?timeout=0&since=${enc('h1_1_0')}`);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal((await store.delivery.getRoomDelivered([roomId]))[0].eventId, ids[4]);
  });
});
