// Parked readers waiting for something relevant to a user. One registry serves the long-poll
// /sync and the WebSocket stream, so both wake through the same path.
//
// Concurrency: single-threaded (event loop). A waiter is woken at most once; the caller then
// builds its delta from its token, so spurious wake-ups are harmless. Notices published in one
// tick wake each waiter once (the first wake removes it), which coalesces bursts per tick.
// Typing and presence notices wake only waiters whose filter wants that kind.
//
// Wakes are paced: at most `wakesPerTick` waiters (32 by default) are woken per event-loop turn, the rest in
// later turns (setImmediate, first in first out). A woken reader builds and writes its whole
// response in microtasks of the same turn, so waking the 1,000 members of one room at once ran
// ~100 ms of work with no I/O in between: every other room's delivery, every send's ack and
// every new request waited behind it, and all 1,000 responses were written only at its end.
// Pacing only delays when a reader builds its delta, never what it contains (it reads from its
// token up to the watermark at that moment), and the high-water marks move at once, so a reader
// arriving meanwhile still sees the change.
//
// Durable changes wake from two sides: the store's completion hook (`onChanges`, the change
// records of a watermark advance, so no writer can forget a wake) and the notifier (what
// writers publish; the cross-process path, and the only one for device-list changes, whose
// audience the key service computes). Either alone suffices for what it covers.

import type { ChangeRecord } from '../store/change-types.js';
import type { ChangeNotice, EphemeralKind, Notifier } from './notifier.js';
import type { StreamToken } from './token.js';

/** Which ephemeral kinds a reader's filter lets through; absent means all. */
export type Wants = Readonly<Record<EphemeralKind, boolean>>;

const ALL: Wants = { typing: true, presence: true };

/**
 * What a parked reader is told when its wait ends: woken by a relevant change (true), or not
 * (timeout, cancel, registry closed). A parked /sync or socket is its own target (see
 * parked-sync.ts), so a waiting client holds no promise, closure or await chain.
 */
export interface WaitTarget {
  waited(woken: boolean): void;
}

/** A parked wait, to end early (the client went away): its target is told `waited(false)`. */
export interface Parked {
  cancel(): void;
}

/**
 * One parked reader. A class with methods rather than closures: a parked /sync holds one of
 * these for up to a minute, and a waiter per client is the registry's whole per-client cost.
 * Its timer calls a module function with it.
 */
class Waiter implements Parked {
  private done = false;
  /** The timeout slot (see SyncWaiters.slots) this waiter is in. */
  slot = 0;

  constructor(
    readonly registry: SyncWaiters,
    readonly userId: string,
    readonly roomIds: readonly string[],
    readonly wants: Wants,
    private readonly target: WaitTarget,
  ) {}

  wake(): void {
    this.finish(true);
  }

  cancel(): void {
    this.finish(false);
  }

  finish(woken: boolean): void {
    if (this.done) return;
    this.done = true;
    this.registry.remove(this);
    this.target.waited(woken);
  }
}

/** One timer for every waiter whose deadline falls in the same slot. */
interface Slot {
  timer: NodeJS.Timeout;
  waiters: Set<Waiter>;
}

function slotDue(registry: SyncWaiters, at: number): void {
  registry.timeOut(at);
}

/** The promise form of a wait (wait()): resolves with the outcome, and follows an abort signal. */
class PromiseTarget implements WaitTarget {
  parked: Parked | undefined;

  constructor(
    private readonly resolve: (woken: boolean) => void,
    private readonly signal: AbortSignal | undefined,
  ) {}

  waited(woken: boolean): void {
    this.signal?.removeEventListener('abort', this);
    this.resolve(woken);
  }

  /** The abort signal's listener. */
  handleEvent(): void {
    this.parked?.cancel();
  }
}

/** High-water marks of one class of notices (untyped, or one ephemeral kind). */
interface Marks {
  byRoom: Map<string, StreamToken>;
  byUser: Map<string, StreamToken>;
}

export class SyncWaiters {
  // A lone waiter is stored as itself, a Set only from the second on: most users have one
  // parked reader, and a Set with its table cost ~190 bytes per user.
  private readonly byUser = new Map<string, Waiters>();
  private readonly byRoom = new Map<string, Waiters>();
  private readonly unsubscribe: () => void;
  private count = 0;
  private closed = false;
  /** Waiters to wake in later turns, oldest first (a Set: a waiter queued twice wakes once). */
  private readonly queued = new Set<Waiter>();
  private drainScheduled: NodeJS.Immediate | null = null;
  /**
   * Timeouts, by deadline rounded up to SLOT_MS: one timer per slot instead of one per waiter
   * (a Timeout and its argument list are ~150 bytes of every parked client). A wait of a second
   * or more ends at most SLOT_MS after its timeout; a shorter one at its timeout.
   */
  private readonly slots = new Map<number, Slot>();
  private readonly wakesPerTick: number;
  // High-water marks of published changes; one number per room/user ever notified in this process,
  // kept apart per ephemeral kind so a reader only counts the kinds it wants.
  private readonly marks: Record<'any' | EphemeralKind, Marks> = { any: marks(), typing: marks(), presence: marks() };

