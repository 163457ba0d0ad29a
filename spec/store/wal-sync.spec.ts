// The WAL fsync off the event loop (src/store/sqlite/wal-sync.ts and the write queue): a batch
// that committed but whose fsync has not finished is invisible to the watermark, the completion
// hook and its caller; fsyncs complete batches in position order; a failed fsync is fatal and
// never lets the watermark pass the batches it covered. Real SQLite files; the syncer is the
// real FsWalSyncer behind a gate the test opens, or one that fails on demand.

import { assert } from '../helpers/assert.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';
import { FsWalSyncer, type WalSyncer } from '../../src/store/sqlite/wal-sync.js';
import type { ChangeRecord } from '../../src/store/change-types.js';
import { FakeRoom, userId } from './fixtures.js';

/** FsWalSyncer whose async fsyncs wait for `release()`; `failNext` makes the next one fail. */
class GatedSyncer implements WalSyncer {
  readonly real: FsWalSyncer;
  private gates: Array<() => void> = [];
  started = 0;
  failNext: Error | null = null;
  constructor(path: string) {
    this.real = new FsWalSyncer(path);
  }
  async sync(): Promise<void> {
    this.started++;
    await new Promise<void>((r) => this.gates.push(r));
    if (this.failNext) throw this.failNext;
    await this.real.sync();
  }
  syncNow(): void {
    this.real.syncNow();
  }
  close(): void {
    this.real.close();
  }
  waitingCount(): number {
    return this.gates.length;
  }
  release(): void {
    const g = this.gates;
    this.gates = [];
    for (const r of g) r();
  }
}

const tick = () => new Promise((r) => setImmediate(r));

/** Opens every fsync gate until `p` settles (for sequential writers such as FakeRoom.create). */
async function drive<T>(g: GatedSyncer, p: Promise<T>): Promise<T> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  while (!done) {
    g.release();
    await tick();
  }
  return p;
}

describe('SQLite: WAL fsync off the event loop', function () {
  let dir: string;
  let store: SqliteStore | null = null;
  let syncer: GatedSyncer | null = null;
  const alice = userId('alice');

  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'hearth-walsync-'));
  });
  afterEach(async function () {
    syncer?.release();
    await store?.close().catch(() => undefined);
    store = null;
    syncer = null;
    rmSync(dir, { recursive: true, force: true });
  });

  async function open(): Promise<{ store: SqliteStore; syncer: GatedSyncer }> {
    const s = await openSqliteStore({
      path: join(dir, 'h.sqlite'),
      logger: { warn: () => undefined },
      walSyncer: (p) => (syncer = new GatedSyncer(p)),
    });
    store = s;
    return { store: s, syncer: syncer as unknown as GatedSyncer };
  }

  it('is the default for synchronous full on a file: COMMIT runs NORMAL, the queue fsyncs', async function () {
    const s = await openSqliteStore({ path: join(dir, 'd.sqlite') });
    try {
      assert.equal(s.durability(), 'fsync-off-loop');
      assert.equal(s.pragma('synchronous'), 1);
      const room = new FakeRoom();
      await room.create(s, alice);
      assert.ok(s.writeStats().syncs >= 1);
    } finally {
      await s.close();
    }
    const blocking = await openSqliteStore({ path: join(dir, 'd.sqlite'), fsyncOffLoop: false });
    try {
      assert.equal(blocking.durability(), 'full');
      assert.equal(blocking.pragma('synchronous'), 2);
    } finally {
      await blocking.close();
    }
  });

  it('a committed batch stays below the watermark, out of the completion hook and unacknowledged until its fsync ends', async function () {
    const { store: s, syncer: g } = await open();
    const room = new FakeRoom();
    await drive(g, room.create(s, alice));
    const base = s.currentPosition();
    const seen: ChangeRecord[] = [];
    s.onChanges((changes) => seen.push(...changes));

    let acked = 0;
    const first = Promise.all(Array.from({ length: 5 }, (_, i) => room.message(s, alice, `a${i}`).then((r) => (acked++, r))));
    while (g.waitingCount() === 0) await tick();
    // Batch 1 is committed (its rows are in the file) but not yet durable.
    assert.equal(s.unsyncedBatches(), 1);
    const second = Promise.all(Array.from({ length: 3 }, (_, i) => room.message(s, alice, `b${i}`).then((r) => (acked++, r))));
    for (let i = 0; i < 5; i++) await tick();
    // Batch 2 committed while batch 1's fsync was in flight, and waits for the next fsync.
    assert.equal(s.unsyncedBatches(), 2);
    assert.equal(g.waitingCount(), 1, 'one fsync in flight at a time');
    assert.equal(s.currentPosition(), base);
    assert.equal(acked, 0);
    assert.equal(seen.length, 0);

    g.release();
    const a = await first;
    assert.equal(s.currentPosition(), a[4].stream);
    assert.equal(seen.length, 5);
    assert.equal(acked as number, 5);
    while (g.waitingCount() === 0) await tick();
    assert.equal(s.currentPosition(), a[4].stream, 'batch 2 still waits for its own fsync');
    g.release();
    const b = await second;
    assert.equal(s.currentPosition(), b[2].stream);
    assert.deepEqual(
      seen.map((c) => c.stream),
      [...a, ...b].map((r) => r.stream),
      'the completion hook fires once per position, in order',
    );
  });

  it('a failed fsync rejects the batches it covered, keeps the watermark below them and refuses further writes', async function () {
    const { store: s, syncer: g } = await open();
    const room = new FakeRoom();
    await drive(g, room.create(s, alice));
    const base = s.currentPosition();
    const seen: ChangeRecord[] = [];
    s.onChanges((changes) => seen.push(...changes));
    const lost = Promise.allSettled([room.message(s, alice, 'x'), room.message(s, alice, 'y')]);
    while (g.waitingCount() === 0) await tick();
    g.failNext = new Error('EIO: injected fsync failure');
    g.release();
    const results = await lost;
    for (const r of results) assert.ok(r.status === 'rejected' && /injected fsync failure/.test(String(r.reason)));
    assert.equal(s.currentPosition(), base);
    assert.equal(seen.length, 0);
    await assert.rejects(room.message(s, alice, 'z'), /injected fsync failure/);
    assert.equal(s.currentPosition(), base);
  });

  it('close() makes committed batches durable and settles them', async function () {
    const { store: s, syncer: g } = await open();
    const room = new FakeRoom();
    await drive(g, room.create(s, alice));
    const sent = Promise.all([room.message(s, alice, 'p'), room.message(s, alice, 'q')]);
    while (g.waitingCount() === 0) await tick();
    assert.equal(s.unsyncedBatches(), 1);
    await s.close();
    const events = await sent;
    assert.ok(events.length > 0 && events.every((e) => e.stream > 0));
    const again = await openSqliteStore({ path: join(dir, 'h.sqlite') });
    try {
      assert.ok(again.currentPosition() >= events[events.length - 1].stream);
      assert.ok(await again.rooms.getEvent(events[0].eventId));
    } finally {
      await again.close();
    }
  });
});
