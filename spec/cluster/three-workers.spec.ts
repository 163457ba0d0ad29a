// The three-worker cluster on loopback (issue 13, "What must show"): worker 1 runs in the test
// process (it creates the schema and gives the spec a Store to check the DAG), workers 2 and 3
// are the real server binary as child processes (spec/helpers/child-server.ts), so a SIGKILL is
// real. All three share one Cassandra keyspace and one Redis that is this spec's own (its own
// port and directory, scripts/redis.sh), because the spec stops and restarts it.
//
// Users on different workers chat in three 1:1 rooms and one 200-member room; followers (/sync
// long-polls and WebSocket streams) on every worker record what they are delivered.
// - Worker 3 (where the busy rooms were created, and a third of the clients live) is killed with
//   SIGKILL mid-traffic. Its clients move to the other workers, waiting out 429/503 answers for
//   their retry_after_ms with jitter (sockets' catch-ups are admitted one at a time, so a
//   reconnect storm can meet it), and resume from their last token; unacknowledged sends are
//   retried with the same txnId. Every acknowledged message reaches every follower once, in the
//   room's order (/messages), with no limited (gappy) timeline, and each room is one chain; all
//   200 members' /syncs then hold every acknowledged message of the big room once, in order.
// - Worker 3 is started again and Redis is stopped (its data lost: nothing is persisted) and
//   started again mid-traffic: sends during the outage are refused with a retryable 503 or wait;
//   nothing acknowledged is lost or duplicated, every follower has the room's order, a message
//   sent afterwards reaches every follower (workers reset their caches from Cassandra on the
//   feed's gap), and each room ends with one forward extremity (a fork at the handover is
//   counted and printed: see the comment at that check).
//
// What is checked for the 200-member room: 12 members follow it live (4 per worker, 3 of them
// over WebSocket); all 200 are checked with one incremental /sync each after the traffic, from a
// token taken before it. 24 active users register over HTTP; the other 176 are written through
// the Store (scrypt for all 200 would cost minutes); all 200 join over HTTP.
//
// Acknowledgements after the kill wait for the replication stream's cluster watermark, which
// holds for a silent worker until it is dropped (deadMs 15 s, src/cluster/replication.ts): the
// timeouts here allow for it (30 s for the first acknowledgement after the kill).
//
// Two intermittent failures kept it out of `npm test` until both were found and fixed:
// - the kill phase: a send in flight at the kill answered 500 on every retry for a minute (a txn
//   claim orphaned by the kill; src/store/cassandra/events.ts takes such claims over);
// - the Redis phase, about 1 run in 9: a /sync follower on the restarted worker 3 missed one
//   message of a 1:1 room for good. A worker's change record was lost with Redis; the gap in its
//   entries was seen while another worker still held the cluster watermark below the lost
//   record, and the reset went out at that lower watermark, so once the watermark passed the
//   lost write the read model said the room had not changed there. Resets now reach past the
//   lost records (src/cluster/replication.ts; spec/cluster/replication.spec.ts has the window).
// By hand:
//   npm run build && npx mocha --no-config --timeout 300000 --exit dist/spec/cluster/three-workers.spec.js

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { ChildServer, freePort } from '../helpers/child-server.js';
import { freshPrefix, OwnRedis } from '../helpers/redis.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { generateAccessToken, generateDeviceId, hashAccessToken, hashPassword } from '../../src/users/credentials.js';
import { PollFollower, roomOrder, SocketFollower, type Seen } from './followers.js';
import { assertLinear, Client, sinceNow, sleep, V3, type User } from './room-owner-helpers.js';

const MEMBERS = 200;
/**
 * How long a worker may take to answer /health after it is spawned. Generous: on a loaded 2-core
 * machine (the suite beside other work) a start-up's Cassandra round trips (worker lease, schema
 * check) have taken over 90 s.
 */
const START_MS = 240_000;
/** Messages each sender sends per phase. */
const PER_SENDER = 10;
/** 1:1 pairs (0..5), big-room senders (6..11) and live followers (12..19, 196..199). */
const ACTIVE = new Set([...Array.from({ length: 20 }, (_, i) => i), MEMBERS - 4, MEMBERS - 3, MEMBERS - 2, MEMBERS - 1]);

