// Helpers for specs that run real Hearth servers federating on loopback: free ports, a server
// started with its TLS federation listener (self-signed certificate, verify_tls off, loopback
// allowed for federation only), /sync polling, and signed federation requests made by hand
// (with a server's real key, read from its key file) for the cases a test has to forge.

import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { Api, enc, startTestServer, type TestServer } from './server.js';
import { buildXMatrixAuthorization } from '../../src/protocol/x-matrix.js';
import { readSigningKeyFile } from '../../src/protocol/keyfile.js';
import type { HearthConfigInput } from '../../src/config/load.js';
import type { SigningKey } from '../../src/protocol/types.js';

export type User = Api & { userId: string };

import { freePort } from './ports.js';
export { freePort };

/** A Hearth server named `127.0.0.1:<port>` whose federation listener is on that port. */
export async function startFederated(port: number, dataDir?: string, extra: HearthConfigInput = {}): Promise<TestServer> {
  return startTestServer(
    {
      ...extra,
      server_name: `127.0.0.1:${port}`,
      listeners: { client: { host: '127.0.0.1', port: 0 }, federation: { enabled: true, host: '127.0.0.1', port } },
      federation: { verify_tls: false, ip_range_whitelist: ['127.0.0.1/32'], min_backoff_ms: 100, max_backoff_ms: 500, ...extra.federation },
    },
    dataDir,
  );
}

/** Two federated servers on fresh ports, with their names. */
export async function startPair(extra: HearthConfigInput = {}): Promise<{ a: TestServer; b: TestServer; nameA: string; nameB: string }> {
  const [pa, pb] = [await freePort(), await freePort()];
  const a = await startFederated(pa, undefined, extra);
  const b = await startFederated(pb, undefined, extra);
  return { a, b, nameA: `127.0.0.1:${pa}`, nameB: `127.0.0.1:${pb}` };
}

