// The replication stream on a real Redis: several workers' change records merged in position
// order behind the cluster watermark (src/cluster/replication.ts).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { Redis } from 'ioredis';
import { assert } from '../helpers/assert.js';
import { freePort } from '../helpers/child-server.js';
import { freshPrefix, OwnRedis, redisClient } from '../helpers/redis.js';
import { ReplicationStream, type LocalFeed } from '../../src/cluster/replication.js';
import type { ChangeRecord } from '../../src/store/change-types.js';
import { ReadModel } from '../../src/sync/read-model/read-model.js';
import type { ChangeListener } from '../../src/store/stream-id.js';

class FakeWorker implements LocalFeed {
  private readonly listeners = new Set<ChangeListener>();
  /** With writes in flight: the local watermark; else null and the promise is the clock. */
  floor: number | null = null;
  clock: number;
  constructor(
    readonly workerId: number,
    start: number,
  ) {
    this.clock = start;
  }
  onChanges(l: ChangeListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  promise(): number {
    return this.floor ?? this.clock;
  }
  /** Set for a worker on a lease-revoking backend (see revokeWorker in replication.ts). */
  leaseOwner?: string;
  leaseStaleMs?: number;
  revoked: Array<[number, string]> = [];
  revokeWorker?: (workerId: number, owner: string) => Promise<boolean>;
  withLeases(staleMs: number): this {
    this.leaseOwner = `token-of-${this.workerId}`;
    this.leaseStaleMs = staleMs;
    this.revokeWorker = async (w, owner) => {
      this.revoked.push([w, owner]);
      return true;
    };
    return this;
  }
  complete(...positions: number[]): void {
    const changes: ChangeRecord[] = positions.map((stream) => ({ kind: 'receipt', stream, roomId: '!r:x', userId: `@w${this.workerId}:x` }));
    for (const l of this.listeners) l(changes, Math.max(...positions));
  }
}

const quiet = { warn: () => undefined };

describe('replication stream (Redis)', function () {
  this.timeout(20_000);
  const streams: ReplicationStream[] = [];
  const conns: ReturnType<typeof redisClient>[] = [];
  let key = '';
  beforeEach(() => {
    key = freshPrefix('repl') + 'stream';
  });
  afterEach(async () => {
    for (const s of streams.splice(0)) await s.stop();
    for (const c of conns.splice(0)) c.disconnect();
  });

  async function join(
    w: FakeWorker,
    extra: { deadMs?: number; silentMs?: number; heartbeatMs?: number; idleHeartbeatMs?: number; logger?: { warn: (obj: object, msg: string) => void } } = {},
    own?: { url: string; reconnectMs?: number },
  ): Promise<{ stream: ReplicationStream; seen: number[]; resets: number }> {
    // On a Redis of the test's own (which it stops), connection errors are expected: swallowed.
    const conn = () => {
      if (!own) return redisClient();
      const delay = own.reconnectMs;
      return new Redis(own.url, { maxRetriesPerRequest: 3, ...(delay ? { retryStrategy: () => delay } : {}) }).on('error', () => undefined);
    };
    const redis = conn();
    const reader = conn();
    conns.push(redis, reader);
    const stream = new ReplicationStream({ redis, reader, key, local: w, heartbeatMs: 20, joinGraceMs: 100, deadMs: 2_000, logger: quiet, ...extra });
    const out = { stream, seen: [] as number[], resets: 0 };
    stream.onChanges((changes) => {
      for (const c of changes) {
        if (c.kind === 'reset') out.resets++;
        else out.seen.push(c.stream);
      }
    });
    await stream.start();
    streams.push(stream);
    return out;
  }

  const until = async (cond: () => boolean, what: string, ms = 5_000) => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  it('holds a record back while another worker still writes below it, then delivers both in order everywhere', async function () {
    const a = new FakeWorker(1, 100);
    const b = new FakeWorker(2, 100);
    const ra = await join(a);
    const rb = await join(b);
    a.floor = 100; // A is writing position 101
    b.clock = 200;
    b.complete(150);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(ra.seen, [], 'A must not deliver 150 while its own 101 is in flight');
    assert.deepEqual(rb.seen, [], 'B must not deliver 150 while A may still complete 101');
    assert.ok(rb.stream.currentPosition() <= 100);
    a.floor = null;
    a.clock = 300;
    a.complete(101);
    await until(() => ra.seen.length === 2 && rb.seen.length === 2, 'both records on both workers');
    assert.deepEqual(ra.seen, [101, 150]);
    assert.deepEqual(rb.seen, [101, 150]);
    assert.equal(ra.resets + rb.resets, 0);
    await until(() => rb.stream.currentPosition() >= 200, 'the watermark to follow the promises');
  });

  it('idle, a worker beats at the idle rate; a record of another worker still makes it beat at once, so the record is released without waiting for the idle beat', async function () {
    // The idle beat (30 s) is longer than this test may run (20 s): a release seen at all was
    // not an idle beat's, with no wall-clock bound a loaded machine can overrun. Silence and
    // death are past it too, so nobody is dropped meanwhile.
    const idle = { heartbeatMs: 10, idleHeartbeatMs: 30_000, silentMs: 90_000, deadMs: 90_000 };
    const a = new FakeWorker(1, 1000);
    const b = new FakeWorker(2, 1000);
    const ra = await join(a, idle);
    const rb = await join(b, idle);
    const redis = redisClient();
    conns.push(redis);
    const beats = async (): Promise<number> => {
      const entries = (await redis.xrange(key, '-', '+')) as Array<[string, string[]]>;
      return entries.filter(([, f]) => (JSON.parse(f[1]!) as { t: string }).t === 'h').length;
    };
    await new Promise((r) => setTimeout(r, 200));
    const before = await beats();
    await new Promise((r) => setTimeout(r, 1_000));
    const idleBeats = (await beats()) - before;
    // At the fast rate two workers would publish ~200 in a second.
    assert.ok(idleBeats <= 6, `idle heartbeats in 1 s: ${idleBeats}`);
    // Both idle promises are at 1000; B writes 1050 (its clock moved on), A's clock too.
    a.clock = 1100;
    b.clock = 1100;
    b.complete(1050);
    await until(() => ra.seen.includes(1050) && rb.seen.includes(1050), 'the record released on both workers (before any idle beat)', 10_000);
    assert.equal(ra.resets + rb.resets, 0);
  });

  it('a worker that leaves with a goodbye stops holding the watermark at once', async function () {
    const a = new FakeWorker(1, 100);
    const b = new FakeWorker(2, 100);
    // Death far past the wait below: only the goodbye can let A pass B within it.
    const ra = await join(a, { silentMs: 60_000, deadMs: 60_000 });
    const rb = await join(b, { silentMs: 60_000, deadMs: 60_000 });
    b.floor = 100;
    a.clock = 500;
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(ra.stream.currentPosition() <= 100);
    await rb.stream.stop();
    await until(() => ra.stream.currentPosition() >= 500, 'A to pass B after its goodbye', 15_000);
    assert.deepEqual(ra.stream.liveWorkers(), [1]);
  });

  it('a worker that goes silent is waited for until deadMs, then dropped', async function () {
    const a = new FakeWorker(1, 100);
    const c = new FakeWorker(3, 100);
    const ra = await join(a, { deadMs: 600 });
    // C beats at the fast rate even idle: the drop counts from its last heartbeat, and the
    // assertion below measures from the kill with a 200 ms margin.
    const rc = await join(c, { idleHeartbeatMs: 20 });
    c.floor = 100;
    a.clock = 400;
    await new Promise((r) => setTimeout(r, 150));
    assert.ok(ra.stream.currentPosition() <= 100, 'C is alive and writing: A waits');
    // Kill C without a goodbye: its connections drop, its heartbeats stop reaching Redis.
    for (const conn of conns.slice(2, 4)) conn.disconnect();
    const killedAt = Date.now();
    await until(() => ra.stream.currentPosition() >= 400, 'A to drop the silent worker', 10_000);
    assert.ok(Date.now() - killedAt >= 400, 'not dropped before deadMs');
    // What it completed but never published must be read from the store: consumers reset.
    await until(() => ra.resets > 0, 'a reset when the silent worker is dropped', 10_000);
    void rc;
  });

  it('a silent worker is dropped within seconds once its lease is revoked and has gone stale, not at deadMs', async function () {
    const a = new FakeWorker(1, 100).withLeases(300);
    const c = new FakeWorker(3, 100).withLeases(300);
    const ra = await join(a, { silentMs: 400, deadMs: 60_000 });
    await join(c, { silentMs: 400, deadMs: 60_000 });
    c.floor = 100;
    a.clock = 400;
    await new Promise((r) => setTimeout(r, 600));
    assert.ok(ra.stream.currentPosition() <= 100, 'C is alive and writing: A waits, and revokes nothing');
    assert.deepEqual(a.revoked, []);
    for (const conn of conns.slice(2, 4)) conn.disconnect();
    const killedAt = Date.now();
    // Within 15 s, a quarter of deadMs: dropped by the revocation, not by death.
    await until(() => ra.stream.currentPosition() >= 400, 'A to drop the silent worker', 15_000);
    const took = Date.now() - killedAt;
    assert.deepEqual(a.revoked, [[3, 'token-of-3']], 'the lease revoked names the token C published');
    assert.ok(took >= 700, `dropped only after silentMs + leaseStaleMs (${took} ms)`);
    await until(() => ra.resets > 0, 'a reset when the silent worker is dropped', 10_000);
  });

  it('a worker whose lease cannot be revoked (Cassandra did not answer) is still waited for', async function () {
    const a = new FakeWorker(1, 100).withLeases(100);
    a.revokeWorker = async (w, owner) => {
      a.revoked.push([w, owner]);
      return false;
    };
    const c = new FakeWorker(3, 100).withLeases(100);
    const ra = await join(a, { silentMs: 200, deadMs: 60_000 });
    await join(c);
    c.floor = 100;
    a.clock = 400;
    await new Promise((r) => setTimeout(r, 150));
    for (const conn of conns.slice(2, 4)) conn.disconnect();
    await until(() => a.revoked.length >= 2, 'repeated revocation attempts', 10_000);
    assert.ok(ra.stream.currentPosition() <= 100, 'never dropped without proof');
    assert.deepEqual(ra.stream.liveWorkers(), [1, 3]);
  });

  it('a gap in a worker\'s entries (lost publishes) makes consumers reset instead of missing records', async function () {
    const a = new FakeWorker(1, 100);
    const ra = await join(a);
    const raw = redisClient();
    conns.push(raw);
    await raw.xadd(key, '*', 'e', JSON.stringify({ t: 'h', w: 9, s: 1, p: 1000 }));
    await raw.xadd(key, '*', 'e', JSON.stringify({ t: 'c', w: 9, s: 3, p: 1000, c: [{ kind: 'receipt', stream: 900, roomId: '!r:x', userId: '@u:x' }] }));
    a.clock = 2000;
    await until(() => ra.resets > 0, 'a reset');
    assert.ok(!ra.seen.includes(900), 'records after a gap are replaced by the reset');
  });

  it('records lost above the next watermark are resynced: the reset reaches past them, and readers are woken once they become readable (the three-worker Redis-restart miss)', async function () {
    // Worker 9's entry carrying its record at 300 is lost (a failed XADD while Redis was down, or
    // skipped by a reader that reconnected). Its next entry reveals the gap with promise 400 while
    // worker 2 still holds the watermark at 100: the watermark then advances to 200 first. A reset
    // at 200 would leave the read model claiming nothing happened at 300 once the watermark passes
    // it, and a follower syncing from 250 would never get the message.
    const a = new FakeWorker(1, 100);
    const b = new FakeWorker(2, 100);
    const ra = await join(a);
    const model = new ReadModel({ getRoomsForUser: async () => [] }, ra.stream.currentPosition());
    const resets: Array<{ at: number; current: number }> = [];
    ra.stream.onChanges((changes, current) => {
      model.apply(changes, current);
      for (const c of changes) if (c.kind === 'reset') resets.push({ at: c.stream, current });
    });
    await join(b);
    b.floor = 100;
    a.clock = 2_000;
    const raw = redisClient();
    conns.push(raw);
    const entry = (e: object) => raw.xadd(key, '*', 'e', JSON.stringify({ w: 9, ...e }));
    await entry({ t: 'h', s: 1, p: 100, r: 0 });
    await until(() => ra.stream.liveWorkers().includes(9), 'A to know worker 9');
    // s: 2 would have been { t: 'c', p: 300, r: 0, c: [receipt at 300 in !lost:x] }.
    await entry({ t: 'h', s: 3, p: 400, r: 300 });
    await new Promise((r) => setTimeout(r, 100));
    b.floor = null;
    b.clock = 200;
    await until(() => ra.stream.currentPosition() >= 200, 'the watermark to pass 200');
    const woken = resets.length;
    b.clock = 2_000;
    await until(() => ra.stream.currentPosition() >= 400, 'the watermark to follow worker 9');
    assert.ok(resets.length > 0 && resets[0]!.at >= 300, `the first reset reaches past the lost record (resets: ${JSON.stringify(resets)})`);
    assert.equal(model.receipts.changedSince('!lost:x', 250), true, 'a sync from 250 must go to the store and find the lost write');
    assert.ok(resets.length > woken && resets.at(-1)!.current >= 300, `readers are woken again once the lost write is readable (resets: ${JSON.stringify(resets)})`);
    // Only heartbeats lost: nothing to resync.
    const before = resets.length;
    await entry({ t: 'h', s: 6, p: 500, r: 300 });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(resets.length, before, 'lost heartbeats alone cause no reset');
  });

  it('a worker first heard after its hello (Redis lost it) may have queued records nobody read: the reset reaches up to its last one', async function () {
    const a = new FakeWorker(1, 100);
    const ra = await join(a);
    const resets: number[] = [];
    ra.stream.onChanges((changes) => {
      for (const c of changes) if (c.kind === 'reset') resets.push(c.stream);
    });
    // A's clock is past the horizon before the entry arrives: A beats as soon as it reads it
    // (records may be waiting on its promise), and a beat still below the horizon would release
    // the reset early, then wake the readers again at the horizon (a second, correct reset).
    a.clock = 3_000;
    const raw = redisClient();
    conns.push(raw);
    await raw.xadd(key, '*', 'e', JSON.stringify({ t: 'h', w: 8, s: 5, p: 2_500, r: 2_200 }));
    await until(() => resets.length > 0, 'a reset');
    assert.ok(resets[0]! >= 2_200, `reset at ${resets[0]}`);
    await raw.xadd(key, '*', 'e', JSON.stringify({ t: 'h', w: 7, s: 1, p: 2_600, r: 0 }));
    await raw.xadd(key, '*', 'e', JSON.stringify({ t: 'h', w: 8, s: 6, p: 2_700, r: 2_200 }));
    await raw.xadd(key, '*', 'e', JSON.stringify({ t: 'h', w: 7, s: 2, p: 2_700, r: 0 }));
    await until(() => ra.stream.currentPosition() >= 2_700, 'the watermark to follow');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(resets.length, 1, 'a hello needs no reset');
  });

  it('a Redis restart longer than deadMs drops no live worker: the watermark still waits for it, then follows it again', async function () {
    this.timeout(30_000);
    const dir = mkdtempSync(joinPath(tmpdir(), 'hearth-repl-redis-'));
    const own = new OwnRedis(await freePort(), joinPath(dir, 'redis'));
    own.start();
    try {
      const a = new FakeWorker(1, 100);
      const b = new FakeWorker(2, 100);
      const warnings: string[] = [];
      // B reconnects at most every 800 ms, so A's reads usually resume before B is heard again.
      const ra = await join(a, { deadMs: 2_000, logger: { warn: (_o, msg) => warnings.push(msg) } }, { url: own.url });
      await join(b, {}, { url: own.url, reconnectMs: 800 });
      b.floor = 100; // B is writing position 101
      a.clock = 500;
      await new Promise((r) => setTimeout(r, 150));
      assert.ok(ra.stream.currentPosition() <= 100, 'A waits for B');
      own.stop(); // its data is lost with it
      await new Promise((r) => setTimeout(r, 3_000)); // longer than deadMs
      own.start();
      // Both reconnect, each on its own schedule; B is still writing 101.
      await new Promise((r) => setTimeout(r, 2_500));
      assert.deepEqual(ra.stream.liveWorkers(), [1, 2], `B is not dropped for Redis's silence (A logged: ${warnings.join('; ')})`);
      assert.ok(ra.stream.currentPosition() <= 100, `A still waits for B's write in flight (A logged: ${warnings.join('; ')})`);
      b.floor = null;
      b.clock = 600;
      b.complete(101);
      await until(() => ra.stream.currentPosition() >= 500, 'the watermark to follow B again', 5_000);
      assert.ok(ra.resets >= 1, 'entries were lost with Redis: A reset its feed');
    } finally {
      for (const s of streams.splice(0)) await s.stop();
      for (const c of conns.splice(0)) c.disconnect();
      own.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ignores malformed entries', async function () {
    const a = new FakeWorker(1, 100);
    const ra = await join(a);
    const raw = redisClient();
    conns.push(raw);
    await raw.xadd(key, '*', 'e', '{"t":"c","w":"x"}');
    await raw.xadd(key, '*', 'junk', '1');
    a.clock = 300;
    a.complete(250);
    await until(() => ra.seen.length === 1, 'the good record');
    assert.deepEqual(ra.seen, [250]);
    assert.deepEqual(ra.stream.liveWorkers(), [1]);
  });
});
