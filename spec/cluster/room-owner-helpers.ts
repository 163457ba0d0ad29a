// Helpers for the cluster specs: a user's client that moves to another worker when its own is
// gone and retries sends with the same txnId (as a real client does), honouring the server's
// retry_after_ms with jitter; /sync collection; and the no-fork check on the store.

import { assert } from '../helpers/assert.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { ChildServer } from '../helpers/child-server.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import type { Store } from '../../src/store/types.js';
import type { HearthConfigInput } from '../../src/config/load.js';

export const V3 = '/_matrix/client/v3';
export type User = Api & { userId: string; deviceId: string };

/**
 * How long a client waits before retrying an answer that said to (429/503): the server's
 * `retry_after_ms` (else `fallbackMs`) plus up to half as much again of random jitter, so clients
 * refused together do not come back together.
 */
export function retryDelay(body: unknown, fallbackMs = 100): number {
  const given = Number((body as { retry_after_ms?: unknown } | undefined)?.retry_after_ms);
  const base = Number.isFinite(given) && given > 0 ? given : fallbackMs;
  return base + Math.random() * base * 0.5;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A user's client, pointed at one worker, moving to the other when its worker is gone. */
export class Client {
  private at = 0;
  /** Times this client went to another worker than the one it last used. */
  moves = 0;
  /** The retry_after_ms values of 429/503 answers this client waited out. */
  readonly honoured: number[] = [];
  constructor(
    readonly user: User,
    private readonly servers: () => Array<{ url: string } | null>,
    first: number,
  ) {
    this.at = first;
  }

  api(): Api {
    return new Api(this.url(), this.user.token);
  }

  /** The base URL of the worker this client uses now (the next live one if its own is gone). */
  url(): string {
    const list = this.servers();
    for (let i = 0; i < list.length; i++) {
      const s = list[(this.at + i) % list.length];
      if (s) {
        if (i > 0) this.moves++;
        this.at = (this.at + i) % list.length;
        return s.url;
      }
    }
    throw new Error('no worker left');
  }

  /** The worker went away mid-request: the next call goes to another. */
  failedOver(): void {
    this.at++;
    this.moves++;
  }

  /** Waits out a 429/503 as the server asked (with jitter). */
  async backoff(body: unknown): Promise<void> {
    const given = Number((body as { retry_after_ms?: unknown } | undefined)?.retry_after_ms);
    if (Number.isFinite(given)) this.honoured.push(given);
    await sleep(retryDelay(body));
  }

  /** A send with a client's retries (same txnId): resolves with the event ID once acknowledged. */
  async send(roomId: string, txnId: string, body: string): Promise<string> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const api = this.api();
      let res: { status: number; body: any } | null = null;
      try {
        res = await api.put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/${txnId}`, { msgtype: 'm.text', body });
      } catch {
        // The worker went away mid-request: the next api() picks another.
        this.failedOver();
      }
      if (res?.status === 200) return res.body.event_id as string;
      // Only the retryable answers are retried: a 500 fails the test.
      if (res && res.status !== 503 && res.status !== 429) throw new Error(`send ${body}: ${res.status} ${JSON.stringify(res.body)}`);
      if (Date.now() > deadline) throw new Error(`send ${body}: no answer for a minute (last ${res?.status})`);
      await this.backoff(res?.body);
    }
  }

  /**
   * One /sync from `since` (initial without), moving to another worker if this one is gone and
   * waiting out a 429/503: the response body, or null when it must be asked again.
   */
  async syncOnce(filter: string, since: string | undefined, timeoutMs = 2000): Promise<any | null> {
    let r: { status: number; body: any };
    try {
      r = await this.api().get(`${V3}/sync?timeout=${timeoutMs}&filter=${enc(filter)}${since ? `&since=${enc(since)}` : ''}`);
    } catch {
      this.failedOver();
      return null;
    }
    if (r.status === 200) return r.body;
    if (r.status === 429 || r.status === 503) await this.backoff(r.body);
    else throw new Error(`${this.user.userId}: /sync answered ${r.status} ${JSON.stringify(r.body)}`);
    return null;
  }

  /** Every timeline event of the room this user's /sync delivers until `want` are all seen. */
  async syncUntil(roomId: string, want: Set<string>, since?: string, timeoutMs = 60_000): Promise<Array<{ id: string; body: string }>> {
    const filter = JSON.stringify({ room: { timeline: { limit: 500 } } });
    const seen: Array<{ id: string; body: string }> = [];
    let next = since;
    const deadline = Date.now() + timeoutMs;
    while ([...want].some((id) => !seen.some((s) => s.id === id))) {
      if (Date.now() > deadline) throw new Error(`${this.user.userId}: /sync delivered ${seen.length} of ${want.size} events within ${timeoutMs} ms`);
      const body = await this.syncOnce(filter, next);
      if (!body) continue;
      const room = body.rooms?.join?.[roomId];
      if (room) {
        if (next) assert.ok(!room.timeline.limited, 'an incremental sync never skips here (limit 500)');
        for (const e of room.timeline.events) if (e.type === 'm.room.message') seen.push({ id: e.event_id, body: e.content.body });
      }
      next = body.next_batch;
    }
    return seen;
  }
}

export async function sinceNow(c: Client): Promise<string> {
  const r = await c.api().get(`${V3}/sync?timeout=0&filter=${enc(JSON.stringify({ room: { timeline: { limit: 1 } } }))}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.next_batch as string;
}


/** The room's events in stream order form one chain: each message cites exactly the one before. */
export async function assertLinear(store: Store, roomId: string, ordered: string[]): Promise<void> {
  const extremities = await store.rooms.getForwardExtremities(roomId);
  assert.deepEqual(extremities, [ordered.at(-1)], 'one forward extremity: the last message');
  const events = await store.rooms.getEvents(ordered);
  for (let i = 1; i < ordered.length; i++) {
    assert.deepEqual(events.get(ordered[i]!)!.pdu.prev_events, [ordered[i - 1]], `message ${i} cites exactly message ${i - 1}`);
  }
}


/**
 * Runs a start-up step again when the shared Cassandra node timed out (schema DDL on a busy
 * node can take longer than the driver's 12 s); any other failure, or a third timeout, fails.
 */
export async function retryBusyCassandra<T>(what: string, step: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await step();
    } catch (err) {
      const text = err instanceof Error ? `${err.name} ${err.message}` : String(err);
      if (i >= attempts || !/OperationTimedOutError|did not reply before timeout/.test(text)) throw err;
      console.log(`      ${what}: the shared Cassandra node timed out (attempt ${i}); starting again`);
    }
  }
}

