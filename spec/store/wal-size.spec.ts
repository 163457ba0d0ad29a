// The SQLite WAL file's size (src/store/sqlite/db.ts, journal_size_limit): a WAL that grew past
// the limit is cut back to it when the log restarts after a full checkpoint; without the limit
// it keeps its largest size. Real SQLite files in a temporary directory.

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import { openDatabase, WAL_AUTOCHECKPOINT_PAGES, WAL_SIZE_LIMIT_BYTES, type Db } from '../../src/store/sqlite/db.js';

describe('SQLite WAL size limit', function () {
  let dir: string;
  beforeEach(function () {
    dir = mkdtempSync(join(tmpdir(), 'hearth-wal-'));
  });
  afterEach(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  /** Grows the WAL to ~4 MB (under the autocheckpoint), checkpoints fully, writes once more. */
  function growCheckpointRestart(db: Db, path: string): { grown: number; after: number } {
    db.exec('CREATE TABLE t (x BLOB)');
    const insert = db.prepare('INSERT INTO t (x) VALUES (?)');
    const blob = Buffer.alloc(64 * 1024, 7);
    for (let i = 0; i < 64; i++) insert.run(blob);
    const grown = statSync(`${path}-wal`).size;
    const [cp] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>;
    assert.equal(cp.busy, 0);
    assert.equal(cp.checkpointed, cp.log, 'every frame checkpointed: the next write restarts the log');
    insert.run(Buffer.alloc(16, 1));
    return { grown, after: statSync(`${path}-wal`).size };
  }

  it('cuts a WAL grown past the limit back to it when the log restarts', function () {
    const path = join(dir, 'limited.sqlite');
    const limit = 256 * 1024;
    const db = openDatabase({ path, synchronous: 'normal', busyTimeoutMs: 1000, walSizeLimitBytes: limit });
    try {
      assert.equal(db.pragma('journal_size_limit', { simple: true }), limit);
      const { grown, after } = growCheckpointRestart(db, path);
      assert.ok(grown > 4 * limit, `grown to ${grown}`);
      assert.ok(after <= limit, `cut back to ${after} (limit ${limit})`);
    } finally {
      db.close();
    }
  });

  it('without a limit (-1) the WAL keeps its largest size (what the limit changes)', function () {
    const path = join(dir, 'unlimited.sqlite');
    const db = openDatabase({ path, synchronous: 'normal', busyTimeoutMs: 1000, walSizeLimitBytes: -1 });
    try {
      const { grown, after } = growCheckpointRestart(db, path);
      assert.equal(after, grown);
    } finally {
      db.close();
    }
  });

  it('the default limit is above the WAL a steady autocheckpoint cycle reaches (no truncation in steady state)', function () {
    const path = join(dir, 'default.sqlite');
    const db = openDatabase({ path, synchronous: 'normal', busyTimeoutMs: 1000 });
    try {
      assert.equal(db.pragma('journal_size_limit', { simple: true }), WAL_SIZE_LIMIT_BYTES);
      const pageSize = db.pragma('page_size', { simple: true }) as number;
      assert.ok(WAL_SIZE_LIMIT_BYTES >= 1.5 * WAL_AUTOCHECKPOINT_PAGES * pageSize);
    } finally {
      db.close();
    }
  });
});
