// Room upgrades as matrix-js-sdk 43 clients see them against a Hearth test server: the
// capability-driven helpers (getVersion, getRecommendedVersion, userMayUpgradeRoom), upgradeRoom,
// the tombstone arriving over sync, following it, and the SDK's upgrade-chain helpers
// (findPredecessor, getRoomUpgradeHistory with verified links, getVisibleRooms hiding the
// replaced room), and an upgrade to v12 (creators' infinite power as the SDK computes it).

import { assert } from '../helpers/assert.js';
import type { MatrixClient, MatrixEvent, Room } from 'matrix-js-sdk';
import { loadSdk, printSdkTrailOnFailure, RequestRecorder, sdkClient, stopClients, until, untilPrepared, type Creds, type Sdk } from '../helpers/js-sdk.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';

describe('matrix-js-sdk 43: room upgrades', function () {
  this.timeout(30000);

  let sdk: Sdk;
  let srv: TestServer;
  const rec = new RequestRecorder();
  const running: MatrixClient[] = [];
  let aliceCreds: Creds;
  let bobCreds: Creds;
  let alice: MatrixClient;
  let bob: MatrixClient;
  let oldId: string;
  let newId: string;
  let v12Id: string;

  async function account(localpart: string): Promise<Creds> {
    const accounts = srv.hearth.services.accounts;
    const userId = await accounts.createAccount(localpart, null);
    const l = await accounts.login(userId, undefined, null, null);
    return { userId, accessToken: l.access_token, deviceId: l.device_id };
  }
  async function start(name: string, creds: Creds): Promise<MatrixClient> {
    const c = sdkClient(sdk, srv.url, rec, name, creds);
    running.push(c);
    await c.startClient({ initialSyncLimit: 20 });
    await untilPrepared(sdk, c, name);
    return c;
  }
  const roomOn = (c: MatrixClient, id: string, what: string): Promise<Room> =>
    until(c as any, [sdk.ClientEvent.Room, sdk.RoomStateEvent.Events], () => c.getRoom(id), what);
  const tombstoneOf = (r: Room): MatrixEvent | null => r.currentState.getStateEvents('m.room.tombstone', '');

  before(async function () {
    sdk = await loadSdk();
    srv = await startTestServer();
    aliceCreds = await account('alice');
    bobCreds = await account('bob');
    const a = new Api(srv.url, aliceCreds.accessToken);
    const created = await a.post('/_matrix/client/v3/createRoom', { preset: 'public_chat', room_version: '10', name: 'Upgrade me', topic: 'old times' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    oldId = created.body.room_id;
    const joined = await new Api(srv.url, bobCreds.accessToken).post(`/_matrix/client/v3/join/${encodeURIComponent(oldId)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
    alice = await start('alice', aliceCreds);
    bob = await start('bob', bobCreds);
  });

  afterEach(function () {
    printSdkTrailOnFailure(this, rec, 40, 30);
  });

  after(async () => {
    await stopClients(running, rec);
    await srv?.stop();
  });

  it('before: the room is v10, which /capabilities lists as stable, so no upgrade is recommended; only alice may upgrade', async () => {
    const room = await roomOn(bob, oldId, 'bob to have the room');
    assert.equal(room.getVersion(), '10');
    const caps = await bob.getCapabilities();
    assert.equal(caps['m.room_versions']?.available['10'], 'stable');
    assert.deepEqual(await room.getRecommendedVersion(), { version: '10', needsUpgrade: false, urgent: false });
    assert.equal(room.userMayUpgradeRoom(aliceCreds.userId), true);
    assert.equal(room.userMayUpgradeRoom(bobCreds.userId), false);
    assert.equal(room.findPredecessor(), null, 'an original room has no predecessor');
  });

  it('bob cannot upgrade (403 M_FORBIDDEN through the SDK); alice upgradeRoom()s to 11', async () => {
    await assert.rejects(bob.upgradeRoom(oldId, '11'), (err: any) => err.httpStatus === 403 && err.errcode === 'M_FORBIDDEN');
    await assert.rejects(alice.upgradeRoom(oldId, '9999'), (err: any) => err.httpStatus === 400 && err.errcode === 'M_UNSUPPORTED_ROOM_VERSION');
    const res = await alice.upgradeRoom(oldId, '11');
    newId = res.replacement_room;
    assert.match(newId, /^!/);
    // The upgrader is in the new room straight away.
    const room = await roomOn(alice, newId, 'alice to get the new room');
    await until(alice as any, [sdk.RoomEvent.MyMembership], () => room.getMyMembership() === 'join', 'alice joined');
  });

  it('bob sees m.room.tombstone in the old room over sync, and follows it with joinRoom', async () => {
    const old = bob.getRoom(oldId)!;
    const tomb = await until(bob as any, [sdk.RoomStateEvent.Events], () => tombstoneOf(old), 'bob to see the tombstone');
    assert.equal(tomb.getContent().replacement_room, newId);
    assert.equal(tomb.getSender(), aliceCreds.userId);
    // The old room's chatter is shut: bob's message is refused.
    await assert.rejects(bob.sendTextMessage(oldId, 'still here?'), (err: any) => err.httpStatus === 403);

    await bob.joinRoom(tomb.getContent().replacement_room);
    const room = await roomOn(bob, newId, 'bob to get the new room');
    await until(bob as any, [sdk.RoomEvent.MyMembership], () => room.getMyMembership() === 'join', 'bob joined the new room');
  });

  it('on the new room: findPredecessor() names the old room and its tombstone; version, name and topic came along', async () => {
    const room = bob.getRoom(newId)!;
    await until(bob as any, [sdk.RoomStateEvent.Events], () => room.currentState.getStateEvents('m.room.create', ''), 'create event');
    const tomb = tombstoneOf(bob.getRoom(oldId)!)!;
    assert.deepEqual(room.findPredecessor(), { roomId: oldId, eventId: tomb.getId() });
    assert.equal(room.getVersion(), '11');
    assert.equal(room.name, 'Upgrade me');
    assert.equal(room.currentState.getStateEvents('m.room.topic', '')?.getContent().topic, 'old times');
    assert.deepEqual(await room.getRecommendedVersion(), { version: '11', needsUpgrade: false, urgent: false });
    assert.equal(room.userMayUpgradeRoom(aliceCreds.userId), true, 'power levels came along');
    assert.equal(room.userMayUpgradeRoom(bobCreds.userId), false);
  });

  it('getRoomUpgradeHistory (links verified both ways) and getVisibleRooms', async () => {
    for (const from of [oldId, newId]) {
      assert.deepEqual(bob.getRoomUpgradeHistory(from, true).map((r) => r.roomId), [oldId, newId], `history from ${from}`);
    }
    const visible = bob.getVisibleRooms().map((r) => r.roomId);
    assert.ok(visible.includes(newId), 'the new room is visible');
    assert.ok(!visible.includes(oldId), 'the replaced room is hidden once its successor is joined');
  });

  it('the new room works: bob talks, alice hears', async () => {
    const { event_id } = await bob.sendTextMessage(newId, 'hello in the new room');
    const ev = await until(alice as any, [sdk.RoomEvent.Timeline], () => alice.getRoom(newId)?.findEventById(event_id), 'alice to get it');
    assert.equal(ev.getContent().body, 'hello in the new room');
  });
  it('11 -> 12 with bob as additional creator: both are creators (infinite power) in the SDK; findPredecessor has the room only', async () => {
    const res = await alice.upgradeRoom(newId, '12', [bobCreds.userId]);
    v12Id = res.replacement_room;
    assert.match(v12Id, /^![A-Za-z0-9_-]{43}$/);
    const old = bob.getRoom(newId)!;
    const tomb = await until(bob as any, [sdk.RoomStateEvent.Events], () => tombstoneOf(old), 'bob to see the second tombstone');
    assert.equal(tomb.getContent().replacement_room, v12Id);
    await bob.joinRoom(v12Id);
    const room = await roomOn(bob, v12Id, 'bob to get the v12 room');
    await until(bob as any, [sdk.RoomEvent.MyMembership, sdk.RoomStateEvent.Events], () => room.getMyMembership() === 'join' && room.currentState.getStateEvents('m.room.create', ''), 'bob joined the v12 room');
    assert.equal(room.getVersion(), '12');
    assert.deepEqual(room.findPredecessor(), { roomId: newId, eventId: undefined });
    for (const u of [aliceCreds.userId, bobCreds.userId]) {
      await until(bob as any, [sdk.RoomStateEvent.Members, sdk.RoomStateEvent.Events], () => room.getMember(u), `${u} as a member`);
      assert.equal(room.getMember(u)!.powerLevel, Infinity, `${u} is a creator`);
      assert.equal(room.userMayUpgradeRoom(u), true);
    }
    assert.deepEqual(bob.getRoomUpgradeHistory(v12Id, true).map((r) => r.roomId), [oldId, newId, v12Id]);
    const visible = bob.getVisibleRooms().map((r) => r.roomId);
    assert.ok(visible.includes(v12Id) && !visible.includes(newId) && !visible.includes(oldId), visible.join(' '));
    // v12 is the server's default: no upgrade recommended.
    assert.deepEqual(await room.getRecommendedVersion(), { version: '12', needsUpgrade: false, urgent: false });
  });
});
