// Per-room owner leases and forwarding on a real Redis (src/cluster/room-owner.ts): two RoomOwner
// instances (two "workers") on one Redis prefix.

import { assert } from '../helpers/assert.js';
import { freshPrefix, redisClient, redisDropped } from '../helpers/redis.js';
import { RoomOwner, type ForwardHandler } from '../../src/cluster/room-owner.js';
import { MatrixError } from '../../src/errors.js';
import { until } from '../helpers/until.js';

const quiet = { warn: () => undefined };

describe('room owner (Redis leases, epochs, forwarding)', function () {
  this.timeout(20_000);
  let prefix = '';
  const owners: RoomOwner[] = [];
  const conns: ReturnType<typeof redisClient>[] = [];
  beforeEach(() => {
    prefix = freshPrefix('owner');
  });
  afterEach(async () => {
    for (const o of owners.splice(0)) await o.stop().catch(() => undefined);
    for (const c of conns.splice(0)) c.disconnect();
  });

  function worker(name: string, handler: ForwardHandler, extra: { leaseMs?: number; lingerMs?: number; forwardTimeoutMs?: number } = {}) {
    // Named per test, so a test can wait for Redis to drop a "killed" worker's connections.
    const redis = redisClient(`${prefix}${name}`);
    const blocking = redisClient(`${prefix}${name}`);
    conns.push(redis, blocking);
    const acquired: Array<[string, number]> = [];
    const lost: string[] = [];
    const owner = new RoomOwner({
      redis,
      blocking,
      prefix,
      nodeId: name,
      leaseMs: 1_000,
      lingerMs: 100,
      forwardTimeoutMs: 5_000,
      onAcquired: (room, epoch) => acquired.push([room, epoch]),
      onLost: (room) => lost.push(room),
      logger: quiet,
      ...extra,
    });
    owner.start(handler);
    owners.push(owner);
    return { owner, redis, blocking, acquired, lost };
  }

  /** Waits for a condition (polled), never for a guessed time: under load timers run late. */
  it('the first caller takes a free room and runs locally; each acquisition gets a greater epoch', async () => {
    const a = worker('a', async () => 'forwarded');
    const b = worker('b', async () => 'forwarded');
    assert.equal(await a.owner.run('!r', async () => 'local a', 'op', []), 'local a');
    const e1 = a.acquired[0]![1];
    assert.deepEqual(a.acquired, [['!r', e1]]);
    assert.equal(e1, 1, 'the counter, not a clock');
    assert.equal(a.owner.epochOf('!r'), e1);
    const check = redisClient();
    conns.push(check);
    // The linger passes and the holder deletes the lease key.
    const released = () => until('the lease released', async () => (await check.exists(`${prefix}ro:lease:!r`)) === 0);
    await released();
    assert.equal(a.owner.holds('!r'), false);
    assert.equal(await b.owner.run('!r', async () => 'local b', 'op', []), 'local b');
    const e2 = b.acquired[0]![1];
    assert.ok(e2 > e1);
    await released();
    assert.equal(await a.owner.run('!r', async () => 'local a again', 'op', []), 'local a again');
    const e3 = a.acquired[1]![1];
    assert.ok(e3 > e2);
    assert.equal(a.owner.epochOf('!r'), e3);
    // Many acquisitions within a millisecond still get distinct, increasing epochs.
    const before = Number(await check.get(`${prefix}ro:epoch:!r`));
    await check.set(`${prefix}ro:epoch:!r`, String(before + 1_000_000)); // counter ahead of the clock
    await released();
    await b.owner.run('!r', async () => null, 'op', []);
    assert.equal(b.acquired[1]![1], before + 1_000_001);
    // A Redis that lost the counter counts from 1 again; the store refuses that epoch (it
    // records before + 1_000_001), and the holder, its lease still its own, takes one above.
    await released();
    await check.del(`${prefix}ro:epoch:!r`);
    const recorded = before + 1_000_001;
    const regained = await a.owner.run('!r', async () => {
      assert.equal(a.owner.epochOf('!r'), 1);
      assert.equal(await b.owner.regainAbove('!r', recorded), false, 'b does not hold the room');
      return a.owner.regainAbove('!r', recorded);
    }, 'op', []);
    assert.equal(regained, true);
    assert.equal(a.owner.epochOf('!r'), recorded + 1);
    assert.deepEqual(a.acquired.slice(2), [['!r', 1], ['!r', recorded + 1]], 'onAcquired again: cached state goes');
    assert.equal(await check.get(`${prefix}ro:lease:!r`), `a:${recorded + 1}`, 'the lease carries the new epoch');
    assert.equal(Number(await check.get(`${prefix}ro:epoch:!r`)), recorded + 1, 'later acquisitions count on from there');
    // A holder whose lease is no longer in Redis (lost with its data) cannot regain: it drops the room.
    await a.owner.run('!r', async () => {
      await check.del(`${prefix}ro:lease:!r`);
      assert.equal(await a.owner.regainAbove('!r', recorded + 5), false);
      a.owner.dropLost('!r');
    }, 'op', []);
    assert.equal(a.owner.holds('!r'), false);
    // Epochs recorded under the old clock seeding (~2^41) are formatted exactly.
    await released();
    const clockEra = 1_765_000_000_123;
    await a.owner.run('!r', async () => {
      assert.equal(await a.owner.regainAbove('!r', clockEra), true);
    }, 'op', []);
    assert.equal(a.owner.epochOf('!r'), clockEra + 1);
  });

  it('a non-owner forwards to the owner, which runs the operation; results come back as JSON', async () => {
    const seen: Array<[string, string, unknown[]]> = [];
    const a = worker('a', async (op, room, args) => {
      seen.push([op, room, args]);
      return { eventId: `$${String((args[0] as { n: number }).n)}`, stream: 7, deduplicated: false };
    });
    const b = worker('b', async () => {
      throw new Error('b never serves');
    });
    let release!: () => void;
    const holding = a.owner.run('!r', () => new Promise<string>((r) => (release = () => r('done'))), 'op', []);
    await until('a holds the room', () => a.owner.holds('!r'));
    const localOnB: string[] = [];
    const results = await Promise.all(
      [1, 2, 3].map((n) =>
        b.owner.run('!r', async () => {
          localOnB.push('ran on b');
          return null;
        }, 'submit', [{ n, content: { body: 'x' } }]),
      ),
    );
    assert.deepEqual(results, [1, 2, 3].map((n) => ({ eventId: `$${n}`, stream: 7, deduplicated: false })));
    assert.deepEqual(localOnB, [], 'nothing ran on the non-owner');
    assert.deepEqual(seen.map(([op, room, args]) => [op, room, (args[0] as { n: number }).n]), [['submit', '!r', 1], ['submit', '!r', 2], ['submit', '!r', 3]]);
    assert.equal(b.owner.holds('!r'), false);
    release();
    assert.equal(await holding, 'done');
  });

  it('a MatrixError from the owner reaches the caller with errcode, message, status and extra fields intact; other errors keep their message', async () => {
    const a = worker('a', async (op) => {
      if (op === 'forbidden') throw new MatrixError('M_FORBIDDEN', 'You are not allowed to send here');
      if (op === 'limited') throw new MatrixError('M_LIMIT_EXCEEDED', 'Too many requests', { retry_after_ms: 1234 });
      throw new TypeError('boom in the owner');
    });
    const b = worker('b', async () => null);
    let release!: () => void;
    const holding = a.owner.run('!r', () => new Promise<void>((r) => (release = r)), 'op', []);
    await until('a holds the room', () => a.owner.holds('!r'));
    const forbidden = await b.owner.run('!r', async () => 'local', 'forbidden', []).catch((e: unknown) => e);
    assert.ok(forbidden instanceof MatrixError);
    assert.deepEqual(forbidden.toJSON(), { errcode: 'M_FORBIDDEN', error: 'You are not allowed to send here' });
    assert.equal(forbidden.status, 403);
    const limited = await b.owner.run('!r', async () => 'local', 'limited', []).catch((e: unknown) => e);
    assert.ok(limited instanceof MatrixError);
    assert.deepEqual(limited.toJSON(), { errcode: 'M_LIMIT_EXCEEDED', error: 'Too many requests', retry_after_ms: 1234 });
    assert.equal(limited.status, 429);
    const boom = await b.owner.run('!r', async () => 'local', 'other', []).catch((e: unknown) => e);
    assert.ok(boom instanceof Error && !(boom instanceof MatrixError));
    assert.equal(boom.message, 'boom in the owner');
    release();
    await holding;
  });

  it('when the owner dies, a forwarded request that never ran is taken back and the room is taken over once the lease expires', async () => {
    let ranOnA = 0;
    const a = worker('a', async () => {
      ranOnA++;
      return 'a';
    });
    // b's forward deadline (60 s) is far past the bound below: 'b local' within it is the
    // takeover at the lease's expiry, never the end of a wait for the dead owner.
    const b = worker('b', async () => 'b forwarded', { forwardTimeoutMs: 60_000 });
    await a.owner.run('!r', async () => 'a local', 'op', []);
    // "Kill" a while it holds the room: its connections drop, so it neither renews nor pops.
    a.redis.disconnect();
    a.blocking.disconnect();
    const t0 = Date.now();
    // disconnect() only starts the close: until Redis has seen it, a's BLPOP is still blocked
    // there and would be handed b's request, which then neither runs nor comes back (that is a
    // request that may have run, which b rightly waits out to its timeout). The request this
    // test is about is one pushed after a is gone.
    const check = redisClient();
    conns.push(check);
    await redisDropped(check, `${prefix}a`);
    const r = await b.owner.run('!r', async () => 'b local', 'submit', [{}]);
    const took = Date.now() - t0;
    assert.equal(r, 'b local', 'b took the room over and ran the call itself');
    assert.equal(ranOnA, 0);
    assert.equal(b.acquired.length, 1);
    assert.ok(b.acquired[0]![1] > a.acquired[0]![1]);
    assert.ok(took < 15_000, `takeover took ${took} ms (lease 1000 ms, deadline 60 s)`);
    assert.equal(await check.llen(`${prefix}ro:req:a`), 0, 'the abandoned request was removed from the dead owner\'s list');
  });

  it('an owner whose lease was taken learns it at the next renewal and keeps presenting its old epoch', async () => {
    const a = worker('a', async () => null, { lingerMs: 10_000 });
    const b = worker('b', async () => 'served by b', { lingerMs: 10_000 });
    await a.owner.run('!r', async () => null, 'op', []);
    assert.equal(a.owner.holds('!r'), true);
    const check = redisClient();
    conns.push(check);
    await check.del(`${prefix}ro:lease:!r`); // as if it expired while a was paused
    assert.equal(await b.owner.run('!r', async () => 'b', 'op', []), 'b');
    const stale = a.acquired[0]![1];
    assert.ok(b.acquired[0]![1] > stale);
    // Nothing but a renewal tick (every lease/3) tells a.
    await until('a renewal finds the lease taken', () => a.lost.length > 0);
    assert.deepEqual(a.lost, ['!r']);
    assert.equal(a.owner.holds('!r'), false);
    assert.equal(a.owner.epochOf('!r'), stale, 'a stale writer keeps its old epoch (the store fences it)');
    // a's next call goes to b now.
    assert.equal(await a.owner.run('!r', async () => 'a local', 'op', []), 'served by b');
  });

  it('runHere waits for another owner to release the room, and fails with a retryable 503 if it never does', async () => {
    const a = worker('a', async () => null);
    const b = worker('b', async () => null);
    let release!: () => void;
    const holding = a.owner.run('!r', () => new Promise<void>((r) => (release = r)), 'op', []);
    await until('a holds the room', () => a.owner.holds('!r'));
    const refused = await b.owner.runHere('!r', async () => 'b', 300).catch((e: unknown) => e);
    assert.ok(refused instanceof MatrixError);
    assert.equal(refused.status, 503);
    assert.equal(refused.errcode, 'M_UNKNOWN');
    setTimeout(() => release(), 100);
    assert.equal(await b.owner.runHere('!r', async () => 'b', 3_000), 'b');
    await holding;
    assert.equal(b.acquired.length, 1);
    assert.ok(b.acquired[0]![1] > a.acquired[0]![1]);
  });
});
