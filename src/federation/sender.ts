// Outbound transactions, sent from the store's per-destination queue (src/store/federation-types.ts:
// an append-only log at stream positions and one "sent up to" row per destination), so any
// worker can send what any worker queued, and a worker that dies leaves nothing stranded.
//
// Invariants:
// - At most one transaction in flight per destination. A transaction is recorded (beginTxn:
//   its ID and the last position it covers) before it is sent, and retried with the same txnId
//   until a 200, by this worker or, after a restart or its death, by whichever worker sends to
//   the destination next: the receiver deduplicates on (origin, txnId), so nothing is delivered
//   twice. A 200 moves the destination's sentUpto to the transaction's last position.
// - Entries are read only up to `watermark()` (the cluster watermark in a cluster): an entry
//   another worker is still writing is never skipped, so every entry is sent, in position order.
// - Per-PDU errors inside a 200 are final (the receiver judged the event); they are logged.
// - Failures back off exponentially (min_backoff_ms doubling to max_backoff_ms); any valid
//   signed request from the destination (`contact`) resets the backoff and retries at once.
// - A transaction carries at most 50 PDUs and 100 EDUs (the spec's limits).
// - Catch-up: once a transaction to a destination has failed, the destination is behind, and a
//   transaction built for it carries only the newest PDU of each room among the entries it
//   covers (the room's latest event from here), and no typing or presence EDUs (stale by then);
//   the skipped entries are covered (sentUpto passes them). The receiver fetches the skipped
//   events through the prev_events of the newest with get_missing_events (as Synapse does), so
//   a long outage costs one PDU per room per transaction, not one per event. Caught up again
//   once a transaction succeeds with nothing left waiting.
// - With a `gate` (a cluster: src/cluster/destination-leases.ts), a destination is read and sent
//   to only while this worker holds its lease, so several workers never send to one destination
//   at once; refused, the destination is tried again shortly. The lease is given back when
//   nothing is left for the destination. Transaction IDs carry `nodeId` so two workers' IDs
//   never collide at the receiver. `scanMs` makes the worker look for destinations with work
//   queued by others (a worker that died holding the lease: its lease lapses, the scan finds
//   the destination); without it (0: a single node, where nothing else queues) start() is the
//   only scan. At start every destination with work left is resumed (the queue is durable).
//   A worker without the federation_out role (`sends: false`) only queues.
// - sendPdu/sendEdu never reject: a failed enqueue is logged (the store answers for
//   durability; the event itself is stored, and the receiver reaches it through later events).

import type { Logger } from 'pino';
import { isJsonObject } from '../protocol/canonical-json.js';
import type { JsonObject, Pdu } from '../protocol/types.js';
import type { FederationQueueStore, OutboundEntry, OutboundTxn } from '../store/federation-types.js';
import { fedPath, type FederationClient } from './client.js';
import type { DestinationGate } from '../cluster/destination-leases.js';

export interface Edu {
  edu_type: string;
  content: JsonObject;
}

interface Destination {
  name: string;
  running: boolean;
  /** Something was queued or found while `run` was going: look again before stopping. */
  again: boolean;
  backoffMs: number;
  /** Behind since a failure (see Catch-up). */
  catchingUp: boolean;
  timer?: NodeJS.Timeout;
}

export interface SenderOptions {
  serverName: string;
  client: Pick<FederationClient, 'request'>;
  logger: Logger;
  /** The durable queue (the store's federationQueue). */
  queue: FederationQueueStore;
  /** The position below which every entry is written (store.currentPosition()). */
  watermark: () => number;
  /** Subscribes to watermark advances (store.onStreamAdvance): wakes wait on it (see wake). */
  onWatermarkAdvance?: (listener: () => void) => () => void;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  now?: () => number;
  /** Destinations refused by federation.allowed_servers/denied_servers get nothing queued. */
  allows?: (server: string) => boolean;
  /** Per-destination leases across workers (see the header); none on a single node. */
  gate?: DestinationGate;
  /** This worker's name in transaction IDs (a cluster). */
  nodeId?: string;
  /** How soon a destination whose lease another worker holds is tried again (ms). */
  gateRetryMs?: number;
  /** How often to look for destinations with work queued by other workers (ms; none: never). */
  scanMs?: number;
  /** False: only queue (a worker without the federation_out role); default true. */
  sends?: boolean;
}

