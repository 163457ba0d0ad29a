// The embedded SQLite backend: one connection, grouped commits, global stream positions, and
// (synchronous full) the WAL fsync off the event loop (wal-sync.ts).

import { SqliteAppServiceStore } from './appservices.js';
import { SqliteFederationQueueStore } from './federation-queue.js';
import { SqliteIdentityBindingStore } from './identity.js';
import { SqliteEventExpiryStore } from './expiry.js';
import { SqlitePeekStore } from './peeks.js';
import { SqliteThreepidStore } from './threepid.js';
import type { StoreBackend } from '../types.js';
import type { UnpositionedChange } from '../change-types.js';
import { StreamIdGenerator, type AdvanceListener, type ChangeListener } from '../stream-id.js';
import { SqliteAccountStore } from './accounts.js';
import type { SqliteContext } from './context.js';
import { migrate, openDatabase, StatementCache, WAL_AUTOCHECKPOINT_PAGES, WAL_BACKSTOP_PAGES, type Db, type StoreLogger } from './db.js';
import { WalCheckpointer } from './checkpointer.js';
import { SqliteDeliveryStore } from './delivery.js';
import { SqliteDeviceStore } from './devices.js';
import { registerDirectoryFunctions, SqliteDirectoryStore } from './directory.js';
import { SqliteE2eeStore } from './e2ee.js';
import { SqliteMediaStore } from './media.js';
import { MIGRATIONS } from './migrations/index.js';
import { SqliteNotificationStore } from './notifications.js';
import { SqlitePusherStore } from './pushers.js';
import { SqliteReceiptStore } from './receipts.js';
import { SqliteRelationStore } from './relations.js';
import { SqliteRoomStore } from './rooms.js';
import { SqliteSearchStore } from './search.js';
import { SqliteAdminStore } from './admin.js';
import { SqliteUserDataStore } from './user-data.js';
import { StoreClosedError, WriteQueue, type WriteQueueStats } from './write-queue.js';
import { FsWalSyncer, type WalSyncer } from './wal-sync.js';

export { StoreClosedError } from './write-queue.js';
export type { WriteQueueStats } from './write-queue.js';

export interface SqliteStoreOptions {
  /** Database file (parent directories are created), or ':memory:'. */
  path: string;
  /** 'full' (default): acknowledged writes survive power loss. 'normal': they survive process crashes. */
  synchronous?: 'full' | 'normal';
  logger?: StoreLogger;
  /**
   * Writes per transaction (default 128); one batch commits per event-loop turn. It bounds the
   * loop's stall per commit (~130 µs a message: ~17 ms), where 1,000 stalled it ~130 ms and
   * every request waited behind it.
   */
  maxBatchSize?: number;
  busyTimeoutMs?: number;
  /**
   * With synchronous 'full' on a file: fsync the WAL off the event loop (default true; see
   * wal-sync.ts). false: SQLite fsyncs inside COMMIT, blocking the event loop.
   */
  fsyncOffLoop?: boolean;
  /** Test hook: the fsync implementation used when fsyncOffLoop applies. */
  walSyncer?: (dbPath: string) => WalSyncer;
  /**
   * On a file: run WAL checkpoints on a worker thread (default true; see checkpointer.ts).
   * false: SQLite's automatic checkpoint inside a COMMIT, on the event loop.
   */
  checkpointOffLoop?: boolean;
}

