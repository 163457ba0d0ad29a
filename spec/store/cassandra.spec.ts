// The store contract against a real single-node Cassandra (scripts/cassandra.sh), plus what is
// specific to the backend: migrations, positions across reopen and across two instances.
//
// One keyspace per run, migrated once; each test starts from emptied tables (truncating only
// those that hold rows), which keeps ~200 contract tests to minutes.

import type cassandra from 'cassandra-driver';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra, truncateKeyspace } from '../helpers/cassandra.js';
import { openCassandraStore, type CassandraStore, type CassandraStoreOptions } from '../../src/store/cassandra/index.js';
import { MIGRATIONS } from '../../src/store/cassandra/migrations/index.js';
import { LeaseLostError, PositionAllocator, positionMs, revokeWorkerLease, STALE_MS, workerOf } from '../../src/store/cassandra/positions.js';
import { describeStoreContract } from './contract.js';

const keyspace = freshKeyspace('contract');
let addr = '';
let admin: cassandra.Client | null = null;
let migrated = false;

async function open(extra: Partial<CassandraStoreOptions> = {}): Promise<CassandraStore> {
  const store = await openCassandraStore({
    contactPoints: [addr],
    localDataCenter: 'datacenter1',
    keyspace,
    skipMigrations: migrated,
    ...extra,
  });
  migrated = true;
  return store;
}

