// Contract: DeliveryStore and PusherStore (src/store/push-types.ts).

import { assert } from '../helpers/assert.js';
import type { DeliveredRecord, PushJob, PusherRecord } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';
import { newEventId, randomId, SERVER, userId } from './fixtures.js';

export function describePushContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');
  const room = () => `!${randomId()}:${SERVER}`;

  describe('delivered markers', function () {
    const put = (roomId: string, user: string, eventStream: number, ts = 1000) =>
      ctx.store.delivery.putDelivered({ roomId, userId: user, eventId: newEventId(), eventStream, ts });

    it('stores a marker at a new, completed stream position', async function () {
      const r = room();
      const before = ctx.store.currentPosition();
      const input = { roomId: r, userId: bob, eventId: newEventId(), eventStream: 7, ts: 4242 };
      const rec = await ctx.store.delivery.putDelivered(input);
      assert.ok(rec);
      assert.ok(rec.stream > before && ctx.store.currentPosition() >= rec.stream);
      assert.deepEqual(rec, { ...input, stream: rec.stream });
      assert.deepEqual(await ctx.store.delivery.getRoomDelivered([r]), [rec]);
      assert.deepEqual(await ctx.store.delivery.getRoomDelivered([room()]), []);
    });

    it('never moves backwards (or sideways to the same event stream)', async function () {
      const r = room();
      const first = await put(r, bob, 10);
      assert.ok(first);
      const pos = ctx.store.currentPosition();
      assert.equal(await put(r, bob, 9), null, 'older event');
      assert.equal(await put(r, bob, 10, 9999), null, 'same event');
      assert.deepEqual(await ctx.store.delivery.getRoomDelivered([r]), [first]);
      assert.deepEqual(await ctx.store.delivery.getDeliveredChanges([r], pos, ctx.store.currentPosition()), []);
      const next = await put(r, bob, 11);
      assert.ok(next && next.stream > first.stream);
      assert.deepEqual(await ctx.store.delivery.getRoomDelivered([r]), [next]);
    });

    it('never moves backwards under concurrent puts for the same key', async function () {
      const r = room();
      const results = await Promise.all([13, 15, 11, 14].map((s) => put(r, bob, s)));
      assert.ok(results[1], 'the newest event always moves the marker');
      const [only] = await ctx.store.delivery.getRoomDelivered([r]);
      assert.equal(only.eventStream, 15);
      assert.equal(only.eventId, results[1].eventId);
    });

    it('keeps one marker per (room, user)', async function () {
      const [r1, r2] = [room(), room()];
      const a1 = await put(r1, alice, 5);
      const b1 = await put(r1, bob, 3);
      const a2 = await put(r2, alice, 8);
      const sortKey = (d: DeliveredRecord) => `${d.roomId}|${d.userId}`;
      const got = await ctx.store.delivery.getRoomDelivered([r1, r2, r1]);
      assert.deepEqual(got.sort((x, y) => sortKey(x).localeCompare(sortKey(y))), [a1, b1, a2].sort((x, y) => sortKey(x!).localeCompare(sortKey(y!))));
    });

    it('reports changes in (from, to], latest value per key, only for the given rooms', async function () {
      const [r1, r2] = [room(), room()];
      const start = ctx.store.currentPosition();
      const a = await put(r1, alice, 1);
      assert.ok(a);
      const mid = ctx.store.currentPosition();
      const b = await put(r1, bob, 2);
      const other = await put(r2, bob, 2);
      assert.ok(b && other);
      assert.deepEqual(await ctx.store.delivery.getDeliveredChanges([r1], start, mid), [a]);
      assert.deepEqual(await ctx.store.delivery.getDeliveredChanges([r1], mid, ctx.store.currentPosition()), [b]);
      assert.deepEqual(await ctx.store.delivery.getDeliveredChanges([r2], start, ctx.store.currentPosition()), [other]);
      // Moving alice's marker on takes it out of the earlier range and into the later one.
      const a2 = await put(r1, alice, 3);
      assert.ok(a2);
      assert.deepEqual(await ctx.store.delivery.getDeliveredChanges([r1], start, mid), []);
      assert.deepEqual(await ctx.store.delivery.getDeliveredChanges([r1], start, ctx.store.currentPosition()), [b, a2]);
    });

    it('survives close and reopen', async function () {
      if (!ctx.canReopen) this.skip();
      const r = room();
      const rec = await put(r, alice, 4);
      const store = await ctx.closeAndReopen();
      assert.deepEqual(await store.delivery.getRoomDelivered([r]), [rec]);
      assert.equal(await put(r, alice, 4), null);
    });
  });

  const pusher = (user: string, pushkey: string, extra: Partial<PusherRecord> = {}): PusherRecord => ({
    userId: user,
    deviceId: 'DEV1',
    kind: 'http',
    appId: 'org.example.app',
    pushkey,
    pushkeyTs: 1_700_000_000_000,
    appDisplayName: 'Example',
    deviceDisplayName: 'Phone',
    profileTag: null,
    lang: 'en',
    data: { url: 'https://push.example.org/_matrix/push/v1/notify', format: 'event_id_only', nested: { a: [1, 'b'] } },
    ...extra,
  });
  const keysOf = (ps: PusherRecord[]) => ps.map((p) => `${p.appId}|${p.pushkey}`).sort();

  describe('pushers', function () {
    it('stores and returns a pusher as given, only to its user', async function () {
      const p = pusher(alice, 'k1', { profileTag: 'tag', deviceId: null });
      await ctx.store.pushers.setPusher(p, false);
      assert.deepEqual(await ctx.store.pushers.getPushers(alice), [p]);
      assert.deepEqual(await ctx.store.pushers.getPushers(bob), []);
    });

    it('replaces the pusher with the same app_id and pushkey of the same user', async function () {
      await ctx.store.pushers.setPusher(pusher(alice, 'k1'), false);
      const updated = pusher(alice, 'k1', { deviceId: 'DEV2', pushkeyTs: 5, deviceDisplayName: 'Tablet', lang: 'de', data: { url: 'https://other.example/_matrix/push/v1/notify' } });
      await ctx.store.pushers.setPusher(updated, false);
      assert.deepEqual(await ctx.store.pushers.getPushers(alice), [updated]);
      await ctx.store.pushers.setPusher(pusher(alice, 'k2'), false);
      await ctx.store.pushers.setPusher(pusher(alice, 'k1', { appId: 'org.example.other' }), false);
      assert.deepEqual(keysOf(await ctx.store.pushers.getPushers(alice)), ['org.example.app|k1', 'org.example.app|k2', 'org.example.other|k1']);
    });

    it('append: false removes other users\' pushers with the same key; append: true keeps them', async function () {
      await ctx.store.pushers.setPusher(pusher(alice, 'shared'), false);
      await ctx.store.pushers.setPusher(pusher(alice, 'mine'), false);
      await ctx.store.pushers.setPusher(pusher(bob, 'shared'), true);
      assert.equal((await ctx.store.pushers.getPushers(alice)).length, 2);
      assert.equal((await ctx.store.pushers.getPushers(bob)).length, 1);

      await ctx.store.pushers.setPusher(pusher(alice, 'shared'), false);
      assert.deepEqual(keysOf(await ctx.store.pushers.getPushers(alice)), ['org.example.app|mine', 'org.example.app|shared']);
      assert.deepEqual(await ctx.store.pushers.getPushers(bob), [], 'bob lost the shared key');
      // Same pushkey under another app_id is another key.
      await ctx.store.pushers.setPusher(pusher(bob, 'shared', { appId: 'org.example.other' }), false);
      assert.equal((await ctx.store.pushers.getPushers(alice)).length, 2);
    });

    it('deletes one pusher by (user, app_id, pushkey) and reports whether it existed', async function () {
      await ctx.store.pushers.setPusher(pusher(alice, 'k1'), false);
      await ctx.store.pushers.setPusher(pusher(alice, 'k2'), false);
      await ctx.store.pushers.setPusher(pusher(bob, 'k1'), true);
      assert.equal(await ctx.store.pushers.deletePusher(alice, 'org.example.app', 'k1'), true);
      assert.equal(await ctx.store.pushers.deletePusher(alice, 'org.example.app', 'k1'), false);
      assert.equal(await ctx.store.pushers.deletePusher(alice, 'org.example.other', 'k2'), false);
      assert.deepEqual(keysOf(await ctx.store.pushers.getPushers(alice)), ['org.example.app|k2']);
      assert.deepEqual(keysOf(await ctx.store.pushers.getPushers(bob)), ['org.example.app|k1']);
    });

    it('deletes every user\'s pusher with a rejected key, and nothing else', async function () {
      await ctx.store.pushers.setPusher(pusher(alice, 'bad'), false);
      await ctx.store.pushers.setPusher(pusher(bob, 'bad'), true);
      await ctx.store.pushers.setPusher(pusher(bob, 'bad', { appId: 'org.example.other' }), false);
      await ctx.store.pushers.setPusher(pusher(bob, 'good'), false);
      await ctx.store.pushers.deletePushersByKey('org.example.app', 'bad');
      assert.deepEqual(await ctx.store.pushers.getPushers(alice), []);
      assert.deepEqual(keysOf(await ctx.store.pushers.getPushers(bob)), ['org.example.app|good', 'org.example.other|bad']);
      await ctx.store.pushers.deletePushersByKey('org.example.app', 'never-existed');
    });

    it('deletes the pushers of one device of one user', async function () {
      await ctx.store.pushers.setPusher(pusher(alice, 'k1', { deviceId: 'PHONE' }), false);
      await ctx.store.pushers.setPusher(pusher(alice, 'k2', { deviceId: 'PHONE' }), false);
      await ctx.store.pushers.setPusher(pusher(alice, 'k3', { deviceId: 'TABLET' }), false);
      await ctx.store.pushers.setPusher(pusher(alice, 'k4', { deviceId: null }), false);
      await ctx.store.pushers.setPusher(pusher(bob, 'k5', { deviceId: 'PHONE' }), false);
      await ctx.store.pushers.deletePushersForDevice(alice, 'PHONE');
      assert.deepEqual(keysOf(await ctx.store.pushers.getPushers(alice)), ['org.example.app|k3', 'org.example.app|k4']);
      assert.deepEqual(keysOf(await ctx.store.pushers.getPushers(bob)), ['org.example.app|k5']);
    });

    it('hands out copies: changing a given or returned pusher changes nothing stored', async function () {
      const p = pusher(alice, 'k1');
      await ctx.store.pushers.setPusher(p, false);
      (p.data as Record<string, unknown>).url = 'mutated';
      const [got] = await ctx.store.pushers.getPushers(alice);
      assert.equal(got.data.url, 'https://push.example.org/_matrix/push/v1/notify');
      got.data.url = 'mutated again';
      assert.equal((await ctx.store.pushers.getPushers(alice))[0].data.url, 'https://push.example.org/_matrix/push/v1/notify');
    });
  });

  describe('push queue', function () {
    const job = (pushkey: string, notBefore: number, n = 0): Omit<PushJob, 'id' | 'attempts'> => ({
      userId: alice,
      appId: 'org.example.app',
      pushkey,
      notification: { event_id: `$e${n}`, counts: { unread: n }, devices: [{ app_id: 'org.example.app', pushkey, data: {} }] },
      notBefore,
    });
    const ids = (js: PushJob[]) => js.map((j) => j.id);

    beforeEach(async function () {
      await ctx.store.pushers.setPusher(pusher(alice, 'k1'), false);
      await ctx.store.pushers.setPusher(pusher(alice, 'k2'), false);
    });

    it('is empty to begin with', async function () {
      assert.equal(await ctx.store.pushers.nextPushDue(), null);
      assert.deepEqual(await ctx.store.pushers.duePushes(Number.MAX_SAFE_INTEGER, 10), []);
    });

    it('returns due jobs oldest first, as enqueued, with zero attempts', async function () {
      const a = await ctx.store.pushers.enqueuePush(job('k1', 100, 1));
      const b = await ctx.store.pushers.enqueuePush(job('k2', 50, 2));
      const c = await ctx.store.pushers.enqueuePush(job('k1', 100, 3));
      assert.ok(a < b && b < c, 'ids increase');
      const due = await ctx.store.pushers.duePushes(100, 10);
      assert.deepEqual(ids(due), [a, b, c]);
      assert.deepEqual(due[0], { id: a, attempts: 0, ...job('k1', 100, 1) });
      assert.deepEqual(ids(await ctx.store.pushers.duePushes(100, 2)), [a, b], 'limit');
    });

    it('leaves out jobs that are not due yet and reports the earliest due time', async function () {
      const a = await ctx.store.pushers.enqueuePush(job('k1', 300));
      const b = await ctx.store.pushers.enqueuePush(job('k2', 200));
      assert.equal(await ctx.store.pushers.nextPushDue(), 200);
      assert.deepEqual(await ctx.store.pushers.duePushes(199, 10), []);
      assert.deepEqual(ids(await ctx.store.pushers.duePushes(200, 10)), [b], 'due at exactly notBefore');
      assert.deepEqual(ids(await ctx.store.pushers.duePushes(300, 10)), [a, b]);
    });

    it('reschedules a job with its attempt count, then deletes it', async function () {
      const a = await ctx.store.pushers.enqueuePush(job('k1', 100));
      const b = await ctx.store.pushers.enqueuePush(job('k2', 100));
      await ctx.store.pushers.reschedulePush(a, 3, 1000);
      assert.deepEqual(ids(await ctx.store.pushers.duePushes(999, 10)), [b]);
      assert.equal(await ctx.store.pushers.nextPushDue(), 100);
      await ctx.store.pushers.deletePush(b);
      assert.equal(await ctx.store.pushers.nextPushDue(), 1000);
      const [again] = await ctx.store.pushers.duePushes(1000, 10);
      assert.deepEqual(again, { id: a, attempts: 3, ...job('k1', 1000) });
      await ctx.store.pushers.deletePush(a);
      await ctx.store.pushers.deletePush(a); // unknown ids are no-ops
      assert.equal(await ctx.store.pushers.nextPushDue(), null);
    });

    it('keeps the oldest-first order across reschedules', async function () {
      const a = await ctx.store.pushers.enqueuePush(job('k1', 100));
      const b = await ctx.store.pushers.enqueuePush(job('k2', 100));
      await ctx.store.pushers.reschedulePush(a, 1, 150);
      assert.deepEqual(ids(await ctx.store.pushers.duePushes(200, 10)), [a, b]);
    });

    it('claims a due job for one worker until its lease ends', async function () {
      const p = ctx.store.pushers;
      const a = await p.enqueuePush(job('k1', 100));
      const b = await p.enqueuePush(job('k2', 100));
      assert.equal(await p.claimPush(a, 100, 5000), true);
      assert.deepEqual(ids(await p.duePushes(4999, 10)), [b], 'a claimed job is not due to anyone else');
      assert.equal(await p.claimPush(a, 200, 6000), false, 'held by the first claim');
      assert.equal(await p.nextPushDue(), 100);
      await p.deletePush(b);
      assert.equal(await p.nextPushDue(), 5000, 'due again when the lease ends');
      // The holder died: once the lease is over, another worker claims it, attempts unchanged.
      assert.deepEqual(ids(await p.duePushes(5000, 10)), [a]);
      assert.equal(await p.claimPush(a, 5000, 9000), true);
      const [held] = await p.duePushes(9000, 10);
      assert.deepEqual(held, { id: a, attempts: 0, ...job('k1', 9000) });
      await p.deletePush(a);
      assert.equal(await p.claimPush(a, 10_000, 20_000), false, 'a delivered job cannot be claimed');
    });

    it('refuses a claim on a job that is not due yet', async function () {
      const a = await ctx.store.pushers.enqueuePush(job('k1', 300));
      assert.equal(await ctx.store.pushers.claimPush(a, 299, 1000), false);
      assert.equal(await ctx.store.pushers.nextPushDue(), 300);
      assert.equal(await ctx.store.pushers.claimPush(a, 300, 1000), true);
    });

    it('of concurrent claims on one job exactly one succeeds', async function () {
      const jobs = await Promise.all([1, 2, 3].map((n) => ctx.store.pushers.enqueuePush(job('k1', 100, n))));
      for (const id of jobs) {
        const won = await Promise.all(Array.from({ length: 8 }, (_, i) => ctx.store.pushers.claimPush(id, 100 + i, 5000 + i)));
        assert.equal(won.filter(Boolean).length, 1, `job ${id}: ${JSON.stringify(won)}`);
      }
      assert.deepEqual(await ctx.store.pushers.duePushes(4999, 10), []);
    });

    it('hands out copies of notifications', async function () {
      const j = job('k1', 100, 5);
      await ctx.store.pushers.enqueuePush(j);
      (j.notification.counts as Record<string, unknown>).unread = 99;
      const [got] = await ctx.store.pushers.duePushes(100, 1);
      assert.deepEqual(got.notification.counts, { unread: 5 });
      (got.notification.counts as Record<string, unknown>).unread = 98;
      assert.deepEqual((await ctx.store.pushers.duePushes(100, 1))[0].notification.counts, { unread: 5 });
    });

    it('survives close and reopen, and keeps enqueue order afterwards', async function () {
      if (!ctx.canReopen) this.skip();
      const a = await ctx.store.pushers.enqueuePush(job('k1', 100, 1));
      const b = await ctx.store.pushers.enqueuePush(job('k2', 100, 2));
      await ctx.store.pushers.reschedulePush(a, 2, 120);
      await ctx.store.pushers.deletePush(b);
      const store = await ctx.closeAndReopen();
      assert.equal(await store.pushers.nextPushDue(), 120);
      assert.deepEqual(keysOf(await store.pushers.getPushers(alice)), ['org.example.app|k1', 'org.example.app|k2']);
      const c = await store.pushers.enqueuePush(job('k2', 100, 3));
      const due = await store.pushers.duePushes(200, 10);
      assert.deepEqual(ids(due), [a, c]);
      assert.deepEqual(due[0], { id: a, attempts: 2, ...job('k1', 120, 1) });
    });
  });
}
