// An answer a handler gives before it is ready (a parked /sync): the handler returns, dispatch
// returns, and the transport writes the answer when it settles. While it waits, no async frame
// of the request is suspended: a parked request costs its objects, not its await chain.
//
// Invariants:
// - Settles once (the first resolve or reject wins); the handler's end hook runs then, before
//   the metrics observation, the request log line and the transport's write, in that order.
// - A rejection is rendered by the table's one error renderer, as a thrown error would be.
// - cancel() (the transport saw the client go) is passed to the producer, which still settles
//   (its answer is then not written): end hooks and accounting run on every path.

import type { ApiResponse } from './handlers.js';

/** What makes a deferred answer (a parked sync): it reports to `sink`, and can be cancelled. */
export interface DeferredProducer {
  attach(sink: { resolve(body: unknown): void; reject(err: unknown): void }): void;
  cancel(): void;
}

/** What a handler runs when its deferred answer settles (an object: a closure's context kept more). */
export interface DeferredEnd {
  ended(): void;
}

/** The transport's writer. */
export interface AnswerSink {
  answered(res: ApiResponse): void;
}

/** What dispatch does with a settled answer (observe, log, render errors). */
export interface DeferredRecorder {
  renderError(err: unknown, req: { method: string; path: string }): ApiResponse;
  record(method: string, path: string, route: string, start: number, res: ApiResponse): void;
}

export class DeferredAnswer {
  private recorder: DeferredRecorder | undefined;
  private method = '';
  private path = '';
  private route = '';
  private start = 0;
  private sink: AnswerSink | undefined;
  private done: ApiResponse | undefined;
  private settled = false;

  constructor(
    private readonly producer: DeferredProducer,
    private readonly onEnd: DeferredEnd | undefined,
  ) {}

  /** Called by dispatch once the handler returned it. */
  begin(recorder: DeferredRecorder, method: string, path: string, route: string, start: number): void {
    this.recorder = recorder;
    this.method = method;
    // The path is a slice of the request's URL: kept as is, it would keep the whole URL (query,
    // filter, perhaps a token) alive while parked.
    this.path = internPath(path);
    this.route = route;
    this.start = start;
    this.producer.attach(this);
  }

  /** The transport's writer; told at once when the answer is already there. */
  attach(sink: AnswerSink): void {
    const done = this.done;
    if (done) {
      this.done = undefined;
      sink.answered(done);
    } else this.sink = sink;
  }

  /** The client went away. */
  cancel(): void {
    if (!this.settled) this.producer.cancel();
  }

  resolve(body: unknown): void {
    this.finish(false, body);
  }

  reject(err: unknown): void {
    this.finish(true, err);
  }

  private finish(failed: boolean, value: unknown): void {
    if (this.settled) return;
    this.settled = true;
    try {
      this.onEnd?.ended();
    } catch (e) {
      if (!failed) [failed, value] = [true, e];
    }
    const rec = this.recorder!;
    const req = { method: this.method, path: this.path };
    const res: ApiResponse = failed ? rec.renderError(value, req) : { status: value === null ? 204 : 200, body: value, route: '' };
    res.route = this.route;
    rec.record(this.method, this.path, this.route, this.start, res);
    const sink = this.sink;
    this.sink = undefined;
    if (sink) sink.answered(res);
    else this.done = res;
  }
}

const paths = new Map<string, string>();

/** One flat copy per distinct path (a handful: the deferring routes), so none keeps its URL. */
export function internPath(path: string): string {
  const known = paths.get(path);
  if (known !== undefined) return known;
  // A copy that shares nothing with the URL it was sliced from.
  const flat = JSON.parse(JSON.stringify(path)) as string;
  if (paths.size < 256) paths.set(flat, flat);
  return flat;
}
