// A revoked worker rejoins (src/cluster/replication.ts, src/store/cassandra/positions.ts):
// worker 1 in the test process, worker 2 the real server binary as a child process, on one
// Cassandra keyspace and Redis prefix. Worker 2 owns the busy room when it is frozen with SIGSTOP,
// with writes in flight; worker 1 takes the room over and, once worker 2 has been silent for 3 s
// on the stream's clock, revokes its worker lease and stops waiting for it (its first send
// acknowledged after the freeze shows that). Then worker 2 is woken.
//
// What must hold: the woken worker notices the revocation and rejoins under a new worker lease
// (a new worker ID: the old one is still held by the revocation), and then writes again: it
// takes the room and its events carry the new worker ID; nothing at all is written under the old
// worker ID after the wake (its positions follow the clock, so a write started after the wake
// would sit above it); every acknowledged message is in the room exactly once, each user's in the
// order sent, on both workers' /sync; no two events at one position; one chain.

import { assert } from '../helpers/assert.js';
import { redisClient } from '../helpers/redis.js';
import { positionMs, workerOf } from '../../src/store/cassandra/positions.js';
import { assertLinear, Client, childWorkerPair, sinceNow, dmAcrossWorkers } from './room-owner-helpers.js';
import { until } from '../helpers/until.js';

