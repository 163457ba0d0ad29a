// A paused old owner that wakes cannot write: worker 1 runs in the test process, worker 2 is the
// real server binary as a child process (spec/helpers/child-server.ts), both on one Cassandra
// keyspace and one Redis prefix. Worker 2 owns the busy room when it is frozen with SIGSTOP,
// writes of its own and of worker 1's clients in flight. While it is frozen its room lease
// (room_lease_ms 2000) expires, worker 1 takes the room with a higher epoch and writes, and worker
// 1 stops waiting for it in the cluster watermark once it has revoked its worker lease
// (src/cluster/replication.ts). Then worker 2 is woken with SIGCONT, and its clients carry on
// through it.
//
// What must hold, observed from outside: every acknowledged message is in the room exactly once,
// each user's in the order sent, on both workers' /sync (alice reads from worker 1, bob from the
// woken worker 2); no message that was not acknowledged; no two events at one stream position;
// one chain and one forward extremity (nothing the woken owner had in flight was appended to the
// room beside the new owner's writes). What the woken worker refused is printed from its log.

import { assert } from '../helpers/assert.js';
import { redisClient } from '../helpers/redis.js';
import { assertLinear, Client, childWorkerPair, sinceNow, dmAcrossWorkers } from './room-owner-helpers.js';

/** Long enough for the room lease (2 s) to expire and for the silent worker to be dropped (3 s + 2 s + revocation). */
const PAUSE_MS = 8_000;

describe('cluster: the room owner frozen with SIGSTOP mid-traffic, then woken', function () {
  this.timeout(240_000);
  const pair = childWorkerPair('ownerpause');

  it('the other worker takes over; the woken old owner appends nothing beside it; every acknowledged message once, in order, on both workers', async () => {
    const { w1, child, prefix } = pair;
    const servers = () => [w1, child];
    const { a, b, roomId } = await dmAcrossWorkers(w1, child, servers);
    const [sinceA, sinceB] = await Promise.all([sinceNow(a), sinceNow(b)]);
    // The room is idle past its linger by now: bob takes it back on worker 2 with a send, just
    // before the traffic (which keeps it there: worker 1 forwards to the busy owner).
    await b.send(roomId, 'bob-warm', 'bob warm');

    const redis = redisClient();
    const lease = async () => (await redis.get(`${prefix}ro:lease:${roomId}`)) ?? '';
    const w1Node = (w1.hearth.roomInput as unknown as { ownerNodeId: string }).ownerNodeId;
    const acked: Array<{ id: string; body: string; start: number; at: number }> = [];
    let pausedAt = 0;
    let pausedEpoch = 0;
    let woken: Promise<void> | null = null;
    const sends = async (c: Client, who: string, n: number) => {
      for (let i = 0; i < n; i++) {
        const body = `${who} p${i}`;
        const start = Date.now();
        const id = await c.send(roomId, `${who}-p${i}`, body);
        acked.push({ id, body, start, at: Date.now() });
        // Mid-traffic, at a moment worker 2 owns the room: freeze it, wake it PAUSE_MS later.
        if (acked.length >= 10 && !woken) {
          const token = await lease();
          if (token === '' || token.startsWith(`${w1Node}:`) || woken) continue;
          pausedEpoch = Number(token.split(':').pop());
          pausedAt = Date.now();
          process.kill(child.pid!, 'SIGSTOP');
          woken = new Promise<void>((r) =>
            setTimeout(() => {
              process.kill(child.pid!, 'SIGCONT');
              r();
            }, PAUSE_MS),
          );
        }
      }
    };
    await Promise.all([sends(a, 'alice', 25), sends(b, 'bob', 25)]);
    assert.ok(woken, 'worker 2 owned the busy room at some acknowledgement after the 10th');
    await woken;
    // The woken worker's clients go on through it (forwarded to the new owner, or retried).
    const lateStart = Date.now();
    const late = await b.send(roomId, 'bob-late', 'bob late');
    acked.push({ id: late, body: 'bob late', start: lateStart, at: Date.now() });

    const token = await lease();
    assert.ok(token === '' || token.startsWith(`${w1Node}:`), `the woken worker did not take the room back (lease ${token})`);
    // Woken, worker 2 saw nothing from worker 1 for PAUSE_MS by its own clock: it must not have
    // taken that for worker 1's silence (and revoked the only worker that can still write).
    assert.equal((w1.hearth.store as unknown as { writable?: boolean }).writable, true, 'worker 1 still holds its worker lease');
    // Of alice's sends begun during the freeze, the first acknowledged (worker 1 has to take the
    // room over and stop waiting for the frozen worker in the watermark).
    const firstAck = Math.min(...acked.filter((x) => x.start > pausedAt && x.body.startsWith('alice')).map((x) => x.at)) - pausedAt;

    const want = new Set(acked.map((x) => x.id));
    assert.equal(want.size, 51, 'each acknowledged send is its own event');
    const notWarm = (seen: Array<{ id: string; body: string }>) => seen.filter((x) => x.body !== 'bob warm');
    const [seenA, seenB] = (await Promise.all([a.syncUntil(roomId, want, sinceA), b.syncUntil(roomId, want, sinceB)])).map(notWarm) as [
      Array<{ id: string; body: string }>,
      Array<{ id: string; body: string }>,
    ];
    for (const [who, seen] of [['alice (worker 1)', seenA], ['bob (worker 2, woken)', seenB]] as const) {
      assert.deepEqual(
        seen.map((s) => s.body).sort(),
        acked.map((x) => x.body).sort(),
        `${who}'s /sync: every acknowledged message exactly once, nothing else`,
      );
      for (const sender of ['alice', 'bob']) {
        const mine = seen.filter((s) => s.body.startsWith(`${sender} p`)).map((s) => Number(s.body.split(' p')[1]));
        assert.deepEqual(mine, Array.from({ length: 25 }, (_, i) => i), `${who}: ${sender}'s messages in the order sent`);
      }
    }
    assert.deepEqual(seenB.map((s) => s.id), seenA.map((s) => s.id), 'one order on both workers');
    const events = await w1.hearth.store.rooms.getEvents(seenA.map((s) => s.id));
    const positions = seenA.map((s) => events.get(s.id)!.stream);
    assert.equal(new Set(positions).size, positions.length, 'no two events at one stream position');
    assert.deepEqual([...positions].sort((x, y) => x - y), positions, 'stream order is the room order');
    await assertLinear(w1.hearth.store, roomId, seenA.map((s) => s.id));
    redis.disconnect();

    const log = child.output();
    const refused = (re: RegExp) => log.split('\n').filter((l) => re.test(l)).length;
    console.log(
      `      SIGSTOP of the owner (epoch ${pausedEpoch}) for ${PAUSE_MS} ms: first send of alice begun after the freeze acknowledged ${firstAck} ms after it; ` +
        `the woken worker refused ${refused(/lost its store lease|LeaseLostError/)} write(s) for its revoked lease and ${refused(/StaleWriterError|changed writers/)} for the room's newer epoch`,
    );
  });
});
