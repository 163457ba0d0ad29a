// One contract for both SharedState implementations (src/cluster): the same assertions run
// against the in-process one and against a real Redis (started by spec/helpers/redis.ts). "Two
// instances" are two SharedStates on one backend: for Redis two independent connections, as two
// hearth processes would hold; for the local one the same object, which is all one process has.

import assert from 'node:assert/strict';
import { pino } from 'pino';
import { localSharedState, type SharedState } from '../../src/cluster/shared-state.js';
import { openRedisSharedState } from '../../src/cluster/redis.js';
import { memoryBackend, type RateLimitBackendFactory } from '../../src/admission/rate-limit.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';
import { MatrixError } from '../../src/errors.js';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Pair {
  a: SharedState;
  b: SharedState;
  rateA: RateLimitBackendFactory;
  rateB: RateLimitBackendFactory;
  close(): Promise<void>;
}

function contract(label: string, make: () => Promise<Pair>): void {
  describe(`cluster shared state contract: ${label}`, function () {
    let p: Pair;
    beforeEach(async () => {
      p = await make();
    });
    afterEach(async () => p.close());

    it('get/set/delete, and a set replaces the value', async () => {
      const m = p.a.map('m');
      assert.equal(await m.get('k'), undefined);
      await m.set('k', 'one', 60_000);
      assert.equal(await m.get('k'), 'one');
      await m.set('k', 'two', 60_000);
      assert.equal(await m.get('k'), 'two');
      await m.delete('k');
      assert.equal(await m.get('k'), undefined);
    });

    it('maps of different names do not share keys', async () => {
      await p.a.map('x').set('k', 'in x', 60_000);
      assert.equal(await p.a.map('y').get('k'), undefined);
      assert.equal(await p.a.map('x').get('k'), 'in x');
    });

    it('an entry past its TTL is never returned', async () => {
      const m = p.a.map('ttl');
      await m.set('short', 'v', 100);
      await m.set('long', 'v', 60_000);
      assert.equal(await m.get('short'), 'v');
      await sleep(250);
      assert.equal(await m.get('short'), undefined);
      assert.equal(await m.take('short'), undefined);
      assert.equal(await m.get('long'), 'v');
    });

    it('take returns the value once, and of concurrent takers exactly one wins', async () => {
      const m = p.a.map('take');
      await m.set('once', 'v', 60_000);
      assert.equal(await m.take('once'), 'v');
      assert.equal(await m.take('once'), undefined);
      await m.set('race', 'prize', 60_000);
      const mb = p.b.map('take');
      const got = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? mb : m).take('race')));
      assert.deepEqual(got.filter((v) => v !== undefined), ['prize']);
    });

    it('what one instance sets the other reads, and takes', async () => {
      await p.a.map('shared').set('k', 'from a', 60_000);
      assert.equal(await p.b.map('shared').get('k'), 'from a');
      assert.equal(await p.b.map('shared').take('k'), 'from a');
      assert.equal(await p.a.map('shared').get('k'), undefined);
    });

    it('a broadcast reaches every subscriber of its channel on both instances, and no other channel', async () => {
      const seenA: string[] = [];
      const seenB: string[] = [];
      const other: string[] = [];
      await p.a.broadcast.subscribe('ch', (m) => seenA.push(m));
      await p.b.broadcast.subscribe('ch', (m) => seenB.push(m));
      await p.b.broadcast.subscribe('other', (m) => other.push(m));
      await p.a.broadcast.publish('ch', 'hello');
      await p.b.broadcast.publish('ch', 'back');
      for (let i = 0; i < 100 && (seenA.length < 2 || seenB.length < 2); i++) await sleep(10);
      assert.deepEqual(seenA, ['hello', 'back']);
      assert.deepEqual(seenB, ['hello', 'back']);
      assert.deepEqual(other, []);
    });

    it('rate limits: a burst, then a wait; keys are separate; both instances spend one bucket', async () => {
      const ra = p.rateA('contract', { per_second: 1, burst: 3 });
      const rb = p.rateB('contract', { per_second: 1, burst: 3 });
      assert.equal(await ra.consume('alice'), 0);
      assert.equal(await rb.consume('alice'), 0);
      assert.equal(await ra.peek!('alice'), 0);
      assert.equal(await rb.consume('alice'), 0);
      const wait = await ra.consume('alice');
      assert.ok(wait > 0 && wait <= 3000, `retry after ${wait}`);
      assert.ok((await rb.peek!('alice')) > 0);
      assert.equal(await rb.consume('bob'), 0);
    });
  });
}

contract('local (one process)', async () => {
  const s = localSharedState();
  // One process builds one limiter per name (createRateLimiters); both "instances" use it.
  const built = new Map<string, ReturnType<RateLimitBackendFactory>>();
  const rate: RateLimitBackendFactory = (name, rule) => {
    if (!built.has(name)) built.set(name, memoryBackend(name, rule));
    return built.get(name)!;
  };
  return { a: s, b: s, rateA: rate, rateB: rate, close: () => s.close() };
});

contract('Redis (two connections)', async () => {
  const url = startRedis();
  const keyPrefix = freshPrefix('contract');
  const a = await openRedisSharedState({ url, keyPrefix, logger: silent });
  const b = await openRedisSharedState({ url, keyPrefix, logger: silent });
  return {
    a,
    b,
    rateA: a.rateLimits(),
    rateB: b.rateLimits(),
    async close() {
      await a.close();
      await b.close();
    },
  };
});

describe('cluster shared state: Redis unreachable', function () {
  it('a map operation fails as 503 M_UNKNOWN, not as an unexplained error', async () => {
    const s = await openRedisSharedState({ url: startRedis(), keyPrefix: freshPrefix('down'), logger: silent });
    s.client.disconnect();
    const m = s.map('m');
    for (const op of [() => m.get('k'), () => m.set('k', 'v', 1000), () => m.take('k'), () => m.delete('k')]) {
      await assert.rejects(op(), (err: any) => err instanceof MatrixError && err.status === 503 && err.errcode === 'M_UNKNOWN');
    }
    await s.close();
  });

  it('start-up fails loudly when no Redis answers at the URL', async () => {
    await assert.rejects(openRedisSharedState({ url: 'redis://:secret@127.0.0.1:1', keyPrefix: 'x:', logger: silent }), (err: Error) => {
      assert.match(err.message, /cannot connect to Redis \(cluster.redis.url\) at 127\.0\.0\.1:1/);
      assert.doesNotMatch(err.message, /secret/);
      return true;
    });
  });
});
