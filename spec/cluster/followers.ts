// Clients that follow rooms for the cluster specs, over either transport, for as long as a test's
// traffic lasts: a /sync long-poll loop and a WebSocket stream (docs/websocket.md). Both keep
// the last token they processed and, when their worker is gone, resume from it on another
// worker (Client.url() picks the next live one), waiting out 429/503 answers and socket refusals
// for the retry_after_ms the server gave, with jitter (retryDelay). They record every
// m.room.message of the watched rooms in the order delivered, duplicates included, so a spec can
// assert once, in order, nothing lost; and every incremental timeline that came back `limited`
// (a gap the client would have to back-fill), which the specs require to be none.

import { HearthSocket } from '../../src/client/hearth-socket.js';
import { assert } from '../helpers/assert.js';
import { enc } from '../helpers/server.js';
import { retryDelay, sleep, V3, type Client } from './room-owner-helpers.js';

export interface Seen {
  id: string;
  body: string;
}

abstract class Follower {
  /** Messages per watched room, in delivery order. */
  readonly seen = new Map<string, Seen[]>();
  /** Incremental timelines of watched rooms that came back limited. */
  limited = 0;
  /** Connections (polls or sockets) that had to be made again on another or the same worker. */
  reconnects = 0;
  protected token: string;
  protected running = false;
  protected readonly filter: string;
  private loop: Promise<void> | null = null;
  private failure: unknown = null;

  constructor(
    readonly client: Client,
    since: string,
    readonly rooms: string[],
  ) {
    this.token = since;
    for (const r of rooms) this.seen.set(r, []);
    this.filter = JSON.stringify({ room: { rooms, timeline: { limit: 500 } }, presence: { not_types: ['*'] } });
  }

  start(): this {
    this.running = true;
    this.loop = this.run().catch((err: unknown) => {
      this.failure = err;
    });
    return this;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.interrupt();
    await this.loop;
    if (this.failure) throw this.failure;
  }

  /** Whether every ID of `ids` has been delivered for `roomId`. */
  has(roomId: string, ids: Iterable<string>): boolean {
    const got = new Set(this.seen.get(roomId)!.map((s) => s.id));
    for (const id of ids) if (!got.has(id)) return false;
    return true;
  }

  /** Resolves once `has(roomId, ids)` holds for every entry; rejects after `timeoutMs`. */
  async waitFor(want: Map<string, Set<string>>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.failure) throw this.failure;
      if ([...want].every(([room, ids]) => this.has(room, ids))) return;
      if (Date.now() > deadline) {
        const missing = [...want].map(([room, ids]) => `${room}: ${[...ids].filter((id) => !this.has(room, [id])).length} of ${ids.size}`);
        throw new Error(`${this.client.user.userId} (${this.constructor.name}) still misses ${missing.join(', ')} after ${timeoutMs} ms`);
      }
      await sleep(50);
    }
  }

  protected ingest(body: any): void {
    for (const room of this.rooms) {
      const r = body.rooms?.join?.[room];
      if (!r) continue;
      if (r.timeline.limited) this.limited++;
      for (const e of r.timeline.events) if (e.type === 'm.room.message') this.seen.get(room)!.push({ id: e.event_id, body: e.content.body });
    }
    this.token = body.next_batch as string;
  }

  protected abstract run(): Promise<void>;
  protected abstract interrupt(): void;
}

/** A /sync long-poll loop (2 s polls) from `since`. */
export class PollFollower extends Follower {
  protected async run(): Promise<void> {
    while (this.running) {
      const moves = this.client.moves;
      const body = await this.client.syncOnce(this.filter, this.token, 2000);
      if (this.client.moves !== moves) this.reconnects++;
      if (body && this.running) this.ingest(body);
    }
  }

  protected interrupt(): void {
    // The poll in flight ends within its 2 s timeout.
  }
}

/** A WebSocket sync stream from `since`, reconnected (from its last processed token) whenever it closes. */
export class SocketFollower extends Follower {
  private socket: HearthSocket | null = null;
  /** retry_after_ms of refused upgrades (503) this follower waited out. */
  readonly refused: number[] = [];

  protected async run(): Promise<void> {
    while (this.running) {
      const socket = new HearthSocket({
        baseUrl: this.client.url(),
        accessToken: this.client.user.token!,
        since: this.token,
        filter: this.filter,
        onSync: (body) => this.ingest(body),
      });
      this.socket = socket;
      try {
        await socket.connect();
      } catch (err) {
        const e = err as { status?: number; body?: { retry_after_ms?: number } };
        if (e.status === 503 || e.status === 429) {
          if (typeof e.body?.retry_after_ms === 'number') this.refused.push(e.body.retry_after_ms);
          await this.client.backoff(e.body);
        } else {
          // Nobody listening there (the worker is gone): the next url() is another worker.
          this.client.failedOver();
          await sleep(retryDelay(undefined, 100));
        }
        this.reconnects++;
        continue;
      }
      const closed = await socket.closed;
      if (!this.running) return;
      this.reconnects++;
      assert.notEqual(closed.code, 4001, 'the token stays valid');
      await sleep(retryDelay(closed.reason, 100));
    }
  }

  protected interrupt(): void {
    void this.socket?.close();
  }
}

/**
 * The room's messages in the server's order (/messages forwards from `from`), as one worker
 * answers it: the order every follower must have seen them in.
 */
export async function roomOrder(c: Client, roomId: string, from: string): Promise<Seen[]> {
  const out: Seen[] = [];
  let at = from;
  for (;;) {
    const r = await c.api().get(`${V3}/rooms/${enc(roomId)}/messages?dir=f&limit=500&from=${enc(at)}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const e of r.body.chunk) if (e.type === 'm.room.message') out.push({ id: e.event_id, body: e.content.body });
    if (!r.body.end || r.body.chunk.length === 0) return out;
    at = r.body.end;
  }
}
