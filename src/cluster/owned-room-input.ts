// RoomInput for a cluster (storage.backend cassandra + cluster.redis.url): every mutating entry
// point runs on the room's owner (src/cluster/room-owner.ts), so each room has one writer at a
// time across workers and keeps one total order.
//
// Invariants:
// - submit and receive (plain JSON in and out) are forwarded to the owner when another worker
//   holds the room, and run here (taking the room) when nobody does. receive's gap states (Maps)
//   travel as pairs (src/cluster/forwarded-gap-states.ts), so the owner judges a gap-filled event
//   with the state its sender reported, as one node would.
// - Entry points that take callbacks (createRoom's beforeWrite, submitHolding, exclusive) or
//   federation joins (adoptRoom, recordRemoteInvite/Leave) cannot be forwarded: they take the
//   room here, waiting for another owner's lease to be released or to expire (503 past that).
//   createRoom takes the new room's lease once its ID is known, before anything is written.
// - Reads (currentState, template) are never routed: they use this worker's cache, which the
//   change feed invalidates for every other worker's event (see src/app.ts).
// - Taking a room drops this worker's cached state for it (onAcquired -> forget), so the new owner
//   builds on the store, never on what it cached as an earlier owner or reader.
// - A worker without the room_writer role (RoomOwner.mayAcquire false) never takes a room: every
//   entry point that is plain data (submit, receive, createRoom, adoptRoom, recordRemoteInvite/
//   Leave) is forwarded to the room's owner or to a live writer; the callback ones
//   (submitHolding, exclusive) cannot travel and answer 501 there. Their users that are plain
//   data once described by name (room upgrades, invites to other servers, admin purges:
//   src/room/writer-operations.ts) travel as `op:<name>` and run on the writer; what remains
//   501 is gap fill's outliers (docs/deploy.md, roles).
// - A write the store fences (StaleWriterError: the store records an epoch at or above ours)
//   drops the room here, unless this worker still holds the room's lease (then Redis lost its
//   epoch counter and the owner takes an epoch above the recorded one: RoomLeases.regainAbove),
//   and the call is routed again (twice at most), to the new owner or to us; one served for
//   another worker, or carrying callbacks, answers a retryable 503 instead.
// - A worker whose store lease was revoked (LeaseLostError) answers a retryable 503 and takes no
//   more rooms (RoomOwner canWrite), so the client's retry reaches a worker that can write.
// - A store conflict (StoreConflictError: a txn ID or event ID claimed by a write that is still
//   in flight, or was in flight when its worker lost the room) is a retryable 503 wherever the
//   call ran, never a 500: the retry finds the earlier write stored (and is deduplicated) or
//   takes over its abandoned claim (src/store/cassandra/events.ts).

import type { Pdu, RoomVersion } from '../protocol/types.js';
import { RoomInput, type EventDraft, type InputOutcome, type RoomInputDeps, type SubmitResult } from '../room/room-input.js';
import type { RoomState } from '../room/room-state.js';
import type { StateMap } from '../room/state-resolver.js';
import type { StateEntry } from '../store/types.js';
import { StaleWriterError, StoreConflictError } from '../store/types.js';
import { MatrixError } from '../errors.js';
import { RoomOwner } from './room-owner.js';
import { decodeGapStates, encodeGapStates } from './forwarded-gap-states.js';
import { WriterOperations } from '../room/writer-operations.js';
import type { ChangeFeed } from './feed.js';
import type { RedisSharedState } from './redis.js';
import { isSharedBackend, type StoreBackend } from '../store/types.js';
import { LeaseLostError, workerOf } from '../store/cassandra/positions.js';

export class OwnedRoomInput extends RoomInput {
  private readonly owner: RoomOwner;
  private readonly logger: RoomOwnerLogger | undefined;

