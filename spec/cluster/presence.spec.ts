// Presence across workers (src/ephemeral/presence.ts with a Redis broadcast): two
// PresenceServices replicating through a real Redis, as two hearth workers do, and two
// in-process servers on one Redis prefix where a user syncing on one sees a room-mate's presence
// set on the other. Also: ephemeral positions stay comparable across workers (a token from one
// works on the other), one worker drives a user's timers, and losing Redis only degrades.

import { assert } from '../helpers/assert.js';
import { pino } from 'pino';
import { PresenceService, type PresenceRecord } from '../../src/ephemeral/presence.js';
import { EphemeralStream } from '../../src/ephemeral/stream.js';
import { LocalNotifier, type ChangeNotice } from '../../src/sync/notifier.js';
import { openRedisSharedState, type RedisSharedState } from '../../src/cluster/redis.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeUser, ok, roomWith, syncOk, V3, type User } from '../helpers/fixtures.js';
import { until } from '../helpers/until.js';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Worker {
  presence: PresenceService;
  stream: EphemeralStream;
  woken: ChangeNotice[];
  heard: PresenceRecord[];
  shared: RedisSharedState;
}

const OFFLINE_MS = 400;
const IDLE_MS = 10_000;

async function worker(prefix: string, streamStart?: number): Promise<Worker> {
  const shared = await openRedisSharedState({ url: startRedis(), keyPrefix: prefix, logger: silent });
  const notifier = new LocalNotifier();
  const woken: ChangeNotice[] = [];
  notifier.subscribe((n) => woken.push(n));
  const stream = new EphemeralStream(streamStart);
  const presence = new PresenceService(
    { enabled: true, idleTimeoutMs: IDLE_MS, offlineTimeoutMs: OFFLINE_MS },
    { stream, notifier, roomsOf: async () => ['!shared:x'], cluster: { broadcast: shared.broadcast, logger: silent } },
  );
  const heard: PresenceRecord[] = [];
  presence.listeners.push((r) => heard.push({ ...r }));
  await presence.listen();
  return { presence, stream, woken, heard, shared };
}

describe('cluster presence: two workers on Redis', function () {
  this.timeout(20_000);
  let a: Worker;
  let b: Worker;

  beforeEach(async () => {
    const prefix = freshPrefix('presence');
    // A's stream runs far ahead (as after a burst of changes): B must still order after A's tokens.
    a = await worker(prefix, Date.now() + 5_000);
    b = await worker(prefix);
  });
  afterEach(async () => {
    for (const w of [a, b]) {
      w.presence.stop();
      await w.shared.close().catch(() => undefined);
    }
  });

  it("a status set on B reaches A with the user's record and wakes A's readers; only B's listeners hear it", async () => {
    const since = a.stream.current();
    b.presence.setStatus('@bob:x', 'unavailable', 'at lunch');
    await until('A sees bob', () => a.presence.get('@bob:x')?.state === 'unavailable');
    const r = a.presence.get('@bob:x')!;
    assert.equal(r.statusMsg, 'at lunch');
    assert.equal(r.currentlyActive, false);
    assert.deepEqual(a.presence.changedSince(since).map((x) => x.userId), ['@bob:x']);
    assert.ok(a.woken.some((n) => n.kind === 'presence' && n.userIds?.includes('@bob:x')), 'woke A for the user');
    await until('A wakes the rooms', () => a.woken.some((n) => n.kind === 'presence' && n.roomId === '!shared:x'));
    assert.equal(b.heard.length, 1, 'the worker that made the change tells federation');
    assert.equal(a.heard.length, 0, 'a replica does not tell it again');
  });

  it('a token from one worker works on the other: a later change anywhere is above it', async () => {
    // B learns A's (far ahead) position from A's first broadcast.
    a.presence.setStatus('@alice:x', 'online', 'here');
    await until('B sees alice', () => b.presence.get('@alice:x')?.statusMsg === 'here');
    const tokenFromA = a.stream.current();
    assert.ok(tokenFromA > Date.now() + 1_000, 'A runs ahead of the wall clock');
    b.presence.setStatus('@bob:x', 'online', 'on B');
    // Used on B (where the change was made) and on A (where it arrives), the token shows it.
    assert.deepEqual(b.presence.changedSince(tokenFromA).map((r) => r.userId), ['@bob:x']);
    await until('A sees bob', () => a.presence.get('@bob:x')?.statusMsg === 'on B');
    assert.deepEqual(a.presence.changedSince(tokenFromA).map((r) => r.userId), ['@bob:x']);
    // And a token from B covers what it saw: nothing newer on either worker.
    const tokenFromB = b.stream.current();
    assert.deepEqual(a.presence.changedSince(Math.max(tokenFromB, a.presence.get('@bob:x')!.pos)), []);
  });

  it('a user who moves to B and keeps syncing there is not expired by A, where they synced before; leaving, they go offline everywhere', async () => {
    a.presence.syncing('@carol:x', undefined);
    await until('B sees carol online', () => b.presence.get('@carol:x')?.state === 'online');
    // carol moves to B and keeps syncing there; A saw her last sync long ago.
    const end = Date.now() + 2_500; // past A's deadline, at one-second sweep granularity
    while (Date.now() < end) {
      b.presence.syncing('@carol:x', undefined);
      await sleep(50);
      a.presence.sweep();
      b.presence.sweep();
    }
    assert.ok(!a.heard.some((r) => r.userId === '@carol:x' && r.state !== 'online'), 'A never expired her (no flap to offline and back)');
    assert.equal(a.presence.get('@carol:x')?.state, 'online', 'A handed carol over to B');
    assert.equal(b.presence.get('@carol:x')?.state, 'online');
    // She leaves: B (the driver) takes her offline, and A follows.
    await until('offline on B', () => (b.presence.sweep(), b.presence.get('@carol:x')?.state === 'offline'), 10_000);
    await until('offline on A', () => a.presence.get('@carol:x')?.state === 'offline');
  });

  it("a user of another server set on one worker is replicated, and no replica's timers expire them", async () => {
    a.presence.setRemote('@erin:elsewhere', 'online', 'remote', 0, true);
    await until('B sees erin', () => b.presence.get('@erin:elsewhere')?.state === 'online');
    await sleep(2 * OFFLINE_MS + 1100);
    a.presence.sweep();
    b.presence.sweep();
    assert.equal(b.presence.get('@erin:elsewhere')?.state, 'online', 'only their server moves them along');
    assert.equal(a.presence.get('@erin:elsewhere')?.state, 'online');
  });

  it('Redis lost: changes still apply locally and nothing throws', async () => {
    await b.shared.close();
    b.presence.setStatus('@dave:x', 'online', 'alone');
    b.presence.syncing('@dave:x', 'online');
    assert.equal(b.presence.get('@dave:x')?.statusMsg, 'alone');
    await sleep(100);
    assert.equal(a.presence.get('@dave:x'), undefined, 'nothing reached A');
  });
});