export async function openSqliteStore(opts: SqliteStoreOptions): Promise<SqliteStore> {
  const inMemory = opts.path === ':memory:' || opts.path === '';
  const sync = opts.synchronous ?? 'full';
  const offLoop = sync === 'full' && !inMemory && opts.fsyncOffLoop !== false;
  const db = openDatabase({
    path: opts.path,
    synchronous: offLoop ? 'full-async' : sync,
    busyTimeoutMs: opts.busyTimeoutMs ?? 5000,
  });
  try {
    const { applied } = migrate(db, MIGRATIONS, opts.logger);
    // Migrations committed without the fsync; make them durable before anything relies on them.
    const walSync = offLoop ? (opts.walSyncer ?? ((p: string) => new FsWalSyncer(p)))(opts.path) : undefined;
    if (walSync && applied.length > 0) walSync.syncNow();
    let checkpointer: WalCheckpointer | undefined;
    if (!inMemory && opts.checkpointOffLoop !== false) {
      checkpointer = new WalCheckpointer(opts.path, { thresholdPages: WAL_AUTOCHECKPOINT_PAGES, startAfterMs: 1000, logger: opts.logger });
      db.pragma(`wal_autocheckpoint = ${WAL_BACKSTOP_PAGES}`);
    }
    return new SqliteStore(db, readHighestStream(db), applied, opts, walSync, checkpointer);
  } catch (err) {
    db.close();
    throw err;
  }
}

/** The generator restarts above every position ever handed out, including abandoned ones. */
function readHighestStream(db: Db): number {
  const row = db
    .prepare(
      `SELECT MAX(m) AS m FROM (
         SELECT max_reserved AS m FROM stream_meta
         UNION ALL SELECT MAX(stream) FROM events
         UNION ALL SELECT MAX(stream) FROM account_data
         UNION ALL SELECT MAX(stream) FROM receipts
       )`,
    )
    .get() as { m: number | null };
  return row.m ?? 0;
}

export class SqliteStore implements StoreBackend {
  readonly accounts: SqliteAccountStore;
  readonly devices: SqliteDeviceStore;
  readonly rooms: SqliteRoomStore;
  readonly userData: SqliteUserDataStore;
  readonly receipts: SqliteReceiptStore;
  readonly notifications: SqliteNotificationStore;
  readonly relations: SqliteRelationStore;
  readonly directory: SqliteDirectoryStore;
  readonly delivery: SqliteDeliveryStore;
  readonly pushers: SqlitePusherStore;
  readonly search: SqliteSearchStore;
  readonly admin: SqliteAdminStore;
  readonly e2ee: SqliteE2eeStore;
  readonly media: SqliteMediaStore;
  readonly appServices: SqliteAppServiceStore;
  readonly federationQueue: SqliteFederationQueueStore;
  readonly identityBindings: SqliteIdentityBindingStore;
  readonly threepids: SqliteThreepidStore;
  readonly eventExpiry: SqliteEventExpiryStore;
  readonly peeks: SqlitePeekStore;
  /** Migration versions applied by this open (empty when the schema was already current). */
  readonly appliedMigrations: readonly number[];

