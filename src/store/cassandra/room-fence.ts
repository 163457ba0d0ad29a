// The commit point of fenced room writes (a cluster's room owners, src/cluster/room-owner.ts):
// one LWT per event on the room's row of room_owner_epochs checks the writer's epoch and claims
// the room's next commit in the same Paxos round, so a writer whose epoch was overtaken can never
// commit, however long it paused and whatever it checked before.
//
// The row (one per room, written only with LWTs): epoch, the highest owner epoch that settled
// the room; seq, the number of commits (gapless); ts, the write timestamp of the last commit;
// event_id and pending, the last commit's event and its follow-up batch (encoded statements).
//
// Invariants:
// - commit() applies `IF epoch = mine AND seq = last`: the epoch check and the claim of the next
//   commit are one Paxos round. An epoch overtaken at any moment before that round is refused
//   with StaleWriterError, and the writer has then written nothing the room can see (only
//   unreferenced state groups; its event/txn ID claims are released by the caller).
// - Each commit gets a write timestamp ts = max(now µs, previous ts + 1): strictly increasing in
//   commit order across all writers, whatever their clocks. The event's logged batch is written
//   at ts, so a batch that lands late (its writer paused between commit and batch) can never
//   overwrite the cells of a later commit: room head, current state, memberships.
// - Epochs name acquisitions: a new epoch is recorded only strictly above the recorded one
//   (`IF epoch < mine`), so no two writers ever commit at one epoch, even when the epochs'
//   source (Redis, src/cluster/room-leases.ts) lost its data and hands out a number again; only
//   the instance that recorded an epoch settles at it again (`IF epoch <= mine`). Nothing here
//   reads a clock to order owners: an owner refused with an epoch at or below the recorded one
//   takes a higher one from its lease (regainAbove) while it still holds the room.
// - settle(room, epoch) (a new owner, before it reads the room to build on it, and before its
//   first commit) first raises the recorded epoch with an LWT, so from then on no older owner
//   can commit, then reads the row (serial) and rolls the last commit forward: it writes the
//   pending batch again itself at the commit's ts (also when the event row is there: a batch
//   whose answer was lost may be visible in part, e.g. without the txn row a fenced send writes
//   in it, events.ts step 4a). A late original batch, or a replay over a complete one, is then
//   the same cells at the same timestamp: a no-op (batches hold no counters or list appends).
//   So a committed event is never lost and never half-visible to the next owner, and the next
//   owner builds on it.
// - A pending batch the node refuses outright (e.g. over batch_size_fail_threshold) is voided
//   (pending = '', conditional on its seq): it wrote nothing and never will.
// - A writer whose commit or batch had an unknown outcome (a timeout) resolves it before giving
//   up its stream position (resolve()): it sends the batch again at the commit's timestamp (the
//   same cells at the same timestamp: a no-op if the first one landed), or settles the room and
//   looks for its event. Given up with the outcome still unknown, a later settle may land the
//   event below the stream's watermark with no change record: it is then found by store reads
//   (/messages, initial syncs), not by incremental syncs served from the read model.
// - Writes without a fence (one node) and events without a room ID (a v12 create event, which
//   starts a room nobody else can own yet) take no commit point.

import { LRUCache } from 'lru-cache';
import { StaleWriterError } from '../types.js';
import { applied, numOrNull, type CassandraContext, type CqlStatement } from './context.js';

const LOCAL_SERIAL = 0x0009;

/** Test seams: called around the commit LWT (a writer "pausing" there). */
export interface CommitHooks {
  beforeCommit?(roomId: string, eventId: string): Promise<void>;
  afterCommit?(roomId: string, eventId: string): Promise<void>;
  /** After the event's batch was acknowledged (a test may throw: an answer lost on the way). */
  afterBatch?(roomId: string, eventId: string): Promise<void>;
}

/** How a write with an unknown outcome ended, once resolve() looked. */
export type Outcome = 'landed' | 'absent' | 'unknown';

const RESOLVE_ATTEMPTS = 4;
const RESOLVE_BUDGET_MS = 10_000;

interface Head {
  epoch: number;
  seq: number;
  ts: number;
}

export interface Commit {
  /** The write timestamp (µs) the event's batch must be written at. */
  ts: number;
  /** The room's commit counter after this commit (1, 2, ...: gapless per room). */
  seq: number;
}

type Ctx = Pick<CassandraContext, 'execute' | 'batch'>;

export class RoomCommits {
  /** The row as this instance last settled or committed it (the LWTs verify it). */
  private readonly heads = new Map<string, Head>();
  /**
   * The epoch this instance last raised each room to. Bounded: a forgotten room's next settle at
   * that epoch is refused as another owner's, and the owner takes a higher epoch (regainAbove in
   * src/cluster/room-leases.ts).
   */
  private readonly raised = new LRUCache<string, number>({ max: 100_000 });
  private lastMicros = 0;

