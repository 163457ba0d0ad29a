// Connection setup, migrations and the prepared-statement cache shared by the domain modules.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Migration } from './migrations/index.js';

export type Db = Database.Database;
export type Statement = Database.Statement;

/**
 * Pino's calling convention: the object (with `err`) first, the message second. The reverse,
 * warn(msg, err), silently drops err; this signature does not compile that way round.
 */
export interface StoreLogger {
  warn(obj: { err?: unknown; [key: string]: unknown }, msg: string): void;
}

/** WAL pages after which a COMMIT checkpoints (see openDatabase). */
export const WAL_AUTOCHECKPOINT_PAGES = 10_000;

/**
 * With the checkpoint worker (checkpointer.ts), which checkpoints at WAL_AUTOCHECKPOINT_PAGES, the
 * writer's own automatic checkpoint moves up to this: a backstop for a worker that fell behind
 * (a writer that never pauses keeps the log from restarting) or died. Its WAL (~60 MB) stays
 * under WAL_SIZE_LIMIT_BYTES.
 */
export const WAL_BACKSTOP_PAGES = 15_000;

/**
 * The WAL file's size once it is reused from its start (see openDatabase): above its usual size
 * (WAL_AUTOCHECKPOINT_PAGES of 4 KiB, ~40 MB, plus the batch that crossed it), so in steady
 * state nothing is ever truncated; only a WAL that grew past it (checkpoints held back by
 * readers, a burst) is cut back instead of keeping its largest size for good.
 */
export const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

export interface OpenDbOptions {
  path: string;
  /**
   * 'full-async': FULL's guarantee with the fsync left to the write queue's WalSyncer (the
   * connection itself runs NORMAL, so COMMIT does not fsync on the event loop).
   */
  synchronous: 'full' | 'full-async' | 'normal';
  busyTimeoutMs: number;
  /** journal_size_limit; default WAL_SIZE_LIMIT_BYTES. */
  walSizeLimitBytes?: number;
}

export function openDatabase(opts: OpenDbOptions): Db {
  const inMemory = opts.path === ':memory:' || opts.path === '';
  if (!inMemory) mkdirSync(dirname(opts.path), { recursive: true });
  const db = new Database(opts.path);
  try {
    // Single writer connection per process; WAL lets future read-only connections (and backup
    // tools) read while we write, and turns each commit into one sequential WAL append.
    if (!inMemory) {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (String(mode).toLowerCase() !== 'wal') throw new Error(`could not enable WAL (got ${String(mode)})`);
      // The automatic checkpoint runs inside the COMMIT that crosses this many WAL pages, on the
      // event loop, with an fsync of the WAL and one of the database file. An event dirties ~10
      // index pages spread over the file, so at SQLite's default (1,000 pages, 4 MB) that happened
      // every ~100 events, and the same hot pages (table tails, per-room index leaves) were copied
      // again each time. At 10,000 pages (a WAL of ~40 MB at most, reused from its start after a
      // checkpoint) there are a tenth of the stalls and the store's CPU per message fell by ~20 %
      // once rooms had a few hundred events (docs/benchmarks.md, send path, session 6).
      db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
      // SQLite reuses the WAL file from its start after a full checkpoint but never shrinks it:
      // without a limit it keeps the largest size it ever reached. The truncation happens when
      // the log restarts, only if the file is over the limit (see WAL_SIZE_LIMIT_BYTES).
      db.pragma(`journal_size_limit = ${Math.floor(opts.walSizeLimitBytes ?? WAL_SIZE_LIMIT_BYTES)}`);
    }
    // FULL syncs the WAL on every commit, so an acknowledged write survives power loss; NORMAL
    // only survives process crashes. Grouped commits amortise the fsync either way.
    db.pragma(`synchronous = ${opts.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs))}`);
    db.pragma('foreign_keys = ON');
    db.pragma('temp_store = MEMORY');
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

export interface MigrationResult {
  applied: number[];
}

/** Applies every migration newer than the database, all in one transaction. */
export function migrate(db: Db, migrations: readonly Migration[], logger?: StoreLogger): MigrationResult {
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i].version <= migrations[i - 1].version) {
      throw new Error(`migrations out of order at version ${migrations[i].version}`);
    }
  }
  const applied: number[] = [];
  db.exec('BEGIN IMMEDIATE');
  try {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      applied_ts INTEGER NOT NULL
    )`);
    const rows = db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all() as {
      version: number;
      name: string;
    }[];
    const known = new Map(rows.map((r) => [r.version, r.name]));
    const newest = migrations.length > 0 ? migrations[migrations.length - 1].version : 0;
    const tooNew = rows.filter((r) => r.version > newest);
    if (tooNew.length > 0) {
      // A newer build migrated this file; running old code against it could corrupt data.
      throw new Error(`database schema version ${tooNew[tooNew.length - 1].version} is newer than this build (${newest})`);
    }
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_ts) VALUES (?, ?, ?)');
    for (const m of migrations) {
      const name = known.get(m.version);
      if (name !== undefined) {
        if (name !== m.name) logger?.warn({ version: m.version, recorded: name, code: m.name }, 'schema migration recorded under another name');
        continue;
      }
      db.exec(m.up);
      m.run?.(db);
      record.run(m.version, m.name, Date.now());
      applied.push(m.version);
    }
    db.exec('COMMIT');
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw err;
  }
  return { applied };
}

/**
 * Prepared statements keyed by SQL text. Dynamic queries (filters with variable list lengths)
 * produce a bounded number of shapes, but the cache is still capped so a pathological caller
 * cannot grow it without limit.
 */
export class StatementCache {
  private readonly cache = new Map<string, Statement>();

  constructor(
    private readonly db: Db,
    private readonly maxSize = 500,
  ) {}

  get(sql: string): Statement {
    let stmt = this.cache.get(sql);
    if (stmt === undefined) {
      if (this.cache.size >= this.maxSize) {
        const oldest = this.cache.keys().next().value;
        if (oldest !== undefined) this.cache.delete(oldest);
      }
      stmt = this.db.prepare(sql);
      this.cache.set(sql, stmt);
    }
    return stmt;
  }

  clear(): void {
    this.cache.clear();
  }
}
