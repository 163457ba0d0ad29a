// Everyday chat features through real matrix-js-sdk 43 clients (the library Element is built on)
// against a Hearth test server: read receipts, typing, presence, unread notification counts as
// computed by the server's push rules, thread grouping with the SDK's thread support, and a
// read on one device clearing the count on another device of the same user.

import { assert } from '../helpers/assert.js';
import type { MatrixClient, MatrixEvent, Room } from 'matrix-js-sdk';
import { loadSdk, printSdkTrailOnFailure, RequestRecorder, sdkClient, stopClients, until, untilPrepared, type Creds, type RecordedRequest, type Sdk } from '../helpers/js-sdk.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('matrix-js-sdk 43: receipts, typing, presence, unread counts, threads', function () {
  this.timeout(30000);

  let sdk: Sdk;
  let srv: TestServer;
  const rec = new RequestRecorder();
  const running: MatrixClient[] = [];
  let aliceCreds: Creds;
  let alice2Creds: Creds;
  let bobCreds: Creds;
  let alice: MatrixClient;
  let alice2: MatrixClient;
  let bob: MatrixClient;
  let roomId: string;

  async function account(localpart: string): Promise<Creds> {
    const accounts = srv.hearth.services.accounts;
    const userId = await accounts.createAccount(localpart, null);
    return login(userId);
  }
  async function login(userId: string): Promise<Creds> {
    const l = await srv.hearth.services.accounts.login(userId, undefined, null, null);
    return { userId, accessToken: l.access_token, deviceId: l.device_id };
  }
  const client = (name: string, creds: Creds): MatrixClient => sdkClient(sdk, srv.url, rec, name, creds);
  async function start(c: MatrixClient): Promise<void> {
    running.push(c);
    await c.startClient({ initialSyncLimit: 20, threadSupport: true, pendingEventOrdering: sdk.PendingEventOrdering.Detached });
    await untilPrepared(sdk, c, `${c.getUserId()}`);
  }
  const roomOf = (c: MatrixClient): Room => {
    const r = c.getRoom(roomId);
    assert.ok(r, `${c.getUserId()} knows the room`);
    return r;
  };
  /** Waits until the client holds the event (from its own sync loop) and returns it. */
  const held = (c: MatrixClient, eventId: string, what: string): Promise<MatrixEvent> =>
    until(c as any, [sdk.RoomEvent.Timeline, sdk.ThreadEvent.Update, sdk.ThreadEvent.New], () => c.getRoom(roomId)?.findEventById(eventId), what);
  const total = (c: MatrixClient) => roomOf(c).getUnreadNotificationCount(sdk.NotificationCountType.Total);

  before(async function () {
    sdk = await loadSdk();
    srv = await startTestServer();
    aliceCreds = await account('alice');
    bobCreds = await account('bob');
    alice2Creds = await login(aliceCreds.userId);
    // A 1:1 room, set up over HTTP before the clients start.
    const a = new Api(srv.url, aliceCreds.accessToken);
    const created = await a.post('/_matrix/client/v3/createRoom', { preset: 'private_chat', invite: [bobCreds.userId], is_direct: true });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id;
    const joined = await new Api(srv.url, bobCreds.accessToken).post(`/_matrix/client/v3/rooms/${enc(roomId)}/join`, {});
    assert.equal(joined.status, 200);

    alice = client('alice', aliceCreds);
    alice2 = client('alice2', alice2Creds);
    bob = client('bob', bobCreds);
    await Promise.all([start(alice), start(alice2), start(bob)]);
  });

  afterEach(function () {
    printSdkTrailOnFailure(this, rec, 40, 30);
  });

  after(async () => {
    await stopClients(running, rec);
    await srv?.stop();
  });

  it('read receipts: bob sees alice\'s sendReadReceipt through getReadReceiptForUserId / getUsersReadUpTo', async () => {
    const { event_id } = await bob.sendTextMessage(roomId, 'please read this');
    const ev = await held(alice, event_id, 'alice to receive the message');
    await alice.sendReadReceipt(ev);

    const r = await until(bob as any, [sdk.RoomEvent.Receipt], () => {
      const got = roomOf(bob).getReadReceiptForUserId(aliceCreds.userId);
      return got?.eventId === event_id ? got : undefined;
    }, "bob to see alice's receipt");
    assert.equal(typeof r.data.ts, 'number');
    const onBob = roomOf(bob).findEventById(event_id)!;
    assert.ok(roomOf(bob).getUsersReadUpTo(onBob).includes(aliceCreds.userId), 'getUsersReadUpTo lists alice');
    assert.equal(roomOf(bob).hasUserReadEvent(aliceCreds.userId, event_id), true);
    // The receipt went to the server as m.read (not private) for the main timeline.
    const post = rec.of('alice').find((q) => q.method === 'POST' && q.path.includes('/receipt/') && q.path.endsWith(enc(event_id)));
    assert.ok(post && post.status === 200, rec.describe(rec.of('alice').slice(-10)));
    assert.ok(post.path.includes('/receipt/m.read/'), post.path);
  });

  it('typing: RoomMember.typing follows sendTyping(true) and sendTyping(false)', async () => {
    await alice.sendTyping(roomId, true, 5000);
    await until(bob as any, [sdk.RoomMemberEvent.Typing], () => roomOf(bob).getMember(aliceCreds.userId)?.typing === true, 'bob to see alice typing');
    assert.deepEqual(roomOf(bob).currentState.getMembers().filter((m) => m.typing).map((m) => m.userId), [aliceCreds.userId]);
    await alice.sendTyping(roomId, false, 5000);
    await until(bob as any, [sdk.RoomMemberEvent.Typing], () => roomOf(bob).getMember(aliceCreds.userId)?.typing === false, 'bob to see alice stop typing');
  });

  it('presence: getUser().presence, presenceStatusMsg and lastActiveAgo follow setPresence', async () => {
    await alice.setPresence({ presence: 'unavailable', status_msg: 'afk' });
    const u = await until(bob as any, [sdk.UserEvent.Presence], () => {
      const user = bob.getUser(aliceCreds.userId);
      return user?.presence === 'unavailable' ? user : undefined;
    }, "bob to see alice's unavailable presence");
    assert.equal(u.presenceStatusMsg, 'afk');

    await alice.setPresence({ presence: 'online', status_msg: 'back' });
    const on = await until(bob as any, [sdk.UserEvent.Presence], () => {
      const user = bob.getUser(aliceCreds.userId);
      return user?.presence === 'online' ? user : undefined;
    }, "bob to see alice online");
    assert.equal(on.presenceStatusMsg, 'back');
    assert.equal(typeof on.lastActiveAgo, 'number');
    assert.ok(on.lastActiveAgo >= 0 && on.lastActiveAgo < 10000, `lastActiveAgo ${on.lastActiveAgo}`);
    assert.equal(on.currentlyActive, true);
  });

  it('unread counts follow the push rules: a 1:1 message counts 1 for the recipient (0 for the sender); a read receipt clears it', async () => {
    // Start from a clean state: both have read everything.
    const { event_id: start } = await alice.sendTextMessage(roomId, 'hello first');
    await held(bob, start, 'bob gets it');
    await bob.sendReadReceipt(roomOf(bob).findEventById(start)!);
    await until(bob as any, [sdk.RoomEvent.UnreadNotifications], () => total(bob) === 0, 'bob at 0');

    const { event_id } = await alice.sendTextMessage(roomId, 'a new message for you');
    await held(bob, event_id, 'bob to receive it');
    await until(bob as any, [sdk.RoomEvent.UnreadNotifications], () => total(bob) === 1, `bob's count to be 1 (is ${total(bob)})`);
    assert.equal(roomOf(bob).getUnreadNotificationCount(sdk.NotificationCountType.Highlight), 0);
    await held(alice, event_id, 'alice has her own message');
    assert.equal(total(alice), 0, 'own messages never count');

    // A notice does not notify.
    const { event_id: notice } = await alice.sendNotice(roomId, 'automated notice');
    await held(bob, notice, 'bob gets the notice');
    assert.equal(total(bob), 1, 'm.notice does not count');

    await bob.sendReadReceipt(roomOf(bob).findEventById(notice)!);
    await until(bob as any, [sdk.RoomEvent.UnreadNotifications], () => total(bob) === 0, `bob's count cleared (is ${total(bob)})`);
    // The server agrees: a fresh sync has 0.
    const s = await new Api(srv.url, bobCreds.accessToken).get(`/_matrix/client/v3/sync?timeout=0`);
    assert.deepEqual(s.body.rooms.join[roomId].unread_notifications, { notification_count: 0, highlight_count: 0 });
  });

  it('a user who reads on one device sees the count cleared on their other device', async () => {
    const { event_id } = await bob.sendTextMessage(roomId, 'for both of your devices');
    await Promise.all([held(alice, event_id, 'device A gets it'), held(alice2, event_id, 'device B gets it')]);
    await until(alice2 as any, [sdk.RoomEvent.UnreadNotifications], () => total(alice2) >= 1, `device B counts it (is ${total(alice2)})`);
    await until(alice as any, [sdk.RoomEvent.UnreadNotifications], () => total(alice) >= 1, `device A counts it (is ${total(alice)})`);

    await alice.sendReadReceipt(roomOf(alice).findEventById(event_id)!);
    await until(alice2 as any, [sdk.RoomEvent.UnreadNotifications, sdk.RoomEvent.Receipt], () => total(alice2) === 0, `device B's count cleared by device A's read (is ${total(alice2)})`);
    assert.equal(roomOf(alice2).getReadReceiptForUserId(aliceCreds.userId)?.eventId, event_id, 'device B knows its user read up to the event');
  });

  it('threads: the SDK groups replies under room.getThread(root); they stay out of the main timeline', async () => {
    const { event_id: root } = await alice.sendTextMessage(roomId, 'thread root');
    await held(bob, root, 'bob has the root');
    const replies: string[] = [];
    for (const body of ['first reply', 'second reply']) {
      const res = await bob.sendEvent(roomId, root, sdk.EventType.RoomMessage, {
        msgtype: 'm.text',
        body,
        'm.relates_to': { rel_type: 'm.thread', event_id: root, is_falling_back: true, 'm.in_reply_to': { event_id: root } },
      } as any);
      replies.push(res.event_id);
    }
    const thread = await until(alice as any, [sdk.ThreadEvent.New, sdk.ThreadEvent.Update, sdk.RoomEvent.Timeline], () => {
      const t = roomOf(alice).getThread(root);
      return t && t.length === 2 && replies.every((id) => t.findEventById(id)) ? t : undefined;
    }, 'alice to hold a thread with both replies');
    assert.equal(thread.id, root);
    assert.equal(thread.rootEvent?.getId(), root);
    assert.equal(thread.replyToEvent?.getId(), replies[1], 'the latest reply');
    const main = roomOf(alice).getLiveTimeline().getEvents().map((e) => e.getId());
    assert.ok(main.includes(root), 'the root is in the main timeline');
    assert.ok(!replies.some((id) => main.includes(id)), 'thread replies are not in the main timeline');
    // The server's thread counts reach the SDK: two unread replies in the thread for alice.
    await until(alice as any, [sdk.RoomEvent.UnreadNotifications], () => roomOf(alice).getThreadUnreadNotificationCount(root, sdk.NotificationCountType.Total) === 2,
      `alice's thread count to be 2 (is ${roomOf(alice).getThreadUnreadNotificationCount(root, sdk.NotificationCountType.Total)})`);

    // A new client (fresh initial sync) builds the same thread from the bundled aggregation.
    const fresh = client('alice-fresh', await login(aliceCreds.userId));
    await start(fresh);
    const t2 = await until(fresh as any, [sdk.ThreadEvent.New, sdk.ThreadEvent.Update], () => {
      const t = fresh.getRoom(roomId)?.getThread(root);
      return t && t.length === 2 ? t : undefined;
    }, 'a fresh client to see the thread with 2 replies');
    assert.equal(t2.replyToEvent?.getId(), replies[1]);
  });

  it('the SDK met no 5xx and only the expected 4xx', async () => {
    const fiveXX = rec.requests.filter((r) => r.status >= 500);
    assert.deepEqual(fiveXX, [], rec.describe(fiveXX));
    const expected = (r: RecordedRequest) =>
      (r.status === 404 && r.errcode === 'M_UNRECOGNIZED' && r.path === '/_matrix/client/unstable/org.matrix.msc4143/rtc/transports') ||
      (r.status === 404 && r.errcode === 'M_NOT_FOUND' && r.path === '/_matrix/client/v3/room_keys/version');
    const unexpected = rec.requests.filter((r) => r.status >= 400 && !expected(r));
    assert.deepEqual(unexpected, [], rec.describe(unexpected));
  });
});
