// The room's owner killed with SIGKILL mid-traffic: worker 1 runs in the test process, worker 2 is
// the real server binary as a child process (spec/helpers/child-server.ts), both on one Cassandra
// keyspace and one Redis prefix. Worker 2 owns the busy room when it is killed; its lease expires
// (room_lease_ms 2000), worker 1 takes the room over with a higher epoch, clients of worker 2
// retry their unacknowledged sends (same txnId) on worker 1, and every acknowledged message is
// delivered once, in one chain, with one forward extremity.
//
// It was left out of `npm test` for an intermittent 500 (2 of 5 runs here): the send in
// flight to worker 2 when it was killed had its transaction ID claimed but its event never
// written, and every retry on worker 1 hit that claim. The new owner now takes such a claim over
// (src/store/cassandra/events.ts), and sends are retried only on 503/429: a 500 fails the spec.
//
// Acknowledgements after the kill also wait for the replication stream's cluster watermark to
// stop waiting for the dead worker: after 3 s of silence its worker lease is revoked, and 2.25 s
// later it is dropped (src/cluster/replication.ts); the spec prints the take-over time and the
// first acknowledgement of a send begun after the kill (about 5.5 s; 15 s before).

import { assert } from '../helpers/assert.js';
import { redisClient } from '../helpers/redis.js';
import { assertLinear, Client, childWorkerPair, sinceNow, dmAcrossWorkers } from './room-owner-helpers.js';

describe('cluster: the room owner killed with SIGKILL mid-traffic', function () {
  this.timeout(240_000);
  const pair = childWorkerPair('ownerkill');
  let childUp = true;

  it('the other worker takes the room over with a higher epoch; 0 acknowledged messages lost or duplicated, one chain', async () => {
    const { w1, child, prefix } = pair;
    const servers = () => [w1, childUp ? child : null];
    // bob creates the room on worker 2, so worker 2 owns it.
    const { alice, a, b, roomId } = await dmAcrossWorkers(w1, child, servers);
    const since = await sinceNow(a);
    // The room is idle past its linger by now: bob takes it back on worker 2 with a send, just
    // before the traffic (which keeps it there: worker 1 forwards to the busy owner).
    await b.send(roomId, 'bob-warm', 'bob k-warm');

    const redis = redisClient();
    const lease = async () => (await redis.get(`${prefix}ro:lease:${roomId}`)) ?? '';
    const w1Node = (w1.hearth.roomInput as unknown as { ownerNodeId: string }).ownerNodeId;
    const acked: Array<{ id: string; start: number; at: number }> = [];
    let killedAt = 0;
    let killedEpoch = 0;
    let killing: Promise<unknown> | null = null;
    const sends = async (c: Client, who: string, n: number) => {
      for (let i = 0; i < n; i++) {
        const start = Date.now();
        const id = await c.send(roomId, `${who}-k${i}`, `${who} k${i}`);
        acked.push({ id, start, at: Date.now() });
        // Mid-traffic, at a moment worker 2 owns the room (under load the room may pass to
        // worker 1 and back between messages).
        if (acked.length >= 12 && !killing) {
          const token = await lease();
          if (token === '' || token.startsWith(`${w1Node}:`) || killing) continue;
          killedEpoch = Number(token.split(':').pop());
          killedAt = Date.now();
          childUp = false;
          killing = child.kill('SIGKILL');
        }
      }
    };
    // Take-over time: when worker 1's lease (a higher epoch) appears.
    let takenAt = 0;
    const watch = (async () => {
      while (!takenAt) {
        const t = await lease();
        if (killedAt && t.startsWith(`${w1Node}:`) && Number(t.split(':').pop()) > killedEpoch) takenAt = Date.now();
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await Promise.all([sends(a, 'alice', 25), sends(b, 'bob', 25)]);
    assert.ok(killing, 'worker 2 owned the busy room at some acknowledgement after the 12th');
    const exit = (await (killing as Promise<unknown> | null)) as { signal: string };
    assert.equal(exit.signal, 'SIGKILL');
    await Promise.race([watch, new Promise((r) => setTimeout(r, 10_000))]);
    assert.ok(takenAt > 0, 'worker 1 took the room with a higher epoch');
    const takeover = takenAt - killedAt;
    // Of the sends begun after the kill, the first acknowledged.
    const firstAck = Math.min(...acked.filter((x) => x.start > killedAt).map((x) => x.at)) - killedAt;
    // 2 s lease; a request forwarded to worker 2 just before the kill (popped, never answered)
    // waits out the forward timeout (2 × lease + 2 s) before its caller retries and takes over.
    assert.ok(takeover < 9_000, `lease taken over ${takeover} ms after the kill (lease 2000 ms, forward timeout 6000 ms)`);

    const want = new Set(acked.map((x) => x.id));
    assert.equal(want.size, 50, 'each acknowledged send is its own event');
    const seen = (await new Client(alice, () => [w1], 0).syncUntil(roomId, want, since)).filter((s) => s.body !== 'bob k-warm');
    assert.equal(seen.length, 50, `each message delivered once: ${JSON.stringify(seen.map((s) => s.body))}`);
    for (const who of ['alice', 'bob']) {
      const mine = seen.filter((s) => s.body.startsWith(who)).map((s) => Number(s.body.split(' k')[1]));
      assert.deepEqual(mine, Array.from({ length: 25 }, (_, i) => i), `${who}'s messages in the order sent`);
    }
    await assertLinear(w1.hearth.store, roomId, seen.map((s) => s.id));
    redis.disconnect();
    console.log(`      SIGKILL of the owner: lease taken over after ${takeover} ms; first send begun after the kill acknowledged ${firstAck} ms after it`);
  });
});