const MAX_PDUS = 50;
const MAX_EDUS = 100;
/** Entries read per transaction built (catch-up may skip most of them). */
const WINDOW = 500;
const STALE_WHEN_BEHIND = new Set(['m.typing', 'm.presence']);

export class FederationSender {
  private readonly dests = new Map<string, Destination>();
  private readonly now: () => number;
  private txnCounter = 0;
  private stopped = false;
  private scanTimer?: NodeJS.Timeout;
  /** Wakes whose entries are above the watermark (see wake), released as it advances. */
  private waiting: Array<{ upto: number; destinations: string[] }> = [];
  private unsubscribeAdvance?: () => void;
  private readonly pending = new Set<Promise<unknown>>();
  /** Transactions answered 200 (tests, metrics). */
  delivered = 0;

  constructor(private readonly opts: SenderOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Resumes every destination with work left (from a previous run or another worker). */
  start(): void {
    if (this.opts.sends === false) return;
    this.unsubscribeAdvance = this.opts.onWatermarkAdvance?.(() => this.releaseWaiting());
    void this.scan();
    if (this.opts.scanMs) {
      this.scanTimer = setInterval(() => void this.scan(), this.opts.scanMs);
      this.scanTimer.unref();
    }
  }

  /** Queues the PDU for each destination; resolves once it is durable (never rejects). */
  sendPdu(destinations: Iterable<string>, pdu: Pdu): Promise<void> {
    if (pdu.room_id === undefined) return Promise.resolve();
    return this.enqueue(destinations, { kind: 'pdu', roomId: pdu.room_id, pdu: pdu as unknown as JsonObject });
  }

  /**
   * Queues the EDU for each destination; resolves once it is durable. Never rejects, unless
   * `strict`: then a failed write rejects, for a caller that acknowledges only what is queued
   * (to-device: the client retries).
   */
  sendEdu(destinations: Iterable<string>, edu: Edu, opts?: { strict?: boolean }): Promise<void> {
    return this.enqueue(destinations, { kind: 'edu', edu: { edu_type: edu.edu_type, content: edu.content } }, opts?.strict === true);
  }

  /**
   * Entries were queued for these destinations by someone else's write (a local event's PDU,
   * written with the event: PersistEventInput.outbound): send them.
   */
  wake(destinations: Iterable<string>, upto?: number): void {
    if (this.stopped) return;
    // The entries sit at the event's position, which may still be above the watermark (a lower
    // position of another write is in flight): a run now would read nothing and stop, and a
    // single node has no scan to find them later. Such a wake waits for the watermark's advance.
    if (upto !== undefined && this.unsubscribeAdvance && this.opts.watermark() < upto) {
      this.waiting.push({ upto, destinations: [...destinations] });
      return;
    }
    for (const n of new Set(destinations)) if (n !== this.opts.serverName && this.opts.allows?.(n) !== false) this.kick(this.dest(n));
  }

  /** On every watermark advance (the send path's hot hook: nothing to do when none wait). */
  private releaseWaiting(): void {
    if (this.waiting.length === 0) return;
    const w = this.opts.watermark();
    const ready = this.waiting.filter((x) => x.upto <= w);
    if (ready.length === 0) return;
    this.waiting = this.waiting.filter((x) => x.upto > w);
    for (const r of ready) this.wake(r.destinations);
  }

  /** Number of PDUs queued and not yet acknowledged for a destination (tests). */
  async backlog(name: string): Promise<number> {
    return (await this.unsent(name)).filter((e) => e.item.kind === 'pdu').length;
  }

  /** Number of EDUs queued and not yet acknowledged for a destination (tests). */
  async eduBacklog(name: string): Promise<number> {
    return (await this.unsent(name)).filter((e) => e.item.kind === 'edu').length;
  }

  /** The destination spoke to us with a valid signature: it is up, retry now. */
  contact(name: string): void {
    const d = this.dests.get(name);
    if (!d || d.backoffMs === 0) return;
    d.backoffMs = 0;
    if (d.timer) {
      clearTimeout(d.timer);
      d.timer = undefined;
    }
    this.kick(d);
  }

  /** True while this worker counts the destination as behind (see Catch-up). */
  catchingUp(name: string): boolean {
    return this.dests.get(name)?.catchingUp ?? false;
  }

  /** Waits for items being queued, not for transactions in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.scanTimer);
    this.unsubscribeAdvance?.();
    this.waiting = [];
    for (const d of this.dests.values()) if (d.timer) clearTimeout(d.timer);
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    await this.opts.gate?.close();
  }

  private async unsent(name: string): Promise<OutboundEntry[]> {
    const state = await this.opts.queue.getDestinationQueue(name);
    return this.opts.queue.outboundAfter(name, state.sentUpto, this.opts.watermark(), Number.MAX_SAFE_INTEGER);
  }

  private enqueue(destinations: Iterable<string>, item: Parameters<FederationQueueStore['enqueueOutbound']>[1], strict = false): Promise<void> {
    const names = [...new Set(destinations)].filter((n) => n !== this.opts.serverName && this.opts.allows?.(n) !== false);
    if (names.length === 0) return Promise.resolve();
    if (this.stopped) return strict ? Promise.reject(new Error('federation sender stopped')) : Promise.resolve();
    return this.track(async () => {
      try {
        await this.opts.queue.enqueueOutbound(names, item);
      } catch (err) {
        this.opts.logger.warn({ err, destinations: names }, 'federation: could not queue an outbound item');
        if (strict) throw err;
        return;
      }
      for (const n of names) this.kick(this.dest(n));
    });
  }

  private track<T>(fn: () => Promise<T>): Promise<T> {
    const p = fn();
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p)).catch(() => undefined);
    return p;
  }

  private async scan(): Promise<void> {
    if (this.stopped) return;
    try {
      for (const s of await this.opts.queue.listDestinationQueues()) {
        if ((s.queuedUpto > s.sentUpto || s.txn) && this.opts.allows?.(s.destination) !== false) this.kick(this.dest(s.destination));
      }
    } catch (err) {
      this.opts.logger.warn({ err }, 'federation: could not list the outbound queues');
    }
  }

  private dest(name: string): Destination {
    let d = this.dests.get(name);
    if (!d) {
      d = { name, running: false, again: false, backoffMs: 0, catchingUp: false };
      this.dests.set(name, d);
    }
    return d;
  }

  private kick(d: Destination): void {
    if (this.stopped || d.timer || this.opts.sends === false) return;
    if (d.running) {
      d.again = true;
      return;
    }
    d.running = true;
    d.again = false;
    // Not tracked: stop() does not wait for a transaction to a slow destination (its recorded
    // transaction is retried with the same ID after the restart).
    void this.run(d)
      .catch((err: unknown) => {
        if (!this.stopped) this.opts.logger.warn({ err, destination: d.name }, 'federation: sending to a destination failed; will retry');
        this.retryLater(d, this.opts.gateRetryMs ?? 1000);
      })
      .finally(() => {
        d.running = false;
        if (d.again && !d.timer) this.kick(d);
      });
  }

  private retryLater(d: Destination, ms: number): void {
    if (this.stopped || d.timer) return;
    d.timer = setTimeout(() => {
      d.timer = undefined;
      this.kick(d);
    }, ms);
    d.timer.unref();
  }

  private async run(d: Destination): Promise<void> {
    const q = this.opts.queue;
    while (!this.stopped) {
      const gate = this.opts.gate;
      if (gate && !(await gate.acquire(d.name))) {
        // Another worker is sending to it; the entries wait in the shared queue.
        d.again = false;
        this.retryLater(d, this.opts.gateRetryMs ?? 1000);
        return;
      }
      if (this.stopped) {
        // Taken while stop() was giving the leases back: give this one back too.
        await gate?.release(d.name);
        return;
      }
      d.again = false;
      const state = await q.getDestinationQueue(d.name);
      let txn: OutboundTxn;
      let body: { pdus: JsonObject[]; edus: JsonObject[] };
      if (state.txn && state.txn.upto > state.sentUpto) {
        // Left in flight (by us before a restart, or by a worker that died): same ID, same range.
        txn = state.txn;
        body = build(await q.outboundAfter(d.name, state.sentUpto, txn.upto, WINDOW), txn.catchUp, Infinity).body;
      } else {
        const entries = await q.outboundAfter(d.name, state.sentUpto, this.opts.watermark(), WINDOW);
        if (entries.length === 0) {
          d.catchingUp = false;
          if (!d.again) {
            await gate?.release(d.name);
            return;
          }
          continue;
        }
        const built = build(entries, d.catchingUp, entries.length < WINDOW ? Infinity : entries[entries.length - 1]!.pos);
        const node = this.opts.nodeId ? `${this.opts.nodeId}_` : '';
        txn = { txnId: `${this.now()}_${node}${++this.txnCounter}`, upto: built.upto, catchUp: d.catchingUp };
        body = built.body;
        await q.beginTxn(d.name, txn);
      }
      if (this.stopped) return;
      try {
        if (body.pdus.length > 0 || body.edus.length > 0) {
          const res = await this.opts.client.request(d.name, {
            method: 'PUT',
            path: fedPath`/_matrix/federation/v1/send/${txn.txnId}`,
            body: { origin: this.opts.serverName, origin_server_ts: this.now(), pdus: body.pdus, edus: body.edus },
          });
          if (isJsonObject(res) && isJsonObject(res.pdus)) {
            for (const [id, r] of Object.entries(res.pdus)) {
              if (isJsonObject(r) && r.error !== undefined) this.opts.logger.warn({ destination: d.name, eventId: id, error: r.error }, 'destination refused a PDU');
            }
          }
          this.delivered++;
        }
      } catch (err) {
        d.catchingUp = true;
        d.backoffMs = Math.min(d.backoffMs === 0 ? (this.opts.minBackoffMs ?? 2000) : d.backoffMs * 2, this.opts.maxBackoffMs ?? 3600_000);
        this.opts.logger.warn({ err, destination: d.name, txnId: txn.txnId, retryInMs: d.backoffMs }, 'federation transaction failed; will retry');
        this.retryLater(d, d.backoffMs);
        return;
      }
      d.backoffMs = 0;
      await q.completeTxn(d.name, txn);
    }
  }
}

/**
 * A transaction's contents from entries in position order: at most MAX_PDUS and MAX_EDUS, cut
 * after the last entry taken; when `catchUp`, a PDU with a newer one of its room among the
 * entries is skipped, as are typing and presence. `upto` is the last position covered: the last
 * entry taken, or, when nothing was cut, `lastRead` (the end of the window; Infinity: the last
 * entry).
 */
export function build(entries: readonly OutboundEntry[], catchUp: boolean, lastRead: number): { body: { pdus: JsonObject[]; edus: JsonObject[] }; upto: number } {
  const newest = new Map<string, number>();
  if (catchUp) for (const e of entries) if (e.item.kind === 'pdu') newest.set(e.item.roomId, e.pos);
  const pdus: JsonObject[] = [];
  const edus: JsonObject[] = [];
  let upto = entries.length > 0 ? entries[entries.length - 1]!.pos : 0;
  let cut = false;
  for (const e of entries) {
    const it = e.item;
    if (it.kind === 'pdu') {
      if (catchUp && newest.get(it.roomId) !== e.pos) continue;
      if (pdus.length === MAX_PDUS) {
        cut = true;
        break;
      }
      pdus.push(it.pdu);
    } else {
      if (catchUp && STALE_WHEN_BEHIND.has(it.edu.edu_type as string)) continue;
      if (edus.length === MAX_EDUS) {
        cut = true;
        break;
      }
      edus.push(it.edu);
    }
    upto = e.pos;
  }
  if (!cut && lastRead !== Infinity) upto = Math.max(upto, lastRead);
  if (!cut && entries.length > 0) upto = Math.max(upto, entries[entries.length - 1]!.pos);
  return { body: { pdus, edus }, upto };
}
