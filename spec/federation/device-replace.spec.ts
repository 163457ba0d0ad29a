// Replaced device keys and remote device lists across two real Hearth servers: a device that
// uploads different identity keys reaches the other server as an m.device_list_update whose
// prev_id follows on (applied without a resync), and a remote user's list is dropped as soon as
// the servers share no room, then fetched again when a room is shared again (spec: while no room
// is shared no updates arrive, so the list cannot be trusted).

import { assert } from '../helpers/assert.js';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, startPair, syncUntil, waitFor } from '../helpers/federation.js';
import { PASSWORD, syncToken, TestDevice, uploadDevice, type User } from '../api/keys-helpers.js';

const V3 = '/_matrix/client/v3';

describe('federation: replaced device keys and device lists of users we stop sharing a room with', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let carol: User; // @A
  let dave: User; // @B
  let roomId: string;

  const edAtB = async (): Promise<string | undefined> => {
    const q = await dave.post(`${V3}/keys/query`, { device_keys: { [carol.userId]: [] } });
    assert.equal(q.status, 200, JSON.stringify(q.body));
    return q.body.device_keys[carol.userId]?.[carol.deviceId]?.keys?.[`ed25519:${carol.deviceId}`];
  };
  const edOf = (d: TestDevice) => (d.deviceKeys().keys as Record<string, string>)[`ed25519:${carol.deviceId}`];
  const daveJoins = async () => {
    assert.equal((await carol.post(`${V3}/rooms/${enc(roomId)}/invite`, { user_id: dave.userId })).status, 200);
    await syncUntil(dave, (body) => body.rooms?.invite?.[roomId]);
    const j = await dave.post(`${V3}/rooms/${enc(roomId)}/join`, {});
    assert.equal(j.status, 200, JSON.stringify(j.body));
  };

  before(async () => {
    ({ a, b } = await startPair());
    carol = await new Api(a.url).register('carol', PASSWORD);
    dave = await new Api(b.url).register('dave', PASSWORD);
    await uploadDevice(carol, new TestDevice(carol.userId, carol.deviceId), 1);
    await uploadDevice(dave, new TestDevice(dave.userId, dave.deviceId), 1);
    const created = await carol.post(`${V3}/createRoom`, { preset: 'private_chat' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id;
    await daveJoins();
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
  });

  it("carol's replaced identity keys reach B as the next update in sequence: B's list and dave's device_lists.changed", async () => {
    const remote = b.hearth.federation!.e2ee!.remote;
    await edAtB();
    await waitFor(async () => typeof remote.cached(carol.userId)?.streamId === 'number', 15_000, "B holds carol's list with a stream ID");
    await remote.settled();
    const resyncs = remote.resyncs;
    const since = await syncToken(dave);
    const replacement = new TestDevice(carol.userId, carol.deviceId);
    const up = await carol.post(`${V3}/keys/upload`, { device_keys: replacement.deviceKeys() });
    assert.equal(up.status, 200, JSON.stringify(up.body));
    await syncUntil(dave, (body) => (body.device_lists?.changed?.includes(carol.userId) ? true : undefined), 15_000, since);
    await waitFor(async () => (await edAtB()) === edOf(replacement), 15_000, 'B serves the new key');
    assert.equal(remote.resyncs, resyncs, "applied to B's list: its prev_id named the stream ID B was at");
  });

  it("when B shares no room with carol her list is dropped at once, and fetched again when dave rejoins", async () => {
    const remote = b.hearth.federation!.e2ee!.remote;
    await edAtB();
    await waitFor(async () => remote.cached(carol.userId) !== undefined, 15_000, "B holds carol's list");
    assert.equal((await dave.post(`${V3}/rooms/${enc(roomId)}/leave`, {})).status, 200);
    await waitFor(async () => (await remote.settled(), remote.cached(carol.userId) === undefined), 15_000, "B drops carol's list");

    // Changed while B is out of the room: A tells B nothing.
    const later = new TestDevice(carol.userId, carol.deviceId);
    assert.equal((await carol.post(`${V3}/keys/upload`, { device_keys: later.deviceKeys() })).status, 200);
    const since = await syncToken(dave);
    const resyncs = remote.resyncs;
    await daveJoins();
    await waitFor(async () => (await remote.settled(), (remote.cached(carol.userId)?.devices.get(carol.deviceId)?.keys as Record<string, string> | undefined)?.[`ed25519:${carol.deviceId}`] === edOf(later)), 15_000, 'B fetches the list again on the rejoin');
    assert.ok(remote.resyncs > resyncs, 'through /user/devices');
    assert.equal(await edAtB(), edOf(later));
    await syncUntil(dave, (body) => (body.device_lists?.changed?.includes(carol.userId) ? true : undefined), 15_000, since);
  });
});