  constructor(
    deps: Omit<RoomInputDeps, 'fence'>,
    owner: RoomOwner,
    cacheRooms?: number,
    logger?: RoomOwnerLogger,
    private readonly ops: WriterOperations = new WriterOperations(),
  ) {
    super({ ...deps, fence: (roomId) => epochFence(owner, roomId) }, cacheRooms);
    this.owner = owner;
    this.logger = logger;
    // A writer runs them here (taking the room); any other worker sends them to the writer.
    ops.routeThrough((roomId, name, args, local) =>
      this.owner.mayAcquire ? local() : this.fenced(roomId, `op:${name}`, () => this.owner.run(roomId, local, `op:${name}`, args)),
    );
  }

  /** This worker's name in room lease tokens (`<node>:<epoch>`). */
  get ownerNodeId(): string {
    return this.owner.nodeId;
  }

  /** See RoomOwner.stats. */
  get ownerStats(): RoomOwner['stats'] {
    return this.owner.stats;
  }

  /** Serves requests forwarded by other workers (call once, at start-up). */
  serve(): void {
    this.owner.start(async (op, roomId, args) => {
      try {
        switch (op) {
          case 'submit':
            return await super.submit(roomId, args[0] as EventDraft);
          case 'receive':
            // args[3]: the gap states, absent from a worker that forwards none (or predates them).
            return await super.receive(roomId, args[0], args[1] as string, decodeGapStates(args[3]), args[2] === true ? { relay: true } : undefined);
          case 'createRoom':
            // The override: it takes the new room's lease once the create event names the room.
            return await this.createRoom(args[0] as string | null, args[1] as RoomVersion, args[2] as string, args[3] as EventDraft[], args[4] as { alias?: string });
          case 'adoptRoom': {
            const [, version, creator, outliers, join, stateBefore] = args as Parameters<RoomInput['adoptRoom']>;
            return await super.adoptRoom(roomId, version, creator, outliers, join, stateBefore);
          }
          case 'recordRemoteInvite':
            await super.recordRemoteInvite(roomId, args[0] as RoomVersion, args[1] as string, args[2] as Pdu);
            return null;
          case 'recordRemoteLeave':
            await super.recordRemoteLeave(roomId, args[0] as string, args[1] as Pdu);
            return null;
          default:
            if (op.startsWith('op:')) return (await this.ops.local(roomId, op.slice(3), args)) ?? null;
            throw new Error(`unknown forwarded room operation ${op}`);
        }
      } catch (err) {
        if (err instanceof StoreConflictError) throw this.conflict(roomId, op, err);
        if (err instanceof LeaseLostError) throw this.fencedWorker(roomId, op, err);
        if (!(err instanceof StaleWriterError)) throw err;
        // Fenced while serving another worker: the caller retries (a client send keeps its
        // txnId, so the retry cannot duplicate) and finds the new owner, or us at a higher epoch.
        throw await this.refenced(roomId, err);
      }
    });
  }

  override submit(roomId: string, draft: EventDraft): Promise<SubmitResult> {
    return this.fenced(roomId, 'submit', () => this.owner.run(roomId, () => super.submit(roomId, draft), 'submit', [draft]));
  }

  override receive(roomId: string, pdu: unknown, origin: string, gapStates?: readonly StateMap[], opts?: { relay?: boolean }): Promise<InputOutcome> {
    const relay = opts?.relay === true;
    // The gap states go with the event, here and to another owner: without them the owner stores
    // a gap-filled event as an outlier where one node would have accepted it with that state.
    const args: unknown[] = gapStates?.length ? [pdu, origin, relay, encodeGapStates(gapStates)] : [pdu, origin, relay];
    return this.fenced(roomId, 'receive', () => this.owner.run(roomId, () => super.receive(roomId, pdu, origin, gapStates, opts), 'receive', args));
  }

