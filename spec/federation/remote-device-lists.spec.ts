// RemoteDeviceLists (src/federation/remote-devices.ts) against a scripted origin server and an
// in-memory membership table: what SyTest's fake servers send (tests/50federation/40devicelists.pl).
// A device whose keys name no user or device (`keys: {device_keys: {}}`) is still one of the
// user's devices: listed after a /user/devices resync, updated by an m.device_list_update whose
// prev_id follows on (display name in unsigned), and fetched again after a leave and a rejoin.
// A device whose keys name another user or device is still dropped.
// A resync (a gap in prev_id, or an update for a list we do not hold) marks the user changed on
// receipt and again only once the fetched list is held, so a /sync token taken while the fetch
// was in flight is followed by a `changed` naming them, and a client woken by it reads the new list.

import assert from 'node:assert/strict';
import { pino } from 'pino';
import { RemoteDeviceLists } from '../../src/federation/remote-devices.js';
import type { JsonObject, JsonValue } from '../../src/protocol/types.js';
import type { Membership, MembershipRecord } from '../../src/store/types.js';

const ME = 'local.test';
const THEM = 'remote.test';
const alice = `@alice:${ME}`;
const zed = `@zed:${THEM}`;
const ROOM = `!r:${THEM}`;

describe('federation/remote-devices: device lists of a remote user', () => {
  let members: Map<string, Membership>;
  let answers: Array<JsonValue | Promise<JsonValue>>;
  let requests: string[];
  let changed: string[];
  /** What the cache held for zed at each mark: [stream ID, device IDs], or null when nothing. */
  let heldAtMark: Array<[number | null, string[]] | null>;
  let lists: RemoteDeviceLists;

  beforeEach(() => {
    members = new Map([[alice, 'join'], [zed, 'join']]);
    answers = [];
    requests = [];
    changed = [];
    heldAtMark = [];
    const record = (userId: string, membership: Membership): MembershipRecord => ({ roomId: ROOM, userId, membership, eventId: '$e', stream: 1 });
    lists = new RemoteDeviceLists({
      client: {
        request: async (dest: string, req: { method: string; path: string }) => {
          requests.push(`${dest} ${req.method} ${req.path}`);
          const a = answers.shift();
          if (a === undefined) throw new Error('no answer scripted');
          return a;
        },
      } as never,
      e2ee: {
        markDeviceListChanged: async (u: string) => {
          const c = lists.cached(zed);
          heldAtMark.push(c ? [c.streamId, [...c.devices.keys()].sort()] : null);
          return (changed.push(u), changed.length);
        },
      },
      rooms: {
        getRoomsForUser: async (u: string, ms?: Membership[]) => (members.has(u) && (!ms || ms.includes(members.get(u)!)) ? [record(u, members.get(u)!)] : []),
        getRoomMembers: async (_r: string, ms?: Membership[]) => [...members].filter(([, m]) => !ms || ms.includes(m)).map(([u, m]) => record(u, m)),
      },
      keys: { announce: async () => undefined },
      serverName: ME,
      logger: pino({ level: 'silent' }),
    });
  });

  const devicesAnswer = (streamId: number, ids: string[]): JsonObject => ({ user_id: zed, stream_id: streamId, devices: ids.map((id) => ({ device_id: id, keys: { device_keys: {} } })) });
  /** An answer the test releases itself: the fetch stays in flight until then. */
  const held = (): { answer: Promise<JsonValue>; release: (v: JsonValue) => void } => {
    let release!: (v: JsonValue) => void;
    const answer = new Promise<JsonValue>((r) => (release = r));
    return { answer, release };
  };
  const query = async () => (await lists.queryKeys(THEM, { [zed]: [] }, 5_000)).device_keys[zed] as JsonObject;

  it('a client query with nothing cached resyncs with /user/devices; devices whose keys name nobody are listed', async () => {
    answers.push(devicesAnswer(1, ['dev1', 'dev2']));
    const got = await query();
    assert.deepEqual(Object.keys(got).sort(), ['dev1', 'dev2']);
    assert.deepEqual(got.dev1, { device_keys: {} });
    assert.deepEqual(requests, [`${THEM} GET /_matrix/federation/v1/user/devices/${encodeURIComponent(zed)}`]);
    // Cached now: a second query asks nobody.
    assert.deepEqual(Object.keys(await query()).sort(), ['dev1', 'dev2']);
    assert.equal(requests.length, 1);
  });

  it('an update with nothing cached resyncs; the next one (prev_id following on) applies, display name in unsigned', async () => {
    answers.push(devicesAnswer(1, ['dev']));
    await lists.deviceListUpdate(THEM, { user_id: zed, device_id: 'dev', stream_id: 1, keys: { device_keys: {} } });
    await lists.settled();
    assert.deepEqual(changed, [zed, zed], 'marked on receipt and once the resync filled the cache');
    assert.deepEqual(Object.keys(await query()), ['dev']);
    await lists.deviceListUpdate(THEM, { user_id: zed, device_id: 'dev', device_display_name: 'test display name', prev_id: [1], stream_id: 2, keys: { device_keys: {} } });
    const dev = (await query()).dev as JsonObject;
    assert.deepEqual(dev.unsigned, { device_display_name: 'test display name' });
    assert.equal(requests.length, 1, 'applied to the cache, no second resync');
    assert.equal(lists.cached(zed)?.streamId, 2);
  });

  it('keys naming another user or device are dropped', async () => {
    answers.push({
      user_id: zed,
      stream_id: 3,
      devices: [
        { device_id: 'mine', keys: { user_id: zed, device_id: 'mine', keys: {} } },
        { device_id: 'spoof', keys: { user_id: alice, device_id: 'spoof', keys: {} } },
        { device_id: 'other', keys: { user_id: zed, device_id: 'elsewhere', keys: {} } },
      ],
    });
    assert.deepEqual(Object.keys(await query()), ['mine']);
  });

  it('after our last member leaves and rejoins, the list is fetched again', async () => {
    answers.push(devicesAnswer(1, ['dev1']));
    assert.deepEqual(Object.keys(await query()), ['dev1']);
    members.set(alice, 'leave');
    await lists.membershipChanged(ROOM, alice, 'leave');
    assert.equal(lists.cached(zed), undefined, 'dropped: updates stop coming');
    members.set(alice, 'join');
    answers.push(devicesAnswer(2, ['dev1', 'dev2']));
    await lists.membershipChanged(ROOM, alice, 'join');
    await lists.settled();
    assert.deepEqual(Object.keys(await query()).sort(), ['dev1', 'dev2']);
    assert.equal(requests.length, 2);
  });

  it('a gap in prev_id: marked changed on receipt and again once the fetched list is held, so a token taken during the fetch is followed by a change', async () => {
    answers.push(devicesAnswer(1, ['dev']));
    assert.deepEqual(Object.keys(await query()), ['dev']);
    changed.length = 0;
    heldAtMark.length = 0;

    // Stream ID 2 never arrives; 3 names it as prev_id.
    const fetch = held();
    answers.push(fetch.answer);
    await lists.deviceListUpdate(THEM, { user_id: zed, device_id: 'dev', device_display_name: 'renamed', prev_id: [2], stream_id: 3, keys: { device_keys: {} } });
    assert.deepEqual(changed, [zed], 'marked on receipt (the list we served may be stale)');
    assert.deepEqual(heldAtMark, [null], 'the stale list was dropped before that mark');
    assert.equal(requests.length, 2, 'resyncing with /user/devices');
    // A client syncs now (its token covers the first mark), while the fetch is in flight.
    const tokenDuringFetch = changed.length;

    fetch.release(devicesAnswer(3, ['dev', 'dev2']));
    await lists.settled();
    assert.ok(changed.length > tokenDuringFetch, 'a change after that token: its next incremental sync names zed');
    assert.deepEqual(heldAtMark.at(-1), [3, ['dev', 'dev2']], 'marked only once the fetched list is held: a woken client reads it');
    assert.deepEqual(Object.keys(await query()).sort(), ['dev', 'dev2']);
    assert.equal(requests.length, 2, 'served from the cache');

    // The next update in sequence applies to the fetched list, and is marked too.
    await lists.deviceListUpdate(THEM, { user_id: zed, device_id: 'dev3', prev_id: [3], stream_id: 4, keys: { device_keys: {} } });
    assert.equal(requests.length, 2, 'no resync: prev_id names the stream ID /user/devices gave');
    assert.deepEqual(heldAtMark.at(-1), [4, ['dev', 'dev2', 'dev3']]);
  });

  it('a resync that fails is not reported as a change after it; the next client query fetches the list again', async () => {
    const fetch = held();
    answers.push(fetch.answer);
    await lists.deviceListUpdate(THEM, { user_id: zed, device_id: 'dev', stream_id: 1, keys: { device_keys: {} } });
    assert.deepEqual(changed, [zed]);
    fetch.release({ user_id: zed, stream_id: 'not a number', devices: [] });
    await lists.settled();
    assert.deepEqual(changed, [zed], 'nothing new is held, so nothing new to report');
    assert.equal(lists.cached(zed), undefined);
    answers.push(devicesAnswer(2, ['dev']));
    assert.deepEqual(Object.keys(await query()), ['dev']);
    assert.equal(requests.length, 2);
    assert.deepEqual(heldAtMark.at(-1), [2, ['dev']]);
  });

  it('an update arriving while a resync is in flight: the stale fetch fills nothing, a fresh one follows and is marked once held', async () => {
    const first = held();
    answers.push(first.answer);
    await lists.deviceListUpdate(THEM, { user_id: zed, device_id: 'dev', stream_id: 1, keys: { device_keys: {} } });
    // stream ID 2 arrives while the first fetch (which may predate it) is still out.
    await lists.deviceListUpdate(THEM, { user_id: zed, device_id: 'dev2', prev_id: [1], stream_id: 2, keys: { device_keys: {} } });
    answers.push(devicesAnswer(2, ['dev', 'dev2']));
    first.release(devicesAnswer(1, ['dev']));
    await lists.settled();
    await new Promise((r) => setImmediate(r));
    await lists.settled();
    assert.equal(requests.length, 2, 'fetched again after the stale answer');
    assert.deepEqual(heldAtMark.at(-1), [2, ['dev', 'dev2']], 'the last mark comes with the fresh list held');
    assert.deepEqual(Object.keys(await query()).sort(), ['dev', 'dev2']);
  });
});
