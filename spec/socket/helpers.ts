// Shared helpers for the WebSocket sync stream specs: raw `ws` clients (when a test needs to
// control frames, pongs or reading), a HearthSocket wrapper that records every processed frame,
// and a timeline reader that merges socket frames, /sync responses and gap back-fills.

import { assert } from '../helpers/assert.js';
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { HearthSocket, type HearthSocketOptions } from '../../src/client/hearth-socket.js';
import { SOCKET_PATH } from '../../src/sync/socket/protocol.js';
import type { User } from '../helpers/fixtures.js';
import { Api, enc } from '../helpers/server.js';

export type { User };
export type Body = { next_batch: string; [k: string]: any };

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value or the timeout passes (then fails with `what`). */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 5000, everyMs = 10): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Resolves with the value, or with `fallback` if it takes longer than `ms`. */
export function within<T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  return Promise.race([p, sleep(ms).then(() => fallback)]);
}

export function socketUrl(base: string, params: Record<string, string> = {}, path = SOCKET_PATH): string {
  const url = new URL(path, base.replace(/^http/, 'ws'));
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url.toString();
}

/** A filter giving each frame the largest timeline the server allows (100). */
export const BIG_TIMELINE = JSON.stringify({ room: { timeline: { limit: 100 } } });

// ---- raw ws -----------------------------------------------------------------------------------

export interface RawClient {
  ws: WebSocket;
  /** Every parsed frame received, in order. */
  frames: any[];
  closed: Promise<{ code: number; reason: string; json: any; at: number }>;
  send(frame: unknown): void;
  sendText(text: string): void;
}

export interface Refusal {
  status: number;
  headers: IncomingMessage['headers'];
  body: any;
}

/** Opens a raw ws client. Rejects with a `Refusal` when the upgrade is answered with HTTP. */
export function rawConnect(url: string, opts: WebSocket.ClientOptions = {}): Promise<RawClient> {
  const ws = new WebSocket(url, { perMessageDeflate: false, ...opts });
  const frames: any[] = [];
  ws.on('message', (data) => {
    const text = data.toString();
    try {
      frames.push(JSON.parse(text));
    } catch {
      frames.push({ unparsable: text });
    }
  });
  const closed = new Promise<{ code: number; reason: string; json: any; at: number }>((resolve) => {
    ws.on('close', (code, reason) => {
      const text = reason.toString();
      let json: any;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ code, reason: text, json, at: Date.now() });
    });
  });
  ws.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    ws.once('open', () =>
      resolve({
        ws,
        frames,
        closed,
        send: (f) => ws.send(JSON.stringify(f)),
        sendText: (t) => ws.send(t),
      }),
    );
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => {
        let body: any = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        const refusal: Refusal = { status: res.statusCode ?? 0, headers: res.headers, body };
        reject(Object.assign(new Error(`refused with ${res.statusCode}`), refusal));
      });
    });
    ws.once('error', (err) => reject(err));
  });
}

/** The HTTP answer to an upgrade that the server refuses (fails the test if it is accepted). */
export async function refusal(url: string, opts: WebSocket.ClientOptions = {}): Promise<Refusal> {
  try {
    const c = await rawConnect(url, opts);
    c.ws.terminate();
  } catch (err) {
    const r = err as Partial<Refusal>;
    if (typeof r.status === 'number') return r as Refusal;
    throw err;
  }
  assert.fail(`expected the upgrade of ${url} to be refused, but it was accepted`);
}

export function bearer(token: string): WebSocket.ClientOptions {
  return { headers: { authorization: `Bearer ${token}` } };
}

// ---- HearthSocket with a record ---------------------------------------------------------------

export interface Recorded {
  sock: HearthSocket;
  /** Bodies of the sync frames processed, in order. */
  bodies: Body[];
  errors: any[];
}

/**
 * Opens a HearthSocket for a user that records every processed frame and, with `reader`, feeds
 * it to a TimelineReader before the frame counts as processed (and is acknowledged).
 */
export async function openSocket(
  base: string,
  user: User,
  opts: Partial<HearthSocketOptions> & { reader?: TimelineReader } = {},
): Promise<Recorded> {
  const bodies: Body[] = [];
  const errors: any[] = [];
  const { reader, ...rest } = opts;
  const sock = new HearthSocket({
    baseUrl: base,
    accessToken: user.token!,
    onSync: async (b) => {
      if (reader) await reader.add(b as Body);
      bodies.push(b as Body);
    },
    onError: (e) => errors.push(e),
    ...rest,
  });
  await sock.connect();
  return { sock, bodies, errors };
}

/** Waits until at least `n` sync frames were processed. */
export function frames(r: { bodies: Body[] }, n: number, timeoutMs = 5000): Promise<Body[]> {
  return waitFor(`${n} sync frame(s)`, () => (r.bodies.length >= n ? r.bodies : undefined), timeoutMs);
}

