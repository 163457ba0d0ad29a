// The Cassandra backend (storage.backend: cassandra): the same domain contract as SQLite
// (../types.ts), on a keyspace that any number of instances may open.
//
// - Positions: per-worker clocks, unique across instances (positions.ts); the watermark and the
//   completion hook (onChanges) behave exactly as on SQLite for this instance's writes.
// - A write resolves once Cassandra acknowledged it at LOCAL_QUORUM and its position completed.
// - Schema: numbered CQL migrations (migrations/), applied on open.

import cassandra from 'cassandra-driver';
import type { ChangeListener, AdvanceListener } from '../stream-id.js';
import type { UnpositionedChange } from '../change-types.js';
import type {
  AccountStore,
  AdminStore,
  DeliveryStore,
  DeviceStore,
  DirectoryStore,
  E2eeStore,
  MediaMetaStore,
  AppServiceStore,
  NotificationStore,
  PusherStore,
  ReceiptStore,
  RelationStore,
  RoomStore,
  SearchStore,
  SharedStoreBackend,
  UserDataStore,
} from '../types.js';
import { StoreUnavailableError } from '../types.js';
import { StoreClosedError, type CassandraContext, type CqlStatement, type EventWriteHook } from './context.js';
import { checkKeyspaceName, createKeyspace, migrate } from './migrate.js';
import { checkDataFormat } from './data-format.js';
import { MIGRATIONS } from './migrations/index.js';
import { CassandraFederationQueueStore } from './federation-queue.js';
import type { FederationQueueStore } from '../federation-types.js';
import { CassandraIdentityBindingStore } from './identity.js';
import { CassandraEventExpiryStore } from './expiry.js';
import { CassandraPeekStore } from './peeks.js';
import { CassandraThreepidStore } from './threepid.js';
import { PositionAllocator, positionAt, revokeWorkerLease, STALE_MS } from './positions.js';
import { CassandraRoomStore } from './rooms.js';
import type { CommitHooks } from './room-fence.js';
import { CassandraE2eeStore } from './e2ee.js';
import { CassandraMediaStore } from './media.js';
import { CassandraMediaBlobs } from './media-blobs.js';
import { CassandraAccountStore } from './accounts.js';
import { CassandraDeviceStore } from './devices.js';
import { CassandraDirectoryStore } from './directory.js';
import { CassandraPusherStore } from './pushers.js';
import { CassandraDeliveryStore, CassandraReceiptStore } from './receipts.js';
import { CassandraUserDataStore } from './user-data.js';
import { CassandraNotificationStore } from './notifications.js';
import { CassandraRelationStore } from './relations.js';
import { CassandraSearchStore } from './search.js';
import { CassandraAdminStore } from './admin.js';
import { CassandraAppServiceStore } from './appservices.js';

export { StoreClosedError } from './context.js';

export interface CassandraStoreOptions {
  /** host:port pairs. */
  contactPoints: string[];
  localDataCenter: string;
  keyspace: string;
  /** Create the keyspace (SimpleStrategy) when missing. Default true. */
  createKeyspace?: boolean;
  replicationFactor?: number;
  credentials?: { username: string; password: string };
  logger?: {
    warn: (obj: object, msg: string) => void;
    info?: (obj: object, msg: string) => void;
  };
  /** The worker ID (0..63) to claim; default the lowest free one (see positions.ts). */
  workerId?: number;
  /** The clock positions are made from (tests: bucket rollover without waiting an hour). */
  now?: () => number;
  /** Skip migrations (a test harness that migrated the keyspace once already). */
  skipMigrations?: boolean;
  /** Test seams around the commit point of fenced room writes (room-fence.ts). */
  commitHooks?: CommitHooks;
}

const { consistencies } = cassandra.types;

export async function openCassandraStore(opts: CassandraStoreOptions): Promise<CassandraStore> {
  const ks = checkKeyspaceName(opts.keyspace);
  const base = {
    contactPoints: opts.contactPoints,
    localDataCenter: opts.localDataCenter,
    credentials: opts.credentials,
    queryOptions: {
      consistency: consistencies.localQuorum,
      serialConsistency: consistencies.localSerial,
      prepare: true,
    },
    encoding: { useUndefinedAsUnset: true },
  };
  if (opts.createKeyspace !== false) {
    const admin = new cassandra.Client(base);
    try {
      await admin.connect();
      await createKeyspace(admin, ks, opts.replicationFactor ?? 1);
    } finally {
      await admin.shutdown();
    }
  }
  const client = new cassandra.Client({ ...base, keyspace: ks });
  try {
    await client.connect();
    const applied = opts.skipMigrations ? [] : await migrate(client, MIGRATIONS, opts.logger);
    await checkDataFormat(client, opts.logger);
    const positions = await PositionAllocator.open(client, {
      workerId: opts.workerId,
      now: opts.now,
      onLeaseLost: (err) => opts.logger?.warn({ err }, 'cassandra store: worker lease lost; writes are refused from now on'),
      onListenerError: (err) => opts.logger?.warn({ err }, 'cassandra store: stream listener failed'),
    });
    return new CassandraStore(client, positions, applied, opts.commitHooks);
  } catch (err) {
    await client.shutdown().catch(() => undefined);
    throw err;
  }
}

