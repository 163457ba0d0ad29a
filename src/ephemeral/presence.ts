// Presence (online / unavailable / offline, last active). Ephemeral by design: held in memory
// (Redis in scale-out), with no durable write per heartbeat. A restart forgets it, which costs
// users an "offline" until their client's next sync.
//
// Transitions, as the spec describes them:
// - a sync (set_presence online, the default) or a send marks the user online and active;
// - no activity for `idle_timeout_ms` -> unavailable (currently_active false);
// - no sync for `offline_timeout_ms` -> offline (the client went away).
// Deadlines sit in a timing wheel of one-second buckets, so each sweep touches only users whose
// deadline is due, never every user.
// Users of other servers (federation) are set by `setRemote` and never scheduled: their server
// decides their transitions. `listeners` hear every visible change made by this process
// (federation sends local ones).
//
// In a cluster (a Broadcast given) every worker holds a replica of every record it has heard of:
// - A visible change is applied here, then published with the whole record; every other worker
//   applies it with a position of its own stream (after observe()-ing the sender's, so tokens
//   stay comparable across workers, see stream.ts) and wakes its own syncing readers.
// - One worker drives a user's timers: the one whose change or claim was published last. A
//   worker that sees the user's activity (sync, send, status) while another drives publishes a
//   claim (an invisible message) and drives from then on; receivers drop their own timers and
//   keep the latest activity timestamps, so a worker that takes over expires on them.
// - The driver republishes the user's last sync at most every offline_timeout / 2 while it
//   moves; a replica whose driver went silent (its worker died) takes over only once the user
//   has not been seen for twice the offline timeout.
// - Redis lost: nothing is published or received; each worker keeps its own users' presence
//   (publishing failures are logged, never thrown). Presence degrades; nothing else does.

import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Broadcast } from '../cluster/shared-state.js';
import type { Notifier } from '../sync/notifier.js';
import type { EphemeralStream } from './stream.js';

const CHANNEL = 'presence';
const STATES: ReadonlySet<string> = new Set(['online', 'unavailable', 'offline']);

export type PresenceState = 'online' | 'unavailable' | 'offline';

export interface PresenceRecord {
  userId: string;
  state: PresenceState;
  statusMsg: string | null;
  lastActiveTs: number;
  lastSyncTs: number;
  currentlyActive: boolean;
  /** Ephemeral position of the last visible change. */
  pos: number;
  /** Set by PUT /presence: a user who chose unavailable/offline is not made online by syncing. */
  explicit: PresenceState | null;
  /** Wheel bucket the user is scheduled in (at most one live entry per user). */
  bucket: number | null;
  /** Open long-polls and sockets (on this worker). */
  connections: number;
  /** Cluster: another worker drives this user's timers (its change or claim came last). */
  remote: boolean;
  /** Cluster: lastSyncTs as last published by this worker. */
  publishedSyncTs: number;
  /** A user of another server (setRemote): their server drives the transitions, no timers here. */
  federated: boolean;
}

export interface PresenceOptions {
  enabled: boolean;
  idleTimeoutMs: number;
  offlineTimeoutMs: number;
}

export interface PresenceDeps {
  stream: EphemeralStream;
  notifier: Notifier;
  /** Rooms whose members should hear about this user's presence. */
  roomsOf: (userId: string) => Promise<string[]>;
  now?: () => number;
  /** A cluster: records replicated through this broadcast (see the header). */
  cluster?: { broadcast: Broadcast; logger: Logger };
}

const BUCKET_MS = 1000;
const LOG_MAX = 20_000;

export class PresenceService {
  private readonly users = new Map<string, PresenceRecord>();
  /** Recent changes in position order (bounded). */
  private readonly log: Array<{ pos: number; userId: string }> = [];
  private readonly wheel = new Map<number, Set<string>>();
  private readonly now: () => number;
  private lastSweptBucket: number;
  private timer?: NodeJS.Timeout;
  readonly listeners: Array<(r: PresenceRecord) => void> = [];
  /** This worker's name in published messages (its own come back and are skipped). */
  private readonly origin = randomBytes(8).toString('hex');

  constructor(readonly opts: PresenceOptions, private readonly deps: PresenceDeps) {
    this.now = deps.now ?? Date.now;
    this.lastSweptBucket = Math.floor(this.now() / BUCKET_MS);
  }

  get enabled(): boolean {
    return this.opts.enabled;
  }

