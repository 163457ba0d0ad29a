// What the Cassandra E2EE and media modules promise beyond the shared contract: properties that
// only show with two store instances on one keyspace (one-time key claims, backup versions and
// counts, media quota), and the to-device and device-list layouts across bucket boundaries
// (acknowledgement drops whole buckets instead of deleting messages one by one); and that a
// device's peeks (MSC2753) are written without tombstones (a traced read counts them).

import type cassandra from 'cassandra-driver';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra, truncateKeyspace } from '../helpers/cassandra.js';
import { openCassandraStore, type CassandraStore } from '../../src/store/cassandra/index.js';
import { BUCKET_MS, positionBucket } from '../../src/store/cassandra/positions.js';
import type { ClaimedKey, ToDeviceInput } from '../../src/store/types.js';
import { randomId, userId } from './fixtures.js';

const OTK = 'signed_curve25519';

describe('Cassandra E2EE and media (backend-specific)', function () {
  // Schema changes (a fresh keyspace's migrations), truncations and LWTs take seconds each on a
  // loaded machine; mocha's 20 s default failed them in a CI rehearsal with the machine saturated.
  this.timeout(90_000);
  const keyspace = freshKeyspace('e2ee');
  let addr = '';
  let admin: cassandra.Client | null = null;
  let raw: cassandra.Client | null = null;
  let migrated = false;
  const stores: CassandraStore[] = [];

  const open = async (now?: () => number): Promise<CassandraStore> => {
    const s = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace, skipMigrations: migrated, now });
    migrated = true;
    stores.push(s);
    return s;
  };

  /** A clock the test moves: positions are made from it, so it decides their buckets. */
  const testClock = (start: number) => {
    const c = { t: start, now: () => c.t };
    return c;
  };

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    admin = await cassandraClient(addr);
    await open(); // creates and migrates the keyspace
    raw = await cassandraClient(addr, keyspace);
  });

  afterEach(async function () {
    for (const s of stores.splice(0)) await s.close();
    await truncateKeyspace(admin!, keyspace);
  });

  after(async function () {
    this.timeout(180_000);
    for (const s of stores.splice(0)) await s.close();
    await raw?.shutdown();
    if (admin) {
      await dropKeyspace(admin, keyspace);
      await admin.shutdown();
    }
  });

  const otk = (id: string) => ({ algorithm: OTK, keyId: id, key: { key: `k-${id}` } });

  describe('one-time key claims across two instances', function () {
    it('never hands one key to two claimers, whichever instance they claim on', async function () {
      const [a, b] = [await open(), await open()];
      const alice = userId('alice');
      const ids = Array.from({ length: 40 }, (_, i) => `K${String(i).padStart(2, '0')}`);
      await a.e2ee.addOneTimeKeys(alice, 'D', ids.slice(0, 20).map(otk));
      await b.e2ee.addOneTimeKeys(alice, 'D', ids.slice(20).map(otk));
      // 30 claims on each instance, interleaved, all in flight at once: 60 claims for 40 keys.
      const claims = await Promise.all(
        Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? a : b).e2ee.claimOneTimeKey(alice, 'D', OTK)),
      );
      const got = claims.filter((c): c is ClaimedKey => c !== null);
      assert.equal(got.length, 40, 'every key handed out');
      assert.deepEqual(got.map((c) => c.keyId).sort(), ids, 'each key exactly once');
      assert.ok(got.every((c) => !c.fallback));
      assert.equal(claims.filter((c) => c === null).length, 20);
      assert.deepEqual(await a.e2ee.countOneTimeKeys(alice, 'D'), {});
      assert.deepEqual(await b.e2ee.countOneTimeKeys(alice, 'D'), {});
    });

    it('keeps handing out keys in upload order after the other instance claimed some', async function () {
      const [a, b] = [await open(), await open()];
      const bob = userId('bob');
      await a.e2ee.addOneTimeKeys(bob, 'D', ['A', 'B', 'C'].map(otk));
      assert.equal((await b.e2ee.claimOneTimeKey(bob, 'D', OTK))?.keyId, 'A');
      await b.e2ee.addOneTimeKeys(bob, 'D', ['D', 'E'].map(otk));
      assert.equal((await a.e2ee.claimOneTimeKey(bob, 'D', OTK))?.keyId, 'B');
      assert.deepEqual(await b.e2ee.countOneTimeKeys(bob, 'D'), { [OTK]: 3 });
      const rest = [await b.e2ee.claimOneTimeKey(bob, 'D', OTK), await a.e2ee.claimOneTimeKey(bob, 'D', OTK), await b.e2ee.claimOneTimeKey(bob, 'D', OTK)];
      assert.deepEqual(rest.map((c) => c?.keyId), ['C', 'D', 'E']);
      assert.equal(await a.e2ee.claimOneTimeKey(bob, 'D', OTK), null);
    });
  });

  describe('device keys across two instances', function () {
    it('concurrent uploads: one is stored first, each other one replaced (compare-and-set), one change row per upload', async function () {
      const [a, b] = [await open(), await open()];
      const alice = userId('alice');
      const keys = (seed: string) => ({ user_id: alice, device_id: 'RACE', keys: { 'ed25519:RACE': seed } });
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).e2ee.setDeviceKeys(alice, 'RACE', keys(`s${i}`))));
      assert.equal(results.filter((r) => r === 'stored').length, 1);
      assert.equal(results.filter((r) => r === 'replaced').length, 5);
      const final = (await a.e2ee.getDeviceKeys([alice])).get(alice)?.get('RACE');
      assert.ok(Array.from({ length: 6 }, (_, i) => `s${i}`).includes((final?.keys as Record<string, string>)['ed25519:RACE']!), 'one of the uploads');
      assert.deepEqual((await b.e2ee.getDeviceKeys([alice])).get(alice)?.get('RACE'), final);
      const rows = await raw!.execute('SELECT stream FROM e2ee_device_list_changes WHERE user_id = ? ALLOW FILTERING', [alice], { prepare: true });
      assert.equal(rows.rowLength, 6, 'every upload changed the keys, so each left its change row');
      // The same keys again on either instance: unchanged, and the change row it wrote is taken back.
      assert.equal(await b.e2ee.setDeviceKeys(alice, 'RACE', structuredClone(final!)), 'unchanged');
      assert.equal((await raw!.execute('SELECT stream FROM e2ee_device_list_changes WHERE user_id = ? ALLOW FILTERING', [alice], { prepare: true })).rowLength, 6);
    });
  });

  describe('to-device buckets', function () {
    const msg = (n: number): ToDeviceInput => ({ userId: userId('alice'), deviceId: 'A', type: 't', sender: userId('carol'), content: { n } });

    it('reads across a bucket boundary in order, and an ack past it drops the old bucket whole', async function () {
      // A few milliseconds before the next hour: the positions straddle one bucket boundary.
      const clock = testClock(Math.ceil(Date.now() / BUCKET_MS) * BUCKET_MS - 4);
      const s = await open(clock.now);
      const alice = userId('alice');
      const positions: number[] = [];
      for (let n = 1; n <= 8; n++) {
        if (n === 5) clock.t += 10;
        positions.push(await s.e2ee.queueToDevice([msg(n)]));
      }
      const oldBucket = positionBucket(positions[0]!);
      const newBucket = positionBucket(positions[7]!);
      assert.equal(newBucket, oldBucket + 1, `positions ${positions.join(',')} straddle one boundary`);
      assert.equal(positionBucket(positions[3]!), oldBucket);
      assert.equal(positionBucket(positions[4]!), newBucket);
      const all = await s.e2ee.getToDevice(alice, 'A', s.currentPosition(), 100);
      assert.deepEqual(all.map((m) => m.content.n), [1, 2, 3, 4, 5, 6, 7, 8]);
      assert.deepEqual(all.map((m) => m.stream), positions);
      assert.deepEqual((await s.e2ee.getToDevice(alice, 'A', s.currentPosition(), 5)).map((m) => m.content.n), [1, 2, 3, 4, 5]);

      const rows = async (bucket: number) =>
        (await raw!.execute('SELECT stream FROM e2ee_to_device WHERE user_id = ? AND device_id = ? AND bucket = ?', [alice, 'A', bucket], { prepare: true })).rowLength;
      const indexed = async () =>
        (await raw!.execute('SELECT bucket FROM e2ee_to_device_index WHERE user_id = ? AND device_id = ?', [alice, 'A'], { prepare: true })).rows
          .map((r) => r['bucket'])
          .filter((b) => b !== null)
          .map(Number);
      assert.deepEqual(await indexed(), [oldBucket, newBucket]);

      // Acknowledging inside the old bucket deletes nothing: the watermark hides the messages.
      await s.e2ee.ackToDevice(alice, 'A', positions[1]!);
      assert.equal(await rows(oldBucket), 4, 'no message deleted one by one');
      assert.deepEqual((await s.e2ee.getToDevice(alice, 'A', s.currentPosition(), 100)).map((m) => m.content.n), [3, 4, 5, 6, 7, 8]);

      // Past the boundary: the old bucket goes with one partition delete, the new one stays.
      await s.e2ee.ackToDevice(alice, 'A', positions[5]!);
      assert.equal(await rows(oldBucket), 0);
      assert.equal(await rows(newBucket), 4);
      assert.deepEqual(await indexed(), [newBucket]);
      assert.deepEqual((await s.e2ee.getToDevice(alice, 'A', s.currentPosition(), 100)).map((m) => m.content.n), [7, 8]);
    });

    it('never moves the acknowledgement back, whatever order acks arrive in', async function () {
      const s = await open();
      const alice = userId('alice');
      const p: number[] = [];
      for (let n = 1; n <= 5; n++) p.push(await s.e2ee.queueToDevice([msg(n)]));
      await s.e2ee.ackToDevice(alice, 'A', p[2]!);
      await s.e2ee.ackToDevice(alice, 'A', p[0]!);
      assert.deepEqual((await s.e2ee.getToDevice(alice, 'A', s.currentPosition(), 10)).map((m) => m.content.n), [4, 5]);
      await Promise.all([s.e2ee.ackToDevice(alice, 'A', p[3]!), s.e2ee.ackToDevice(alice, 'A', p[1]!), s.e2ee.ackToDevice(alice, 'A', p[2]!)]);
      assert.deepEqual((await s.e2ee.getToDevice(alice, 'A', s.currentPosition(), 10)).map((m) => m.content.n), [5]);
      // A second, idle instance (its own position says nothing about the first one's writes)
      // reads the same watermark and delivers up to the token it is given.
      const other = await open();
      assert.deepEqual((await other.e2ee.getToDevice(alice, 'A', p[4]!, 10)).map((m) => m.content.n), [5]);
    });

    it('acknowledges the messages that exist, not the position: a forged since hides nothing queued later', async function () {
      const s = await open();
      const alice = userId('alice');
      await s.e2ee.queueToDevice([msg(1)]);
      // Far above anything completed (about a day ahead on the position clock).
      const bound = s.currentPosition() + 4096 * 86_400_000;
      await s.e2ee.ackToDevice(alice, 'A', bound);
      const p2 = await s.e2ee.queueToDevice([msg(2)]);
      assert.ok(p2 <= bound);
      // Another instance (its own worker ID and positions) queues one more: still delivered.
      const other = await open();
      await other.e2ee.queueToDevice([msg(3)]);
      await s.e2ee.ackToDevice(alice, 'A', p2 - 1);
      assert.deepEqual((await s.e2ee.getToDevice(alice, 'A', bound, 10)).map((m) => m.content.n), [2, 3]);
    });
  });

  describe('device-list changes over a wide range', function () {
    it('finds changes many buckets apart (through the bucket index)', async function () {
      const first = await open();
      const p1 = await first.e2ee.markDeviceListChanged(userId('alice'));
      // A second instance whose clock is six hours on, on the same keyspace (positions.ts persists
      // its high-water mark relative to the last position, so one store cannot jump that far).
      const s = await open(testClock(Date.now() + 6 * BUCKET_MS).now);
      const p2 = await s.e2ee.markDeviceListChanged(userId('bob'));
      assert.ok(positionBucket(p2) - positionBucket(p1) >= 6);
      assert.deepEqual(await s.e2ee.getDeviceListChanges(0, p2), [userId('alice'), userId('bob')].sort());
      assert.deepEqual(await s.e2ee.getDeviceListChanges(p1, p2), [userId('bob')]);
      assert.deepEqual(await s.e2ee.getDeviceListChanges(0, p2 - 1), [userId('alice')]);
      assert.deepEqual(await s.e2ee.getDeviceListChanges(p1 - 1, p1), [userId('alice')]);
      const buckets = (await raw!.execute('SELECT bucket FROM e2ee_device_list_buckets WHERE shard = 0')).rows.map((r) => Number(r['bucket']));
      assert.deepEqual(buckets, [positionBucket(p1), positionBucket(p2)], 'only non-empty buckets are indexed');
    });
  });

  describe('backup and media across two instances', function () {
    it('concurrent version creates on two instances get distinct numbers; counts stay exact', async function () {
      const [a, b] = [await open(), await open()];
      const alice = userId('alice');
      const vs = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).e2ee.createBackupVersion(alice, 'alg', { n: i })));
      assert.deepEqual([...vs].sort(), ['1', '2', '3', '4', '5', '6']);
      const key = (room: string, s: string) => ({ roomId: room, sessionId: s, data: { first_message_index: 0, forwarded_count: 0, is_verified: true, session_data: { s } } });
      await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).e2ee.putRoomKeys(alice, '6', [key('!r:x', `s${i}`), key(`!r${i % 3}:x`, 'shared')])),
      );
      const info = await a.e2ee.getBackupVersion(alice, '6');
      assert.equal(info?.count, 13, '10 sessions in one room + one per other room');
      assert.equal((await b.e2ee.getRoomKeys(alice, '6')).length, 13);
    });

    it('two instances uploading for one user never push usage past the quota', async function () {
      const [a, b] = [await open(), await open()];
      const alice = userId('alice');
      const rec = () => ({
        mediaId: randomId(),
        userId: alice,
        contentType: null,
        uploadName: null,
        size: 100,
        sha256: 'ab'.repeat(32),
        createdTs: 1,
        uploadedTs: 1,
        unusedExpiresTs: null,
      });
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).media.insertMedia(rec(), 550)));
      assert.equal(results.filter((r) => r === 'ok').length, 5);
      assert.equal(await a.media.usage(alice), 500);
      assert.equal((await b.media.listUserMedia(alice)).length, 5);
    });
  });

  describe('peeks (MSC2753)', function () {
    /** Tombstone cells a traced read of the device's peek partition went through. */
    const tombstonesRead = async (user: string, device: string): Promise<number> => {
      const rs = await raw!.execute('SELECT room_id, stream, ended_stream FROM peeks WHERE user_id = ? AND device_id = ?', [user, device], { prepare: true, traceQuery: true });
      const trace = await raw!.metadata.getTrace(rs.info.traceId);
      let n = 0;
      for (const e of trace.events) for (const m of String(e.activity).matchAll(/(\d+) tombstone cells/g)) n += Number(m[1]);
      return n;
    };

    it('starts, renews and ends peeks without writing a tombstone (no null bound), and reads them back as the contract says', async function () {
      const s = await open();
      const alice = userId('peeker');
      const [room1, room2] = [`!${randomId()}:test`, `!${randomId()}:test`];
      const p1 = await s.peeks.startPeek(alice, 'DEV', room1);
      const p2 = await s.peeks.startPeek(alice, 'DEV', room2);
      const e2 = await s.peeks.endPeek(alice, 'DEV', room2);
      assert.ok(e2 !== null && e2 > p2);
      assert.equal(await s.peeks.endPeek(alice, 'DEV', room2), null, 'an ended peek does not end again');
      const r2 = await s.peeks.startPeek(alice, 'DEV', room2);
      const peeks = (await s.peeks.getPeeks(alice, 'DEV')).sort((a, b) => a.stream - b.stream);
      assert.deepEqual(peeks, [
        { roomId: room1, stream: p1, endedAt: null },
        { roomId: room2, stream: r2, endedAt: null },
      ]);
      assert.equal(await tombstonesRead(alice, 'DEV'), 0);
      assert.ok((await s.peeks.endPeek(alice, 'DEV', room2)) !== null, 'a renewed peek is active again');
    });
  });
});
