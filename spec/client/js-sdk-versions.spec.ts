// Real matrix-js-sdk 43 clients in rooms of versions 1, 6, 11 and 12 on Hearth: create, join,
// send both ways through each client's sync loop, paginate a fresh client back to m.room.create,
// redact, kick and ban. Clients must not notice the version, except where the version shows on
// purpose: v12 room IDs (the create event's hash) and v12 creators' infinite power.

import { assert } from '../helpers/assert.js';
import type { MatrixClient, MatrixEvent, Room } from 'matrix-js-sdk';
import { loadSdk, printSdkTrailOnFailure, RequestRecorder, sdkClient, stopClients, until, untilPrepared, type Creds, type RecordedRequest, type Sdk } from '../helpers/js-sdk.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const VERSIONS = ['1', '6', '11', '12'];

describe('matrix-js-sdk 43 in rooms of versions 1, 6, 11 and 12', function () {
  this.timeout(60000);

  let sdk: Sdk;
  let srv: TestServer;
  const rec = new RequestRecorder();
  const running: MatrixClient[] = [];
  let aliceCreds: Creds;
  let bobCreds: Creds;
  let alice: MatrixClient;
  let bob: MatrixClient;

  async function account(localpart: string): Promise<Creds> {
    const userId = await srv.hearth.services.accounts.createAccount(localpart, null);
    return login(userId);
  }
  async function login(userId: string): Promise<Creds> {
    const l = await srv.hearth.services.accounts.login(userId, undefined, null, null);
    return { userId, accessToken: l.access_token, deviceId: l.device_id };
  }
  async function start(name: string, creds: Creds, initialSyncLimit = 20): Promise<MatrixClient> {
    const c = sdkClient(sdk, srv.url, rec, name, creds);
    running.push(c);
    await c.startClient({ initialSyncLimit, pendingEventOrdering: sdk.PendingEventOrdering.Detached });
    await untilPrepared(sdk, c, name);
    return c;
  }
  const messages = (room: Room): MatrixEvent[] => room.getLiveTimeline().getEvents().filter((e) => e.getType() === 'm.room.message');
  const membership = (c: MatrixClient, roomId: string, userId: string) => c.getRoom(roomId)?.getMember(userId)?.membership;

  before(async function () {
    sdk = await loadSdk();
    srv = await startTestServer();
    aliceCreds = await account('alice');
    bobCreds = await account('bob');
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

  for (const version of VERSIONS) {
    describe(`room version ${version}`, () => {
      let roomId: string;
      const sent: string[] = [];

      it('alice creates the room, bob joins; both clients see the version, the room ID and the creator\'s power', async () => {
        ({ room_id: roomId } = await alice.createRoom({ room_version: version, preset: sdk.Preset.PublicChat, name: `v${version}` }));
        if (version === '12') assert.match(roomId, /^![A-Za-z0-9_-]{43}$/, 'a v12 room ID is a hash with no server');
        else assert.match(roomId, /^!.+:localhost$/);
        await bob.joinRoom(roomId);
        for (const c of [alice, bob]) {
          const room = await until(c as any, [sdk.ClientEvent.Room, sdk.RoomMemberEvent.Membership], () => {
            const r = c.getRoom(roomId);
            return r?.getMember(bobCreds.userId)?.membership === 'join' ? r : undefined;
          }, `${c.getUserId()} to see bob joined`);
          assert.equal(room.getVersion(), version);
          assert.equal(room.roomId, roomId);
          const create = room.currentState.getStateEvents('m.room.create', '')!;
          assert.ok(create, 'the create event is in state');
          assert.equal(create.getSender(), aliceCreds.userId);
          if (version === '12') assert.equal(roomId, '!' + create.getId()!.slice(1), 'room ID = create event ID with !');
          const creator = room.getMember(aliceCreds.userId)!;
          const member = room.getMember(bobCreds.userId)!;
          if (version === '12') {
            assert.equal(creator.powerLevel, Infinity, 'a v12 creator has infinite power in the client');
            const pl = room.currentState.getStateEvents('m.room.power_levels', '')!.getContent();
            assert.equal(pl.users?.[aliceCreds.userId], undefined, 'and is not in power_levels.users');
          } else {
            assert.equal(creator.powerLevel, 100);
          }
          assert.equal(member.powerLevel, 0);
          assert.equal(room.currentState.maySendStateEvent('m.room.name', aliceCreds.userId), true);
          assert.equal(room.currentState.maySendStateEvent('m.room.name', bobCreds.userId), false);
        }
      });

      it('sends both ways; each side receives the other through sync', async () => {
        for (let i = 0; i < 3; i++) {
          sent.push((await alice.sendTextMessage(roomId, `a${i}`)).event_id);
          sent.push((await bob.sendTextMessage(roomId, `b${i}`)).event_id);
        }
        for (const c of [alice, bob]) {
          const got = await until(c as any, [sdk.RoomEvent.Timeline, sdk.RoomEvent.LocalEchoUpdated], () => {
            const ids = messages(c.getRoom(roomId)!).filter((e) => e.status === null).map((e) => e.getId());
            return sent.every((id) => ids.includes(id)) ? ids : undefined;
          }, `${c.getUserId()} to hold all messages`);
          assert.deepEqual(got.filter((id) => sent.includes(id!)), sent, 'in sending order');
        }
        if (Number(version) <= 2) for (const id of sent) assert.match(id, /^\$[A-Za-z0-9]+:localhost$/, 'v1/v2 server-assigned IDs');
        else for (const id of sent) assert.match(id, /^\$[A-Za-z0-9_-]{43}$/);
      });

      it('a fresh client paginates back to m.room.create', async () => {
        const bob2 = await start(`bob2-v${version}`, await login(bobCreds.userId), 2);
        const room = bob2.getRoom(roomId)!;
        assert.ok(room, 'the fresh client knows the room');
        for (let i = 0; i < 30 && room.getLiveTimeline().getPaginationToken(sdk.EventTimeline.BACKWARDS) !== null; i++) await bob2.scrollback(room, 5);
        const events = room.getLiveTimeline().getEvents();
        assert.equal(events[0]?.getType(), 'm.room.create', `history starts at m.room.create, got ${events[0]?.getType()}`);
        const ids = events.map((e) => e.getId());
        assert.equal(new Set(ids).size, ids.length, 'no event twice');
        assert.deepEqual(messages(room).map((e) => e.getId()), sent);
      });

      it('redacts: the other client sees the event redacted', async () => {
        const [mine, bobs] = [sent[0], sent[1]];
        await alice.redactEvent(roomId, mine);
        await alice.redactEvent(roomId, bobs, undefined, { reason: 'moderation' });
        for (const c of [alice, bob]) {
          await until(c as any, [sdk.RoomEvent.Redaction, sdk.RoomEvent.Timeline], () => {
            const r = c.getRoom(roomId)!;
            return [mine, bobs].every((id) => r.findEventById(id)?.isRedacted()) || undefined;
          }, `${c.getUserId()} to see both redactions`);
          const ev = c.getRoom(roomId)!.findEventById(bobs)!;
          assert.deepEqual(ev.getContent(), {});
          assert.equal(ev.getUnsigned().redacted_because?.content?.reason, 'moderation');
        }
        // bob has no redact power over alice's messages.
        await assert.rejects(bob.redactEvent(roomId, sent[2]), (e: any) => e.httpStatus === 403 && e.errcode === 'M_FORBIDDEN');
      });

      it('kicks and bans: bob\'s client follows his membership', async () => {
        await alice.kick(roomId, bobCreds.userId, 'bye');
        await until(bob as any, [sdk.RoomMemberEvent.Membership], () => bob.getRoom(roomId)?.getMyMembership() === 'leave', 'bob to see the kick');
        assert.equal(bob.getRoom(roomId)!.getMember(bobCreds.userId)!.events.member!.getSender(), aliceCreds.userId);
        await bob.joinRoom(roomId);
        await until(alice as any, [sdk.RoomMemberEvent.Membership], () => membership(alice, roomId, bobCreds.userId) === 'join', 'alice to see bob back');
        // bob cannot kick the creator.
        await assert.rejects(bob.kick(roomId, aliceCreds.userId), (e: any) => e.httpStatus === 403);
        await alice.ban(roomId, bobCreds.userId, 'gone');
        await until(bob as any, [sdk.RoomMemberEvent.Membership], () => bob.getRoom(roomId)?.getMyMembership() === 'ban', 'bob to see the ban');
        await assert.rejects(bob.joinRoom(roomId), (e: any) => e.httpStatus === 403);
        await until(alice as any, [sdk.RoomMemberEvent.Membership], () => membership(alice, roomId, bobCreds.userId) === 'ban', 'alice to see the ban');
        await alice.unban(roomId, bobCreds.userId);
        await until(alice as any, [sdk.RoomMemberEvent.Membership], () => membership(alice, roomId, bobCreds.userId) === 'leave', 'alice to see the unban');
      });
    });
  }

  // Nested so that mocha runs these after the per-version blocks above.
  describe('afterwards', () => {
    it('v12 additional_creators show as infinite power in the client', async () => {
      const { room_id: roomId } = await alice.createRoom({
        preset: sdk.Preset.PublicChat,
        creation_content: { additional_creators: [bobCreds.userId] },
      } as any);
      await bob.joinRoom(roomId);
      const room = await until(alice as any, [sdk.RoomMemberEvent.Membership, sdk.ClientEvent.Room], () => {
        const r = alice.getRoom(roomId);
        return r?.getMember(bobCreds.userId)?.membership === 'join' ? r : undefined;
      }, 'alice to see bob join');
      assert.equal(room.getVersion(), '12');
      assert.equal(room.getMember(aliceCreds.userId)!.powerLevel, Infinity);
      assert.equal(room.getMember(bobCreds.userId)!.powerLevel, Infinity);
    });

    it('the SDK met no 5xx and only the 4xx the tests provoked', async () => {
      const fiveXX = rec.requests.filter((r) => r.status >= 500);
      assert.deepEqual(fiveXX, [], rec.describe(fiveXX));
      const expected = (r: RecordedRequest) =>
        (r.status === 403 && (r.path.includes('/redact/') || r.path.endsWith('/kick') || r.path.includes('/join/'))) ||
        (r.status === 404 && r.errcode === 'M_UNRECOGNIZED' && r.path === '/_matrix/client/unstable/org.matrix.msc4143/rtc/transports') ||
        (r.status === 404 && r.errcode === 'M_NOT_FOUND' && r.path === '/_matrix/client/v3/room_keys/version');
      const unexpected = rec.requests.filter((r) => r.status >= 400 && !expected(r));
      assert.deepEqual(unexpected, [], rec.describe(unexpected));
    });
  });
});