describe('cluster: a worker whose lease was revoked while frozen rejoins once woken', function () {
  this.timeout(240_000);
  const pair = childWorkerPair('rejoin');

  it('it rejoins under a new worker ID and writes again; nothing under the old ID after the wake; every acknowledged message once, in order', async () => {
    const { w1, child, prefix } = pair;
    const servers = () => [w1, child];
    const { bob, a, b, roomId } = await dmAcrossWorkers(w1, child, servers);
    const [sinceA, sinceB] = await Promise.all([sinceNow(a), sinceNow(b)]);
    const store = w1.hearth.store;
    const createEvent = (await store.rooms.getEvents([(await store.rooms.getForwardExtremities(roomId))[0]!])).values().next().value!;
    await b.send(roomId, 'bob-warm', 'bob warm');

    const redis = redisClient();
    const lease = async () => (await redis.get(`${prefix}ro:lease:${roomId}`)) ?? '';
    const w1Node = (w1.hearth.roomInput as unknown as { ownerNodeId: string }).ownerNodeId;
    const acked: Array<{ id: string; body: string; start: number; at: number }> = [];
    let frozenAt = 0;
    let wokenAt = 0;
    let woken: Promise<void> | null = null;
    let wake!: () => void;
    const sends = async (c: Client, who: string, from: number, n: number) => {
      for (let i = from; i < from + n; i++) {
        const body = `${who} p${i}`;
        const start = Date.now();
        const id = await c.send(roomId, `${who}-p${i}`, body);
        acked.push({ id, body, start, at: Date.now() });
        // Worker 1 acknowledged a send begun during the freeze: it no longer waits for worker 2
        // in the watermark, so worker 2's lease was revoked. Wake it.
        if (frozenAt > 0 && wokenAt === 0 && start > frozenAt && who === 'alice') {
          process.kill(child.pid!, 'SIGCONT');
          wokenAt = Date.now();
          wake();
        }
        // Mid-traffic, at a moment worker 2 owns the room: freeze it.
        if (acked.length >= 10 && !woken) {
          const token = await lease();
          if (token === '' || token.startsWith(`${w1Node}:`) || woken) continue;
          woken = new Promise<void>((r) => (wake = r));
          frozenAt = Date.now();
          process.kill(child.pid!, 'SIGSTOP');
        }
      }
    };
    await Promise.all([sends(a, 'alice', 0, 25), sends(b, 'bob', 0, 25)]);
    assert.ok(woken, 'worker 2 owned the busy room at some acknowledgement after the 10th');
    await woken;

    // Woken, it finds its lease revoked and rejoins (its log says under which worker ID).
    const oldId = workerOf(createEvent.stream);
    const rejoined = await until('worker 2 rejoined', () => {
      const line = child.output().split('\n').find((l) => l.includes('rejoined under a new worker lease'));
      return line ? (JSON.parse(line) as { worker: number; was: number }) : undefined;
    }, 60_000);
    assert.equal(rejoined.was, oldId, 'worker 2 wrote the room\'s first events under the ID it lost');
    assert.notEqual(rejoined.worker, oldId, 'a new worker ID (the revocation still holds the old one)');
    // Once the room is idle (worker 1's linger), worker 2 takes it with bob's next send, and
    // writes with alice's forwarded to it. Bob's client may have moved to worker 1 during the
    // freeze: from here on it uses worker 2 only.
    const bOn2 = new Client(bob, () => [child], 0);
    await until('the room lease released', async () => (await lease()) === '', 60_000);
    const back = await bOn2.send(roomId, 'bob-back', 'bob back');
    acked.push({ id: back, body: 'bob back', start: 0, at: Date.now() });
    const token = await lease();
    assert.ok(token !== '' && !token.startsWith(`${w1Node}:`), `worker 2 took the room back (lease ${token})`);
    const lateStart = acked.length;
    await Promise.all([sends(a, 'alice', 25, 10), sends(bOn2, 'bob', 25, 10)]);

    const want = new Set(acked.map((x) => x.id));
    assert.equal(want.size, 71, 'each acknowledged send is its own event');
    const notWarm = (seen: Array<{ id: string; body: string }>) => seen.filter((x) => x.body !== 'bob warm');
    const [seenA, seenB] = (await Promise.all([a.syncUntil(roomId, want, sinceA), bOn2.syncUntil(roomId, want, sinceB)])).map(notWarm) as [
      Array<{ id: string; body: string }>,
      Array<{ id: string; body: string }>,
    ];
    for (const [who, seen] of [['alice (worker 1)', seenA], ['bob (worker 2, rejoined)', seenB]] as const) {
      assert.deepEqual(seen.map((s) => s.body).sort(), acked.map((x) => x.body).sort(), `${who}'s /sync: every acknowledged message exactly once, nothing else`);
      for (const sender of ['alice', 'bob']) {
        const mine = seen.filter((s) => s.body.startsWith(`${sender} p`)).map((s) => Number(s.body.split(' p')[1]));
        assert.deepEqual(mine, Array.from({ length: 35 }, (_, i) => i), `${who}: ${sender}'s messages in the order sent`);
      }
    }
    assert.deepEqual(seenB.map((s) => s.id), seenA.map((s) => s.id), 'one order on both workers');
    const events = await store.rooms.getEvents(seenA.map((s) => s.id));
    const positions = seenA.map((s) => events.get(s.id)!.stream);
    assert.equal(new Set(positions).size, positions.length, 'no two events at one stream position');
    assert.deepEqual([...positions].sort((x, y) => x - y), positions, 'stream order is the room order');
    await assertLinear(store, roomId, seenA.map((s) => s.id));
    const late = new Set(acked.slice(lateStart - 1).map((x) => x.id));
    const byNewId = positions.filter((p, i) => late.has(seenA[i]!.id) && workerOf(p) === rejoined.worker).length;
    assert.ok(byNewId >= 1, 'worker 2 wrote again, under its new worker ID');
    const underOldAfterWake = positions.filter((p) => workerOf(p) === oldId && positionMs(p) >= wokenAt);
    assert.deepEqual(underOldAfterWake, [], 'nothing written under the revoked worker ID after the wake');
    redis.disconnect();

    const log = child.output();
    const count = (re: RegExp) => log.split('\n').filter((l) => re.test(l)).length;
    console.log(
      `      frozen ${wokenAt - frozenAt} ms; worker ${oldId} rejoined as ${rejoined.worker}; ${byNewId} of the ${late.size} later events written by it; ` +
        `it refused ${count(/lost its store lease|LeaseLostError/)} write(s) while its lease was lost or not yet announced`,
    );
  });
});
