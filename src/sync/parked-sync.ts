// A /sync (long-poll or socket) parked waiting for changes, as an object instead of an await
// chain. SyncService.syncOrPark returns one when the first build is empty and time remains; the
// transport attaches a sink and returns, so while parked no async frame of the request is
// suspended (serve → dispatch → run → route → sync → wait held ~3.5 KiB of generators,
// register files, promises and reactions per parked request).
//
// Invariants:
// - Settles exactly once: the sink gets one resolve or one reject, whether it is attached
//   before or after the answer is ready (a rebuild can finish before the transport attaches).
// - The answer is what SyncService.sync would have returned: on a wake it rebuilds from the
//   position it parked at and parks again when that is empty; on timeout or cancel it answers
//   the empty response it parked with.
// - cancel() (the client went away) ends the wait now and stops a rebuild in flight from
//   parking again, so no waiter outlives its client.

import type { SyncRequest, SyncResponse } from './sync-service.js';
import type { StreamToken } from './token.js';
import type { Parked, WaitTarget } from './waiters.js';

/** Where a parked sync's answer goes (the transport's writer). */
export interface SyncSink {
  resolve(res: SyncResponse): void;
  reject(err: unknown): void;
}

/** What a parked sync needs of the service: one more build from `since`, parking again if empty. */
export interface SyncResumer {
  buildOrPark(req: SyncRequest, since: StreamToken, deadline: number, parked: ParkedSync): Promise<SyncResponse | ParkedSync>;
  /** The (empty) answer for `since`, for a sync parked at the head without one built. */
  buildAnswer(req: SyncRequest, since: StreamToken): Promise<SyncResponse>;
}

export class ParkedSync implements WaitTarget {
  /** The client went away: answer now, never park again. */
  cancelled = false;
  private parked: Parked | undefined;
  /**
   * The empty answer as JSON text without its next_batch (a few hundred bytes, where its
   * objects took ~1.5 KiB), shared by every parked sync whose empty answer reads the same.
   */
  private emptyJson = '';
  private nextBatch = '';
  private upTo: StreamToken | undefined;
  private sink: SyncSink | undefined;
  private outcome: { res: SyncResponse } | { err: unknown } | undefined;

  constructor(
    private readonly service: SyncResumer,
    readonly req: SyncRequest,
    private readonly deadline: number,
  ) {}

  /** Called by the service each time it parks this sync. */
  parkedAt(parked: Parked, empty: SyncResponse, upTo: StreamToken): void {
    this.parked = parked;
    // next_batch kept in its place (key order as built), the text shared with other parked syncs.
    this.emptyJson = intern(JSON.stringify({ ...empty, next_batch: '' }));
    this.nextBatch = detached(empty.next_batch);
    this.upTo = upTo;
  }

  /**
   * Called by the service when it parks this sync at the head of both streams without building
   * the empty answer (nothing can be in it); a timeout or cancel builds it then.
   */
  parkedAtHead(parked: Parked, since: StreamToken): void {
    this.parked = parked;
    this.emptyJson = '';
    this.nextBatch = '';
    this.upTo = since;
  }

  /** The waiter's verdict. */
  waited(woken: boolean): void {
    this.parked = undefined;
    if ((!woken || this.cancelled) && this.emptyJson === '') {
      this.service.buildAnswer(this.req, this.upTo!).then(
        (res) => this.settle({ res }),
        (err: unknown) => this.settle({ err }),
      );
      return;
    }
    if (!woken || this.cancelled) {
      const res = JSON.parse(this.emptyJson) as SyncResponse;
      res.next_batch = this.nextBatch;
      this.settle({ res });
      return;
    }
    // Nothing for us in (since, upTo]: continue from upTo, so the next read is smaller.
    this.service.buildOrPark(this.req, this.upTo!, this.deadline, this).then(
      (out) => {
        if (out !== this) this.settle({ res: out as SyncResponse });
      },
      (err: unknown) => this.settle({ err }),
    );
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.parked?.cancel();
  }

  /** Hands the answer to `sink` once it is ready (at once if it already is). */
  attach(sink: SyncSink): void {
    const o = this.outcome;
    if (!o) {
      this.sink = sink;
      return;
    }
    this.outcome = undefined;
    deliver(sink, o);
  }

  /** The answer as a promise; `signal` cancels (SyncService.sync's form). */
  promise(signal?: AbortSignal): Promise<SyncResponse> {
    return new Promise<SyncResponse>((resolve, reject) => {
      if (!signal) return this.attach({ resolve, reject });
      const onAbort = (): void => this.cancel();
      if (signal.aborted) this.cancel();
      else signal.addEventListener('abort', onAbort, { once: true });
      const unlisten = (): void => signal.removeEventListener('abort', onAbort);
      this.attach({
        resolve: (res) => (unlisten(), resolve(res)),
        reject: (err) => (unlisten(), reject(err)),
      });
    });
  }

  private settle(o: { res: SyncResponse } | { err: unknown }): void {
    this.emptyJson = '';
    this.nextBatch = '';
    const sink = this.sink;
    if (!sink) {
      this.outcome = o;
      return;
    }
    this.sink = undefined;
    deliver(sink, o);
  }
}

/**
 * Empty answers differ by user mostly in next_batch alone, so most parked syncs share a handful
 * of texts. Bounded: once full it starts over (a miss costs one text, as without the table).
 */
const texts = new Map<string, string>();
const MAX_TEXTS = 1024;

function intern(text: string): string {
  const known = texts.get(text);
  if (known !== undefined) return known;
  if (texts.size >= MAX_TEXTS) texts.clear();
  texts.set(text, text);
  return text;
}

/** A flat copy of a string built by concatenation or slicing, holding nothing else alive. */
function detached(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string;
}

function deliver(sink: SyncSink, o: { res: SyncResponse } | { err: unknown }): void {
  if ('res' in o) sink.resolve(o.res);
  else sink.reject(o.err);
}