describe('cluster presence: two servers on one Redis prefix', function () {
  this.timeout(30_000);
  let sa: TestServer;
  let sb: TestServer;
  let aliceA: User;
  let bobB: User;

  before(async () => {
    const redis = { url: startRedis(), key_prefix: freshPrefix('presence-servers') };
    [sa, sb] = [await startTestServer({ cluster: { redis } }), await startTestServer({ cluster: { redis } })];
    // Separate databases (SQLite has one writer): the room is made on A, bob exists on both.
    aliceA = await makeUser(sa, 'alice');
    const bobA = await makeUser(sa, 'bob');
    await roomWith(aliceA, [bobA]);
    bobB = await makeUser(sb, 'bob');
  });
  after(async () => {
    await sa?.stop();
    await sb?.stop();
  });

  it("alice syncing on A sees bob's presence set on B, woken from a long-poll", async () => {
    const first = await syncOk(aliceA);
    const poll = syncOk(aliceA, { since: first.next_batch, timeout: 10_000 });
    await sleep(200);
    await ok(bobB.put(`${V3}/presence/${encodeURIComponent(bobB.userId)}/status`, { presence: 'online', status_msg: 'set on B' }), 'PUT presence');
    const t = Date.now();
    let body = await poll;
    let mine = (body.presence?.events ?? []).filter((e: { sender: string }) => e.sender === bobB.userId);
    // The long-poll may have been woken by alice's own presence first: follow up once.
    if (mine.length === 0) {
      body = await syncOk(aliceA, { since: body.next_batch, timeout: 5_000 });
      mine = (body.presence?.events ?? []).filter((e: { sender: string }) => e.sender === bobB.userId);
    }
    assert.ok(Date.now() - t < 5_000, 'woken, not timed out');
    assert.equal(mine.length, 1, JSON.stringify(body.presence));
    assert.equal(mine[0].content.presence, 'online');
    assert.equal(mine[0].content.status_msg, 'set on B');
    const viaGet = await ok(aliceA.get(`${V3}/presence/${encodeURIComponent(bobB.userId)}/status`), 'GET presence on A');
    assert.equal(viaGet.status_msg, 'set on B');
  });
});
