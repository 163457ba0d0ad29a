// The AS delivery lease is checked during a delivery, not only before it (src/appservice/sender.ts
// with src/cluster/appservice-leases.ts on a real Redis, a real SQLite store for the delivery
// state, a scripted AS). The sender starts with a transaction the previous deliverer left in
// flight (saved in Redis), so its first step is: renew the lease, then send.
// - A freeze right after the renewal (a synchronous busy wait past the lease, as SIGSTOP or a
//   long pause would be; the lease taken by another worker meanwhile): the woken sender must not
//   send, since the lease it renewed ran out while it was frozen. Before, it sent at once.
// - A lease lost while the send is in flight (taken by another worker; this worker's renewal finds
//   it taken): the request is cut off, and the sender stops without another attempt.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { assert } from '../helpers/assert.js';
import { freshPrefix, redisClient, startRedis } from '../helpers/redis.js';
import { until } from '../helpers/until.js';
import { AppServiceSender, type SenderLease } from '../../src/appservice/sender.js';
import { AppServiceInterest } from '../../src/appservice/interest.js';
import type { AppServiceClient } from '../../src/appservice/client.js';
import type { AppServiceRegistration } from '../../src/appservice/registration.js';
import { openRedisSharedState, type RedisSharedState } from '../../src/cluster/redis.js';
import { AppServiceLeases } from '../../src/cluster/appservice-leases.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';

const silent = pino({ level: 'silent' });
const LEASE_MS = 600;

const reg: AppServiceRegistration = {
  id: 'bridge',
  url: 'http://127.0.0.1:9', // never contacted: the client below is scripted
  asToken: 'as',
  hsToken: 'hs',
  senderLocalpart: 'bridge',
  senderUserId: '@bridge:localhost',
  users: [],
  aliases: [],
  rooms: [],
  rateLimited: false,
  protocols: [],
  source: 'test',
};

describe('cluster: the AS delivery lease during a delivery attempt', function () {
  this.timeout(30_000);
  let dir = '';
  let store: SqliteStore;
  let shared: RedisSharedState;
  let gate: AppServiceLeases;
  let sender: AppServiceSender | undefined;
  const attempts: Array<{ txnId: number; signal: AbortSignal | undefined }> = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hearth-aslease-'));
    store = await openSqliteStore({ path: join(dir, 'hearth.sqlite'), logger: { warn: () => undefined } });
    shared = await openRedisSharedState({ url: startRedis(), keyPrefix: freshPrefix('asinflight'), logger: silent });
    gate = new AppServiceLeases(shared, { leaseMs: LEASE_MS, logger: silent, nodeId: 'worker-1' });
    attempts.length = 0;
    // The previous deliverer acknowledged nothing and left transaction 1 in flight.
    await store.appServices.setAppServiceState('bridge', { position: 0, lastTxnId: 0 });
    await gate.saveInFlight('bridge', { id: 1, events: [{ event_id: '$e1', type: 'm.room.message', content: {} } as never], lastStream: 5 });
  });
  afterEach(async () => {
    await sender?.stop();
    sender = undefined;
    await gate.close();
    await shared.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Another worker holds the lease now (what it does once ours lapsed). */
  const takeOver = async () => {
    const r = redisClient();
    try {
      await r.set(`${shared.prefix}as:lease:bridge`, 'worker-2', 'PX', 60_000);
    } finally {
      r.disconnect();
    }
  };

  const start = async (client: Pick<AppServiceClient, 'putTransaction'>, lease: SenderLease) => {
    sender = new AppServiceSender(reg, store, client as AppServiceClient, new AppServiceInterest(reg, store.rooms), { minBackoffMs: 50, maxBackoffMs: 100, maxEventsPerTransaction: 50, maxPending: 1000 }, silent, Date.now, lease);
    await sender.start(() => undefined);
  };
  const gateLease = (): SenderLease => ({
    held: () => gate.acquire('bridge'),
    validMs: () => gate.validMs('bridge'),
    saveInFlight: (txn) => gate.saveInFlight('bridge', txn),
    loadInFlight: () => gate.loadInFlight('bridge'),
  });

  it('a sender frozen right after renewing, past the lease, sends nothing when it wakes', async () => {
    const lease = gateLease();
    let froze = false;
    const freezing: SenderLease = {
      ...lease,
      async held() {
        const ok = await lease.held();
        if (ok && !froze) {
          froze = true;
          await takeOver();
          const end = performance.now() + LEASE_MS + 300;
          while (performance.now() < end) {
            /* frozen: nothing else in this process runs */
          }
        }
        return ok;
      },
    };
    const client = {
      async putTransaction(_r: AppServiceRegistration, txnId: number, _events: unknown[], signal?: AbortSignal) {
        attempts.push({ txnId, signal });
        return { ok: true as const };
      },
    };
    await start(client, freezing);
    await until('the sender to stop', () => sender!.active === false, 5_000);
    assert.ok(froze, 'the freeze happened');
    assert.deepEqual(attempts.map((a) => a.txnId), [], 'nothing was sent after the wake');
    assert.equal(gate.validMs('bridge'), 0);
  });

  it('a lease lost while the transaction is in flight cuts the request off; no further attempt', async () => {
    const client = {
      putTransaction(_r: AppServiceRegistration, txnId: number, _events: unknown[], signal?: AbortSignal) {
        attempts.push({ txnId, signal });
        // A slow AS: answers only when the request is aborted.
        return new Promise<{ ok: false; why: string }>((resolve) => signal?.addEventListener('abort', () => resolve({ ok: false, why: 'aborted' })));
      },
    };
    await start(client, gateLease());
    await until('the first attempt', () => attempts.length === 1, 5_000);
    assert.equal(attempts[0]!.txnId, 1, 'the transaction left in flight, under its ID');
    // Renewals keep it going while the lease is ours: the request stays in flight past the lease.
    await new Promise((r) => setTimeout(r, LEASE_MS * 2));
    assert.equal(attempts[0]!.signal?.aborted, false, 'not cut off while the lease is renewed');
    const lost = performance.now();
    await takeOver();
    await until('the request to be cut off', () => attempts[0]!.signal?.aborted === true, 5_000);
    const tookMs = performance.now() - lost;
    assert.ok(tookMs <= LEASE_MS + 200, `cut off ${Math.round(tookMs)} ms after the lease was taken (lease ${LEASE_MS} ms)`);
    await until('the sender to stop', () => sender!.active === false, 5_000);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(attempts.length, 1, 'no attempt after the lease was lost');
  });
});