export class CassandraStore implements SharedStoreBackend {
  readonly shared = true as const;
  readonly accounts: AccountStore;
  readonly devices: DeviceStore;
  readonly rooms: RoomStore;
  readonly userData: UserDataStore;
  readonly receipts: ReceiptStore;
  readonly notifications: NotificationStore;
  readonly relations: RelationStore;
  readonly directory: DirectoryStore;
  readonly delivery: DeliveryStore;
  readonly pushers: PusherStore;
  readonly search: SearchStore;
  readonly admin: AdminStore;
  readonly e2ee: E2eeStore;
  readonly media: MediaMetaStore;
  /** Media bytes in this keyspace, shared by every worker (media.store: cassandra). */
  readonly mediaBlobs: (chunkBytes: number, logger?: { warn: (obj: object, msg: string) => void }) => CassandraMediaBlobs;
  readonly appServices: AppServiceStore;
  readonly federationQueue: FederationQueueStore;
  readonly identityBindings: CassandraIdentityBindingStore;
  readonly threepids: CassandraThreepidStore;
  readonly eventExpiry: CassandraEventExpiryStore;
  readonly peeks: CassandraPeekStore;
  readonly appliedMigrations: readonly number[];

  private closed = false;
  /** Set once close() has drained: from then on nothing reaches the (shut down) client. */
  private shutDown = false;
  private closing: Promise<void> | null = null;
  private readonly inFlight = new Set<Promise<unknown>>();
  private unpositionedListener: ((changes: UnpositionedChange[]) => void) | null = null;
  private gate: ((pos: number) => Promise<void>) | null = null;

  constructor(
    private readonly client: cassandra.Client,
    private readonly positions: PositionAllocator,
    appliedMigrations: number[],
    commitHooks?: CommitHooks,
  ) {
    this.appliedMigrations = [...appliedMigrations];
    const gen = positions.gen;
    const eventHooks: EventWriteHook[] = [];
    const ctx: CassandraContext = {
      client,
      execute: (query, params = [], o) => this.track(() => client.execute(query, params, { prepare: true, ...o })),
      all: (query, params = [], o) => this.track(async () => {
        const rows: cassandra.types.Row[] = [];
        let pageState: string | undefined;
        do {
          const rs = await client.execute(query, params, { prepare: true, fetchSize: 5000, ...o, pageState });
          rows.push(...rs.rows);
          pageState = rs.pageState ?? undefined;
        } while (pageState);
        return rows;
      }),
      batch: (statements: CqlStatement[], o) => this.track(async () => {
        if (statements.length === 0) return;
        if (statements.length === 1) {
          await client.execute(statements[0]!.query, statements[0]!.params, { prepare: true, ...o });
          return;
        }
        await client.batch(statements, { prepare: true, logged: true, ...o });
      }),
      writeAtPosition: (write, describe) =>
        this.track(async () => {
          const pos = await positions.reserve();
          let result;
          try {
            result = await write(pos);
          } catch (err) {
            gen.abandon(pos);
            throw err;
          }
          gen.complete(pos, describe ? describe(result, pos) : null);
          await gen.waitFor(pos);
          if (this.gate) await this.gate(pos);
          return result;
        }),
      confirmLease: () => positions.confirm(),
      unpositioned: (change) => {
        const l = this.unpositionedListener;
        if (l) l([change]);
      },
      currentPosition: () => gen.current(),
      eventHooks,
      checkOpen: () => {
        if (this.closed) throw new StoreClosedError();
      },
    };
    this.accounts = new CassandraAccountStore(ctx);
    this.devices = new CassandraDeviceStore(ctx);
    // Fenced writes (a cluster's room owners) pass a commit point: room-fence.ts.
    this.rooms = new CassandraRoomStore(ctx, commitHooks);
    this.userData = new CassandraUserDataStore(ctx);
    this.receipts = new CassandraReceiptStore(ctx);
    // Derived data (push actions, relations, search) is written by hooks in each event's batch;
    // the modules read other domains through these stores, not their tables.
    const derived = { rooms: () => this.rooms };
    const notifications = new CassandraNotificationStore(ctx, { ...derived, receipts: () => this.receipts });
    const relations = new CassandraRelationStore(ctx, derived);
    const search = new CassandraSearchStore(ctx, derived);
    eventHooks.push(notifications.hook, relations.hook, search.hook);
    this.notifications = notifications;
    this.relations = relations;
    this.directory = new CassandraDirectoryStore(ctx, () => this.rooms, async () => (await this.admin.listRooms()).map((r) => r.roomId));
    this.delivery = new CassandraDeliveryStore(ctx);
    this.pushers = new CassandraPusherStore(ctx);
    this.search = search;
    this.admin = new CassandraAdminStore(ctx, derived);
    this.e2ee = new CassandraE2eeStore(ctx);
    this.media = new CassandraMediaStore(ctx);
    this.mediaBlobs = (chunkBytes, logger) => new CassandraMediaBlobs(ctx, chunkBytes, logger);
    this.appServices = new CassandraAppServiceStore(ctx);
    const federationQueue = new CassandraFederationQueueStore(ctx);
    this.federationQueue = federationQueue;
    eventHooks.push(federationQueue.hook);
    this.identityBindings = new CassandraIdentityBindingStore(ctx);
    this.threepids = new CassandraThreepidStore(ctx);
    const eventExpiry = new CassandraEventExpiryStore(ctx);
    this.eventExpiry = eventExpiry;
    eventHooks.push(eventExpiry.hook);
    this.peeks = new CassandraPeekStore(ctx);
  }