  constructor(
    notifier: Notifier,
    private readonly onCountChange?: (n: number) => void,
    opts: { wakesPerTick?: number } = {},
  ) {
    this.wakesPerTick = Math.max(1, opts.wakesPerTick ?? DEFAULT_WAKES_PER_TICK);
    this.unsubscribe = notifier.subscribe((n) => this.onNotice(n));
  }

  /** Waiters woken but not yet run (diagnostics, tests). */
  get pendingWakes(): number {
    return this.queued.size;
  }

  get size(): number {
    return this.count;
  }

  /**
   * Resolves true when a change relevant to the user is published above `after` (in either the
   * durable or the ephemeral stream), false on timeout or abort. The caller reads up to `after`
   * first; a change published while it was reading is caught by the per-user/per-room high-water
   * marks checked here.
   */
  wait(
    userId: string,
    roomIds: readonly string[],
    after: StreamToken,
    timeoutMs: number,
    signal?: AbortSignal,
    wants: Wants = ALL,
  ): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    const latest = this.latestFor(userId, roomIds, wants);
    if (latest.stream > after.stream || latest.ephemeral > after.ephemeral) return Promise.resolve(true);
    if (timeoutMs <= 0 || signal?.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const target = new PromiseTarget(resolve, signal);
      const parked = this.park(target, userId, roomIds, after, timeoutMs, wants);
      if (typeof parked === 'boolean') return resolve(parked);
      target.parked = parked;
      signal?.addEventListener('abort', target);
    });
  }

  /**
   * wait() without a promise: parks `target`, which is told `waited(woken)` once, later. Returns
   * true instead (nothing parked) when a relevant change above `after` is already published, false
   * when the wait would end at once (registry closed, no time left); else the handle to cancel it.
   */
  park(target: WaitTarget, userId: string, roomIds: readonly string[], after: StreamToken, timeoutMs: number, wants: Wants = ALL): Parked | boolean {
    if (this.closed) return false;
    const latest = this.latestFor(userId, roomIds, wants);
    if (latest.stream > after.stream || latest.ephemeral > after.ephemeral) return true;
    if (timeoutMs <= 0) return false;
    const waiter = new Waiter(this, userId, roomIds, wants, target);
    const now = Date.now();
    // Short waits keep their exact deadline (25 ms would be a large part of them).
    const at = timeoutMs >= SLOTTED_FROM_MS ? Math.ceil((now + timeoutMs) / SLOT_MS) * SLOT_MS : now + timeoutMs;
    let slot = this.slots.get(at);
    if (!slot) this.slots.set(at, (slot = { timer: setTimeout(slotDue, at - now, this, at), waiters: new Set() }));
    slot.waiters.add(waiter);
    waiter.slot = at;
    this.add(waiter);
    return waiter;
  }

  /** A slot's timer fired: every waiter still in it times out. */
  timeOut(at: number): void {
    const slot = this.slots.get(at);
    if (!slot) return;
    this.slots.delete(at);
    for (const w of slot.waiters) w.finish(false);
  }

  private latestFor(userId: string, roomIds: readonly string[], wants: Wants): StreamToken {
    const max: StreamToken = { ...ZERO };
    const add = (m: StreamToken | undefined): void => {
      if (!m) return;
      max.stream = Math.max(max.stream, m.stream);
      max.ephemeral = Math.max(max.ephemeral, m.ephemeral);
    };
    for (const kind of ['any', 'typing', 'presence'] as const) {
      if (kind !== 'any' && !wants[kind]) continue;
      const marks = this.marks[kind];
      add(marks.byUser.get(userId));
      for (const r of roomIds) add(marks.byRoom.get(r));
    }
    return max;
  }

  close(): void {
    this.closed = true;
    this.unsubscribe();
    if (this.drainScheduled) clearImmediate(this.drainScheduled);
    this.drainScheduled = null;
    this.queued.clear();
    for (const set of this.byUser.values()) for (const w of [...each(set)]) w.wake();
  }

  /**
   * The completion hook's listener: wakes the readers of every room and user the records name,
   * each once per batch (a watermark advance).
   */
  onChanges(changes: readonly ChangeRecord[]): void {
    if (changes.length === 0 || this.closed) return;
    const rooms = new Map<string, number>();
    const users = new Map<string, number>();
    let all = false;
    for (const c of changes) {
      switch (c.kind) {
        case 'event':
          rooms.set(c.roomId, c.stream);
          for (const s of [...c.stateDelta, ...c.stateRemoved]) if (s.type === 'm.room.member') users.set(s.stateKey, c.stream);
          break;
        case 'receipt':
        case 'delivered':
          rooms.set(c.roomId, c.stream);
          break;
        case 'account_data':
        case 'peek':
          users.set(c.userId, c.stream);
          break;
        case 'to_device':
          for (const t of c.targets) users.set(t.userId, c.stream);
          break;
        case 'device_list':
          break;
        case 'reset':
          all = true;
          break;
      }
    }
    const marks = this.marks.any;
    const woken = new Set<Waiter>();
    for (const [roomId, stream] of rooms) {
      bump(marks.byRoom, roomId, { stream });
      for (const w of each(this.byRoom.get(roomId))) woken.add(w);
    }
    for (const [userId, stream] of users) {
      bump(marks.byUser, userId, { stream });
      for (const w of each(this.byUser.get(userId))) woken.add(w);
    }
    if (all) for (const set of this.byUser.values()) for (const w of each(set)) woken.add(w);
    this.wakeAll(woken);
  }

  private onNotice(n: ChangeNotice): void {
    const marks = this.marks[n.kind ?? 'any'];
    if (n.roomId) bump(marks.byRoom, n.roomId, n);
    for (const u of n.userIds ?? []) bump(marks.byUser, u, n);
    const woken: Waiter[] = [];
    if (n.roomId) for (const w of each(this.byRoom.get(n.roomId))) woken.push(w);
    for (const u of n.userIds ?? []) for (const w of each(this.byUser.get(u))) woken.push(w);
    this.wakeAll(n.kind ? woken.filter((w) => w.wants[n.kind!]) : woken);
  }

  /**
   * Queues the waiters and wakes up to `wakesPerTick` of the queue now when no paced drain is
   * running (a small room's wake costs nothing extra); behind a running drain they wait their
   * turn, so one big room cannot starve the others.
   */
  private wakeAll(woken: Iterable<Waiter>): void {
    for (const w of woken) this.queued.add(w);
    if (this.drainScheduled === null) this.drain();
  }

  private drain(): void {
    this.drainScheduled = null;
    let n = 0;
    for (const w of this.queued) {
      if (n++ >= this.wakesPerTick) break;
      this.queued.delete(w);
      w.wake();
    }
    if (this.queued.size > 0 && !this.closed) this.drainScheduled = setImmediate(() => this.drain());
  }

  private add(w: Waiter): void {
    addTo(this.byUser, w.userId, w);
    for (const r of w.roomIds) addTo(this.byRoom, r, w);
    this.count++;
    this.onCountChange?.(this.count);
  }

  /** Called by a waiter as it finishes (woken, timed out or aborted). */
  remove(w: Waiter): void {
    const slot = this.slots.get(w.slot);
    if (slot) {
      slot.waiters.delete(w);
      if (slot.waiters.size === 0) {
        clearTimeout(slot.timer);
        this.slots.delete(w.slot);
      }
    }
    removeFrom(this.byUser, w.userId, w);
    for (const r of w.roomIds) removeFrom(this.byRoom, r, w);
    this.count--;
    this.onCountChange?.(this.count);
  }
}