/** Polls /sync until `pick` finds what it wants in a response. */
export async function syncUntil<T>(api: Api, pick: (body: any) => T | undefined, timeoutMs = 15_000, since?: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let from = since;
  while (Date.now() < deadline) {
    const res = await api.get(`/_matrix/client/v3/sync?timeout=1000${from ? `&since=${enc(from)}` : ''}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const found = pick(res.body);
    if (found !== undefined) return found;
    from = res.body.next_batch;
  }
  throw new Error('timed out waiting for sync');
}

export function timeline(body: any, roomId: string): any[] {
  return body.rooms?.join?.[roomId]?.timeline?.events ?? [];
}

/** Message bodies in a room's timeline as one user sees them through /sync, until `done`. */
export async function collect(api: Api, roomId: string, done: (texts: string[]) => boolean, timeoutMs = 15_000): Promise<string[]> {
  const texts: string[] = [];
  const deadline = Date.now() + timeoutMs;
  let since: string | undefined;
  while (Date.now() < deadline) {
    const res = await api.get(`/_matrix/client/v3/sync?timeout=1000${since ? `&since=${enc(since)}` : ''}`);
    for (const e of timeline(res.body, roomId)) if (e.type === 'm.room.message') texts.push(e.content.body);
    since = res.body.next_batch;
    if (done(texts)) return texts;
  }
  throw new Error(`timed out; saw ${JSON.stringify(texts)}`);
}

export async function waitFor(cond: () => Promise<boolean>, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

let insecure: Agent | undefined;

/** A raw request to a federation listener (self-signed certificate accepted). */
export async function fedRequest(base: string, method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; body: any }> {
  insecure ??= new Agent({ connect: { rejectUnauthorized: false } });
  const res = await request(base + path, { method: method as 'GET', headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined, dispatcher: insecure });
  return { status: res.statusCode, body: (await res.body.json()) as any };
}

/** Closes the connections fedRequest opened (an after hook). */
export async function closeFedRequests(): Promise<void> {
  const a = insecure;
  insecure = undefined;
  await a?.close();
}

/**
 * A request to `to` signed as `from` with `from`'s real signing key (from its key file): what
 * `from` could send, for tests that forge transactions or ask endpoints directly.
 */
export async function signedFedRequest(from: TestServer, to: TestServer, method: 'GET' | 'PUT' | 'POST', path: string, body?: Record<string, unknown>): Promise<{ status: number; body: any }> {
  const { readSigningKeyFile } = await import('../../src/protocol/keyfile.js');
  const key = (await readSigningKeyFile(from.hearth.config.signing_key_path))[0];
  const auth = buildXMatrixAuthorization({ method, uri: path, origin: from.hearth.config.server_name, destination: to.hearth.config.server_name, content: body as any }, key);
  return fedRequest(to.hearth.federation!.url, method, path, { authorization: auth }, body);
}

/** The same user, talking to a (restarted) server. */
export function reattach(user: User, server: TestServer): User {
  return Object.assign(new Api(server.url, user.token), { userId: user.userId });
}

export function serverName(s: TestServer): string {
  return s.hearth.config.server_name;
}

export async function signingKeyOf(s: TestServer): Promise<SigningKey> {
  return (await readSigningKeyFile(s.hearth.config.signing_key_path))[0];
}

/** A request to `to`'s federation listener signed (X-Matrix) as server `from` with `key` (any key, e.g. a rotated one). */
export async function signedRequest(from: string, key: SigningKey, to: TestServer, method: 'GET' | 'PUT' | 'POST', path: string, body?: unknown) {
  const auth = buildXMatrixAuthorization({ method, uri: path, origin: from, destination: serverName(to), content: body as never }, key);
  return fedRequest(to.hearth.federation!.url, method, path, { authorization: auth }, body);
}

/**
 * Cuts `isolated` off from the other `servers`: every federation request between it and them,
 * both ways (transactions, get_missing_events, key fetches), fails as a refused connection
 * would, while each side keeps serving its own clients. Returns the function that heals it.
 */
export function partition(servers: TestServer[], isolated: TestServer): () => void {
  const cut = serverName(isolated);
  const heal: Array<() => void> = [];
  for (const s of servers) {
    const client = s.hearth.federation!.core.client;
    const previous = client.request;
    const me = serverName(s);
    client.request = async (destination, req) => {
      if ((me === cut) !== (destination === cut)) {
        throw Object.assign(new Error(`connect ECONNREFUSED (test partition ${me} -/- ${destination})`), { code: 'ECONNREFUSED' });
      }
      return previous.call(client, destination, req);
    };
    heal.push(() => void (client.request = previous));
  }
  return () => heal.forEach((h) => h());
}

/** Records the federation requests `s` makes from now on (`METHOD destination path`). */
export function watchRequests(s: TestServer): string[] {
  const client = s.hearth.federation!.core.client;
  const previous = client.request;
  const log: string[] = [];
  client.request = async (destination, req) => {
    log.push(`${req.method} ${destination} ${req.path}`);
    return previous.call(client, destination, req);
  };
  return log;
}

/** One user's view of one room through incremental /sync (timeline limit high enough for bursts). */
export class SyncedTimeline {
  readonly events: any[] = [];
  private since: string | undefined;

  constructor(readonly user: User, readonly roomId: string) {}

  /** Starts from now: later polls see only what arrives after this. */
  async start(): Promise<this> {
    const res = await this.user.get(`/_matrix/client/v3/sync?timeout=0&filter=${enc(JSON.stringify({ room: { timeline: { limit: 1 } } }))}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    this.since = res.body.next_batch;
    return this;
  }

  async poll(timeoutMs = 500): Promise<void> {
    const filter = enc(JSON.stringify({ room: { timeline: { limit: 500 } } }));
    const res = await this.user.get(`/_matrix/client/v3/sync?timeout=${timeoutMs}&filter=${filter}${this.since ? `&since=${enc(this.since)}` : ''}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const room = res.body.rooms?.join?.[this.roomId];
    assert.ok(!room?.timeline?.limited, `${this.user.userId}'s timeline came back limited: a gap in /sync`);
    this.events.push(...(room?.timeline?.events ?? []));
    this.since = res.body.next_batch;
  }

  messages(): string[] {
    return this.events.filter((e) => e.type === 'm.room.message').map((e) => e.content.body as string);
  }

  /** Polls until `done` holds for the message bodies seen so far. */
  async until(done: (texts: string[]) => boolean, timeoutMs = 20_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (done(this.messages())) return this.messages();
      await this.poll();
    }
    throw new Error(`timed out; ${this.user.userId} saw ${JSON.stringify(this.messages())}`);
  }
}
