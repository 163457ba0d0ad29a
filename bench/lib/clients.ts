// Simulated Matrix clients: a /sync long-poll loop and a Hearth WebSocket stream, both reporting
// every message body they see to a Tracker. A limited timeline (more events than the filter's
// limit arrived between two syncs) is back-filled with /messages between the two tokens, as a
// real client fills the gap; without that a busy client would lose messages by construction.

import { HearthSocket } from '../../src/client/hearth-socket.js';
import { MatrixClient, type HttpResult } from './matrix.js';
import { sleep } from './schedule.js';
import type { Tracker } from './tracker.js';

/** Small timeline, no presence/receipts/typing noise, members lazy-loaded: the data under test. */
export const BENCH_FILTER = JSON.stringify({
  room: { timeline: { limit: 20 }, state: { lazy_load_members: true } },
  presence: { types: [] },
  account_data: { types: [] },
});

export interface ClientStats {
  syncs: number;
  gapFills: number;
  errors: number;
}

export const clientStats: ClientStats = { syncs: 0, gapFills: 0, errors: 0 };

/** Feeds every m.room.message in a sync body to the tracker; back-fills limited timelines. */
async function consume(mc: MatrixClient, id: number, tracker: Tracker, body: any, prevSince: string | undefined, at: number, polledAt?: number): Promise<void> {
  const join = body?.rooms?.join;
  if (!join) return;
  for (const roomId of Object.keys(join)) {
    const tl = join[roomId]?.timeline;
    if (!tl) continue;
    for (const ev of tl.events ?? []) if (ev.type === 'm.room.message') tracker.saw(id, ev.content?.body, at, polledAt);
    if (tl.limited && prevSince && tl.prev_batch) {
      clientStats.gapFills++;
      let from: string | undefined = tl.prev_batch;
      for (let page = 0; page < 100 && from; page++) {
        const res = await mc.messages(roomId, from, prevSince, 100);
        const now = performance.now();
        for (const ev of res.chunk ?? []) if (ev.type === 'm.room.message') tracker.saw(id, ev.content?.body, now);
        if (!res.chunk?.length || !res.end || res.end === from) break;
        from = res.end;
      }
    }
  }
}

export class PollClient {
  since?: string;
  private running = false;
  private abort = new AbortController();
  private loopDone: Promise<void> = Promise.resolve();
  /** performance.now() of the last completed sync. */
  lastSyncAt = 0;

  constructor(readonly mc: MatrixClient, readonly id: number, private readonly tracker: Tracker, private readonly filter = BENCH_FILTER, private readonly timeoutMs = 30_000) {}

  /** A first sync (timeout 0) to obtain a token. */
  async initialSync(): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const res = await this.mc.sync({ filter: this.filter, timeout: 0 }).catch(() => null);
      if (res?.status === 200) {
        this.since = res.body.next_batch;
        return;
      }
      await sleep(Number(res?.body?.retry_after_ms) || 500);
    }
    throw new Error(`initial sync failed for ${this.mc.userId}`);
  }

  start(): void {
    this.running = true;
    this.loopDone = this.loop();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      let res;
      const polledAt = performance.now();
      try {
        res = await this.mc.sync({ since: this.since, timeout: this.timeoutMs, filter: this.filter }, this.abort.signal);
      } catch {
        if (!this.running) return;
        clientStats.errors++;
        await sleep(200);
        continue;
      }
      if (res.status !== 200) {
        clientStats.errors++;
        await sleep(Math.min(Number(res.body?.retry_after_ms) || 200, 5000));
        continue;
      }
      clientStats.syncs++;
      const prev = this.since;
      try {
        await consume(this.mc, this.id, this.tracker, res.body, prev, res.at, polledAt);
      } catch {
        clientStats.errors++;
      }
      this.since = res.body.next_batch;
      this.lastSyncAt = performance.now();
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    await this.loopDone;
    this.abort = new AbortController();
  }
}

export interface SocketConnectStats {
  shed: number;
  connectErrors: number;
  /** Connections the server closed after they were up, by close code (the client reconnects). */
  serverCloses: Record<string, number>;
}

export const socketStats: SocketConnectStats = { shed: 0, connectErrors: 0, serverCloses: {} };

export class SocketClient {
  socket?: HearthSocket;
  /** Token of the last frame processed (resume point). */
  since?: string;
  /** performance.now() when the first sync frame of the current connection arrived. */
  firstFrameAt = 0;
  connectStartedAt = 0;
  /** performance.now() when the last connect() succeeded. */
  connectedAt = 0;
  frames = 0;
  private closing = false;
  private reconnects = 0;
  private reconnecting: Promise<void> | null = null;

