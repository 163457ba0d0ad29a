// Paced wakes (src/sync/waiters.ts): a big room's fan-out wakes at most `wakesPerTick` readers
// per event-loop turn, oldest first, and still wakes every one of them; readers of other rooms
// queue behind it instead of waiting for the whole room; the high-water marks move at once.
// The server half: one room with more members than one turn wakes, every member's long-poll
// gets every message, once and in order.

import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { StreamIdGenerator } from '../../src/store/stream-id.js';
import { LocalNotifier } from '../../src/sync/notifier.js';
import { DEFAULT_WAKES_PER_TICK, SyncWaiters } from '../../src/sync/waiters.js';

const AT = { stream: 0, ephemeral: 0 };
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
/** Lets every promise continuation queued so far run (within the current turn). */
async function microtasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/** Parks `n` readers of `roomId`; `order` collects their indices as they resolve woken. */
function park(waiters: SyncWaiters, roomId: string, n: number, order: string[], timeoutMs = 5_000): Array<Promise<boolean>> {
  return Array.from({ length: n }, (_, i) =>
    waiters.wait(`@u${i}:${roomId}`, [roomId], AT, timeoutMs).then((woken) => {
      if (woken) order.push(`${roomId}#${i}`);
      return woken;
    }),
  );
}

describe('sync: paced wakes', function () {
  it('a 500-member room wakes 50 readers per turn, oldest first, and every reader once', async function () {
    const notifier = new LocalNotifier();
    const waiters = new SyncWaiters(notifier, undefined, { wakesPerTick: 50 });
    const order: string[] = [];
    const all = park(waiters, '!big', 500, order);
    notifier.publish({ stream: 1, roomId: '!big' });
    await microtasks();
    assert.equal(order.length, 50, 'the first chunk wakes in the publishing turn');
    assert.equal(waiters.pendingWakes, 450);
    const perTurn: number[] = [];
    while (order.length < 500) {
      const before = order.length;
      await turn();
      await microtasks();
      perTurn.push(order.length - before);
      assert.ok(perTurn.length <= 20, 'drains in bounded turns');
    }
    assert.ok(perTurn.every((n) => n <= 50), `at most 50 per turn: ${perTurn.join(',')}`);
    assert.deepEqual(await Promise.all(all), Array(500).fill(true));
    assert.deepEqual(order, Array.from({ length: 500 }, (_, i) => `!big#${i}`), 'registration order');
    assert.equal(waiters.size, 0);
    assert.equal(waiters.pendingWakes, 0);
    waiters.close();
  });

  it('a small room woken during a big fan-out is woken behind what was queued, not after the whole room twice', async function () {
    const notifier = new LocalNotifier();
    const waiters = new SyncWaiters(notifier, undefined, { wakesPerTick: 10 });
    const order: string[] = [];
    const big = park(waiters, '!big', 100, order);
    const small = park(waiters, '!small', 2, order);
    notifier.publish({ stream: 1, roomId: '!big' });
    notifier.publish({ stream: 2, roomId: '!small' });
    // The big room is published again while its first wake is still draining: queued readers
    // are not queued twice.
    notifier.publish({ stream: 3, roomId: '!big' });
    assert.deepEqual(await Promise.all([...big, ...small]), Array(102).fill(true));
    assert.equal(order.length, 102, 'each reader woken once');
    assert.deepEqual(order.slice(100), ['!small#0', '!small#1'], 'first in, first out');
  });

  it('small wakes cost no extra turn when nothing is queued', async function () {
    const notifier = new LocalNotifier();
    const waiters = new SyncWaiters(notifier);
    const order: string[] = [];
    const p = park(waiters, '!r', DEFAULT_WAKES_PER_TICK, order);
    notifier.publish({ stream: 1, roomId: '!r' });
    await microtasks();
    assert.equal(order.length, DEFAULT_WAKES_PER_TICK, 'all woken in the publishing turn');
    assert.deepEqual(await Promise.all(p), Array(DEFAULT_WAKES_PER_TICK).fill(true));
  });

  it('the completion hook is paced the same way, and the marks move at once', async function () {
    const notifier = new LocalNotifier();
    const waiters = new SyncWaiters(notifier, undefined, { wakesPerTick: 5 });
    const gen = new StreamIdGenerator(0);
    gen.onChanges((c) => waiters.onChanges(c));
    const order: string[] = [];
    const p = park(waiters, '!r', 23, order);
    const pos = gen.reserve();
    gen.complete(pos, { kind: 'receipt', stream: pos, roomId: '!r', userId: '@x:x' });
    await microtasks();
    assert.equal(order.length, 5);
    // A reader arriving while the others are still queued sees the change without waiting.
    assert.equal(await waiters.wait('@late:x', ['!r'], AT, 1_000), true);
    assert.deepEqual(await Promise.all(p), Array(23).fill(true));
  });

  it('a queued reader whose timeout fires first resolves once (not woken), and close() wakes the queue', async function () {
    const notifier = new LocalNotifier();
    const waiters = new SyncWaiters(notifier, undefined, { wakesPerTick: 1 });
    const order: string[] = [];
    const p = park(waiters, '!r', 3, order, 1);
    const rest = park(waiters, '!s', 3, order, 5_000);
    // Block the loop past the 1 ms timeouts, then publish: the timers fire before the queue drains.
    const until = Date.now() + 5;
    while (Date.now() < until) {
      /* spin */
    }
    notifier.publish({ stream: 1, roomId: '!r' });
    // The first is woken in the publishing turn; the timers of the other two fire before the
    // queue's next turn: they answer "timed out", and their late wake changes nothing.
    assert.deepEqual(await Promise.all(p), [true, false, false]);
    assert.deepEqual(order, ['!r#0']);
    for (let i = 0; i < 5 && waiters.pendingWakes > 0; i++) await turn();
    assert.equal(waiters.pendingWakes, 0);
    assert.equal(waiters.size, 3, 'only the other room is parked');
    notifier.publish({ stream: 2, roomId: '!s' });
    assert.equal(waiters.pendingWakes, 2);
    waiters.close();
    assert.deepEqual(await Promise.all(rest), [true, true, true], 'close wakes queued readers');
    assert.equal(waiters.pendingWakes, 0);
  });
});

