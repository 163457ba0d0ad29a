// Per-room total order across workers: two Hearth processes' worth of servers (in one test
// process) on one Cassandra keyspace and one Redis prefix (storage.backend cassandra +
// cluster.redis.url), so each room has one writer at a time (src/cluster/room-owner.ts) and the
// other worker forwards to it. alice is served by worker 1, bob by worker 2.
// Shows: concurrent sends from both users reach both users' /sync exactly once and in the same
// order, with one forward extremity (no fork); errors from the owner reach a client of the other
// worker unchanged; and when the owning worker is stopped mid-traffic, the other takes the room
// over within seconds and no acknowledged message is lost.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { freshPrefix, redisClient, startRedis } from '../helpers/redis.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import type { HearthConfigInput } from '../../src/config/load.js';
import { StaleWriterError } from '../../src/store/types.js';

import { assertLinear, Client, sinceNow, V3, type User } from './room-owner-helpers.js';

describe('cluster: per-room single writer across two workers (Cassandra + Redis)', function () {
  this.timeout(180_000);
  const keyspace = freshKeyspace('owner');
  const prefix = freshPrefix('owner');
  const keyDir = mkdtempSync(join(tmpdir(), 'hearth-owner-key-'));
  let addr = '';
  let w1: TestServer | null = null;
  let w2: TestServer | null = null;
  let alice: User;
  let bob: User;

  const config = (): HearthConfigInput => ({
    storage: { backend: 'cassandra', cassandra: { contact_points: [addr], keyspace } },
    cluster: { redis: { url: startRedis(), key_prefix: prefix }, room_lease_ms: 2_000 },
    // One server name, one signing key: every worker signs as the same server.
    signing_key_path: join(keyDir, 'signing.key'),
  });

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    w1 = await startTestServer(config());
    w2 = await startTestServer(config());
    alice = await new Api(w1.url).register('alice');
    bob = await new Api(w2.url).register('bob');
  });

  after(async () => {
    await w1?.stop().catch(() => undefined);
    await w2?.stop().catch(() => undefined);
    // The shared node is busy: dropping a keyspace may take longer than the driver's default.
    const admin = await cassandraClient(addr);
    await dropKeyspace(admin, keyspace).catch(() => undefined);
    await admin.shutdown();
    rmSync(keyDir, { recursive: true, force: true });
  });

  async function newRoom(a: Client, b: Client): Promise<string> {
    const created = await a.api().post(`${V3}/createRoom`, { preset: 'private_chat', invite: [b.user.userId] });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const roomId = created.body.room_id as string;
    const joined = await b.api().post(`${V3}/rooms/${enc(roomId)}/join`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    return roomId;
  }

  it('concurrent sends by alice (worker 1) and bob (worker 2) reach both /syncs exactly once, in one order, with no fork', async () => {
    const servers = () => [w1, w2];
    const a = new Client(alice, servers, 0);
    const b = new Client(bob, servers, 1);
    const roomId = await newRoom(a, b);
    const [sinceA, sinceB] = await Promise.all([sinceNow(a), sinceNow(b)]);
    const N = 15;
    const before1 = stats(w1!);
    const before2 = stats(w2!);
    const sends = async (c: Client, who: string) => {
      const ids: string[] = [];
      // Several in flight at once per user, as a client with a send queue per room would not do
      // but two devices of one user might: the order between them is the server's.
      for (let i = 0; i < N; i += 3) {
        ids.push(...(await Promise.all([i, i + 1, i + 2].map((j) => c.send(roomId, `${who}-${j}`, `${who} ${j}`)))));
      }
      return ids;
    };
    const [fromA, fromB] = await Promise.all([sends(a, 'alice'), sends(b, 'bob')]);
    const acked = new Set([...fromA, ...fromB]);
    const fwd = stats(w1!).forwarded - before1.forwarded + stats(w2!).forwarded - before2.forwarded;
    const served = stats(w1!).served - before1.served + stats(w2!).served - before2.served;
    assert.ok(fwd > 0, 'sends were forwarded between the workers');
    assert.equal(served, fwd, 'each forwarded send was served once');
    assert.equal(acked.size, 2 * N, 'every send acknowledged with its own event');
    const [seenA, seenB] = await Promise.all([a.syncUntil(roomId, acked, sinceA), b.syncUntil(roomId, acked, sinceB)]);
    assert.equal(seenA.length, 2 * N, `alice got each message once: ${JSON.stringify(seenA.map((s) => s.body))}`);
    assert.equal(seenB.length, 2 * N, `bob got each message once: ${JSON.stringify(seenB.map((s) => s.body))}`);
    assert.deepEqual(seenA.map((s) => s.id), seenB.map((s) => s.id), 'the same order for both users');
    for (const who of ['alice', 'bob']) {
      const mine = seenA.filter((s) => s.body.startsWith(who)).map((s) => Number(s.body.split(' ')[1]));
      assert.deepEqual([...mine].sort((x, y) => x - y), Array.from({ length: N }, (_, i) => i));
    }
    await assertLinear(w1!.hearth.store, roomId, seenA.map((s) => s.id));
    // Worker 2's view of the store agrees (one keyspace).
    assert.deepEqual(await w2!.hearth.store.rooms.getForwardExtremities(roomId), [seenA.at(-1)!.id]);
  });

  it('an error from the owner reaches a client of the other worker as on one node', async () => {
    const servers = () => [w1, w2];
    const a = new Client(alice, servers, 0);
    const b = new Client(bob, servers, 1);
    const roomId = await newRoom(a, b);
    // Keep the room busy on worker 1 so bob's request is forwarded there.
    const keepBusy = (async () => {
      for (let i = 0; i < 6; i++) await a.send(roomId, `busy-${i}`, `busy ${i}`);
    })();
    await new Promise((r) => setTimeout(r, 100));
    const forwardedBefore = stats(w2!).forwarded;
    const denied = await b.api().put(`${V3}/rooms/${enc(roomId)}/state/m.room.power_levels/`, { users: { [bob.userId]: 100 } });
    assert.equal(denied.status, 403, JSON.stringify(denied.body));
    assert.equal(denied.body.errcode, 'M_FORBIDDEN');
    assert.equal(typeof denied.body.error, 'string');
    assert.equal(stats(w2!).forwarded, forwardedBefore + 1, 'bob\'s request went to the owner on worker 1');
    await keepBusy;
  });

  it('receive (federation\'s entry) is forwarded to the owner too, and its outcome comes back', async () => {
    const servers = () => [w1, w2];
    const a = new Client(alice, servers, 0);
    const b = new Client(bob, servers, 1);
    const roomId = await newRoom(a, b);
    const keepBusy = (async () => {
      for (let i = 0; i < 6; i++) await a.send(roomId, `recv-busy-${i}`, `busy ${i}`);
    })();
    await new Promise((r) => setTimeout(r, 100));
    const forwardedBefore = stats(w2!).forwarded;
    // An event that fails the format check: the owner answers with the outcome, nothing stored.
    const outcome = await w2!.hearth.roomInput.receive(roomId, { type: 'm.room.message', room_id: roomId, content: {} }, 'remote.example');
    assert.equal(outcome.outcome, 'rejected');
    assert.equal((outcome as { stored: boolean }).stored, false);
    assert.equal(stats(w2!).forwarded, forwardedBefore + 1, 'handled by the owner on worker 1');
    await keepBusy;
  });

  it('a worker that cached a room\'s state drops it when the feed brings another worker\'s event for the room', async () => {
    const servers = () => [w1, w2];
    const a = new Client(alice, servers, 0);
    const b = new Client(bob, servers, 1);
    const roomId = await newRoom(a, b);
    const check = redisClient();
    while (await check.get(`${prefix}ro:lease:${roomId}`)) await new Promise((r) => setTimeout(r, 100));
    // Worker 2 reads (and caches) the room's state; worker 1 then takes the room and renames it.
    assert.equal((await w2!.hearth.roomInput.currentState(roomId))?.content('m.room.name', '')?.name, undefined);
    const since = await sinceNow(b);
    const r = await a.api().put(`${V3}/rooms/${enc(roomId)}/state/m.room.name/`, { name: 'renamed on worker 1' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const w1Node = (w1!.hearth.roomInput as unknown as { ownerNodeId: string }).ownerNodeId;
    assert.match((await check.get(`${prefix}ro:lease:${roomId}`)) ?? '', new RegExp(`^${w1Node}:`), 'worker 1 wrote the rename as the room\'s owner');
    check.disconnect();
    // Once bob's /sync on worker 2 has the rename, worker 2's cached state has it too.
    const filter = enc(JSON.stringify({ room: { timeline: { limit: 50 } } }));
    for (let next = since, found = false; !found; ) {
      const s2 = await b.api().get(`${V3}/sync?timeout=2000&filter=${filter}&since=${enc(next)}`);
      found = (s2.body.rooms?.join?.[roomId]?.timeline.events ?? []).some((e: { type: string }) => e.type === 'm.room.name');
      next = s2.body.next_batch;
    }
    assert.equal((await w2!.hearth.roomInput.currentState(roomId))?.content('m.room.name', '')?.name, 'renamed on worker 1');
  });

  it('an owner whose lease passed to the other worker cannot write with its old epoch; its next send goes to the new owner', async () => {
    const servers = () => [w1, w2];
    const a = new Client(alice, servers, 0);
    const b = new Client(bob, servers, 1);
    const roomId = await newRoom(a, b);
    await a.send(roomId, 'pause-0', 'before the pause');
    const check = redisClient();
    const leaseKey = `${prefix}ro:lease:${roomId}`;
    const w1Node = (w1!.hearth.roomInput as unknown as { ownerNodeId: string }).ownerNodeId;
    // Wait for the lease to be free, then let worker 1 take it with a send of its own.
    while (await check.get(leaseKey)) await new Promise((r) => setTimeout(r, 100));
    await a.send(roomId, 'pause-1', 'worker 1 owns');
    const token = (await check.get(leaseKey)) ?? '';
    assert.ok(token.startsWith(`${w1Node}:`), `worker 1 owns the room (${token})`);
    const oldEpoch = Number(token.split(':').pop());
    // Worker 1 "pauses": its lease vanishes as if expired, and worker 2 takes the room.
    await check.del(leaseKey);
    await b.send(roomId, 'pause-2', 'worker 2 took over');
    const newToken = (await check.get(leaseKey)) ?? '';
    assert.ok(!newToken.startsWith(`${w1Node}:`) && Number(newToken.split(':').pop()) > oldEpoch, `worker 2 owns with a higher epoch (${newToken})`);
    // The woken worker's write at its old epoch is refused by the store, and nothing is written.
    const extremities = await w1!.hearth.store.rooms.getForwardExtremities(roomId);
    const last = (await w1!.hearth.store.rooms.getEvent(extremities[0]!))!;
    const stale = await w1!.hearth.store.rooms
      .persistEvent({ eventId: '$stale-owner-write', pdu: { ...last.pdu, depth: last.pdu.depth + 1, prev_events: [last.eventId] }, stateDelta: [], forwardExtremities: ['$stale-owner-write'], fence: { epoch: oldEpoch } })
      .catch((e: unknown) => e);
    assert.ok(stale instanceof StaleWriterError, String(stale));
    assert.equal(await w1!.hearth.store.rooms.getEvent('$stale-owner-write'), null);
    assert.deepEqual(await w1!.hearth.store.rooms.getForwardExtremities(roomId), extremities);
    // Worker 1's next send is served by the new owner (or, had its renewal not noticed yet, is
    // fenced and routed again): either way the room stays one chain.
    const since = await sinceNow(a);
    const id = await a.send(roomId, 'pause-3', 'after the pause');
    assert.deepEqual(await w1!.hearth.store.rooms.getForwardExtremities(roomId), [id]);
    const seen = await a.syncUntil(roomId, new Set([id]), since);
    assert.deepEqual(seen.map((s) => s.id), [id]);
    check.disconnect();
  });

  it('a send whose writer died between its txn claim and its batch is retried: the new owner takes the claim over (not a 500 for every retry)', async () => {
    const servers = () => [w1, w2];
    const a = new Client(alice, servers, 0);
    const b = new Client(bob, servers, 1);
    const roomId = await newRoom(a, b);
    const since = await sinceNow(b);
    // What a worker SIGKILLed mid-write leaves: the txn claimed for an event that never got stored.
    const cql = await cassandraClient(addr, keyspace);
    const claim = [roomId, alice.userId, alice.deviceId, 'send/m.room.message', 'orphaned-1'];
    const put = await cql.execute('INSERT INTO event_txns (room_id, user_id, device_id, scope, txn_id, event_id) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS', [...claim, '$died-before-its-batch'], { prepare: true });
    assert.equal(put.first()['[applied]'], true);
    // The client's retry of that send (same txnId), on either worker.
    const id = await a.send(roomId, 'orphaned-1', 'retried after the writer died');
    assert.notEqual(id, '$died-before-its-batch');
    const row = await cql.execute('SELECT event_id FROM event_txns WHERE room_id = ? AND user_id = ? AND device_id = ? AND scope = ? AND txn_id = ?', claim, { prepare: true });
    assert.equal(row.first()['event_id'], id, 'the claim now names the stored event');
    await cql.shutdown();
    // Once stored, further retries are deduplicated as usual, through both workers.
    assert.equal(await a.send(roomId, 'orphaned-1', 'retried after the writer died'), id);
    assert.equal(await new Client(alice, servers, 1).send(roomId, 'orphaned-1', 'retried after the writer died'), id);
    const seen = await b.syncUntil(roomId, new Set([id]), since);
    assert.deepEqual(seen.map((x) => x.id), [id], 'delivered once');
  });

  it('the owner worker stopped mid-traffic: the other takes the room over within seconds; 0 acknowledged messages lost or duplicated', async () => {
    const servers = () => [w1, w2];
    const a = new Client(alice, servers, 0);
    const b = new Client(bob, servers, 1);
    const roomId = await newRoom(a, b);
    const sinceB = await sinceNow(b);
    const check = redisClient();
    const ownerToken = async () => (await check.get(`${prefix}ro:lease:${roomId}`)) ?? '';
    const acked: Array<{ id: string; at: number }> = [];
    let stopAt = 0;
    let stopping: Promise<void> | null = null;
    const sends = async (c: Client, who: string, n: number) => {
      for (let i = 0; i < n; i++) {
        const id = await c.send(roomId, `${who}-t${i}`, `${who} t${i}`);
        acked.push({ id, at: Date.now() });
        // Mid-traffic: stop whichever worker owns the room now.
        if (acked.length === 10 && !stopping) {
          const token = await ownerToken();
          assert.notEqual(token, '', 'someone owns the busy room');
          const victim = (await isOwner(w1!, token)) ? 1 : 2;
          stopAt = Date.now();
          const srv = victim === 1 ? w1! : w2!;
          if (victim === 1) w1 = null;
          else w2 = null;
          stopping = srv.stop();
        }
      }
    };
    await Promise.all([sends(a, 'alice', 20), sends(b, 'bob', 20)]);
    await stopping;
    const survivor = (w1 ?? w2)!;
    const after = acked.filter((x) => x.at > stopAt).sort((x, y) => x.at - y.at);
    assert.ok(after.length > 0);
    const gap = after[0]!.at - stopAt;
    assert.ok(gap < 10_000, `first acknowledged send after the stop came ${gap} ms later`);
    const want = new Set(acked.map((x) => x.id));
    assert.equal(want.size, 40, 'each acknowledged send is its own event');
    const seen = await new Client(bob, () => [survivor], 0).syncUntil(roomId, want, sinceB);
    assert.equal(seen.length, 40, `each message delivered once: ${JSON.stringify(seen.map((s) => s.body))}`);
    await assertLinear(survivor.hearth.store, roomId, seen.map((s) => s.id));
    check.disconnect();
    console.log(`      takeover: first acknowledged send ${gap} ms after the owner's stop began`);
  });
});

/** Whether `srv`'s room owner holds the lease token (its node ID is the token's prefix). */
function stats(srv: TestServer): { forwarded: number; served: number; acquired: number } {
  const s = (srv.hearth.roomInput as unknown as { ownerStats?: { forwarded: number; served: number; acquired: number } }).ownerStats;
  assert.ok(s, 'the cluster composes the owned room input');
  return { ...s };
}

async function isOwner(srv: TestServer, token: string): Promise<boolean> {
  const node = (srv.hearth.roomInput as unknown as { ownerNodeId?: string }).ownerNodeId;
  return node !== undefined && token.startsWith(`${node}:`);
}