  constructor(readonly mc: MatrixClient, readonly id: number, private readonly tracker: Tracker | null, private readonly filter = BENCH_FILTER) {}

  /** A connection the server closed (slow consumer, heartbeat, overload) is resumed from its token, as a real client would. */
  private watch(s: HearthSocket): void {
    void s.closed.then((c) => {
      if (this.closing || this.socket !== s) return;
      if (++this.reconnects > 100) return; // bounded: a client gives up after 100 server closes
      socketStats.serverCloses[c.code] = (socketStats.serverCloses[c.code] ?? 0) + 1;
      this.socket = undefined;
      this.reconnecting = sleep(Math.min(c.reason.retry_after_ms ?? 250, 10_000))
        .then(() => (this.closing ? undefined : this.connect()))
        .catch(() => void socketStats.connectErrors++)
        .finally(() => (this.reconnecting = null));
    });
  }

  /**
   * Connects, honouring 503 + retry_after_ms (bounded attempts). A fresh connection resolves on
   * its first sync frame; a resumed one (since set) once open, since the server sends nothing
   * until there is something new.
   */
  async connect(maxAttempts = 60): Promise<void> {
    this.closing = false;
    const resuming = this.since !== undefined;
    this.connectStartedAt = performance.now();
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      let first!: () => void;
      const gotFirst = new Promise<void>((r) => (first = r));
      let prev = this.since;
      const s = new HearthSocket({
        baseUrl: this.mc.base,
        accessToken: this.mc.token,
        since: this.since,
        filter: this.filter,
        onSync: async (body) => {
          const at = performance.now();
          this.frames++;
          if (this.tracker) await consume(this.mc, this.id, this.tracker, body, prev, at).catch(() => void clientStats.errors++);
          prev = body.next_batch;
          this.since = body.next_batch;
          if (!this.firstFrameAt) this.firstFrameAt = at;
          first();
        },
      });
      try {
        await s.connect();
      } catch (err) {
        const e = err as { status?: number; body?: any };
        if (e.status === 503) {
          socketStats.shed++;
          await sleep(Math.min(Number(e.body?.retry_after_ms) || 1000, 10_000));
        } else {
          socketStats.connectErrors++;
          await sleep(250 * Math.min(attempt + 1, 8));
        }
        continue;
      }
      this.socket = s;
      this.watch(s);
      if (resuming) {
        this.connectedAt = performance.now();
        return;
      }
      const closed = s.closed.then((c) => c);
      const outcome = await Promise.race([gotFirst.then(() => 'ok' as const), closed, sleep(60_000).then(() => 'timeout' as const)]);
      if (outcome === 'ok') {
        this.connectedAt = performance.now();
        return;
      }
      if (outcome === 'timeout') throw new Error(`no first sync frame within 60 s for ${this.mc.userId}`);
      if (this.socket !== s) {
        await this.reconnecting; // closed, and watch() is already reconnecting
        return;
      }
      // Closed before the first frame (shed or overloaded): wait as told and retry.
      const retry = outcome.reason?.retry_after_ms;
      if (retry !== undefined) socketStats.shed++;
      else socketStats.connectErrors++;
      await sleep(Math.min(retry ?? 500, 10_000));
    }
    throw new Error(`could not connect ${this.mc.userId} after ${maxAttempts} attempts`);
  }

  /**
   * Sends a message over this client's socket (a `send` frame, answered through the same route
   * table as PUT /send), as a socket client does: no HTTP request. The result has the HTTP
   * client's shape; status 0 when no socket is open (reconnecting) or it closed before answering.
   */
  async send(roomId: string, txnId: string, body: string): Promise<HttpResult> {
    const s = this.socket;
    if (!s) return { status: 0, body: { errcode: 'M_UNKNOWN', error: 'no socket open' }, at: performance.now() };
    const res = await s.send(roomId, 'm.room.message', txnId, { msgtype: 'm.text', body });
    return { status: res.status, body: res.body, at: performance.now() };
  }

  /** Resets per-connection timing before a reconnect. */
  resetTiming(): void {
    this.firstFrameAt = 0;
  }

  /** Drops the TCP connection without a closing handshake (no automatic reconnect). */
  kill(): void {
    this.closing = true;
    const s = this.socket;
    this.socket = undefined;
    s?.kill();
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.reconnecting;
    const s = this.socket;
    this.socket = undefined;
    if (!s) return;
    await Promise.race([s.close(), sleep(3000)]);
    s.kill();
  }
}