// ---- rooms and timelines ----------------------------------------------------------------------

export async function sharedRoom(alice: User, bob: User): Promise<string> {
  const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', invite: [bob.userId] });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const roomId = created.body.room_id as string;
  const joined = await bob.post(`/_matrix/client/v3/join/${enc(roomId)}`);
  assert.equal(joined.status, 200, JSON.stringify(joined.body));
  return roomId;
}

/**
 * Registers alice, then bob, then any `others` (in that order) on the server at `base`, and puts
 * alice and bob in a private room (`sharedRoom`).
 */
export async function aliceAndBobInRoom(base: string, others: string[] = []): Promise<{ alice: User; bob: User; others: User[]; roomId: string }> {
  const api = new Api(base);
  const alice = await api.register('alice');
  const bob = await api.register('bob');
  const rest: User[] = [];
  for (const name of others) rest.push(await api.register(name));
  const roomId = await sharedRoom(alice, bob);
  return { alice, bob, others: rest, roomId };
}

export async function sendText(user: User, roomId: string, text: string, txnId = `t-${Date.now()}-${Math.random().toString(36).slice(2)}`): Promise<string> {
  const r = await user.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${enc(txnId)}`, { msgtype: 'm.text', body: text });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.event_id as string;
}

export function roomSection(body: Body, roomId: string): any {
  return body.rooms?.join?.[roomId];
}

export function ephemeralOf(body: Body, roomId: string): any[] {
  return roomSection(body, roomId)?.ephemeral?.events ?? [];
}

/**
 * Reads one room's m.room.message bodies from a sequence of sync responses, as a client does:
 * a limited timeline is back-filled with /messages from its prev_batch down to the previous
 * token, so a gap is never mistaken for loss.
 */
export class TimelineReader {
  readonly texts: string[] = [];
  readonly eventIds: string[] = [];
  token?: string;
  limitedSeen = 0;

  constructor(private readonly user: User, private readonly roomId: string, since?: string) {
    this.token = since;
  }

  async add(body: Body): Promise<void> {
    const section = roomSection(body, this.roomId);
    if (section) {
      let events: any[] = section.timeline?.events ?? [];
      if (section.timeline?.limited && this.token !== undefined) {
        this.limitedSeen++;
        events = [...(await this.backfill(section.timeline.prev_batch, this.token)), ...events];
      }
      for (const e of events) {
        if (e.type !== 'm.room.message') continue;
        this.texts.push(e.content.body);
        this.eventIds.push(e.event_id);
      }
    }
    this.token = body.next_batch;
  }

  private async backfill(from: string, to: string): Promise<any[]> {
    const r = await this.user.get(
      `/_matrix/client/v3/rooms/${enc(this.roomId)}/messages?dir=b&limit=1000&from=${enc(from)}&to=${enc(to)}`,
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return [...r.body.chunk].reverse();
  }
}

/** Every m.room.message body in a room, oldest first, from /messages. */
export async function allTexts(user: User, roomId: string): Promise<string[]> {
  const r = await user.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=f&limit=1000&from=h1_0_0`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.chunk.filter((e: any) => e.type === 'm.room.message').map((e: any) => e.content.body);
}

export function assertExactlyOnceInOrder(got: string[], want: string[], what: string): void {
  const dups = got.filter((t, i) => got.indexOf(t) !== i);
  assert.deepEqual(dups, [], `${what}: duplicates ${JSON.stringify(dups.slice(0, 10))}`);
  const missing = want.filter((t) => !got.includes(t));
  assert.deepEqual(missing, [], `${what}: missing ${missing.length}: ${JSON.stringify(missing.slice(0, 10))}`);
  assert.deepEqual(got, want, `${what}: order`);
}

export function tokenStream(token: string): number {
  const m = /^h1_(\d+)_(\d+)$/.exec(token);
  assert.ok(m, `not an h1 token: ${token}`);
  return Number(m[1]);
}

/**
 * Records close() calls on every ws WebSocket in this process: the test server runs in-process
 * on the same `ws` module, so this shows when the server decided to close a socket even while the
 * client is not reading (its close frame is queued behind the unread data).
 */
export function spyOnCloses(): { calls: Array<{ code: number | undefined; at: number }>; restore(): void } {
  const proto = WebSocket.prototype as unknown as { close: (code?: number, reason?: string | Buffer) => void };
  const original = proto.close;
  const calls: Array<{ code: number | undefined; at: number }> = [];
  proto.close = function (this: WebSocket, code?: number, reason?: string | Buffer) {
    calls.push({ code, at: Date.now() });
    return original.call(this, code, reason);
  };
  return { calls, restore: () => void (proto.close = original) };
}
