// FederationE2ee.memberJoined: the presence work a join starts waits in a queue that is coalesced
// per (room, joining server) and bounded, dropping the oldest work (counted) when full. Driven
// directly with in-memory collaborators: the room store blocks until released, so the queue's
// size under a flood of joins is observable.

import pino from 'pino';
import { assert } from '../helpers/assert.js';
import { FederationE2ee } from '../../src/federation/e2ee-edus.js';
import { Metrics } from '../../src/observability/metrics.js';
import { startFederated } from '../helpers/federation.js';
import { freePort } from '../helpers/ports.js';

const ME = 'here.example';

function harness(maxJoinWork?: number, members: Array<{ userId: string; stream: number }> = [{ userId: `@me:${ME}`, stream: 1 }]) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const sent: Array<{ to: string[]; roomOf: string }> = [];
  let current = '';
  const presence = {
    enabled: true,
    listeners: [],
    get: (userId: string) => ({ userId, pos: 1, state: 'online', lastActiveTs: 0, currentlyActive: true, statusMsg: null }),
  };
  const fed = new FederationE2ee({
    serverName: ME,
    e2ee: { keys: { listeners: [] }, toDevice: {} } as never,
    e2eeStore: {} as never,
    cursors: {} as never,
    presence: presence as never,
    rooms: {
      getRoomsForUser: async () => [],
      getRoomMembers: async (roomId: string) => {
        await gate;
        current = roomId;
        return members;
      },
    } as never,
    client: {} as never,
    sender: { sendEdu: (to: Iterable<string>) => void sent.push({ to: [...to], roomOf: current }) } as never,
    serversSharing: async () => new Set(),
    serversInRoom: async () => new Set(['x.example', 'y.example']),
    position: () => 0,
    logger: pino({ level: 'silent' }),
    now: Date.now,
    maxJoinWork,
  });
  return { fed, sent, release };
}

describe('federation: presence work for joins is coalesced and bounded', () => {
  it('many joins of one server to one room make one piece of work', async () => {
    const { fed, sent, release } = harness();
    fed.memberJoined('!first:x', '@a:x.example'); // in flight, blocked on the store
    for (let i = 0; i < 1000; i++) fed.memberJoined('!busy:x', `@u${i % 3}:x.example`);
    fed.memberJoined('!busy:x', '@w:y.example');
    release();
    await fed.settled();
    assert.deepEqual(
      sent.map((s) => `${s.roomOf} ${s.to.join(',')}`),
      ['!first:x x.example', '!busy:x x.example', '!busy:x y.example'],
    );
    assert.equal(fed.droppedJoinWork, 0);
  });

  it('a flood past the bound drops the oldest waiting work and counts it', async () => {
    const { fed, sent, release } = harness(100);
    for (let i = 0; i < 1000; i++) fed.memberJoined(`!r${i}:x`, '@a:x.example');
    // The first is in flight; of the 999 that waited, the newest 100 are kept.
    assert.equal(fed.droppedJoinWork, 899);
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.registerCount('hearth_presence_join_work_dropped', 'dropped', () => fed.droppedJoinWork);
    assert.match(await metrics.render(), /^hearth_presence_join_work_dropped 899$/m);
    release();
    await fed.settled();
    const rooms = sent.map((s) => s.roomOf);
    assert.equal(rooms.length, 101);
    assert.equal(rooms[0], '!r0:x');
    assert.deepEqual(rooms.slice(1), Array.from({ length: 100 }, (_, i) => `!r${900 + i}:x`));
    // Work that arrives after a drain finished is still done.
    fed.memberJoined('!late:x', '@b:x.example');
    await fed.settled();
    assert.equal(sent.at(-1)?.roomOf, '!late:x');
  });

  it('two users of one server joining back to back: the first join sends our presence', async () => {
    // Both joins are persisted (in the member list) before either's work runs.
    const members = [
      { userId: `@me:${ME}`, stream: 1 },
      { userId: '@a:x.example', stream: 10 },
      { userId: '@b:x.example', stream: 11 },
    ];
    const { fed, sent, release } = harness(undefined, members);
    fed.memberJoined('!r:x', '@a:x.example', 10); // in flight, blocked on the store
    fed.memberJoined('!r:x', '@b:x.example', 11); // waits: another piece of work for the same key
    release();
    await fed.settled();
    // @a's join was the server's first: our presence goes to it once; @b's finds @a before it.
    assert.deepEqual(sent.map((s) => `${s.roomOf} ${s.to.join(',')}`), ['!r:x x.example']);
  });

  it('a server with a member from before the join is not sent our presence again', async () => {
    const members = [
      { userId: `@me:${ME}`, stream: 1 },
      { userId: '@old:x.example', stream: 5 },
      { userId: '@new:x.example', stream: 12 },
    ];
    const { fed, sent, release } = harness(undefined, members);
    fed.memberJoined('!r:x', '@new:x.example', 12);
    release();
    await fed.settled();
    assert.deepEqual(sent, []);
  });

  it('a federating server exposes the count on /metrics', async function () {
    this.timeout(30_000);
    const srv = await startFederated(await freePort());
    try {
      const text = await (await fetch(`${srv.metricsUrl}/metrics`)).text();
      assert.match(text, /^hearth_presence_join_work_dropped 0$/m);
    } finally {
      await srv.stop();
    }
  });
});