/**
 * Two workers on one fresh Cassandra keyspace and Redis prefix: worker 1 in this process, worker
 * 2 the real server binary as a child process (so it can be killed or frozen). Registers the
 * describe's hooks: start (retried while the shared node is busy), worker 2's warnings printed
 * for a failed test, and teardown (a frozen child is woken first, the keyspace dropped).
 */
/**
 * alice on worker 1 and bob on the child, in a private room bob created (so the child owns it)
 * and alice joined; their clients fail over across `servers`.
 */
export async function dmAcrossWorkers(w1: TestServer, child: ChildServer, servers: () => Array<TestServer | ChildServer | null>): Promise<{ alice: User; bob: User; a: Client; b: Client; roomId: string }> {
  const alice = (await new Api(w1.url).register('alice')) as User;
  const bob = (await new Api(child.url).register('bob')) as User;
  const a = new Client(alice, servers, 0);
  const b = new Client(bob, servers, 1);
  const created = await b.api().post(`${V3}/createRoom`, { preset: 'private_chat', invite: [alice.userId] });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const roomId = created.body.room_id as string;
  const joined = await a.api().post(`${V3}/rooms/${enc(roomId)}/join`, {});
  assert.equal(joined.status, 200, JSON.stringify(joined.body));
  return { alice, bob, a, b, roomId };
}

/**
 * A second worker in a child process, started with `config` (retried while the shared Cassandra
 * is busy); `prepare` may edit its files before it starts. Disposed again if it fails to start.
 */