describe('cluster: three workers, Redis and Cassandra; a worker killed, Redis restarted', function () {
  this.timeout(420_000);
  const keyspace = freshKeyspace('three');
  const prefix = freshPrefix('three');
  const keyDir = mkdtempSync(join(tmpdir(), 'hearth-three-'));
  let redis: OwnRedis;
  let addr = '';
  let w1: TestServer | null = null;
  const children: ChildServer[] = [];
  const up = [true, true, true];
  /** The workers as clients see them: null while one is down. */
  const servers = () => [up[0] ? w1 : null, up[1] ? children[0]! : null, up[2] ? children[1]! : null];

  // Tight admission so that a reconnect storm is shed with retry_after_ms (which clients honour).
  const shared = () => ({
    storage: { backend: 'cassandra', cassandra: { contact_points: [addr], keyspace } },
    cluster: { redis: { url: redis.url, key_prefix: prefix }, room_lease_ms: 2_000 },
    signing_key_path: join(keyDir, 'signing.key'),
    // No shedding on event-loop lag or send delay (the machine is shared and busy; spec/admission
    // covers it), but sockets' catch-ups one at a time, so a reconnect storm meets retry_after_ms.
    limits: { rate_limits: { enabled: false }, admission: { max_event_loop_lag_ms: 0, max_send_delay_ms: 0, send_target_delay_ms: 0 } },
    websocket: { max_catchups: 1, shed_retry_ms: 200 },
  });

  let users: User[] = [];
  let clients: Client[] = [];
  let bigRoom = '';
  const pairs: Array<{ roomId: string; a: number; b: number }> = [];

  before(async function () {
    this.timeout(600_000);
    redis = new OwnRedis(await freePort(), join(keyDir, 'redis'));
    redis.start();
    addr = await startCassandra();
    w1 = await startTestServer(shared() as never); // the schema and the shared signing key
    for (let i = 0; i < 2; i++) children.push(await ChildServer.create({ ...shared(), media: { path: join(keyDir, `media-${i}`) } }));
    await Promise.all(children.map((c) => c.start(START_MS)));

    // 200 accounts, member i on worker i % 3. The active ones register over HTTP; the quiet
    // majority is written through the Store (the rows /register writes, one shared password
    // hash, as bench/lib/provision.ts does): 180 more scrypt hashes would cost minutes here.
    const t0 = Date.now();
    users = new Array(MEMBERS);
    const store = w1.hearth.store;
    const passwordHash = await hashPassword('correct horse battery');
    await pool(MEMBERS, 12, async (i) => {
      const url = servers()[i % 3]!.url;
      if (ACTIVE.has(i)) {
        users[i] = (await new Api(url).register(`m${i}`)) as User;
        return;
      }
      const userId = `@m${i}:localhost`;
      const deviceId = generateDeviceId();
      const token = generateAccessToken();
      const now = Date.now();
      await store.accounts.createUser({ userId, passwordHash, admin: false, createdTs: now, displayname: `m${i}` });
      await store.devices.upsertDevice({ userId, deviceId, displayName: null, ts: now, ip: null });
      await store.devices.addAccessToken(hashAccessToken(token), { userId, deviceId }, now);
      users[i] = Object.assign(new Api(url, token), { userId, deviceId });
    });
    const registered = Date.now() - t0;
    // 500s are tolerated (retried with the same txnId), counted and printed: the known handover
    // bug of room-owner-kill.spec.ts (a txn claim orphaned by the kill, fixed on branch ownerkill).
    clients = users.map((u, i) => new Client(u, servers, i % 3));
    // The big room, created on worker 3; everyone joins through their own worker.
    const created = await clients[2]!.api().post(`${V3}/createRoom`, { preset: 'public_chat', name: 'two hundred' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    bigRoom = created.body.room_id as string;
    await pool(MEMBERS, 12, async (i) => {
      if (i === 2) return;
      for (;;) {
        const r = await clients[i]!.api().post(`${V3}/rooms/${enc(bigRoom)}/join`, {});
        if (r.status === 200) return;
        if (r.status !== 503 && r.status !== 429) assert.fail(`join m${i}: ${r.status} ${JSON.stringify(r.body)}`);
        await clients[i]!.backoff(r.body);
      }
    });
    // Three 1:1 rooms across workers: (1,3), (2,3), (1,2); each created by its second member.
    for (const [a, b] of [[0, 2], [1, 5], [3, 4]] as const) {
      const r = await clients[b].api().post(`${V3}/createRoom`, { preset: 'private_chat', invite: [users[a]!.userId], is_direct: true });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const j = await clients[a].api().post(`${V3}/rooms/${enc(r.body.room_id)}/join`, {});
      assert.equal(j.status, 200, JSON.stringify(j.body));
      pairs.push({ roomId: r.body.room_id as string, a, b });
    }
    console.log(`      setup: ${MEMBERS} users registered in ${registered} ms, joined in ${Date.now() - t0 - registered} ms`);
  });

  afterEach(function () {
    if (this.currentTest?.state !== 'failed') return;
    children.forEach((c, i) => {
      const lines = c.history.join('').split('\n').filter((l) => /"level":(40|50|60)/.test(l));
      if (lines.length > 0) console.log(`      worker ${i + 2} logged:\n${lines.slice(-15).join('\n')}`);
    });
  });

  after(async () => {
    for (const c of children) await c.dispose();
    await w1?.stop().catch(() => undefined);
    redis?.stop();
    if (addr) {
      const admin = await cassandraClient(addr);
      await dropKeyspace(admin, keyspace).catch(() => undefined);
      await admin.shutdown();
    }
    rmSync(keyDir, { recursive: true, force: true });
  });

  /** Senders: both members of each 1:1 room, and six big-room members (two per worker). */
  const bigSenders = [6, 7, 8, 9, 10, 11];
  /** Big-room members following it live: 4 per worker; those of index ≥ 200-3 over WebSocket. */
  const bigFollowers = [12, 13, 14, 15, 16, 17, 18, 19, MEMBERS - 4, MEMBERS - 3, MEMBERS - 2, MEMBERS - 1];

  interface Phase {
    acked: Map<string, Array<{ id: string; body: string; start: number; at: number }>>;
    followers: Array<PollFollower | SocketFollower>;
    since: Map<string, string>;
  }

  /** Starts followers (from fresh tokens) for every room, for the users given. */
  async function follow(): Promise<Phase> {
    const followers: Array<PollFollower | SocketFollower> = [];
    const since = new Map<string, string>();
    for (const p of pairs) for (const u of [p.a, p.b]) followers.push(new PollFollower(clients[u]!, await sinceNow(clients[u]!), [p.roomId]));
    for (const u of bigFollowers) {
      const token = await sinceNow(clients[u]!);
      followers.push(u >= MEMBERS - 3 ? new SocketFollower(clients[u]!, token, [bigRoom]) : new PollFollower(clients[u]!, token, [bigRoom]));
    }
    since.set(bigRoom, await sinceNow(clients[0]!));
    for (const p of pairs) since.set(p.roomId, await sinceNow(clients[p.a]!));
    for (const f of followers) f.start();
    await sleep(500); // sockets connected, polls parked
    const acked = new Map<string, Array<{ id: string; body: string; start: number; at: number }>>();
    for (const r of [bigRoom, ...pairs.map((p) => p.roomId)]) acked.set(r, []);
    return { acked, followers, since };
  }

  /**
   * Each sender sends PER_SENDER messages one after another; `onAck` runs after each
   * acknowledgement. One failed send stops the others (none keeps sending into the next test).
   */
  async function traffic(ph: Phase, tag: string, onAck: (total: number) => Promise<void> | void): Promise<void> {
    let total = 0;
    let failed = false;
    const send = async (u: number, roomId: string) => {
      for (let i = 0; i < PER_SENDER && !failed; i++) {
        const body = `${tag} m${u} ${i}`;
        const start = Date.now();
        const id = await clients[u]!.send(roomId, `${tag}-${u}-${roomId.slice(1, 8)}-${i}`, body);
        ph.acked.get(roomId)!.push({ id, body, start, at: Date.now() });
        await onAck(++total);
      }
    };
    const guarded = (u: number, roomId: string) =>
      send(u, roomId).catch((err: unknown) => {
        failed = true;
        throw err;
      });
    const all = [...bigSenders.map((u) => guarded(u, bigRoom)), ...pairs.flatMap((p) => [guarded(p.a, p.roomId), guarded(p.b, p.roomId)])];
    await Promise.allSettled(all);
    await Promise.all(all);
  }

  /** Every follower got every acknowledged message once, in the room's order, with no gap. */
  async function checkDelivery(ph: Phase, timeoutMs: number, dag: 'linear' | 'healed'): Promise<{ caughtUp: number; forks: number }> {
    const t0 = Date.now();
    const want = new Map([...ph.acked].map(([room, list]) => [room, new Set(list.map((x) => x.id))]));
    await Promise.all(ph.followers.map((f) => f.waitFor(new Map(f.rooms.map((r) => [r, want.get(r)!])), timeoutMs)));
    const caughtUp = Date.now() - t0;
    let forks = 0;
    await sleep(1_000); // a duplicate delivered late would show now
    await Promise.all(ph.followers.map((f) => f.stop()));
    for (const [room, list] of ph.acked) {
      const senders = room === bigRoom ? bigSenders.length : 2;
      assert.equal(new Set(list.map((x) => x.id)).size, senders * PER_SENDER, `${room}: each acknowledged send is its own event`);
      const order = await roomOrder(memberOf(room), room, ph.since.get(room)!);
      assertSameMessages(order, list, `${room} (/messages)`);
      assertSenderOrder(order, room);
      for (const f of ph.followers) {
        if (!f.rooms.includes(room)) continue;
        assert.deepEqual(f.seen.get(room)!.map((s) => s.id), order.map((s) => s.id), `${f.client.user.userId} got ${room}'s messages once each, in the room's order`);
        assert.equal(f.limited, 0, `${f.client.user.userId}: no incremental timeline was limited`);
      }
      if (dag === 'linear') await assertLinear(w1!.hearth.store, room, order.map((s) => s.id));
      else forks += await healedForks(room, order.map((s) => s.id));
    }
    return { caughtUp, forks };
  }

  /**
   * The room's messages may fork where two workers both wrote as its owner, but the next message
   * merges the fork, so the room ends with one forward extremity: its last message. Returns the
   * number of messages that do not cite exactly the one before.
   */
  async function healedForks(roomId: string, ordered: string[]): Promise<number> {
    const store = w1!.hearth.store;
    assert.deepEqual(await store.rooms.getForwardExtremities(roomId), [ordered.at(-1)], `${roomId}: one forward extremity, the last message`);
    const events = await store.rooms.getEvents(ordered);
    let forks = 0;
    for (let i = 1; i < ordered.length; i++) {
      const prev = events.get(ordered[i]!)!.pdu.prev_events;
      if (prev.length !== 1 || prev[0] !== ordered[i - 1]) forks++;
    }
    return forks;
  }

  const memberOf = (room: string): Client => clients[pairs.find((p) => p.roomId === room)?.a ?? 0]!;

  function assertSameMessages(order: Seen[], acked: Array<{ id: string }>, what: string): void {
    assert.deepEqual([...order.map((s) => s.id)].sort(), acked.map((x) => x.id).sort(), `${what}: exactly the acknowledged messages`);
  }

  function assertSenderOrder(order: Seen[], room: string): void {
    const bySender = new Map<string, number[]>();
    for (const s of order) {
      const [, who, i] = s.body.split(' ');
      bySender.set(who!, [...(bySender.get(who!) ?? []), Number(i)]);
    }
    for (const [who, got] of bySender) assert.deepEqual(got, Array.from({ length: PER_SENDER }, (_, i) => i), `${room}: ${who}'s messages in the order sent`);
  }

  it('a worker killed with SIGKILL mid-traffic: its clients resume elsewhere; 0 acknowledged messages lost or duplicated, order intact, for all 200 members', async () => {
    const ph = await follow();
    // Every member's token from before the traffic, for the check of all 200 afterwards.
    const filter = JSON.stringify({ room: { rooms: [bigRoom], state: { lazy_load_members: true }, timeline: { limit: 500 } }, presence: { not_types: ['*'] } });
    // A position from before the traffic; tokens are stream positions, good for any user.
    const before = ph.since.get(bigRoom)!;
    let killedAt = 0;
    let killing: Promise<unknown> | null = null;
    const total = (bigSenders.length + pairs.length * 2) * PER_SENDER;
    await traffic(ph, 'k', (n) => {
      if (n === Math.floor(total / 3) && !killing) {
        killedAt = Date.now();
        up[2] = false;
        killing = children[1]!.kill('SIGKILL');
      }
    });
    const exit = (await killing) as unknown as { signal: string };
    assert.equal(exit.signal, 'SIGKILL');
    const all = [...ph.acked.values()].flat();
    const after = all.filter((x) => x.start > killedAt);
    assert.ok(after.length > 0, 'sends began after the kill');
    const firstAck = Math.min(...after.map((x) => x.at)) - killedAt;
    assert.ok(firstAck < 30_000, `first send begun after the kill acknowledged ${firstAck} ms after it`);
    const moved = [2, 5, ...bigSenders, ...bigFollowers].filter((u) => u % 3 === 2 && clients[u]!.moves > 0);
    assert.ok(moved.length >= 4, `worker 3's active clients moved to other workers (${moved.length})`);
    const { caughtUp } = await checkDelivery(ph, 60_000, 'linear');

    // All 200 members: one incremental /sync each, from before the traffic, on a live worker.
    const order = await roomOrder(clients[0]!, bigRoom, ph.since.get(bigRoom)!);
    const t0 = Date.now();
    await pool(MEMBERS, 12, async (i) => {
      let body: any = null;
      while (!body) body = await clients[i]!.syncOnce(filter, before, 0);
      const tl = body.rooms?.join?.[bigRoom]?.timeline;
      assert.ok(tl, `m${i}: the big room is in the incremental sync`);
      assert.equal(tl.limited, false, `m${i}: not limited`);
      const got = (tl.events as Array<{ type: string; event_id: string }>).filter((e) => e.type === 'm.room.message').map((e) => e.event_id);
      assert.deepEqual(got, order.map((s) => s.id), `m${i}: every acknowledged message of the big room once, in order`);
    });
    const honoured = clients.reduce((n, c) => n + c.honoured.length, 0);
    const refused = ph.followers.reduce((n, f) => n + (f instanceof SocketFollower ? f.refused.length : 0), 0);
    console.log(
      `      SIGKILL of worker 3: first ack ${firstAck} ms after the kill; followers caught up ${caughtUp} ms after the traffic; ` +
        `${moved.length} of its clients moved; ${honoured} 429/503 answers waited out (${refused} socket upgrades refused); ` +
        `200 members' /syncs checked in ${Date.now() - t0} ms`,
    );
  });

  it('Redis stopped and started again mid-traffic: nothing acknowledged is lost or duplicated, and delivery resumes', async () => {
    if (!children[1]!.running) await children[1]!.start(START_MS);
    up[2] = true;
    const ph = await follow();
    let downAt = 0;
    let backAt = 0;
    let outage: Promise<void> | null = null;
    const total = (bigSenders.length + pairs.length * 2) * PER_SENDER;
    await traffic(ph, 'r', (n) => {
      if (n === Math.floor(total / 3) && !outage) {
        outage = (async () => {
          downAt = Date.now();
          redis.stop();
          await sleep(3_000);
          redis.start();
          backAt = Date.now();
        })();
      }
    });
    await outage;
    const all = [...ph.acked.values()].flat();
    const afterBack = all.filter((x) => x.start > backAt);
    const firstAck = afterBack.length > 0 ? Math.min(...afterBack.map((x) => x.at)) - backAt : -1;
    // Not one chain here: the owner of a room when Redis lost its data keeps writing until its
    // next renewal finds the lease gone, while another worker may already have taken the room
    // (no lease to stop it): the fence's known window (docs/deploy.md) can fork the room once.
    const { caughtUp, forks } = await checkDelivery(ph, 60_000, 'healed');
    // Delivery resumed: a message sent now reaches a follower on each worker.
    const fresh = await follow();
    const id = await clients[6]!.send(bigRoom, `r-after-${Date.now()}`, 'after the restart');
    const t0 = Date.now();
    const want = new Map([[bigRoom, new Set([id])]]);
    await Promise.all(fresh.followers.filter((f) => f.rooms.includes(bigRoom)).map((f) => f.waitFor(want, 30_000)));
    const resumed = Date.now() - t0;
    await Promise.all(fresh.followers.map((f) => f.stop()));
    console.log(
      `      Redis down ${backAt - downAt} ms: first send begun after it returned acknowledged after ${firstAck} ms; ` +
        `followers caught up ${caughtUp} ms after the traffic ended (${Date.now() - backAt} ms after Redis returned, checks included); a new message reached every follower in ${resumed} ms; ` +
        `${forks} message(s) not citing the one before (forks at the handover, healed)`,
    );
  });
});

/** Runs `fn(0..n-1)` with at most `width` at once. */
async function pool(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}
