// The read model's parts: the completion hook releases change records only at the watermark;
// a sync never shows an event above the watermark while a lower position is in flight; change
// caches and ring buffers stay within their bounds and say "unknown" (never "unchanged") for what
// they evicted; typing and presence wake only readers that want them; /metrics shows each cache.

import { assert } from '../helpers/assert.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Api, enc, startTestServer } from '../helpers/server.js';
import { StreamIdGenerator } from '../../src/store/stream-id.js';
import type { ChangeRecord, EventChange } from '../../src/store/change-types.js';
import type { MembershipRecord } from '../../src/store/types.js';
import { ReadModel } from '../../src/sync/read-model/read-model.js';
import { StreamChangeCache } from '../../src/sync/read-model/change-cache.js';
import { RoomTimelines } from '../../src/sync/read-model/timelines.js';
import { LocalNotifier } from '../../src/sync/notifier.js';
import { SyncWaiters } from '../../src/sync/waiters.js';
import { compileFilter } from '../../src/sync/filter.js';
import { parseToken, tokenAt } from '../../src/sync/token.js';
import type { SyncService } from '../../src/sync/sync-service.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { FakeRoom, userId as fixtureUser } from '../store/fixtures.js';

function ev(roomId: string, stream: number, body = `m${stream}`): EventChange {
  const pdu = { type: 'm.room.message', room_id: roomId, sender: '@a:x', content: { body }, origin_server_ts: stream };
  return {
    kind: 'event',
    stream,
    roomId,
    eventId: `$e${stream}`,
    pduJson: JSON.stringify(pdu),
    txn: null,
    stateDelta: [],
    stateRemoved: [],
    redaction: null,
    relatesTo: null,
    sender: '@a:x',
    push: { actions: [], bulk: null },
  };
}

const noRooms = { getRoomsForUser: async (): Promise<MembershipRecord[]> => [] };