export function startChildWorker(config: Record<string, unknown>, prepare?: (c: ChildServer) => void): Promise<ChildServer> {
  return retryBusyCassandra('worker 2', async () => {
    const c = await ChildServer.create(config);
    try {
      prepare?.(c);
      await c.start(90_000);
      return c;
    } catch (err) {
      await c.dispose();
      throw err;
    }
  });
}

/** An afterEach hook: worker 2 is another process, so a failed test shows what it logged at warn and above. */
export function showChildWarningsOnFailure(child: () => ChildServer | null | undefined): void {
  afterEach(function () {
    const c = child();
    if (this.currentTest?.state === 'failed' && c) {
      const lines = c.output().split('\n').filter((l) => /"level":(40|50|60)/.test(l));
      if (lines.length > 0) console.log(`      worker 2 logged:\n${lines.slice(-20).join('\n')}`);
    }
  });
}

export function childWorkerPair(label: string): { readonly w1: TestServer; readonly child: ChildServer; readonly prefix: string } {
  const keyspace = freshKeyspace(label);
  const prefix = freshPrefix(label);
  const keyDir = mkdtempSync(join(tmpdir(), 'hearth-owner-key-'));
  let addr = '';
  let w1: TestServer | null = null;
  let child: ChildServer | null = null;
  const shared = () => ({
    storage: { backend: 'cassandra', cassandra: { contact_points: [addr], keyspace } },
    cluster: { redis: { url: startRedis(), key_prefix: prefix }, room_lease_ms: 2_000 },
    signing_key_path: join(keyDir, 'signing.key'),
  });

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    w1 = await retryBusyCassandra('worker 1', () => startTestServer(shared() as never)); // creates the shared signing key and the schema
    child = await startChildWorker({ ...shared(), media: { path: join(keyDir, 'child-media') } });
  });

  showChildWarningsOnFailure(() => child);

  after(async () => {
    if (child?.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGCONT'); // a frozen child cannot exit
      } catch {
        /* gone */
      }
    }
    await child?.dispose();
    await w1?.stop().catch(() => undefined);
    const admin = await cassandraClient(addr);
    await dropKeyspace(admin, keyspace).catch(() => undefined);
    await admin.shutdown();
    rmSync(keyDir, { recursive: true, force: true });
  });

  return {
    prefix,
    get w1() {
      return w1 as TestServer;
    },
    get child() {
      return child as ChildServer;
    },
  };
}

/** What the workers of one cluster spec share: a keyspace, a Redis key prefix, one signing key. */
export interface SharedCluster {
  addr: string;
  keyspace: string;
  redisUrl: string;
  prefix: string;
  keyDir: string;
}

/** A worker's config on the shared keyspace, Redis prefix and signing key (every worker signs as one server). */
export function sharedWorkerConfig(
  c: SharedCluster,
  opts: { roles?: Array<'client_api' | 'sync' | 'room_writer'>; serverName?: string; extra?: Record<string, unknown> } = {},
): HearthConfigInput {
  return {
    ...(opts.serverName ? { server_name: opts.serverName } : {}),
    storage: { backend: 'cassandra', cassandra: { contact_points: [c.addr], keyspace: c.keyspace } },
    cluster: { redis: { url: c.redisUrl, key_prefix: c.prefix }, room_lease_ms: 2_000, ...(opts.roles ? { roles: opts.roles } : {}) },
    signing_key_path: join(c.keyDir, 'signing.key'),
    ...opts.extra,
  };
}

/** Stops the workers (in the order given), drops the keyspace and removes the key directory. */
export async function tearDownSharedCluster(addr: string, keyspace: string, keyDir: string, workers: Array<{ stop(): Promise<unknown> } | null>): Promise<void> {
  for (const w of workers) await w?.stop().catch(() => undefined);
  const admin = await cassandraClient(addr);
  await dropKeyspace(admin, keyspace).catch(() => undefined);
  await admin.shutdown();
  rmSync(keyDir, { recursive: true, force: true });
}