  override async createRoom(
    roomId: string | null,
    version: RoomVersion,
    creator: string,
    drafts: EventDraft[],
    opts: { alias?: string; beforeWrite?: (roomId: string) => Promise<void> } = {},
  ): Promise<{ roomId: string; events: SubmitResult[] }> {
    const { alias, beforeWrite } = opts;
    if (!this.owner.mayAcquire) {
      if (beforeWrite) throw new Error('createRoom: a callback cannot be forwarded to a room writer');
      const args = [roomId, version, creator, drafts, alias === undefined ? {} : { alias }];
      return (await this.owner.forwardToWriter(roomId ?? '', 'createRoom', args)) as { roomId: string; events: SubmitResult[] };
    }
    let release: (() => void) | undefined;
    try {
      return await super.createRoom(roomId, version, creator, drafts, { alias, beforeWrite: async (id) => {
        // A new room ID: nobody else can own it, so this waits for nothing.
        await new Promise<void>((taken, failed) => {
          this.owner
            .runHere(id, () => new Promise<void>((done) => ((release = done), taken())))
            .catch(failed);
        });
        await beforeWrite?.(id);
      } });
    } finally {
      release?.();
    }
  }

  override submitHolding(
    roomId: string,
    build: (state: RoomState) => Promise<EventDraft>,
    beforeCommit?: (eventId: string, pdu: Pdu) => Promise<void>,
  ): Promise<SubmitResult> {
    return this.here(roomId, () => super.submitHolding(roomId, build, beforeCommit));
  }

  override exclusive<T>(roomId: string, job: () => Promise<T>): Promise<T> {
    return this.here(roomId, () => super.exclusive(roomId, job));
  }

  override adoptRoom(
    roomId: string,
    version: RoomVersion,
    creator: string,
    outliers: Array<{ eventId: string; pdu: Pdu }>,
    join: { eventId: string; pdu: Pdu },
    stateBefore: StateEntry[],
  ): Promise<SubmitResult> {
    const local = () => super.adoptRoom(roomId, version, creator, outliers, join, stateBefore);
    if (!this.owner.mayAcquire) return this.owner.run(roomId, local, 'adoptRoom', [roomId, version, creator, outliers, join, stateBefore]);
    return this.here(roomId, local);
  }

  override async recordRemoteInvite(roomId: string, version: RoomVersion, eventId: string, pdu: Pdu): Promise<void> {
    const local = () => super.recordRemoteInvite(roomId, version, eventId, pdu);
    if (!this.owner.mayAcquire) await this.owner.run(roomId, local, 'recordRemoteInvite', [version, eventId, pdu]);
    else await this.here(roomId, local);
  }

  override async recordRemoteLeave(roomId: string, eventId: string, pdu: Pdu): Promise<void> {
    const local = () => super.recordRemoteLeave(roomId, eventId, pdu);
    if (!this.owner.mayAcquire) await this.owner.run(roomId, local, 'recordRemoteLeave', [eventId, pdu]);
    else await this.here(roomId, local);
  }

  /**
   * Drops the room (or takes a higher epoch, see regainOrDrop) and routes again when the store
   * refuses our epoch; a store conflict becomes a retryable 503.
   */
  private async fenced<T>(roomId: string, op: string, call: () => Promise<T>): Promise<T> {
    try {
      // Twice at most: a lease lost with Redis's data is dropped on the first refusal, and the
      // one taken next (its epoch counted again from 1) is raised above the store's on the second.
      for (let attempt = 0; ; attempt++) {
        try {
          return await call();
        } catch (err) {
          if (!(err instanceof StaleWriterError) || attempt >= 2) throw err;
          await this.regainOrDrop(roomId, err);
        }
      }
    } catch (err) {
      if (err instanceof StoreConflictError) throw this.conflict(roomId, op, err);
      if (err instanceof LeaseLostError) throw this.fencedWorker(roomId, op, err);
      throw err;
    }
  }

  /**
   * After the store refused our epoch: still holding the room's lease (Redis lost its epoch
   * counter), this worker goes on above the recorded epoch; else the room is another's. Either
   * way the cached state goes (another writer may have written).
   */
  private async regainOrDrop(roomId: string, err: StaleWriterError): Promise<void> {
    const kept = await this.owner.regainAbove(roomId, err.recorded).catch((e: unknown) => {
      this.logger?.warn({ err: e, roomId }, 'room input: could not take a higher room epoch; dropping the room');
      return false;
    });
    if (!kept) this.owner.dropLost(roomId);
    this.forget(roomId);
  }

