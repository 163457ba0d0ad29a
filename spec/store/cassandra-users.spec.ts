// What the contract suite cannot see of the Cassandra per-user modules: two store instances on
// one keyspace (the push queue shared by several workers, user-ID claims), an orphaned user-ID
// claim, and the push queue's time-bucketed partitions with their low-water mark.

import type cassandra from 'cassandra-driver';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra, truncateKeyspace } from '../helpers/cassandra.js';
import { openCassandraStore, type CassandraStore } from '../../src/store/cassandra/index.js';
import { bucketOf } from '../../src/store/cassandra/push-queue.js';
import { StoreConflictError, type PushJob } from '../../src/store/types.js';
import { userId } from './fixtures.js';

const keyspace = freshKeyspace('users');
let addr = '';
let admin: cassandra.Client | null = null;
let migrated = false;

async function open(): Promise<CassandraStore> {
  const s = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace, skipMigrations: migrated });
  migrated = true;
  return s;
}

describe('Cassandra per-user modules', function () {
  // Schema changes (a fresh keyspace's migrations), truncations and LWTs take seconds each on a
  // loaded machine; mocha's 20 s default failed them in a CI rehearsal with the machine saturated.
  this.timeout(90_000);
  this.timeout(180_000);
  let a: CassandraStore;
  let b: CassandraStore;
  let ks: cassandra.Client;

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    admin = await cassandraClient(addr);
  });

  beforeEach(async function () {
    a = await open();
    b = await open();
    ks = await cassandraClient(addr, keyspace);
  });

  afterEach(async function () {
    await a.close();
    await b.close();
    await ks.shutdown();
    await truncateKeyspace(admin!, keyspace);
  });

  after(async function () {
    if (admin) {
      await dropKeyspace(admin, keyspace);
      await admin.shutdown();
    }
  });

  const job = (n: number): Omit<PushJob, 'id' | 'attempts'> => ({
    userId: userId('alice'),
    appId: 'org.example.app',
    pushkey: `k${n % 3}`,
    notification: { event_id: `$e${n}` },
    notBefore: 100,
  });

  describe('push queue shared by two instances', function () {
    it('hands out distinct job ids across instances enqueuing at the same moment', async function () {
      const ids = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).pushers.enqueuePush(job(i))));
      assert.equal(new Set(ids).size, 40);
      const due = await a.pushers.duePushes(100, 100);
      assert.deepEqual(
        due.map((j) => j.id),
        [...ids].sort((x, y) => x - y),
        'both instances see every job, oldest id first',
      );
    });

    it('workers on both instances claim every job exactly once', async function () {
      const ids = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? a : b).pushers.enqueuePush(job(i))));
      const won = new Map<number, number>();
      // Two workers per instance, each claiming whatever it sees as due.
      const worker = async (s: CassandraStore, lease: number) => {
        for (const j of await s.pushers.duePushes(1000, 100)) {
          if (await s.pushers.claimPush(j.id, 1000, lease)) won.set(j.id, (won.get(j.id) ?? 0) + 1);
        }
      };
      await Promise.all([worker(a, 50_000), worker(a, 50_001), worker(b, 50_002), worker(b, 50_003)]);
      for (const id of ids) assert.equal(won.get(id), 1, `job ${id} claimed ${won.get(id) ?? 0} times`);
      assert.deepEqual(await b.pushers.duePushes(49_999, 100), [], 'every job is leased');
      // A finished job stays finished for the other instance too.
      await a.pushers.deletePush(ids[0]!);
      assert.equal(await b.pushers.claimPush(ids[0]!, 60_000, 70_000), false);
      assert.equal(await b.pushers.claimPush(ids[1]!, 60_000, 70_000), true, 'an expired lease is claimable from the other instance');
    });
  });

  describe('push queue partitions', function () {
    const PER_MS = 1024;
    const insertJob = async (id: number) => {
      await ks.execute(
        `INSERT INTO push_jobs (bucket, id, user_id, app_id, pushkey, notification_json, attempts, not_before, claim)
         VALUES (?, ?, ?, ?, ?, ?, 0, ?, '') IF NOT EXISTS`,
        [bucketOf(id), id, userId('alice'), 'org.example.app', 'k1', '{"n":1}', 100],
        { prepare: true },
      );
    };
    const low = async () => {
      const row = (await ks.execute(`SELECT low_bucket FROM push_queue_meta WHERE name = 'low'`)).first();
      return row ? Number(row['low_bucket']) : null;
    };

    it('finds jobs in older partitions from the low-water mark, and moves the mark past finished ones', async function () {
      const now = Date.now();
      const oldId = (now - 45 * 60_000) * PER_MS; // three 10-minute partitions back or more
      const newId = await a.pushers.enqueuePush(job(1));
      assert.ok(bucketOf(oldId) < bucketOf(newId) - 2);
      await ks.execute(`INSERT INTO push_queue_meta (name, low_bucket) VALUES ('low', ?)`, [bucketOf(oldId) - 1], { prepare: true });
      await insertJob(oldId);

      assert.deepEqual((await b.pushers.duePushes(100, 10)).map((j) => j.id), [oldId, newId]);
      assert.equal(await low(), bucketOf(oldId), 'the mark moved up to the oldest live job, no further');
      assert.equal(await b.pushers.claimPush(oldId, 100, 200), true);

      await b.pushers.deletePush(oldId);
      assert.deepEqual((await a.pushers.duePushes(100, 10)).map((j) => j.id), [newId]);
      const mark = (await low())!;
      assert.ok(mark > bucketOf(oldId), 'finished partitions are no longer scanned');
      assert.ok(mark <= bucketOf((Date.now() - 10 * 60_000) * PER_MS), 'never past the clock-skew margin');
    });

    it('removing a pusher finishes its queued jobs on every instance', async function () {
      await a.pushers.setPusher(
        {
          userId: userId('alice'),
          deviceId: null,
          kind: 'http',
          appId: 'org.example.app',
          pushkey: 'k1',
          pushkeyTs: 1,
          appDisplayName: 'A',
          deviceDisplayName: 'D',
          profileTag: null,
          lang: 'en',
          data: { url: 'https://push.example/_matrix/push/v1/notify' },
        },
        false,
      );
      const ids = await Promise.all([0, 1, 2, 3, 4, 5].map((n) => b.pushers.enqueuePush(job(n))));
      await a.pushers.deletePushersByKey('org.example.app', 'k1');
      const left = (await b.pushers.duePushes(100, 10)).map((j) => j.pushkey);
      assert.equal(left.length, ids.length - 2);
      assert.ok(!left.includes('k1'));
    });
  });

  describe('user IDs', function () {
    it('of two instances creating one user ID, exactly one succeeds', async function () {
      const u = userId('contended');
      const results = await Promise.allSettled(
        [a, b].map((s, i) => s.accounts.createUser({ userId: u, passwordHash: `h${i}`, admin: false, createdTs: i, displayname: null })),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      assert.ok(failed.reason instanceof StoreConflictError, String(failed.reason));
      const winner = results.findIndex((r) => r.status === 'fulfilled');
      assert.equal((await b.accounts.getUser(u))?.passwordHash, `h${winner}`);
    });

    it('takes over a stale claim whose creator never wrote the account, but not a fresh one', async function () {
      const stale = userId('stale');
      const fresh = userId('fresh');
      await ks.execute(`INSERT INTO user_ids (user_id, owner, claimed_ts) VALUES (?, 'dead', ?)`, [stale, Date.now() - 3_600_000], { prepare: true });
      await ks.execute(`INSERT INTO user_ids (user_id, owner, claimed_ts) VALUES (?, 'busy', ?)`, [fresh, Date.now()], { prepare: true });
      await a.accounts.createUser({ userId: stale, passwordHash: 'x', admin: false, createdTs: 5, displayname: 'S' });
      assert.equal((await b.accounts.getUser(stale))?.displayname, 'S');
      await assert.rejects(
        a.accounts.createUser({ userId: fresh, passwordHash: 'x', admin: false, createdTs: 5, displayname: null }),
        StoreConflictError,
      );
      assert.equal(await a.accounts.getUser(fresh), null);
    });
  });

  describe('receipts', function () {
    it('change queries on a busy room find the moved keys only, written from either instance', async function () {
      const room = '!busy:hearth.test';
      const put = (s: CassandraStore, user: string, eventStream: number) =>
        s.receipts.putReceipt({ roomId: room, userId: user, type: 'm.read', threadId: null, eventId: `$e${eventStream}`, eventStream, ts: 1 });
      for (let i = 0; i < 200; i += 20) {
        await Promise.all(Array.from({ length: 20 }, (_, j) => put(j % 2 === 0 ? a : b, userId(`u${i + j}`), 1)));
      }
      const from = Math.max(a.currentPosition(), b.currentPosition());
      const moved1 = (await put(b, userId('u7'), 2))!;
      const moved2 = (await put(a, userId('u150'), 3))!;
      assert.ok(moved1 && moved2);
      const upTo = Math.max(a.currentPosition(), b.currentPosition());
      const changes = await a.receipts.getReceiptChanges([room], from, upTo);
      const pairs = (rs: { userId: string; eventId: string }[]) => rs.map((r) => `${r.userId} ${r.eventId}`).sort();
      assert.deepEqual(pairs(changes), [`${userId('u150')} $e3`, `${userId('u7')} $e2`].sort());
      assert.equal((await b.receipts.getRoomReceipts([room])).length, 200);
      // Moving u7 on takes it out of the earlier range.
      const again = (await put(a, userId('u7'), 4))!;
      assert.deepEqual(
        (await b.receipts.getReceiptChanges([room], from, upTo)).map((r) => r.userId),
        [userId('u150')],
      );
      assert.deepEqual((await b.receipts.getReceiptChanges([room], upTo, again.stream)).map((r) => r.eventId), ['$e4']);
    });
  });

  describe('devices', function () {
    it('a last-seen write landing after the device was deleted does not bring it back', async function () {
      const u = userId('alice');
      await a.devices.upsertDevice({ userId: u, deviceId: 'D1', displayName: 'Phone', ts: 1, ip: null });
      await b.devices.deleteDevice(u, 'D1');
      await a.devices.touchDevice(u, 'D1', 2, '192.0.2.1', 'UA');
      assert.equal(await b.devices.getDevice(u, 'D1'), null);
      assert.deepEqual(await b.devices.listDevices(u), []);
      assert.equal(await a.devices.setDeviceDisplayName(u, 'D1', 'x'), false);
    });
  });
});