  currentPosition(): number {
    return this.positions.gen.current();
  }

  /**
   * The replication promise (src/cluster/replication.ts): a position at or below which this
   * instance will complete no write it has not completed already. With writes in flight that is
   * the local watermark; idle, it is "now" on the position clock, since every later position
   * is above it.
   */
  promise(): number {
    const gen = this.positions.gen;
    if (gen.inFlightCount() > 0 || this.positions.reserving) return gen.current();
    return Math.max(gen.current(), positionAt(Date.now(), 0) - 1);
  }

  /** The worker ID this instance writes positions with (unique among live instances). */
  get workerId(): number {
    return this.positions.workerId;
  }

  /** This instance's token on its worker ID's lease (see revokeWorker). */
  get leaseOwner(): string {
    return this.positions.leaseOwner;
  }

  /** See positions.ts STALE_MS. */
  readonly leaseStaleMs = STALE_MS;

  /** Whether this instance may still write (its worker lease was never lost). */
  get writable(): boolean {
    return this.positions.healthy;
  }

  /**
   * Revokes a silent instance's worker lease (src/cluster/replication.ts): true once `owner` no
   * longer holds `workerId`; it then starts no write after STALE_MS (positions.ts).
   */
  revokeWorker(workerId: number, owner: string): Promise<boolean> {
    return revokeWorkerLease(this.client, workerId, owner);
  }

  /** Calls `listener` each time this instance finds its worker lease lost (it then writes nothing). */
  onLeaseLost(listener: () => void): void {
    this.positions.onLost(listener);
  }

  /**
   * After the lease was lost: once this instance's writes under it have finished, claims a new
   * worker lease (workerId and leaseOwner change); writes stay refused until admitWrites().
   */
  rejoin(): Promise<void> {
    return this.positions.reclaim();
  }

  admitWrites(): void {
    this.positions.admit();
  }

  onChanges(listener: ChangeListener): () => void {
    return this.positions.gen.onChanges(listener);
  }

  onStreamAdvance(listener: AdvanceListener): () => void {
    return this.positions.gen.onAdvance(listener);
  }

  setPositionGate(gate: (pos: number) => Promise<void>): void {
    this.gate = gate;
  }

  onUnpositionedChanges(listener: (changes: UnpositionedChange[]) => void): void {
    this.unpositionedListener = listener;
  }

  /**
   * Idempotent: every call returns the same promise. New calls are refused at once (each public
   * method checks first), but work already accepted finishes: including sections that were
   * queued behind a per-key lock and only reach Cassandra after close() was called.
   */
  close(): Promise<void> {
    if (this.closing === null) {
      this.closed = true;
      this.closing = (async () => {
        do {
          await Promise.allSettled([...this.inFlight]);
          // A queued section starts in a microtask after the one before it settles.
          await new Promise((r) => setImmediate(r));
        } while (this.inFlight.size > 0);
        this.shutDown = true;
        await this.positions.close();
        await this.client.shutdown();
      })();
    }
    return this.closing;
  }

  /** Every Cassandra round trip goes through here, so close() can wait for it. */
  private track<T>(fn: () => Promise<T>): Promise<T> {
    if (this.shutDown) return Promise.reject(new StoreClosedError());
    const p = fn().catch((err: unknown) => {
      throw asUnavailable(err) ?? err;
    });
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p)).catch(() => undefined);
    return p;
  }
}

// Response codes of a node that could not serve the request (its own or its replicas' timeouts,
// overload, bootstrapping), as opposed to a request that is wrong.
const TRANSIENT_CODES: ReadonlySet<number> = new Set(
  ['unavailableException', 'overloaded', 'isBootstrapping', 'writeTimeout', 'readTimeout', 'readFailure', 'writeFailure', 'truncateError'].map(
    (name) => (cassandra.types.responseErrorCodes as unknown as Record<string, number>)[name],
  ),
);

/** A driver error that says "the cluster could not answer now" as a StoreUnavailableError. */
export function asUnavailable(err: unknown): StoreUnavailableError | null {
  if (err instanceof StoreUnavailableError) return err;
  const e = cassandra.errors;
  const transient =
    err instanceof e.OperationTimedOutError ||
    err instanceof e.NoHostAvailableError ||
    (err instanceof e.ResponseError && TRANSIENT_CODES.has(err.code));
  return transient ? new StoreUnavailableError(`Cassandra unavailable: ${(err as Error).message}`, err) : null;
}