// Hooks inside a describe: root-level hooks would open Cassandra clients for the whole run.
describe('Cassandra backend', function () {
  // Schema changes (a fresh keyspace's migrations), truncations and LWTs take seconds each on a
  // loaded machine; mocha's 20 s default failed them in a CI rehearsal with the machine saturated.
  this.timeout(90_000);
  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    admin = await cassandraClient(addr);
  });

  after(async function () {
    this.timeout(180_000);
    if (admin) {
      await dropKeyspace(admin, keyspace);
      await admin.shutdown();
    }
  });

  describeStoreContract('cassandra (single node)', async () => {
    const opened: CassandraStore[] = [];
    const openTracked = async () => {
      const s = await open();
      opened.push(s);
      return s;
    };
    const store = await openTracked();
    return {
      store,
      reopen: openTracked,
      cleanup: async () => {
        for (const s of opened) await s.close();
        await truncateKeyspace(admin!, keyspace);
      },
    };
  });

  describe('CassandraStore', function () {
    const stores: CassandraStore[] = [];
    afterEach(async function () {
      for (const s of stores.splice(0)) await s.close();
      await truncateKeyspace(admin!, keyspace);
    });

    it('records every migration once, and a second open applies none', async function () {
      const ks = freshKeyspace('migrate');
      try {
        const first = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace: ks });
        stores.push(first);
        assert.deepEqual([...first.appliedMigrations], MIGRATIONS.map((m) => m.version));
        const second = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace: ks });
        stores.push(second);
        assert.deepEqual([...second.appliedMigrations], []);
      } finally {
        for (const s of stores.splice(0)) await s.close();
        await dropKeyspace(admin!, ks);
      }
    });

    it('refuses a keyspace name that is not a plain identifier', async function () {
      await assert.rejects(
        openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace: 'x; DROP KEYSPACE system' }),
        /invalid keyspace name/,
      );
    });

    describe('positions', function () {
      let client: cassandra.Client | null = null;
      const allocs: PositionAllocator[] = [];
      beforeEach(async function () {
        await open().then((s) => stores.push(s));
        client = await cassandraClient(addr, keyspace);
      });
      afterEach(async function () {
        for (const a of allocs.splice(0)) await a.close();
        await client?.shutdown();
      });
      const alloc = async (o: Parameters<typeof PositionAllocator.open>[1] = {}) => {
        const a = await PositionAllocator.open(client!, o);
        allocs.push(a);
        return a;
      };

      it('live instances hold distinct worker IDs and never hand out the same position', async function () {
        const a = await alloc();
        const b = await alloc();
        assert.notEqual(a.workerId, b.workerId);
        assert.notEqual(a.workerId, stores[0]!.workerId);
        const seen = new Set<number>();
        for (let i = 0; i < 200; i++) {
          for (const x of [a, b]) {
            const p = await x.reserve();
            assert.ok(!seen.has(p), `position ${p} handed out twice`);
            assert.equal(workerOf(p), x.workerId);
            seen.add(p);
            x.gen.complete(p);
          }
        }
        assert.equal(seen.size, 400);
      });

      it('a worker ID held by a live instance cannot be claimed again', async function () {
        const a = await alloc();
        await assert.rejects(PositionAllocator.open(client!, { workerId: a.workerId }), /leased by another live instance/);
      });

      it('a successor on the same worker ID starts above every position handed out, even with its clock behind', async function () {
        let t = Date.UTC(2026, 0, 1);
        const a = await alloc({ workerId: 7, now: () => t });
        let last = 0;
        for (let i = 0; i < 100; i++) {
          last = await a.reserve(); // 100 in one "millisecond": the clock runs ahead of wall time
          a.gen.complete(last);
        }
        await a.close();
        allocs.splice(allocs.indexOf(a), 1);
        t -= 3_600_000; // the successor's clock is an hour behind
        const b = await alloc({ workerId: 7, now: () => t });
        const p = await b.reserve();
        assert.ok(p > last, `${p} must be above ${last}`);
        assert.equal(workerOf(p), 7);
      });

      it('positions follow wall time, so an idle instance\'s next position is above a busy one\'s', async function () {
        let t = Date.UTC(2026, 0, 1);
        const a = await alloc({ now: () => t });
        const b = await alloc({ now: () => t });
        const pa = await a.reserve();
        t += 5;
        const pb = await b.reserve();
        t += 5;
        const pa2 = await a.reserve();
        assert.ok(pa < pb && pb < pa2);
        assert.equal(positionMs(pa2), t);
      });

      it('an instance whose lease was taken over is fenced: it hands out no more positions', async function () {
        const a = await alloc();
        await a.reserve();
        // Another instance took the ID after the lease expired (simulated: the row now names it).
        await client!.execute('UPDATE worker_leases SET owner = ? WHERE id = ?', ['someone-else', a.workerId], { prepare: true });
        await a['renew']();
        assert.equal(a.healthy, false);
        await assert.rejects(a.reserve(), LeaseLostError);
      });

      it('an instance whose lease another revoked starts no write once its last renewal is STALE_MS old', async function () {
        const a = await alloc();
        await a.reserve();
        assert.equal(await revokeWorkerLease(client!, a.workerId, a.leaseOwner), true);
        // The revoker waits STALE_MS (its own clock) before counting on it; by then, whatever the
        // timer did, the instance refuses to start a write.
        await new Promise((r) => setTimeout(r, STALE_MS + 50));
        await assert.rejects(a.confirm(), LeaseLostError);
        await assert.rejects(a.reserve(), LeaseLostError);
        assert.equal(a.healthy, false);
        // Revoking an instance that no longer holds the ID is already true.
        assert.equal(await revokeWorkerLease(client!, a.workerId, a.leaseOwner), true);
      });

      it('after an idle stretch longer than the persisted lead, the next position still gets a mark above it', async function () {
        let t = Date.UTC(2026, 0, 1);
        const a = await alloc({ now: () => t });
        const p1 = await a.reserve();
        a.gen.complete(p1);
        t += 10 * 60_000; // ten idle minutes: far past the one-minute lead of the mark
        const p2 = await a.reserve();
        assert.ok(p2 > p1);
        assert.equal(positionMs(p2), t);
        const rs = await client!.execute('SELECT high FROM worker_clock WHERE id = ?', [a.workerId], { prepare: true });
        assert.ok(Number(rs.first()!['high']) > p2, 'the persisted mark is above the position handed out');
      });

      it('a clean close lowers the mark to the last position handed out: a successor on the same ID starts at the clock, not ahead', async function () {
        const a = await alloc({ workerId: 9 });
        const last = await a.reserve();
        a.gen.complete(last);
        await a.close();
        allocs.splice(allocs.indexOf(a), 1);
        const rs = await client!.execute('SELECT high FROM worker_clock WHERE id = ?', [9], { prepare: true });
        assert.equal(Number(rs.first()!['high']), last, 'the mark is the last position, not one ahead of the clock');
        const b = await alloc({ workerId: 9 });
        const p = await b.reserve();
        assert.ok(p > last);
        // Before: the mark was a minute ahead and the successor's positions with it (its writes
        // waited in the cluster watermark until the clock caught up).
        assert.ok(positionMs(p) - Date.now() < 1_000, `the successor's first position is ${positionMs(p) - Date.now()} ms ahead of the clock`);
      });

      it('after a holder died (its mark ahead of the clock), a new instance takes a free ID whose mark is behind the clock', async function () {
        const a = await alloc();
        a.gen.complete(await a.reserve()); // persists a mark ahead of the clock
        // a dies: no release, and its lease row goes as at the end of its TTL.
        a['fence']();
        await client!.execute('DELETE FROM worker_leases WHERE id = ?', [a.workerId], { prepare: true });
        const b = await alloc();
        assert.notEqual(b.workerId, a.workerId, 'the just-freed ID, whose mark is ahead, is not taken while others are free');
        const p = await b.reserve();
        assert.ok(positionMs(p) - Date.now() < 1_000, `the first position is ${positionMs(p) - Date.now()} ms ahead of the clock`);
      });

      it('a revoked instance rejoins: once its old positions finished it claims a new lease, and writes only once admitted', async function () {
        const a = await alloc();
        const oldId = a.workerId;
        const oldOwner = a.leaseOwner;
        const inFlight = await a.reserve();
        let lost = 0;
        a.onLost(() => lost++);
        assert.equal(await revokeWorkerLease(client!, a.workerId, a.leaseOwner), true);
        await a['renew']();
        assert.equal(lost, 1);
        assert.equal(a.healthy, false);
        await assert.rejects(a.reserve(), LeaseLostError);
        let reclaimed = false;
        const reclaiming = a.reclaim().then(() => (reclaimed = true));
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(reclaimed, false, 'no new lease while a position of the old one is unfinished');
        a.gen.abandon(inFlight);
        await reclaiming;
        assert.notEqual(a.workerId, oldId, 'a new worker ID: the revocation still holds the old one');
        assert.equal(a.healthy, false, 'not admitted yet');
        await assert.rejects(a.reserve(), LeaseLostError);
        a.admit();
        assert.equal(a.healthy, true);
        const p = await a.reserve();
        assert.equal(workerOf(p), a.workerId);
        assert.ok(p > inFlight);
        a.gen.complete(p);
        assert.notEqual(a.leaseOwner, oldOwner);
        // The new lease is renewed as usual; a revocation naming the old token does not touch it.
        assert.equal(await revokeWorkerLease(client!, a.workerId, oldOwner), true);
        await a['renew']();
        assert.equal(a.healthy, true);
      });

      it('the watermark waits for an earlier position that completes later', async function () {
        const a = await alloc();
        const before = a.gen.current();
        const p1 = await a.reserve();
        const p2 = await a.reserve();
        a.gen.complete(p2);
        assert.equal(a.gen.current(), before);
        a.gen.complete(p1);
        assert.equal(a.gen.current(), p2);
      });
    });
  });
});
