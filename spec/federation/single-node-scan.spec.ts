// The outbound queue's scan on a single node (src/federation/sender.ts, wired in src/app.ts):
// only workers sharing a store can queue for each other, so a single node (SQLite, here even
// with a Redis configured for its shared state) scans the destinations table once, at start,
// never on the federation_scan_ms timer. The queue is durable: messages queued for a server that
// is down, on a node that then restarts, are found by that one scan and delivered in order.

import assert from 'node:assert/strict';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, freePort, startFederated, syncUntil, waitFor } from '../helpers/federation.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';
import type { HearthConfigInput } from '../../src/config/load.js';
import { SqliteFederationQueueStore } from '../../src/store/sqlite/federation-queue.js';

describe('federation: the outbound queue scan on a single node', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let portA = 0;
  let portB = 0;
  const extraA = (): HearthConfigInput => ({ cluster: { redis: { url: startRedis(), key_prefix: freshPrefix('onescan') }, federation_scan_ms: 100 } });

  /**
   * Reads of the destinations table by every SQLite queue in this process (A's and B's; neither
   * may scan periodically). Counted on the prototype from before the servers start, because the
   * metrics wrapper around a server's store keeps the methods it first saw.
   */
  const scans = { n: 0 };
  const proto = SqliteFederationQueueStore.prototype;
  const original = proto.listDestinationQueues;

  before(async () => {
    proto.listDestinationQueues = function (this: SqliteFederationQueueStore) {
      scans.n++;
      return original.call(this);
    };
    [portA, portB] = [await freePort(), await freePort()];
    a = await startFederated(portA, undefined, extraA());
    b = await startFederated(portB);
  });
  after(async () => {
    proto.listDestinationQueues = original;
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
  });

  it('scans once at start, not every federation_scan_ms; what it queued for a server that was down arrives after its own restart', async () => {
    scans.n = 0;
    const alice = await new Api(a.url).register('alice');
    const bob = await new Api(b.url).register('bob');
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    const roomId = created.body.room_id as string;
    assert.equal((await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(`127.0.0.1:${portA}`)}`, {})).status, 200);
    const hello = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/hello`, { msgtype: 'm.text', body: 'hello' });
    assert.equal(hello.status, 200);
    await syncUntil(bob, (body) => body.rooms?.join?.[roomId]?.timeline?.events?.find((e: any) => e.content?.body === 'hello'));
    await new Promise((r) => setTimeout(r, 1000)); // ten scan periods
    assert.equal(scans.n, 0, 'no periodic scan on a single node: its own sends wake the sender');

    const dirA = a.dataDir;
    const dirB = b.dataDir;
    await b.hearth.stop();
    for (let i = 0; i < 3; i++) {
      const r = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/down${i}`, { msgtype: 'm.text', body: `while down ${i}` });
      assert.equal(r.status, 200);
    }
    const sender = a.hearth.federation!.core.sender;
    await waitFor(async () => (await sender.backlog(`127.0.0.1:${portB}`)) === 3, 10_000, 'A to queue three PDUs for B');
    await a.hearth.stop();
    b = await startFederated(portB, dirB);
    scans.n = 0;
    a = await startFederated(portA, dirA, extraA());
    await waitFor(async () => scans.n >= 1, 5000, 'the start-up scan');
    const atStart = scans.n;
    const bob2 = Object.assign(new Api(b.url, bob.token), { userId: bob.userId });
    const texts: string[] = [];
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const res = await bob2.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=10`);
      texts.length = 0;
      for (const e of [...res.body.chunk].reverse()) if (e.type === 'm.room.message' && e.content.body.startsWith('while down')) texts.push(e.content.body);
      if (texts.length >= 3) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(texts, ['while down 0', 'while down 1', 'while down 2'], 'the start-up scan found the durable queue');
    await waitFor(async () => (await a.hearth.federation!.core.sender.backlog(`127.0.0.1:${portB}`)) === 0, 10_000, "A's queue for B to empty");
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(scans.n, atStart, 'and no scan after it');
    assert.ok(atStart <= 2, `one scan per starting server (B and A), not ${atStart}`);
  });
});