  /** In a cluster: starts applying other workers' changes. */
  async listen(): Promise<void> {
    const c = this.deps.cluster;
    if (!c || !this.opts.enabled) return;
    await c.broadcast.subscribe(CHANNEL, (message) => {
      try {
        this.receive(message);
      } catch (err) {
        c.logger.warn({ err }, 'presence: ignored a message from another worker');
      }
    });
  }

  /** Starts the periodic sweep (not needed in tests that call sweep() themselves). */
  start(intervalMs = BUCKET_MS): void {
    if (!this.opts.enabled || this.timer) return;
    this.timer = setInterval(() => this.sweep(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  get(userId: string): PresenceRecord | undefined {
    return this.users.get(userId);
  }

  /** PUT /presence/{userId}/status. */
  setStatus(userId: string, state: PresenceState, statusMsg: string | null | undefined): void {
    if (!this.opts.enabled) return;
    const r = this.local(userId);
    const now = this.now();
    r.explicit = state === 'online' ? null : state;
    if (statusMsg !== undefined) r.statusMsg = statusMsg;
    if (state === 'online') {
      r.lastActiveTs = now;
      r.currentlyActive = true;
    } else {
      r.currentlyActive = false;
    }
    r.state = state;
    this.changed(r);
    this.schedule(r);
    this.claimed(r);
  }

  /** Presence of a user of another server, as their server told us (`lastActiveAgo` in ms). */
  setRemote(userId: string, state: PresenceState, statusMsg: string | null, lastActiveAgo: number, currentlyActive: boolean): void {
    if (!this.opts.enabled) return;
    const r = this.record(userId);
    r.federated = true;
    const lastActiveTs = Math.max(0, this.now() - Math.max(0, lastActiveAgo));
    if (r.state === state && r.statusMsg === statusMsg && r.currentlyActive === currentlyActive && Math.abs(r.lastActiveTs - lastActiveTs) < 60_000) return;
    r.state = state;
    r.statusMsg = statusMsg;
    r.lastActiveTs = lastActiveTs;
    r.currentlyActive = currentlyActive;
    this.changed(r);
  }

  /** A long-poll or socket of the user opened: while any is open the user is not "gone". */
  connectionOpened(userId: string): void {
    if (!this.opts.enabled) return;
    this.record(userId).connections++;
  }

  connectionClosed(userId: string): void {
    if (!this.opts.enabled) return;
    const r = this.local(userId);
    r.connections = Math.max(0, r.connections - 1);
    r.lastSyncTs = this.now();
    this.schedule(r);
    this.claimed(r);
  }

  /**
   * A /sync (or socket heartbeat) from the user, with its set_presence parameter. Syncing with
   * set_presence=online counts as activity, as the issue asks: the client is in use.
   */
  syncing(userId: string, setPresence: PresenceState | undefined): void {
    if (!this.opts.enabled) return;
    const r = this.local(userId);
    r.lastSyncTs = this.now();
    try {
      this.sync(r, setPresence);
    } finally {
      this.claimed(r);
    }
  }

  private sync(r: PresenceRecord, setPresence: PresenceState | undefined): void {
    const wanted = setPresence ?? 'online';
    if (wanted === 'offline') {
      // "offline" here means: don't mark me online; it does not force a visible change.
      this.schedule(r);
      return;
    }
    // An explicit set_presence=online is the client saying "I am here": it replaces an earlier
    // unavailable/offline chosen through PUT /presence. Only an omitted parameter defers to it.
    if (setPresence === 'online') r.explicit = null;
    if (r.explicit && r.explicit !== 'online') {
      this.schedule(r);
      return;
    }
    if (wanted === 'unavailable') {
      if (r.state !== 'unavailable') {
        r.state = 'unavailable';
        r.currentlyActive = false;
        this.changed(r);
      }
    } else {
      const wasVisible = r.state === 'online' && r.currentlyActive;
      r.state = 'online';
      r.lastActiveTs = this.now();
      r.currentlyActive = true;
      if (!wasVisible) this.changed(r);
    }
    this.schedule(r);
  }

  /**
   * User activity (sending an event): last active now, and back to online from unavailable. An
   * offline user stays offline (as in Synapse): a sender that never syncs (a bot, a bridge) would
   * otherwise flip online on every send and offline at the next expiry sweep, each flip a
   * presence change fanned out to every room-mate and, in a cluster, to every worker.
   */
  active(userId: string): void {
    if (!this.opts.enabled) return;
    const r = this.local(userId);
    r.lastActiveTs = this.now();
    if (r.state === 'offline') return;
    const wasVisible = r.state === 'online' && r.currentlyActive;
    r.currentlyActive = true;
    if (r.explicit === null || r.explicit === 'online') r.state = 'online';
    // last_active_ago alone moving is not worth waking every contact for.
    if (!wasVisible) this.changed(r);
    this.schedule(r);
    this.claimed(r);
  }

  /**
   * Records changed after ephemeral position `since`, for the given users (all if undefined).
   * Reads the change log from its end, so a sync costs the number of recent changes, not the
   * number of users; only a position older than the log falls back to a full scan.
   */
  changedSince(since: number, userIds?: Iterable<string>): PresenceRecord[] {
    const out: PresenceRecord[] = [];
    if (userIds) {
      for (const u of userIds) {
        const r = this.users.get(u);
        if (r && r.pos > since) out.push(r);
      }
      return out;
    }
    if (this.log.length > 0 && this.log[0].pos <= since) {
      const seen = new Set<string>();
      for (let i = this.log.length - 1; i >= 0 && this.log[i].pos > since; i--) {
        const r = this.users.get(this.log[i].userId);
        if (r && r.pos > since && !seen.has(r.userId)) {
          seen.add(r.userId);
          out.push(r);
        }
      }
      return out;
    }
    for (const r of this.users.values()) if (r.pos > since) out.push(r);
    return out;
  }

  /** Moves due users along online -> unavailable -> offline. */
  sweep(): void {
    const nowBucket = Math.floor(this.now() / BUCKET_MS);
    for (let b = this.lastSweptBucket; b <= nowBucket; b++) {
      const due = this.wheel.get(b);
      if (!due) continue;
      this.wheel.delete(b);
      for (const userId of due) {
        const r = this.users.get(userId);
        // Entries left behind by an earlier reschedule are stale.
        if (r && r.bucket === b) {
          r.bucket = null;
          this.expire(r);
        }
      }
    }
    this.lastSweptBucket = nowBucket;
  }

  private expire(r: PresenceRecord): void {
    const now = this.now();
    if (r.remote) {
      // Another worker drives this user; it went silent (see the header) only if the user has
      // not been seen for twice the offline timeout. Then this worker takes over.
      if (now - r.lastSyncTs < 2 * this.opts.offlineTimeoutMs) return this.schedule(r);
      r.remote = false;
    }
    let changed = false;
    if (r.state !== 'offline' && r.connections === 0 && now - r.lastSyncTs >= this.opts.offlineTimeoutMs) {
      r.state = 'offline';
      r.currentlyActive = false;
      changed = true;
    } else if (r.state === 'online' && now - r.lastActiveTs >= this.opts.idleTimeoutMs) {
      r.state = 'unavailable';
      r.currentlyActive = false;
      changed = true;
    }
    if (changed) this.changed(r);
    this.schedule(r);
  }

  private record(userId: string): PresenceRecord {
    let r = this.users.get(userId);
    if (!r) {
      r = {
        userId,
        state: 'offline',
        statusMsg: null,
        lastActiveTs: 0,
        lastSyncTs: 0,
        currentlyActive: false,
        pos: 0,
        explicit: null,
        bucket: null,
        connections: 0,
        remote: false,
        publishedSyncTs: 0,
        federated: false,
      };
      this.users.set(userId, r);
    }
    return r;
  }

  /**
   * Makes sure the user is looked at no later than their next deadline. A later deadline keeps
   * the existing (earlier) entry: when it fires, expire() finds nothing due and reschedules.
   */
  private schedule(r: PresenceRecord): void {
    if (r.state === 'offline' || r.federated) return;
    const deadlines = r.remote ? [r.lastSyncTs + 2 * this.opts.offlineTimeoutMs] : [r.lastSyncTs + this.opts.offlineTimeoutMs];
    if (r.state === 'online' && !r.remote) deadlines.push(r.lastActiveTs + this.opts.idleTimeoutMs);
    const bucket = Math.max(Math.ceil(Math.min(...deadlines) / BUCKET_MS), this.lastSweptBucket + 1);
    if (r.bucket !== null && r.bucket <= bucket) return;
    r.bucket = bucket;
    let set = this.wheel.get(bucket);
    if (!set) this.wheel.set(bucket, (set = new Set()));
    set.add(r.userId);
  }

  /** A visible change made here: applied, told to listeners and to the other workers. */
  private changed(r: PresenceRecord): void {
    this.bump(r);
    for (const l of this.listeners) l(r);
    this.publish(r, true);
  }

  /** The record, for activity seen here: a user another worker drove is driven from here now. */
  private local(userId: string): PresenceRecord {
    const r = this.record(userId);
    if (r.remote) {
      r.remote = false;
      // Force a claim (below) even if nothing visible changes.
      r.publishedSyncTs = -1;
    }
    return r;
  }

  /** After local activity: publishes the claim or the moved last sync, unless changed() did. */
  private claimed(r: PresenceRecord): void {
    if (!this.deps.cluster) return;
    if (r.publishedSyncTs === -1 || r.lastSyncTs - r.publishedSyncTs >= this.opts.offlineTimeoutMs / 2) this.publish(r, false);
  }

  private publish(r: PresenceRecord, visible: boolean): void {
    const c = this.deps.cluster;
    if (!c) return;
    r.publishedSyncTs = r.lastSyncTs;
    const message = JSON.stringify({
      o: this.origin,
      u: r.userId,
      v: visible,
      p: this.deps.stream.current(),
      s: r.state,
      m: r.statusMsg,
      a: r.lastActiveTs,
      y: r.lastSyncTs,
      c: r.currentlyActive,
      e: r.explicit,
      f: r.federated,
    });
    c.broadcast.publish(CHANNEL, message).catch((err: unknown) => c.logger.warn({ err, userId: r.userId }, 'presence: publishing a change failed'));
  }

  /** Another worker's change or claim (see the header). */
  private receive(message: string): void {
    const m = JSON.parse(message) as Record<string, unknown>;
    if (m['o'] === this.origin) return;
    const { u, v, p, s, a, y, c, e } = m;
    const msg = m['m'];
    if (
      typeof u !== 'string' ||
      typeof v !== 'boolean' ||
      typeof p !== 'number' ||
      typeof s !== 'string' ||
      !STATES.has(s) ||
      !(msg === null || typeof msg === 'string') ||
      typeof a !== 'number' ||
      typeof y !== 'number' ||
      typeof c !== 'boolean' ||
      !(e === null || (typeof e === 'string' && STATES.has(e)))
    ) {
      throw new Error('malformed presence message');
    }
    // p is the change's position at the sender: the copy here gets it too where our stream is
    // behind (so a token from the sender that covers the change covers it here), else above it.
    this.deps.stream.observe(v ? p - 1 : p);
    const r = this.record(u);
    r.remote = true;
    if (m['f'] === true) r.federated = true;
    r.lastSyncTs = Math.max(r.lastSyncTs, y);
    r.lastActiveTs = Math.max(r.lastActiveTs, a);
    // Our own timers (if any) are stale: the sender drives. The fallback deadline replaces them.
    r.bucket = null;
    if (v) {
      r.state = s as PresenceState;
      r.statusMsg = msg;
      r.currentlyActive = c;
      r.explicit = e as PresenceState | null;
      this.bump(r);
    }
    this.schedule(r);
  }

  /** A new position for the record, and the wake-ups of its readers. */
  private bump(r: PresenceRecord): void {
    r.pos = this.deps.stream.next();
    this.log.push({ pos: r.pos, userId: r.userId });
    if (this.log.length > LOG_MAX) this.log.splice(0, this.log.length - LOG_MAX / 2);
    const pos = r.pos;
    this.deps.notifier.publish({ ephemeral: pos, userIds: [r.userId], kind: 'presence' });
    void this.deps.roomsOf(r.userId).then(
      (rooms) => {
        for (const roomId of rooms) this.deps.notifier.publish({ ephemeral: pos, roomId, kind: 'presence' });
      },
      () => undefined,
    );
  }
}

/** The m.presence event content for a record, as /sync and GET /presence show it. */
export function presenceContent(r: PresenceRecord, now: number): Record<string, string | number | boolean | null> {
  const c: Record<string, string | number | boolean | null> = { presence: r.state, currently_active: r.currentlyActive };
  if (r.lastActiveTs > 0) c.last_active_ago = Math.max(0, now - r.lastActiveTs);
  if (r.statusMsg !== null) c.status_msg = r.statusMsg;
  return c;
}