  private readonly gen: StreamIdGenerator;
  private readonly queue: WriteQueue;
  private readonly statements: StatementCache;
  private closed = false;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly db: Db,
    initialStream: number,
    appliedMigrations: number[],
    opts: SqliteStoreOptions,
    private readonly walSync?: WalSyncer,
    /** The WAL checkpoint worker (checkpointOffLoop), for its stats in tests. */
    readonly checkpointer?: WalCheckpointer,
  ) {
    this.appliedMigrations = [...appliedMigrations];
    this.gen = new StreamIdGenerator(initialStream, {
      onListenerError: (err) => opts.logger?.warn({ err }, 'sqlite store: stream listener failed'),
    });
    this.queue = new WriteQueue(db, this.gen, { maxBatchSize: opts.maxBatchSize ?? 128, logger: opts.logger, walSync });
    registerDirectoryFunctions(db);
    this.statements = new StatementCache(db);
    const ctx: SqliteContext = {
      stmt: (sql) => this.statements.get(sql),
      queue: this.queue,
      checkOpen: () => {
        if (this.closed) throw new StoreClosedError();
      },
    };
    this.accounts = new SqliteAccountStore(ctx);
    this.devices = new SqliteDeviceStore(ctx);
    this.rooms = new SqliteRoomStore(ctx);
    this.userData = new SqliteUserDataStore(ctx);
    this.receipts = new SqliteReceiptStore(ctx);
    this.notifications = new SqliteNotificationStore(ctx);
    this.relations = new SqliteRelationStore(ctx);
    this.directory = new SqliteDirectoryStore(ctx);
    this.delivery = new SqliteDeliveryStore(ctx);
    this.pushers = new SqlitePusherStore(ctx);
    this.search = new SqliteSearchStore(ctx);
    this.admin = new SqliteAdminStore(ctx);
    this.e2ee = new SqliteE2eeStore(ctx);
    this.media = new SqliteMediaStore(ctx);
    this.appServices = new SqliteAppServiceStore(ctx);
    this.federationQueue = new SqliteFederationQueueStore(ctx);
    this.identityBindings = new SqliteIdentityBindingStore(ctx);
    this.threepids = new SqliteThreepidStore(ctx);
    this.eventExpiry = new SqliteEventExpiryStore(ctx);
    this.peeks = new SqlitePeekStore(ctx);
  }

  currentPosition(): number {
    return this.gen.current();
  }

  /** Idempotent: every call returns the same promise. */
  close(): Promise<void> {
    if (this.closing === null) {
      this.closed = true;
      this.closing = this.finishClose();
    }
    return this.closing;
  }

  private async finishClose(): Promise<void> {
    // Yield once so a close() issued from inside a stream listener (i.e. during a flush) does
    // not re-enter the write queue.
    await Promise.resolve();
    this.queue.close();
    this.statements.clear();
    // The worker's connection closes first, so this one is the last and checkpoints on close.
    await this.checkpointer?.close();
    this.db.close();
    this.walSync?.close();
  }

  /** Called synchronously whenever currentPosition() advances (e.g. to wake sync waiters). */
  onStreamAdvance(listener: AdvanceListener): () => void {
    return this.gen.onAdvance(listener);
  }

  /**
   * The completion hook: change records of positions as the watermark passes them (see
   * StreamIdGenerator.onChanges). Feeds the sync read model.
   */
  onChanges(listener: ChangeListener): () => void {
    return this.gen.onChanges(listener);
  }

  /** Unpositioned changes (device one-time/fallback keys), right after each COMMIT. */
  onUnpositionedChanges(listener: (changes: UnpositionedChange[]) => void): void {
    this.queue.onUnpositioned = listener;
  }

  /** Counters of the grouped-commit queue (a copy). */
  writeStats(): WriteQueueStats {
    return { ...this.queue.stats };
  }

  /** Recorded schema migrations. */
  schemaVersions(): { version: number; name: string }[] {
    if (this.closed) throw new StoreClosedError();
    return this.db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all() as {
      version: number;
      name: string;
    }[];
  }

  /**
   * How commits become durable: 'fsync-off-loop' (synchronous full, the WAL fsynced on the
   * thread pool before positions complete), 'full' (SQLite fsyncs in COMMIT) or 'normal'.
   */
  durability(): 'fsync-off-loop' | 'full' | 'normal' {
    if (this.walSync) return 'fsync-off-loop';
    return this.db.pragma('synchronous', { simple: true }) === 2 ? 'full' : 'normal';
  }

  /** Committed batches whose fsync has not finished (tests, diagnostics). */
  unsyncedBatches(): number {
    return this.queue.unsyncedBatches;
  }

  /** Reads a PRAGMA of the store's connection (diagnostics, tests). */
  pragma(name: 'journal_mode' | 'synchronous' | 'busy_timeout' | 'foreign_keys' | 'wal_autocheckpoint'): unknown {
    if (this.closed) throw new StoreClosedError();
    return this.db.pragma(name, { simple: true });
  }

  /** Test hook: runs inside each batch transaction just before COMMIT; throwing fails the batch. */
  setBeforeCommitHook(hook: ((batchSize: number) => void) | null): void {
    this.queue.beforeCommit = hook;
  }
}