describe('sync read model', function () {
  describe('completion hook', function () {
    it('releases change records in position order, only once the watermark passes them', function () {
      const gen = new StreamIdGenerator(10);
      const model = new ReadModel(noRooms, 10);
      const seen: number[][] = [];
      gen.onChanges((changes, current) => {
        seen.push(changes.map((c) => c.stream));
        model.apply(changes, current);
      });
      const p11 = gen.reserve();
      const p12 = gen.reserve();
      const p13 = gen.reserve();
      gen.complete(p12, ev('!r', p12));
      gen.complete(p13, ev('!r', p13));
      assert.deepEqual(seen, [], 'nothing is released above an unfinished position');
      assert.equal(model.position, 10);
      assert.equal(model.timeline('!r', 10, 13, 10, {}), undefined, 'the room is unknown to the model');
      gen.complete(p11, { kind: 'account_data', stream: p11, userId: '@u:x', roomId: '', dataType: 't' });
      assert.deepEqual(seen, [[11, 12, 13]]);
      assert.equal(model.position, 13);
      assert.deepEqual(model.timeline('!r', 10, 13, 10, {})?.events.map((e) => e.stream), [12, 13]);
      assert.equal(model.accountData.changedSince('@u:x', 10), true);
      assert.equal(model.accountData.changedSince('@u:x', 11), false);
    });

    it('abandoned positions release nothing but let later records through', function () {
      const gen = new StreamIdGenerator(0);
      const got: ChangeRecord[] = [];
      gen.onChanges((c) => got.push(...c));
      const a = gen.reserve();
      const b = gen.reserve();
      gen.complete(b, ev('!r', b));
      gen.abandon(a);
      assert.deepEqual(got.map((c) => c.stream), [b]);
    });

    it('a reset record drops every cache: nothing below it is answered from memory', function () {
      const model = new ReadModel(noRooms, 0);
      model.apply([ev('!r', 1), { kind: 'account_data', stream: 2, userId: '@u:x', roomId: '', dataType: 't' }], 2);
      model.apply([{ kind: 'reset', stream: 3 }], 3);
      assert.equal(model.covers(2), false);
      assert.equal(model.accountData.changedSince('@u:x', 2), true, 'unknown, so "may have changed"');
      assert.equal(model.timeline('!r', 0, 3, 10, {}), undefined);
      assert.equal(model.covers(3), true);
    });

    it('a reset above the position (records lost up to it) keeps every answer below it on the store, and the records that do arrive up to it out of the timelines', function () {
      const model = new ReadModel(noRooms, 0);
      model.apply([ev('!r', 1)], 1);
      // Records up to 6 may be missing (5 was lost on its way): the model must not piece 4 and 6
      // into a timeline that looks complete, nor say "unchanged since 4".
      model.apply([{ kind: 'reset', stream: 6 }], 3);
      model.apply([ev('!r', 4)], 4);
      model.apply([ev('!r', 6), ev('!r', 7)], 7);
      assert.equal(model.covers(4), false);
      assert.equal(model.rooms.changesSince(['!r'], 4), undefined, 'unknown below the reset');
      assert.equal(model.timeline('!r', 3, 7, 10, {}), undefined, 'the buffer cannot answer across the lost record');
      assert.equal(model.timeline('!r', 4, 7, 1, {}), undefined, 'not even for a short limit');
      assert.deepEqual(model.timeline('!r', 6, 7, 10, {})?.events.map((e) => e.stream), [7], 'above the reset, records are applied again');
      assert.equal(model.covers(6), true);
    });
  });

  describe('watermark', function () {
    it('a sync never returns an event above the watermark while a lower position is still in flight', async function () {
      const srv = await startTestServer({ metrics: { enabled: false } });
      try {
        const api = new Api(srv.url);
        const alice = await api.register('alice');
        const room = (await alice.post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
        const sync = srv.hearth.services.sync as SyncService;
        const req = (since: string) => ({ userId: alice.userId, deviceId: alice.deviceId, since, filter: compileFilter(undefined), timeoutMs: 0, fullState: false });
        const first = await sync.sync({ ...req(tokenAt(0)) });
        const since = first.next_batch;
        // Another writer holds a lower position: everything persisted after it stays invisible.
        const gen = (srv.hearth.store as unknown as { gen: StreamIdGenerator }).gen;
        const held = gen.reserve();
        const sending = alice.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'late' });
        let stored: number | undefined;
        for (let i = 0; i < 200 && stored === undefined; i++) {
          const rows = await srv.hearth.store.rooms.getRoomEvents({ roomId: room, dir: 'b', from: Number.MAX_SAFE_INTEGER, limit: 1 });
          if (rows[0]?.pdu.content.body === 'late') stored = rows[0].stream;
          else await new Promise((r) => setTimeout(r, 10));
        }
        assert.ok(stored !== undefined && stored > held, 'the event is committed above the held position');
        const during = await sync.sync(req(since));
        assert.ok(parseToken(during.next_batch).stream < held, 'next_batch stays below the hole');
        assert.deepEqual((during.rooms as { join: object }).join, {}, 'the committed event is not shown');
        assert.equal((sync as unknown as { model: ReadModel }).model.position, held - 1);
        gen.abandon(held);
        assert.equal((await sending).status, 200);
        const after = await sync.sync(req(since));
        const timeline = (after.rooms as any).join[room].timeline.events.map((e: { content: { body: string } }) => e.content.body);
        assert.deepEqual(timeline, ['late']);
      } finally {
        await srv.stop();
      }
    });
  });

  describe('bounds and eviction', function () {
    it('a change cache keeps at most its bound and answers "may have changed" for what it evicted', function () {
      const c = new StreamChangeCache('t', 100, 2);
      c.record('a', 101);
      c.record('b', 102);
      c.record('a', 103); // a moves to the newest end
      c.record('c', 104); // evicts b (the oldest)
      assert.equal(c.size, 2);
      assert.equal(c.earliest, 102);
      assert.equal(c.changedSince('b', 101), true, 'not covered: unknown');
      assert.equal(c.changedSince('b', 102), false, 'b last changed at 102');
      assert.equal(c.changedSince('a', 103), false);
      assert.equal(c.changedSince('c', 103), true);
      assert.equal(c.changedSince('zzz', 102), false, 'never changed above the covered position');
      assert.deepEqual(c.changesSince(['a', 'b', 'c'], 101), undefined);
      assert.deepEqual([...c.changesSince(['a', 'b', 'c'], 102)!], [['a', 103], ['c', 104]]);
    });

    it('ring buffers keep their bounds; an evicted room is rebuilt from the store, a trimmed one answers only what it covers', function () {
      const t = new RoomTimelines(3, 2);
      for (let s = 1; s <= 5; s++) t.apply(ev('!a', s), s - 1);
      assert.deepEqual(t.read('!a', 2, 5, 10, {})?.events.map((e) => e.stream), [3, 4, 5]);
      assert.equal(t.read('!a', 1, 5, 10, {}), undefined, 'position 2 was trimmed: the store must answer');
      assert.deepEqual(t.read('!a', 0, 5, 2, {})?.events.map((e) => e.stream), [4, 5], 'limit+1 found: complete without coverage');
      assert.equal(t.read('!a', 0, 5, 2, {})?.more, true);
      t.apply(ev('!b', 6), 0);
      t.apply(ev('!c', 7), 0); // evicts !a, the least recently written
      assert.equal(t.size, 2);
      assert.equal(t.read('!a', 4, 7, 10, {}), undefined);
      assert.deepEqual(t.read('!c', 6, 7, 10, {})?.events.map((e) => e.stream), [7]);
      assert.deepEqual(t.read('!c', 6, 6, 10, {})?.events, [], 'nothing above upTo is returned');
    });

    it('memberships of evicted users are loaded from the store again', async function () {
      let loads = 0;
      const store = {
        getRoomsForUser: async (userId: string): Promise<MembershipRecord[]> => {
          loads++;
          return [{ roomId: '!r', userId, membership: 'join', eventId: '$j', stream: 1 }];
        },
      };
      const model = new ReadModel(store, 1, { changeCacheEntries: 10, membershipUsers: 1, timelineRooms: 1, timelineEvents: 1 });
      await model.roomsForUser('@a:x');
      await model.roomsForUser('@a:x');
      assert.equal(loads, 1, 'the second read is from memory');
      await model.roomsForUser('@b:x'); // evicts @a
      const again = await model.roomsForUser('@a:x');
      assert.equal(loads, 3);
      assert.deepEqual(again.map((m) => m.membership), ['join']);
      const leave = { type: 'm.room.member', room_id: '!r', sender: '@a:x', state_key: '@a:x', content: { membership: 'leave' }, origin_server_ts: 2 };
      model.apply([{ ...ev('!r', 2), eventId: '$l', pduJson: JSON.stringify(leave), stateDelta: [{ type: 'm.room.member', stateKey: '@a:x', eventId: '$l' }] }], 2);
      assert.deepEqual((await model.roomsForUser('@a:x')).map((m) => [m.membership, m.stream]), [['leave', 2]], 'kept current by records');
      assert.equal(loads, 3);
    });
  });

  describe('state resolution dropping a member key', function () {
    it('the model forgets the membership as the store does, and the change record says so', async function () {
      const store = await openSqliteStore({ path: ':memory:' });
      try {
        const model = new ReadModel(store.rooms, store.currentPosition());
        const seen: ChangeRecord[] = [];
        store.onChanges((changes, current) => {
          seen.push(...changes);
          model.apply(changes, current);
        });
        const room = new FakeRoom();
        const alice = fixtureUser('alice');
        const bob = fixtureUser('bob');
        await room.create(store, alice);
        await room.member(store, bob, bob, 'join');
        // Both caches loaded before the removal, so a stale entry would show.
        assert.deepEqual((await model.roomsForUser(bob)).map((m) => m.roomId), [room.roomId]);
        const loadMembers = (r: string) => store.rooms.getRoomMembers(r);
        assert.equal((await model.membersAt(room.roomId, [bob], store.currentPosition(), loadMembers)).entries.length, 1);

        const res = await room.message(store, alice, 'resolves', { stateDelta: [], stateRemoved: [{ type: 'm.room.member', stateKey: bob }] });
        const rec = seen.find((c) => c.kind === 'event' && c.eventId === res.eventId);
        assert.deepEqual(rec && rec.kind === 'event' ? rec.stateRemoved : null, [{ type: 'm.room.member', stateKey: bob }]);
        assert.equal(model.position, store.currentPosition());
        assert.deepEqual(await model.roomsForUser(bob), await store.rooms.getRoomsForUser(bob));
        assert.deepEqual(await model.roomsForUser(bob), []);
        // Bob has no membership now but had member state before the drop: the store answers,
        // from a history that records the drop.
        const at = await model.membersAt(room.roomId, [alice, bob], store.currentPosition(), loadMembers);
        assert.deepEqual(at.entries.map((e) => e.stateKey), [alice]);
        assert.deepEqual(at.unknown, [bob]);
        const hist = await store.rooms.getStateHistory(room.roomId, 'm.room.member', bob);
        assert.deepEqual(hist.map((h) => h.eventId), [hist[0].eventId, null]);
        assert.equal(hist[1].stream, res.stream);
        assert.equal((await store.rooms.getStateChanges(room.roomId, res.stream - 1, res.stream)).length, 0, 'a removal is no state entry for sync');
      } finally {
        await store.close();
      }
    });
  });

  describe('restart', function () {
    it('after a restart the model starts cold: older tokens are rebuilt from the store, later ones served from memory', async function () {
      const dir = mkdtempSync(join(tmpdir(), 'hearth-rm-'));
      try {
        let srv = await startTestServer({}, dir);
        const alice = await new Api(srv.url).register('alice');
        const room = (await alice.post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
        const old = (await alice.get('/_matrix/client/v3/sync?timeout=0')).body.next_batch as string;
        for (let i = 0; i < 3; i++) await alice.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/a${i}`, { msgtype: 'm.text', body: `before ${i}` });
        await srv.stop();
        srv = await startTestServer({}, dir);
        try {
          const sync = srv.hearth.services.sync as SyncService;
          const req = (since: string) => ({ userId: alice.userId, deviceId: alice.deviceId, since, filter: compileFilter(undefined), timeoutMs: 0, fullState: false, acknowledgeSince: false });
          const a = await sync.sync(req(old));
          assert.deepEqual(JSON.parse(JSON.stringify(a, (k, v) => (k === 'age' ? undefined : v))), JSON.parse(JSON.stringify(await sync.withoutModel().sync(req(old)), (k, v) => (k === 'age' ? undefined : v))));
          const bodies = (a.rooms as any).join[room].timeline.events.map((e: { content: { body: string } }) => e.content.body);
          assert.deepEqual(bodies, ['before 0', 'before 1', 'before 2'], 'the pre-restart range comes from the store');
          assert.ok(sync.modelStats().find((s) => s.name === 'rooms')!.misses > 0, 'the old token was a miss');
          const again = new Api(srv.url, alice.token);
          assert.equal((await again.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/b0`, { msgtype: 'm.text', body: 'after' })).status, 200);
          const hitsBefore = sync.modelStats().find((s) => s.name === 'timelines')!.hits;
          const b = await sync.sync(req(a.next_batch));
          assert.deepEqual((b.rooms as any).join[room].timeline.events.map((e: { content: { body: string } }) => e.content.body), ['after']);
          assert.ok(sync.modelStats().find((s) => s.name === 'timelines')!.hits > hitsBefore, 'the new range came from the ring buffer');
        } finally {
          await srv.stop();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('to-device acknowledgements', function () {
    it('skips an acknowledgement only when nothing can be waiting below it', function () {
      const model = new ReadModel(noRooms, 10);
      assert.equal(model.ackMayDelete('@u:x', 'D', 10), true, 'never acknowledged: the store must check');
      model.acknowledged('@u:x', 'D', 10);
      assert.equal(model.ackMayDelete('@u:x', 'D', 10), false);
      assert.equal(model.ackMayDelete('@u:x', 'D', 12), false, 'nothing queued for the device after 10');
      model.apply([{ kind: 'to_device', stream: 11, targets: [{ userId: '@u:x', deviceId: 'D' }] }], 11);
      assert.equal(model.ackMayDelete('@u:x', 'D', 10), false, 'the new message is above 10');
      assert.equal(model.ackMayDelete('@u:x', 'D', 11), true);
      assert.equal(model.ackMayDelete('@u:x', 'OTHER', 11), true, 'per device');
      model.acknowledged('@u:x', 'D', 11);
      assert.equal(model.ackMayDelete('@u:x', 'D', 11), false);
    });
  });

  describe('wakes', function () {
    it('typing and presence wake only readers whose filters want them', async function () {
      const notifier = new LocalNotifier();
      const waiters = new SyncWaiters(notifier);
      const at = { stream: 0, ephemeral: 0 };
      const none = { typing: false, presence: false };
      const quiet = waiters.wait('@u:x', ['!r'], at, 200, undefined, none);
      const eager = waiters.wait('@u:x', ['!r'], at, 200, undefined, { typing: true, presence: true });
      notifier.publish({ ephemeral: 1, roomId: '!r', kind: 'typing' });
      notifier.publish({ ephemeral: 2, userIds: ['@u:x'], kind: 'presence' });
      assert.equal(await eager, true);
      assert.equal(await quiet, false, 'timed out: typing and presence were not for it');
      // The high-water mark check honours the filter too.
      assert.equal(await waiters.wait('@u:x', ['!r'], at, 0, undefined, none), false);
      assert.equal(await waiters.wait('@u:x', ['!r'], at, 0, undefined, { typing: true, presence: false }), true);
      notifier.publish({ stream: 5, roomId: '!r' });
      assert.equal(await waiters.wait('@u:x', ['!r'], at, 0, undefined, none), true, 'durable changes wake everyone');
      waiters.close();
    });
  });

  describe('wakes from the completion hook', function () {
    it('a completed position wakes the readers of its room and of the users it names, without any notice', async function () {
      const notifier = new LocalNotifier();
      const waiters = new SyncWaiters(notifier);
      const gen = new StreamIdGenerator(0);
      gen.onChanges((c) => waiters.onChanges(c));
      const at = { stream: 0, ephemeral: 0 };
      const inRoom = waiters.wait('@a:x', ['!r'], at, 500);
      const invitee = waiters.wait('@b:x', [], at, 500);
      const device = waiters.wait('@c:x', [], at, 500);
      const bystander = waiters.wait('@d:x', ['!other'], at, 100);
      const p1 = gen.reserve();
      const p2 = gen.reserve();
      const invite = { ...ev('!r', p2), stateDelta: [{ type: 'm.room.member', stateKey: '@b:x', eventId: '$e2' }] };
      gen.complete(p2, invite);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(waiters.size, 4, 'nothing wakes while position 1 is in flight');
      gen.complete(p1, { kind: 'to_device', stream: p1, targets: [{ userId: '@c:x', deviceId: 'D' }] });
      assert.deepEqual(await Promise.all([inRoom, invitee, device, bystander]), [true, true, true, false]);
      // A reader arriving late sees the high-water mark instead of waiting.
      assert.equal(await waiters.wait('@a:x', ['!r'], at, 0), true);
      assert.equal(await waiters.wait('@a:x', ['!r'], { stream: p2, ephemeral: 0 }, 0), false);
      waiters.close();
    });
  });

  describe('metrics', function () {
    it('/metrics shows each cache with its size, bound, hits and misses', async function () {
      const srv = await startTestServer({ metrics: { enabled: true } });
      try {
        const api = new Api(srv.url);
        const alice = await api.register('alice');
        const room = (await alice.post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
        const s1 = await alice.get('/_matrix/client/v3/sync?timeout=0');
        await alice.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'x' });
        await alice.get(`/_matrix/client/v3/sync?timeout=0&since=${s1.body.next_batch}`);
        const text = await (await fetch(`${srv.metricsUrl}/metrics`)).text();
        for (const cache of ['rooms', 'account_data', 'to_device', 'receipts', 'device_lists', 'memberships', 'timelines']) {
          assert.match(text, new RegExp(`hearth_read_model_cache_size\\{cache="${cache}"\\} \\d+`));
          assert.match(text, new RegExp(`hearth_read_model_cache_bound\\{cache="${cache}"\\} [1-9]`));
        }
        assert.match(text, /hearth_read_model_cache_hits\{cache="timelines"\} [1-9]/);
        assert.match(text, /hearth_read_model_cache_size\{cache="timelines"\} [1-9]/);
      } finally {
        await srv.stop();
      }
    });
  });
});