const ZERO: StreamToken = { stream: 0, ephemeral: 0 };

/** Timeout granularity: waiters whose deadlines fall in the same 25 ms share one timer. */
const SLOT_MS = 25;
/** Waits this long or longer are slotted; a parked /sync waits 30 s or so. */
const SLOTTED_FROM_MS = 1000;

/**
 * A woken long-poll or socket costs ~100-300 µs of CPU to build and write its response, so 32
 * keep one turn near 3-10 ms: other I/O runs between the chunks of a big room's fan-out.
 */
export const DEFAULT_WAKES_PER_TICK = 32;

function marks(): Marks {
  return { byRoom: new Map(), byUser: new Map() };
}

function bump(m: Map<string, StreamToken>, key: string, n: ChangeNotice): void {
  const cur = m.get(key) ?? { ...ZERO };
  if (n.stream !== undefined) cur.stream = Math.max(cur.stream, n.stream);
  if (n.ephemeral !== undefined) cur.ephemeral = Math.max(cur.ephemeral, n.ephemeral);
  m.set(key, cur);
}

/** The waiters of one user or room: one alone, or a Set of two or more. */
type Waiters = Waiter | Set<Waiter>;

const NONE: readonly Waiter[] = [];

function each(ws: Waiters | undefined): Iterable<Waiter> {
  if (ws === undefined) return NONE;
  return ws instanceof Set ? ws : [ws];
}

function addTo(m: Map<string, Waiters>, k: string, w: Waiter): void {
  const cur = m.get(k);
  if (cur === undefined) m.set(k, w);
  else if (cur instanceof Set) cur.add(w);
  else if (cur !== w) m.set(k, new Set([cur, w]));
}

function removeFrom(m: Map<string, Waiters>, k: string, w: Waiter): void {
  const cur = m.get(k);
  if (cur === undefined) return;
  if (!(cur instanceof Set)) {
    if (cur === w) m.delete(k);
    return;
  }
  cur.delete(w);
  if (cur.size === 1) m.set(k, cur.values().next().value!);
  else if (cur.size === 0) m.delete(k);
}