  constructor(
    private readonly ctx: Ctx,
    private readonly notApplied: (err: unknown) => boolean,
    private readonly hooks: CommitHooks = {},
  ) {}

  /**
   * Makes `epoch` the room's owner epoch (refusing older owners from now on) and lands the last
   * commit of any earlier owner. StaleWriterError when a later epoch holds the room.
   */
  async settle(roomId: string, epoch: number): Promise<void> {
    const h = this.heads.get(roomId);
    if (h && h.epoch === epoch) return;
    if (h && h.epoch > epoch) throw new StaleWriterError(roomId, epoch, h.epoch);
    await this.settleNow(roomId, epoch);
  }

  /**
   * The commit point: claims the room's next commit for `eventId` if `epoch` still owns it.
   * `statements` are the event's follow-up batch, recorded so a successor can land it.
   * `sending` is called before each commit LWT goes out (from then on it may land).
   */
  async commit(roomId: string, epoch: number, eventId: string, statements: CqlStatement[], sending?: () => void): Promise<Commit> {
    const pending = encodeBatch(statements);
    for (let attempt = 0; attempt < 5; attempt++) {
      let h = this.heads.get(roomId);
      if (!h || h.epoch !== epoch) {
        if (h && h.epoch > epoch) throw new StaleWriterError(roomId, epoch, h.epoch);
        h = await this.settleNow(roomId, epoch);
      }
      const ts = Math.max(this.nowMicros(), h.ts + 1);
      await this.hooks.beforeCommit?.(roomId, eventId);
      sending?.();
      const rs = await this.ctx.execute(
        'UPDATE room_owner_epochs SET seq = ?, ts = ?, event_id = ?, pending = ? WHERE room_id = ? IF epoch = ? AND seq = ?',
        [h.seq + 1, ts, eventId, pending, roomId, epoch, h.seq],
      );
      if (applied(rs)) {
        const next = { epoch, seq: h.seq + 1, ts };
        this.remember(roomId, next);
        await this.hooks.afterCommit?.(roomId, eventId);
        return { ts, seq: next.seq };
      }
      this.heads.delete(roomId);
      const recorded = numOrNull(rs.first()?.['epoch']);
      if (recorded !== null && recorded > epoch) throw new StaleWriterError(roomId, epoch, recorded);
      // Another commit at our epoch moved the row (this instance's cache was behind): settle again.
    }
    throw new Error(`room ${roomId}: commit did not settle`);
  }