  /** For a call that cannot be run again here (served for another worker, or with callbacks): a retryable 503. */
  private async refenced(roomId: string, err: StaleWriterError): Promise<MatrixError> {
    await this.regainOrDrop(roomId, err);
    return new MatrixError('M_UNKNOWN', 'The room changed writers; try again', { retry_after_ms: 100 }, 503);
  }

  /** runHere for the entry points with callbacks: a fenced write answers a retryable 503 (see refenced). */
  private async here<T>(roomId: string, local: () => Promise<T>): Promise<T> {
    try {
      return await this.owner.runHere(roomId, local);
    } catch (err) {
      if (err instanceof StaleWriterError) throw await this.refenced(roomId, err);
      throw err;
    }
  }

  private fencedWorker(roomId: string, op: string, err: LeaseLostError): MatrixError {
    this.logger?.warn({ err, roomId, op }, 'room input: this worker lost its store lease; answered as retryable');
    return new MatrixError('M_UNKNOWN', 'This worker can no longer write; try again', { retry_after_ms: 500 }, 503);
  }

  private conflict(roomId: string, op: string, err: StoreConflictError): MatrixError {
    this.logger?.warn({ err, roomId, op }, 'room input: store conflict with an earlier write of the room; answered as retryable');
    return new MatrixError('M_UNKNOWN', 'An earlier attempt of this request is still being written; try again', { retry_after_ms: 200 }, 503);
  }
}

function epochFence(owner: RoomOwner, roomId: string): { epoch: number } | undefined {
  const epoch = owner.epochOf(roomId);
  return epoch === undefined ? undefined : { epoch };
}

/**
 * The composition of room writers: a plain RoomInput on one node; with a shared backend and Redis,
 * an OwnedRoomInput serving forwarded requests, whose cached room states are dropped for every
 * other worker's event the change feed delivers. `stop` (before RoomInput.drain) stops serving
 * and releases the room leases.
 */
export function createRoomInput(
  deps: RoomInputDeps,
  cluster: { backend: StoreBackend; redis: RedisSharedState | undefined; feed: ChangeFeed; leaseMs: number; logger: RoomOwnerLogger; roomWriter?: boolean },
): { roomInput: RoomInput; writerOps: WriterOperations; stop: () => Promise<void> } {
  const { backend, redis, feed } = cluster;
  const writerOps = new WriterOperations();
  if (!redis || !isSharedBackend(backend) || (feed as unknown) === backend) return { roomInput: new RoomInput(deps), writerOps, stop: async () => undefined };
  let input: OwnedRoomInput | undefined;
  const owner = new RoomOwner({
    redis: redis.client,
    blocking: redis.duplicate('room owner requests'),
    prefix: redis.prefix,
    leaseMs: cluster.leaseMs,
    mayAcquire: cluster.roomWriter ?? true,
    lingerMs: Math.min(1_000, Math.floor(cluster.leaseMs / 2)),
    forwardTimeoutMs: 2 * cluster.leaseMs + 2_000,
    onAcquired: (roomId) => input?.forget(roomId),
    onLost: (roomId) => input?.forget(roomId),
    canWrite: () => backend.writable !== false,
    logger: cluster.logger,
  });
  input = new OwnedRoomInput(deps, owner, undefined, cluster.logger, writerOps);
  input.serve();
  feed.onChanges((changes) => {
    for (const c of changes) {
      // The worker ID is read each time: a rejoin (src/cluster/replication.ts) changes it.
      if (c.kind === 'event' && workerOf(c.stream) !== backend.workerId) input!.forget(c.roomId);
      else if (c.kind === 'reset') input!.forgetAll();
    }
  });
  return { roomInput: input, writerOps, stop: () => owner.stop() };
}

type RoomOwnerLogger = { warn: (obj: object, msg: string) => void };
