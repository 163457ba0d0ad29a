// RemoteDeviceLists (src/federation/remote-devices.ts) against a scripted origin server and an
// in-memory membership table: what SyTest's fake servers send (tests/50federation/40devicelists.pl).
// A device whose keys name no user or device (`keys: {device_keys: {}}`) is still one of the
// user's devices: listed after a /user/devices resync, updated by an m.device_list_update whose
// prev_id follows on (display name in unsigned), and fetched again after a leave and a rejoin.
// A device whose keys name another user or device is still dropped.

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
  let answers: JsonValue[];
  let requests: string[];
  let changed: string[];
  let lists: RemoteDeviceLists;

  beforeEach(() => {
    members = new Map([[alice, 'join'], [zed, 'join']]);
    answers = [];
    requests = [];
    changed = [];
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
      e2ee: { markDeviceListChanged: async (u: string) => (changed.push(u), changed.length) },
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
});