  /**
   * The outcome of a write of `eventId` whose commit LWT (commit undefined) or batch (commit
   * given) had no answer: 'landed' once its event is stored, 'absent' when it provably never will
   * be (the commit did not apply, or the node refuses the batch outright), else 'unknown'.
   * `stored` reads whether the event row exists.
   */
  async resolve(
    roomId: string,
    epoch: number,
    statements: CqlStatement[],
    commit: Commit | undefined,
    stored: () => Promise<boolean>,
  ): Promise<Outcome> {
    // Bounded: the room's next writes and the stream's watermark wait for this position.
    const until = Date.now() + RESOLVE_BUDGET_MS;
    for (let attempt = 0; attempt < RESOLVE_ATTEMPTS && Date.now() < until; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 100 * attempt));
      try {
        if (commit) {
          await this.ctx.batch(statements, { timestamp: commit.ts });
          return 'landed';
        }
        // Settling completes a commit LWT still in progress (serial read) and lands the room's
        // last commit if it is ours and its batch is missing; ours not stored after that means
        // it never applied (this process writes the room's next commit only after this).
        this.heads.delete(roomId);
        await this.settleNow(roomId, epoch);
        return (await stored()) ? 'landed' : 'absent';
      } catch (err) {
        if (commit && this.notApplied(err)) return 'absent';
        if (err instanceof StaleWriterError) {
          // A later owner holds the room: it lands our commit (if it applied) when it settles.
          return (await stored().catch(() => false)) ? 'landed' : 'unknown';
        }
      }
    }
    return 'unknown';
  }

  /** The commit's batch did not certainly land: the next write settles (and rolls it forward). */
  unsettled(roomId: string): void {
    this.heads.delete(roomId);
  }

  /** The commit's batch was refused outright: it wrote nothing, so nobody may replay it. */
  async void(roomId: string, seq: number): Promise<void> {
    await this.ctx.execute(`UPDATE room_owner_epochs SET pending = '' WHERE room_id = ? IF seq = ?`, [roomId, seq]);
  }

  private async settleNow(roomId: string, epoch: number): Promise<Head> {
    this.heads.delete(roomId);
    await this.raise(roomId, epoch);
    const row = (
      await this.ctx.execute('SELECT epoch, seq, ts, event_id, pending FROM room_owner_epochs WHERE room_id = ?', [roomId], {
        consistency: LOCAL_SERIAL,
      })
    ).first();
    const recorded = numOrNull(row?.['epoch']);
    if (recorded === null) throw new Error(`room ${roomId}: owner row missing after it was raised`);
    if (recorded > epoch) throw new StaleWriterError(roomId, epoch, recorded);
    let seq = numOrNull(row?.['seq']);
    const ts = numOrNull(row?.['ts']) ?? 0;
    if (seq === null) {
      // A row from before commit points (epoch only): start its counter.
      const init = await this.ctx.execute(
        `UPDATE room_owner_epochs SET seq = 0, ts = 0, event_id = '', pending = '' WHERE room_id = ? IF epoch = ? AND seq = null`,
        [roomId, epoch],
      );
      if (!applied(init)) throw new Error(`room ${roomId}: owner row changed while settling`);
      seq = 0;
    }
    const pending = (row?.['pending'] as string | null) ?? '';
    const eventId = (row?.['event_id'] as string | null) ?? '';
    if (pending !== '' && eventId !== '') {
      // Sent whether or not the event row is there: a logged batch whose answer was lost may be
      // visible in part (the event row before its txn row or the room head), and the replay
      // completes it; over a complete one it is a no-op (same cells, same timestamp).
      try {
        await this.ctx.batch(decodeBatch(pending), { timestamp: ts });
      } catch (err) {
        if (!this.notApplied(err)) throw err;
        await this.void(roomId, seq);
      }
    }
    const head = { epoch, seq, ts };
    this.remember(roomId, head);
    return head;
  }

  /**
   * Raises the recorded epoch to `epoch` (LWT), creating the row for a room's first commit. An
   * epoch this instance has not recorded yet must be strictly above the recorded one; only one
   * it recorded itself may find itself there again (its head was forgotten).
   */
  private async raise(roomId: string, epoch: number): Promise<void> {
    const mine = this.raised.get(roomId) === epoch;
    for (let attempt = 0; attempt < 5; attempt++) {
      const rs = await this.ctx.execute(`UPDATE room_owner_epochs SET epoch = ? WHERE room_id = ? IF epoch ${mine ? '<=' : '<'} ?`, [epoch, roomId, epoch]);
      if (applied(rs)) return void this.raised.set(roomId, epoch);
      const recorded = numOrNull(rs.first()?.['epoch']);
      if (recorded !== null) throw new StaleWriterError(roomId, epoch, recorded);
      const ins = await this.ctx.execute(
        `INSERT INTO room_owner_epochs (room_id, epoch, seq, ts, event_id, pending) VALUES (?, ?, 0, 0, '', '') IF NOT EXISTS`,
        [roomId, epoch],
      );
      if (applied(ins)) return void this.raised.set(roomId, epoch);
      // Someone inserted first: compare with theirs.
    }
    throw new Error(`room ${roomId}: owner epoch did not settle`);
  }

  private remember(roomId: string, head: Head): void {
    // Bounded: a forgotten room costs one settle (two LWTs and a read) on its next write.
    if (this.heads.size >= 10_000 && !this.heads.has(roomId)) this.heads.clear();
    this.heads.set(roomId, head);
  }

  /** Wall clock in µs, strictly increasing in this process (the driver's timestamps are µs too). */
  private nowMicros(): number {
    this.lastMicros = Math.max(Date.now() * 1000, this.lastMicros + 1);
    return this.lastMicros;
  }
}

/**
 * Statements as JSON. Parameters are strings, finite numbers, booleans, unset (undefined, stored
 * as null: the store never binds null) or arrays of those; anything else would not survive the
 * round trip, so it is refused before the commit.
 */
export function encodeBatch(statements: CqlStatement[]): string {
  const ok = (v: unknown): boolean =>
    v === undefined || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
  for (const s of statements) {
    for (const p of s.params) {
      if (!(ok(p) || (Array.isArray(p) && p.every((x) => x !== undefined && ok(x))))) {
        throw new TypeError(`statement parameter cannot be recorded for a commit: ${s.query.slice(0, 60)}`);
      }
    }
  }
  return JSON.stringify(statements.map((s) => [s.query, s.params.map((p) => (p === undefined ? null : p))]));
}

export function decodeBatch(text: string): CqlStatement[] {
  const raw = JSON.parse(text) as Array<[string, unknown[]]>;
  return raw.map(([query, params]) => ({ query, params: params.map((p) => (p === null ? undefined : p)) }));
}
