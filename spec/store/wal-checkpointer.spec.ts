// WAL checkpoints on a worker thread (src/store/sqlite/checkpointer.ts): the worker copies the
// WAL into the database file once enough frames wait, the writer's log then restarts, nothing
// is lost or corrupted while the writer keeps writing during checkpoints, and the store runs it
// with its own automatic checkpoint moved up to the backstop. Real SQLite files.

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { assert } from '../helpers/assert.js';
import { until } from '../helpers/until.js';
import { WalCheckpointer } from '../../src/store/sqlite/checkpointer.js';
import { openDatabase, WAL_AUTOCHECKPOINT_PAGES, WAL_BACKSTOP_PAGES, type Db } from '../../src/store/sqlite/db.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';

describe('SQLite WAL checkpoints off the event loop', function () {
  let dir: string;
  const cleanup: Array<() => unknown> = [];
  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'hearth-ckpt-'));
  });
  afterEach(async function () {
    for (const f of cleanup.splice(0).reverse()) await f();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A writer connection whose own automatic checkpoint is off: only the worker can checkpoint. */
  function writer(path: string): Db {
    const db = openDatabase({ path, synchronous: 'normal', busyTimeoutMs: 1000 });
    db.pragma('wal_autocheckpoint = 0');
    db.exec('CREATE TABLE t (n INTEGER PRIMARY KEY, x BLOB)');
    return db;
  }

  it('copies the WAL into the database once the threshold is reached, not before, and the log restarts', async function () {
    const path = join(dir, 'a.sqlite');
    const db = writer(path);
    const ckpt = new WalCheckpointer(path, { thresholdPages: 200, intervalMs: 5 });
    cleanup.push(() => db.close(), () => ckpt.close());
    const insert = db.prepare('INSERT INTO t (n, x) VALUES (?, ?)');
    for (let i = 0; i < 10; i++) insert.run(i, Buffer.alloc(4096, 1)); // ~20 frames: under the threshold
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(ckpt.stats.checkpoints, 0, 'no checkpoint below the threshold');
    const before = statSync(path).size;

    let last = { log: -1, checkpointed: -2 };
    ckpt.onCheckpoint = (r) => (last = r);
    // One transaction (a page or more per row), so the worker sees them all at once: one checkpoint copies them.
    db.transaction(() => {
      for (let i = 10; i < 300; i++) insert.run(i, Buffer.alloc(4096, 2));
    })();
    await until('a checkpoint by the worker that copied the whole log', () => last.checkpointed === last.log);
    const after = statSync(path).size;
    assert.ok(after >= before + 290 * 4096, `the database file grew from ${before} to ${after}: the rows were copied out of the WAL`);
    assert.ok(ckpt.stats.frames >= 290, `frames copied: ${ckpt.stats.frames} (a page or more per row)`);

    insert.run(1000, Buffer.alloc(16, 3));
    const [cp] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number }>;
    assert.ok(cp.log < 10, `the next write restarted the log from its start (${cp.log} frames in it)`);
    assert.equal((db.prepare('SELECT COUNT(*) AS c FROM t').get() as { c: number }).c, 301);
  });

  it('loses nothing while the writer commits during checkpoints', async function () {
    const path = join(dir, 'b.sqlite');
    const db = writer(path);
    const ckpt = new WalCheckpointer(path, { thresholdPages: 100, intervalMs: 1 });
    cleanup.push(() => db.close());
    const insert = db.prepare('INSERT INTO t (n, x) VALUES (?, ?)');
    const batch = db.transaction((from: number) => {
      for (let i = from; i < from + 20; i++) insert.run(i, Buffer.alloc(3000, i % 251));
    });
    // Four rounds of 1,000 rows, each ending only once the worker has checkpointed again; within
    // a round the worker runs in parallel with the commits.
    for (let round = 0; round < 4; round++) {
      for (let from = round * 1000; from < (round + 1) * 1000; from += 20) {
        batch(from);
        if (from % 100 === 0) await new Promise((r) => setImmediate(r));
      }
      await until(`checkpoint ${round + 1}`, () => ckpt.stats.checkpoints > round);
    }
    await ckpt.close();
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    db.close();

    const again = new Database(path, { readonly: true });
    try {
      assert.equal((again.prepare('SELECT COUNT(*) AS c FROM t').get() as { c: number }).c, 4000);
      for (const row of again.prepare('SELECT n, x FROM t').iterate() as Iterable<{ n: number; x: Buffer }>) {
        if (row.x.length !== 3000 || row.x[0] !== row.n % 251 || row.x[2999] !== row.n % 251) assert.fail(`row ${row.n} corrupted`);
      }
      assert.equal(again.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      again.close();
    }
  });

  it('the store runs the worker on a file, with its own automatic checkpoint at the backstop, and stops it on close', async function () {
    const store = await openSqliteStore({ path: join(dir, 'c.sqlite') });
    assert.ok(store.checkpointer, 'a checkpointer on a file database');
    assert.equal(store.pragma('wal_autocheckpoint'), WAL_BACKSTOP_PAGES);
    assert.ok(WAL_BACKSTOP_PAGES > WAL_AUTOCHECKPOINT_PAGES);
    // Its thread starts a second after the open (a store opened and closed at once never starts one).
    assert.equal(store.checkpointer.started, false);
    await until('the worker started', () => store.checkpointer!.started, 5000);
    const worker = (store.checkpointer as unknown as { worker: { once(e: 'exit', f: (code: number) => void): void } }).worker;
    const exited = new Promise((r) => worker.once('exit', r));
    await store.close();
    assert.equal(await exited, 0, 'the worker ended on its own (its connection closed) before the store closed');

    const brief = await openSqliteStore({ path: join(dir, 'e.sqlite') });
    await brief.close();
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(brief.checkpointer!.started, false, 'closed before its start: never started');

    const off = await openSqliteStore({ path: join(dir, 'd.sqlite'), checkpointOffLoop: false });
    cleanup.push(() => off.close());
    assert.equal(off.checkpointer, undefined);
    assert.equal(off.pragma('wal_autocheckpoint'), WAL_AUTOCHECKPOINT_PAGES);

    const mem = await openSqliteStore({ path: ':memory:' });
    cleanup.push(() => mem.close());
    assert.equal(mem.checkpointer, undefined, 'no WAL in memory');
  });
});
