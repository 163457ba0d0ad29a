// Real matrix-js-sdk 43 clients (the library Element is built on) against a Hearth test server:
// registration through the SDK's UIA handling, password login, the SDK's start-up sequence
// (filter creation and reuse), invites, messaging both ways through each client's own sync loop,
// local-echo matching, back-pagination, profile changes and account data. Every request the SDK
// makes is recorded so that the suite can also assert it never hit an unexpected 4xx or any 5xx.

import { assert } from '../helpers/assert.js';
import type { MatrixClient, MatrixEvent, Room } from 'matrix-js-sdk';
import { captureLogger, loadSdk, MapStorage, printSdkTrailOnFailure, RequestRecorder, sdkClient, stopClients, TimerTracker, until, untilPrepared, type Creds, type RecordedRequest, type Sdk } from '../helpers/js-sdk.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

const PASSWORD = 'a sdk test password';

describe('matrix-js-sdk 43 against Hearth', function () {
  this.timeout(30000);

  let sdk: Sdk;
  let srv: TestServer;
  const rec = new RequestRecorder();
  const running: MatrixClient[] = [];
  let aliceCreds: Creds;
  let bobCreds: Creds;
  let alice: MatrixClient;
  let bob: MatrixClient;
  /** Shared "localStorage" of alice's MemoryStore: remembers her filter id across clients. */
  const aliceStorage = new MapStorage();
  let roomId: string;
  let serverStopped = false;
  let timers: TimerTracker;
  const sockets = () => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP')).length;
  let baselineSockets = 0;

  const client = (name: string, creds: Creds, opts: Record<string, unknown> = {}): MatrixClient => sdkClient(sdk, srv.url, rec, name, creds, opts);

  async function start(c: MatrixClient, initialSyncLimit: number): Promise<void> {
    running.push(c);
    // As Element: local echoes wait in a pending list, the timeline holds only server events.
    await c.startClient({ initialSyncLimit, pendingEventOrdering: sdk.PendingEventOrdering.Detached });
    await untilPrepared(sdk, c, `${c.getUserId()}`);
  }

  const messages = (room: Room): MatrixEvent[] => room.getLiveTimeline().getEvents().filter((e) => e.getType() === 'm.room.message');
  const bodies = (events: MatrixEvent[]) => events.map((e) => e.getContent().body as string);

  before(async function () {
    sdk = await loadSdk();
    baselineSockets = sockets();
    timers = new TimerTracker();
    srv = await startTestServer();
  });

  afterEach(function () {
    printSdkTrailOnFailure(this, rec, 60, 40);
  });

  after(async () => {
    timers?.stop();
    await stopClients(running, rec);
    if (!serverStopped) await srv?.stop();
  });

  it('registers through the UIA dance: InteractiveAuth with m.login.dummy, and by hand from the 401', async () => {
    const anon = sdk.createClient({ baseUrl: srv.url, fetchFn: rec.fetchFor('anon'), logger: captureLogger(' anon') });

    // The way Element does it: InteractiveAuth drives registerRequest through the 401.
    const ia = new sdk.InteractiveAuth({
      matrixClient: anon,
      doRequest: (auth) => anon.registerRequest({ username: 'alice', password: PASSWORD, initial_device_display_name: 'alice sdk', auth: auth ?? undefined }),
      stateUpdated: () => undefined,
      requestEmailToken: async () => {
        throw new Error('no email stage expected');
      },
    });
    const a = (await ia.attemptAuth()) as any;
    assert.equal(a.user_id, '@alice:localhost');
    assert.ok(a.access_token && a.device_id, JSON.stringify(a));
    aliceCreds = { userId: a.user_id, accessToken: a.access_token, deviceId: a.device_id };

    // By hand: the first request fails with a MatrixError carrying flows + session.
    let err: any;
    try {
      await anon.registerRequest({ username: 'bob', password: PASSWORD });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof sdk.MatrixError, `expected a MatrixError, got ${err}`);
    assert.equal(err.httpStatus, 401);
    assert.deepEqual(err.data.flows, [{ stages: ['m.login.dummy'] }]);
    assert.equal(typeof err.data.session, 'string');
    const b = (await anon.registerRequest({ username: 'bob', password: PASSWORD, auth: { type: 'm.login.dummy', session: err.data.session } })) as any;
    assert.equal(b.user_id, '@bob:localhost');
    bobCreds = { userId: b.user_id, accessToken: b.access_token, deviceId: b.device_id };

    const reg = rec.of('anon').filter((r) => r.path === '/_matrix/client/v3/register');
    assert.deepEqual(reg.map((r) => r.status), [401, 200, 401, 200], rec.describe(reg));
    assert.equal(reg[1].body.auth.type, 'm.login.dummy', 'InteractiveAuth submitted the dummy stage');
    assert.equal(typeof reg[1].body.auth.session, 'string', 'with the session from the 401');
  });

  it('logs in with a password by localpart and by full MXID, and whoami reports the new devices', async () => {
    const anon = sdk.createClient({ baseUrl: srv.url, fetchFn: rec.fetchFor('anon'), logger: captureLogger(' anon') });
    const flows = await anon.loginFlows();
    assert.ok(flows.flows.some((f) => f.type === 'm.login.password'));

    const byLocalpart = await anon.loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'bob' }, password: PASSWORD });
    assert.equal(byLocalpart.user_id, '@bob:localhost');
    assert.notEqual(byLocalpart.device_id, bobCreds.deviceId, 'a login creates a new device');

    // The deprecated login() also installs the token on the client it was called on.
    const loginClient = sdk.createClient({ baseUrl: srv.url, fetchFn: rec.fetchFor('login'), logger: captureLogger(' login') });
    const byMxid = await loginClient.login('m.login.password', { identifier: { type: 'm.id.user', user: '@alice:localhost' }, password: PASSWORD });
    assert.equal(byMxid.user_id, '@alice:localhost');
    const who = await loginClient.whoami();
    assert.equal(who.user_id, '@alice:localhost');
    assert.equal(who.device_id, byMxid.device_id);

    const whoBob = await client('bob-local', { userId: byLocalpart.user_id, accessToken: byLocalpart.access_token, deviceId: byLocalpart.device_id }).whoami();
    assert.deepEqual([whoBob.user_id, whoBob.device_id], ['@bob:localhost', byLocalpart.device_id]);
    const aliceReg = client('alice-reg', aliceCreds);
    const whoAlice = await aliceReg.whoami();
    assert.deepEqual([whoAlice.user_id, whoAlice.device_id], [aliceCreds.userId, aliceCreds.deviceId]);
    const { devices } = await aliceReg.getDevices();
    assert.deepEqual(devices.map((d) => d.device_id).sort(), [aliceCreds.deviceId, byMxid.device_id].sort());
    assert.equal(devices.find((d) => d.device_id === aliceCreds.deviceId)?.display_name, 'alice sdk', 'initial_device_display_name kept');
  });

  it('starts syncing: the SDK creates its filter (POST) and long-polls /sync with that filter id', async () => {
    alice = client('alice', aliceCreds, { store: new sdk.MemoryStore({ localStorage: aliceStorage as unknown as Storage }) });
    bob = client('bob', bobCreds);
    await Promise.all([start(alice, 20), start(bob, 20)]);

    const reqs = rec.of('alice');
    const post = reqs.find((r) => r.method === 'POST' && r.path === `/_matrix/client/v3/user/${enc(aliceCreds.userId)}/filter`);
    assert.ok(post && post.status === 200, rec.describe(reqs));
    const filterId = aliceStorage.getItem('mxjssdk_memory_filter_FILTER_SYNC_' + aliceCreds.userId);
    assert.ok(filterId, `the SDK stored its filter id (storage keys: ${aliceStorage.key(0)})`);
    const syncs = reqs.filter((r) => r.path === '/_matrix/client/v3/sync');
    assert.ok(syncs.length >= 1, rec.describe(reqs));
    const first = reqs.findIndex((r) => r.path === '/_matrix/client/v3/sync');
    assert.ok(reqs.findIndex((r) => r === post) < first, 'filter created before the first /sync');
    assert.ok(reqs.findIndex((r) => r.path === '/_matrix/client/versions') < first, '/versions before the first /sync');
    // The first /sync carries an inline filter (initialSyncLimit); later ones the stored id.
    await until(null, [], () => rec.of('alice').filter((r) => r.path === '/_matrix/client/v3/sync').length >= 2, 'the second /sync');
    const second = rec.of('alice').filter((r) => r.path === '/_matrix/client/v3/sync')[1];
    const q = new URLSearchParams(second.query);
    assert.equal(q.get('filter'), filterId);
    assert.ok(q.get('since'), 'incremental sync sends since');
    assert.equal(alice.isInitialSyncComplete(), true);
  });

  it('invites: the invitee sees the invite through sync, joins, and the inviter sees the join', async () => {
    const res = await alice.createRoom({ name: 'SDK room', topic: 'talking through js-sdk' });
    roomId = res.room_id;
    await alice.invite(roomId, bobCreds.userId);

    const invited = await until(bob as any, [sdk.ClientEvent.Room, sdk.RoomMemberEvent.Membership], () => {
      const r = bob.getRoom(roomId);
      return r?.getMyMembership() === 'invite' ? r : undefined;
    }, 'bob to see the invite');
    const me = invited.getMember(bobCreds.userId);
    assert.equal(me?.membership, 'invite');
    assert.equal(me?.events.member?.getSender(), aliceCreds.userId, 'invite comes from alice');
    assert.equal(invited.name, 'SDK room', 'stripped state carries the room name');

    await bob.joinRoom(roomId);
    await until(bob as any, [sdk.RoomMemberEvent.Membership], () => bob.getRoom(roomId)?.getMyMembership() === 'join', 'bob joined');
    await until(alice as any, [sdk.RoomMemberEvent.Membership], () => alice.getRoom(roomId)?.getMember(bobCreds.userId)?.membership === 'join', 'alice to see bob join');
    const bobRoom = bob.getRoom(roomId)!;
    assert.equal(bobRoom.currentState.getStateEvents('m.room.topic', '')?.getContent().topic, 'talking through js-sdk');
    assert.ok(bobRoom.currentState.getStateEvents('m.room.create', ''), 'joined room has m.room.create');
    assert.equal(bobRoom.getJoinedMemberCount(), 2);
  });

  it('sends both ways; each side receives the other through its sync loop, in the same order', async () => {
    const n = 6;
    const fromAlice = (async () => {
      for (let i = 0; i < n; i++) await alice.sendTextMessage(roomId, `a${i}`);
    })();
    const fromBob = (async () => {
      for (let i = 0; i < n; i++) await bob.sendMessage(roomId, { msgtype: sdk.MsgType.Text, body: `b${i}` });
    })();
    await Promise.all([fromAlice, fromBob]);

    const settled = (c: MatrixClient) => () => {
      const ms = messages(c.getRoom(roomId)!);
      return ms.length === 2 * n && ms.every((e) => e.status === null && e.getId()!.startsWith('$')) ? ms : undefined;
    };
    const [am, bm] = await Promise.all([
      until(alice as any, [sdk.RoomEvent.Timeline, sdk.RoomEvent.LocalEchoUpdated], settled(alice), 'alice to hold all messages'),
      until(bob as any, [sdk.RoomEvent.Timeline, sdk.RoomEvent.LocalEchoUpdated], settled(bob), 'bob to hold all messages'),
    ]);
    const ids = (l: MatrixEvent[]) => l.map((e) => e.getId());
    const api = new Api(srv.url, aliceCreds.accessToken);
    const page = await api.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=100&filter=${enc(JSON.stringify({ types: ['m.room.message'] }))}`);
    assert.equal(page.status, 200);
    const serverOrder = page.body.chunk.map((e: any) => e.content.body).reverse();
    assert.deepEqual(ids(am), ids(bm), `same order on both sides:\nalice ${bodies(am)}\nbob   ${bodies(bm)}\nserver ${serverOrder}`);
    // Each sender's own messages stay in sending order.
    assert.deepEqual(bodies(am).filter((b) => b.startsWith('a')), Array.from({ length: n }, (_, i) => `a${i}`));
    assert.deepEqual(bodies(am).filter((b) => b.startsWith('b')), Array.from({ length: n }, (_, i) => `b${i}`));
    // ...and that order is the server's.
    assert.deepEqual(page.body.chunk.map((e: any) => e.event_id).reverse(), ids(am));
    // Received events are attributed correctly.
    for (const e of bm) assert.equal(e.getSender(), e.getContent().body.startsWith('a') ? aliceCreds.userId : bobCreds.userId);
  });

  it('matches the local echo with the remote echo by unsigned.transaction_id (no duplicate)', async () => {
    // Hold alice's PUT /send response until her sync loop has delivered the event: the SDK can
    // then only pair the two copies through unsigned.transaction_id.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let held: { eventId: string; txnId: string } | undefined;
    rec.hook = async (req, res) => {
      if (req.client === 'alice' && req.method === 'PUT' && req.path.includes('/send/m.room.message/') && res.status === 200) {
        held = { eventId: ((await res.clone().json()) as { event_id: string }).event_id, txnId: decodeURIComponent(req.path.split('/').pop()!) };
        await gate;
      }
    };
    try {
      const sending = alice.sendTextMessage(roomId, 'held echo');
      const room = alice.getRoom(roomId)!;
      const h = await until(null, [], () => held, 'the PUT to be answered by the server');
      // The event arrives by sync while the SDK still waits for its PUT.
      const remote = await until(alice as any, [sdk.RoomEvent.LocalEchoUpdated, sdk.RoomEvent.Timeline], () => room.findEventById(h.eventId), 'the remote echo via sync');
      // What the user sees: the timeline plus the pending (local echo) list.
      const visible = () => [...messages(room), ...room.getPendingEvents()].filter((e) => e.getContent().body === 'held echo');
      const copies = visible();
      assert.equal(copies.length, 1, `one entry, got ${copies.map((e) => `${e.getId()} status=${e.status}`).join(', ')}`);
      assert.ok(messages(room).includes(copies[0]), 'the local echo moved into the timeline');
      assert.equal(copies[0].getId(), h.eventId);
      assert.equal(remote.getUnsigned().transaction_id, h.txnId, 'the sending device gets its transaction_id');
      assert.equal(copies[0].status, null, 'the local echo became the remote event');

      release();
      const res = await sending;
      assert.equal(res.event_id, h.eventId);
      assert.equal(visible().length, 1);
      assert.equal(room.getPendingEvents().length, 0, 'nothing left pending');
      assert.ok(messages(room).every((e) => e.status === null));

      // Other users never see the sender's transaction id.
      const onBob = await until(bob as any, [sdk.RoomEvent.Timeline], () => bob.getRoom(roomId)!.findEventById(h.eventId), 'bob to get the message');
      assert.equal(onBob.getUnsigned().transaction_id, undefined);
    } finally {
      rec.hook = null;
      release();
    }
  });

  it('paginates back to m.room.create through 60 messages with scrollback and paginateEventTimeline', async () => {
    const { room_id: room2 } = await alice.createRoom({ name: 'history', invite: [bobCreds.userId] });
    await until(bob as any, [sdk.ClientEvent.Room, sdk.RoomMemberEvent.Membership], () => bob.getRoom(room2)?.getMyMembership() === 'invite', 'invite to room2');
    await bob.joinRoom(room2);
    const n = 60;
    const expected = Array.from({ length: n }, (_, i) => `p${i}`);
    // All queued at once: the SDK's scheduler sends them one by one, in order.
    await Promise.all(expected.map((body) => alice.sendTextMessage(room2, body)));

    const check = (who: string, events: MatrixEvent[]) => {
      assert.equal(events[0]?.getType(), 'm.room.create', `${who}: history starts at m.room.create, got ${events[0]?.getType()}`);
      const ids = events.map((e) => e.getId());
      assert.equal(new Set(ids).size, ids.length, `${who}: no event twice`);
      assert.deepEqual(bodies(events.filter((e) => e.getType() === 'm.room.message')), expected, `${who}: every message once, in order`);
      return ids;
    };

    // bob on a new device: a short initial timeline, then Room.scrollback until the start.
    const bobLogin = await sdk.createClient({ baseUrl: srv.url, fetchFn: rec.fetchFor('anon') }).loginRequest({
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: 'bob' },
      password: PASSWORD,
    });
    const bob2 = client('bob2', { userId: bobLogin.user_id, accessToken: bobLogin.access_token, deviceId: bobLogin.device_id });
    await start(bob2, 5);
    const r2 = bob2.getRoom(room2)!;
    assert.ok(r2, 'bob2 knows room2 after initial sync');
    const initial = r2.getLiveTimeline().getEvents().length;
    assert.ok(initial <= 6, `initial sync honours initialSyncLimit (got ${initial})`);
    for (let i = 0; i < 40 && r2.getLiveTimeline().getPaginationToken(sdk.EventTimeline.BACKWARDS) !== null; i++) await bob2.scrollback(r2, 10);
    const viaScrollback = check('scrollback', r2.getLiveTimeline().getEvents());

    // alice on a second client: paginateEventTimeline on the live timeline until it reports the end.
    const alice2 = client('alice2', aliceCreds, { timelineSupport: true });
    await start(alice2, 3);
    const a2 = alice2.getRoom(room2)!;
    let pages = 0;
    while (await alice2.paginateEventTimeline(a2.getLiveTimeline(), { backwards: true, limit: 7 })) {
      if (++pages > 40) assert.fail('pagination never reached the start');
    }
    const viaPaginate = check('paginateEventTimeline', a2.getLiveTimeline().getEvents());
    assert.deepEqual(viaPaginate, viaScrollback);

    // A third client that does not know the middle of the history: getEventTimeline builds a
    // timeline from /context, which then pages back to the start and forward into the live one.
    const alice3 = client('alice3', aliceCreds, { timelineSupport: true });
    await start(alice3, 3);
    const a3 = alice3.getRoom(room2)!;
    const mid = viaPaginate[viaPaginate.length - 30]!;
    assert.equal(a3.getUnfilteredTimelineSet().getTimelineForEvent(mid), null, 'alice3 does not know the event yet');
    const tl = (await alice3.getEventTimeline(a3.getUnfilteredTimelineSet(), mid))!;
    assert.ok(tl && tl !== a3.getLiveTimeline(), 'a separate timeline around the event');
    assert.ok(rec.of('alice3').some((r) => r.path.includes('/context/') && r.status === 200), 'built from /context');
    const { Backward, Forward } = sdk.Direction;
    for (pages = 0; tl.getPaginationToken(Backward) !== null; pages++) {
      if (pages > 40) assert.fail('back-pagination never reached the start');
      await alice3.paginateEventTimeline(tl, { backwards: true, limit: 9 });
    }
    for (pages = 0; tl.getPaginationToken(Forward) !== null && !tl.getNeighbouringTimeline(Forward); pages++) {
      if (pages > 40) assert.fail('forward pagination never reached the live timeline');
      await alice3.paginateEventTimeline(tl, { backwards: false, limit: 9 });
    }
    const joined: MatrixEvent[] = [];
    for (let t: ReturnType<typeof tl.getNeighbouringTimeline> = tl; t; t = t.getNeighbouringTimeline(Forward)) joined.push(...t.getEvents());
    assert.equal(joined[joined.length - 1]?.getId(), a3.getLiveTimeline().getEvents().at(-1)?.getId(), 'forward pagination joined the live timeline');
    assert.deepEqual(check('/context + both directions', joined), viaPaginate);
  });

  it('a displayname change produces a member event the other user sees', async () => {
    await alice.setDisplayName('Alice Liddell');
    const member = await until(bob as any, [sdk.RoomMemberEvent.Name, sdk.RoomEvent.Timeline], () => {
      const m = bob.getRoom(roomId)?.getMember(aliceCreds.userId);
      return m?.name === 'Alice Liddell' ? m : undefined;
    }, "bob to see alice's new name");
    assert.equal(member.membership, 'join', 'still joined');
    const ev = member.events.member!;
    assert.equal(ev.getType(), 'm.room.member');
    assert.equal(ev.getStateKey(), aliceCreds.userId);
    assert.equal(ev.getContent().displayname, 'Alice Liddell');
    const inTimeline = bob.getRoom(roomId)!.getLiveTimeline().getEvents().find((e) => e.getId() === ev.getId());
    assert.ok(inTimeline, 'the member event is in the timeline, not only in state');
    // The profile itself changed too.
    const p = await alice.getProfileInfo(aliceCreds.userId);
    assert.equal(p.displayname, 'Alice Liddell');
  });

  it('global and room account data round-trip through sync', async () => {
    const direct = { [bobCreds.userId]: [roomId] };
    // setAccountData resolves only once the update came back through /sync.
    await (alice as any).setAccountData('m.direct', direct);
    assert.deepEqual((alice as any).getAccountData('m.direct')?.getContent(), direct);
    assert.equal((bob as any).getAccountData('m.direct'), undefined, 'account data is per user');

    const seen = until(alice as any, [sdk.RoomEvent.AccountData], () => (alice.getRoom(roomId) as any)?.getAccountData('org.example.note')?.getContent().n === 1, 'room account data');
    await (alice as any).setRoomAccountData(roomId, 'org.example.note', { n: 1 });
    await seen;

    const api = new Api(srv.url, aliceCreds.accessToken);
    const got = await api.get(`/_matrix/client/v3/user/${enc(aliceCreds.userId)}/account_data/m.direct`);
    assert.deepEqual(got.body, direct);
  });

  it('a restarted client reuses its stored filter: GET returns it unchanged, no new POST', async () => {
    const c = client('alice-again', aliceCreds, { store: new sdk.MemoryStore({ localStorage: aliceStorage as unknown as Storage }) });
    await start(c, 10);
    const reqs = rec.of('alice-again');
    const filterId = aliceStorage.getItem('mxjssdk_memory_filter_FILTER_SYNC_' + aliceCreds.userId)!;
    const get = reqs.find((r) => r.method === 'GET' && r.path === `/_matrix/client/v3/user/${enc(aliceCreds.userId)}/filter/${filterId}`);
    assert.ok(get, `GET of the stored filter:\n${rec.describe(reqs)}`);
    assert.equal(get.status, 200);
    assert.equal(reqs.filter((r) => r.method === 'POST' && r.path.endsWith('/filter')).length, 0, 'filter matched (deep-compare), not recreated');
    assert.deepEqual((c as any).getAccountData('m.direct')?.getContent(), { [bobCreds.userId]: [roomId] }, 'initial sync carries account data');
    assert.equal(c.getRoom(roomId)?.getMember(aliceCreds.userId)?.name, 'Alice Liddell');
  });

  it('stops cleanly: no leftover timers, and the SDK met no 5xx and only the expected 4xx', async () => {
    for (const c of running.splice(0)) c.stopClient();
    await rec.close();
    const t0 = Date.now();
    await srv.stop();
    serverStopped = true;
    assert.ok(Date.now() - t0 < 3000, `server stopped promptly once the clients were gone (${Date.now() - t0} ms)`);
    assert.equal(rec.requests.filter((r) => !r.settled).length, 0, 'no request left in flight');
    await until(null, [], () => sockets() <= baselineSockets, 'every socket to close');

    // What still keeps the event loop alive? Only the SDK's per-request timeout timers may be
    // left: js-sdk's timeoutSignal() arms a setTimeout (110 s for /sync) per request and never
    // clears it, which would keep a non --exit mocha alive for up to 110 s. Those are unref'd
    // here; anything else (server, SDK sync loop, retries, our helpers) is a real leak.
    // async_hooks reports cleared timers a little later; this wait's own timer is ignored.
    let wait: unknown;
    await new Promise((r) => (wait = setTimeout(r, 50)));
    const pending = timers.pending().filter((t) => t.timer !== wait && !/mocha[\\/]lib[\\/]runnable/.test(t.stack));
    const sdkRequestTimeouts = pending.filter((t) => /timeoutSignal/.test(t.stack) && /matrix-js-sdk[\\/]lib[\\/]http-api/.test(t.stack));
    const others = pending.filter((t) => !sdkRequestTimeouts.includes(t));
    for (const t of sdkRequestTimeouts) t.timer.unref();
    timers.stop();
    assert.deepEqual(others.map((t) => t.stack.split('\n').slice(5, 10).join('\n')), [], 'no other pending timers');

    // status 0 = fetch aborted by stopClient (its parked /sync long-poll).
    const aborted = rec.requests.filter((r) => r.status === 0);
    for (const r of aborted) assert.equal(r.path, '/_matrix/client/v3/sync', `only long-polls may be aborted: ${rec.describe([r])}`);
    const fiveXX = rec.requests.filter((r) => r.status >= 500);
    assert.deepEqual(fiveXX, [], rec.describe(fiveXX));
    const expected = (r: RecordedRequest) =>
      (r.status === 401 && r.method === 'POST' && r.path === '/_matrix/client/v3/register' && r.body?.auth === undefined) ||
      (r.status === 404 && r.errcode === 'M_UNRECOGNIZED' && r.path === '/_matrix/client/unstable/org.matrix.msc4143/rtc/transports') ||
      (r.status === 404 && r.errcode === 'M_NOT_FOUND' && r.path === '/_matrix/client/v3/room_keys/version');
    const unexpected = rec.requests.filter((r) => r.status >= 400 && !expected(r));
    assert.deepEqual(unexpected, [], rec.describe(unexpected));
    assert.ok(rec.requests.length > 50, `the SDK did real work (${rec.requests.length} requests)`);
  });
});
