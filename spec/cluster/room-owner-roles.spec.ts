// RoomOwner with `mayAcquire: false` (a worker without the room_writer role) on a real Redis:
// it never takes a lease, sends calls for free rooms to a live writer (the same one for a room),
// to the holder for held rooms, refuses callback work, answers a retryable 503 at once when no
// writer is alive, and re-routes a queued call when its writer dies.

import { assert } from '../helpers/assert.js';
import { freshPrefix, redisClient } from '../helpers/redis.js';
import { RoomOwner, type ForwardHandler } from '../../src/cluster/room-owner.js';
import { MatrixError } from '../../src/errors.js';

const quiet = { warn: () => undefined };

describe('room owner: a worker that may not acquire (roles)', function () {
  this.timeout(20_000);
  let prefix = '';
  const owners: RoomOwner[] = [];
  const conns: ReturnType<typeof redisClient>[] = [];
  beforeEach(() => {
    prefix = freshPrefix('owner-roles');
  });
  afterEach(async () => {
    for (const o of owners.splice(0)) await o.stop().catch(() => undefined);
    for (const c of conns.splice(0)) c.disconnect();
  });

  function worker(name: string, handler: ForwardHandler, mayAcquire: boolean, forwardTimeoutMs = 5_000) {
    const redis = redisClient();
    const blocking = redisClient();
    conns.push(redis, blocking);
    const owner = new RoomOwner({ redis, blocking, prefix, nodeId: name, leaseMs: 1_000, lingerMs: 100, forwardTimeoutMs, mayAcquire, logger: quiet });
    owner.start(handler);
    owners.push(owner);
    return { owner, redis, blocking };
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const announced = async (o: RoomOwner, n: number) => {
    while ((await o.liveWriters()).length < n) await sleep(10);
  };

  it('forwards every call to a live writer, the same one for a room, and never takes a lease', async () => {
    const api = worker('api', async () => 'api forwarded', false);
    const w1 = worker('w1', async (op, room) => `w1 ${op} ${room}`, true);
    const w2 = worker('w2', async (op, room) => `w2 ${op} ${room}`, true);
    await announced(api.owner, 2);
    assert.deepEqual(await api.owner.liveWriters(), ['w1', 'w2'], 'only writers announce themselves');
    const byRoom = new Map<string, string>();
    for (let i = 0; i < 12; i++) {
      const room = `!r${i % 4}`;
      const got = (await api.owner.run(room, async () => 'ran on api', 'submit', [])) as string;
      assert.match(got, new RegExp(`^w[12] submit ${room}$`));
      const writer = got.split(' ')[0]!;
      assert.equal(byRoom.get(room) ?? writer, writer, `${room} always goes to one writer`);
      byRoom.set(room, writer);
      await sleep(150); // linger passes: the room is free again, so the hash decides again
    }
    assert.equal(api.owner.stats.acquired, 0);
    assert.equal(api.owner.holds('!r0'), false);
    // A room held by a writer goes to the holder, whatever the hash says: each writer in turn
    // holds a room (busy with local work) while the api worker calls.
    for (const [name, w] of [['w1', w1], ['w2', w2]] as const) {
      let done!: () => void;
      const busy = w.owner.run(`!held-${name}`, () => new Promise<string>((r) => (done = () => r('local'))), 'submit', []);
      while (!w.owner.holds(`!held-${name}`)) await sleep(5);
      assert.equal(await api.owner.run(`!held-${name}`, async () => 'ran on api', 'submit', []), `${name} submit !held-${name}`);
      done();
      await busy;
    }
    // Room-less calls (a room whose ID is not known yet) reach a writer too.
    assert.match((await api.owner.forwardToWriter('', 'createRoom', [])) as string, /^w[12] createRoom $/);
  });

  it('refuses callback work, and answers a retryable 503 at once with no writer alive', async () => {
    const api = worker('api', async () => null, false);
    const e1 = await api.owner.runHere('!r', async () => 'ran').catch((e: unknown) => e);
    assert.ok(e1 instanceof MatrixError && e1.status === 501, String(e1));
    const e2 = await api.owner.run('!r', async () => 'ran', 'submit', []).catch((e: unknown) => e);
    assert.ok(e2 instanceof MatrixError, String(e2));
    assert.equal(e2.status, 503);
    // At once: the refusal of an empty writer set, not the forward deadline's "did not answer"
    // (5 s later). Told apart by what it says, not by a clock a loaded machine can overrun.
    assert.match(e2.message, /^No room writer is running/);
    assert.ok(Number(e2.extra.retry_after_ms) > 0);
    // A writer that stopped cleanly leaves the set at once.
    const w = worker('w', async () => 'w', true);
    await announced(api.owner, 1);
    assert.equal(await api.owner.run('!r', async () => 'ran', 'submit', []), 'w');
    await w.owner.stop();
    assert.deepEqual(await api.owner.liveWriters(), []);
  });

  it('a call queued for a writer that died is taken back and goes to another live writer', async () => {
    // The forward deadline (60 s) is far past the bound below: an answer from 'alive' within it
    // was re-routed when the dead writer's entry lapsed, not after waiting out the deadline.
    const api = worker('api', async () => null, false, 60_000);
    let ranOnDead = 0;
    const dead = worker('dead', async () => (ranOnDead++, 'dead'), true);
    await announced(api.owner, 1);
    // "Kill" it: it neither pops nor renews, and its entry lapses one lease later.
    dead.redis.disconnect();
    dead.blocking.disconnect();
    worker('alive', async () => 'alive', true);
    const check = redisClient();
    conns.push(check);
    // Make sure the dead one is chosen first: keep only it in the set until the call is queued.
    await check.zrem(`${prefix}ro:writers`, 'alive');
    const t0 = Date.now();
    const r = await api.owner.run('!r', async () => 'ran on api', 'submit', []);
    assert.equal(r, 'alive');
    assert.equal(ranOnDead, 0);
    assert.ok(Date.now() - t0 < 15_000, `re-routed in ${Date.now() - t0} ms (lease 1000 ms, deadline 60 s)`);
    assert.equal(await check.llen(`${prefix}ro:req:dead`), 0, 'the call was taken back from the dead writer\'s list');
  });
});