describe('sync: paced wakes through the server', function () {
  this.timeout(180_000);
  let srv: TestServer;
  before(async function () {
    srv = await startTestServer();
  });
  after(async function () {
    await srv?.stop();
  });

  it('a room with 2.5 turns of members: every long-poll gets every message once, in order', async function () {
    const n = Math.round(DEFAULT_WAKES_PER_TICK * 2.5);
    const api = new Api(srv.url);
    const owner = await api.register('pace-owner');
    const room = await owner.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    assert.equal(room.status, 200);
    const roomId = room.body.room_id as string;
    const members: Array<Api & { userId: string }> = [];
    for (let i = 0; i < n; i++) {
      const m = await api.register(`pace-${i}`);
      assert.equal((await m.post(`/_matrix/client/v3/join/${enc(roomId)}`)).status, 200);
      members.push(m);
    }
    const filter = enc(JSON.stringify({ room: { timeline: { limit: 50 } }, presence: { types: [] } }));
    const since = await Promise.all(
      members.map(async (m) => {
        const r = await m.get(`/_matrix/client/v3/sync?filter=${filter}`);
        assert.equal(r.status, 200);
        return r.body.next_batch as string;
      }),
    );
    const bodies = ['one', 'two', 'three'];
    // Every member long-polls until it has all three messages.
    const got = members.map(async (m, i) => {
      const seen: string[] = [];
      let token = since[i];
      const deadline = Date.now() + 120_000;
      while (seen.length < bodies.length && Date.now() < deadline) {
        const r = await m.get(`/_matrix/client/v3/sync?filter=${filter}&timeout=30000&since=${enc(token)}`);
        assert.equal(r.status, 200);
        token = r.body.next_batch;
        for (const e of r.body.rooms?.join?.[roomId]?.timeline?.events ?? []) {
          if (e.type === 'm.room.message') seen.push(e.content.body as string);
        }
      }
      return seen;
    });
    // Let the long-polls park first, so the sends wake them rather than being read at once.
    const parked = async (): Promise<number> => {
      const text = await (await fetch(`${srv.metricsUrl}/metrics`)).text();
      return Number(/^hearth_sync_waiters (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const deadline = Date.now() + 60_000;
    while ((await parked()) < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await parked(), n, 'all long-polls parked');
    for (const [i, body] of bodies.entries()) {
      const r = await owner.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/pace${i}`, { msgtype: 'm.text', body });
      assert.equal(r.status, 200);
    }
    const seen = await Promise.all(got);
    for (const [i, s] of seen.entries()) assert.deepEqual(s, bodies, `member ${i}`);
  });
});
