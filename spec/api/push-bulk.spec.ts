// Push results in a room big enough for the shared result to be stored once (PushBulkInput,
// src/push/push-actions.ts): unread counts, thread counts, /notifications, receipts, own events,
// ignored users, muted rooms and members joining later must all look exactly as with a stored
// row per member, and offline members must still be pushed.

import { assert } from '../helpers/assert.js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { BULK_MIN } from '../../src/push/push-actions.js';
import { makeUser, ok, roomPath, sendEvent, syncOk, V3, type User } from '../helpers/fixtures.js';
import { enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('push results shared by a big room', function () {
  this.timeout(30000);
  let srv: TestServer;
  let gateway: Server;
  const pushed: any[] = [];
  let alice: User;
  let bob: User;
  let carol: User;
  let dave: User;
  let erin: User;
  let filler: User;
  let roomId: string;
  let db: Database.Database;
  let txn = 0;

  const send = (who: User, content: Record<string, unknown>) => sendEvent(who, roomId, 'm.room.message', `pb${++txn}`, content, 'send');
  const text = (who: User, body: string, extra: Record<string, unknown> = {}) => send(who, { msgtype: 'm.text', body, ...extra });
  const threadFilter = { room: { timeline: { unread_thread_notifications: true } } };
  async function counts(who: User): Promise<{ main: number[]; threads: Record<string, number[]> }> {
    const r = (await syncOk(who, { filter: threadFilter })).rooms.join[roomId];
    assert.ok(r, `${who.userId} is joined`);
    const pair = (c: any) => [c.notification_count, c.highlight_count];
    return {
      main: pair(r.unread_notifications),
      threads: Object.fromEntries(Object.entries(r.unread_thread_notifications ?? {}).map(([k, v]) => [k, pair(v)])),
    };
  }
  const notifications = async (who: User, q = '') =>
    (await ok(who.get(`${V3}/notifications${q}`), 'notifications')).notifications.map((n: any) => ({
      id: n.event.event_id,
      read: n.read,
      highlight: n.actions.some((a: any) => a?.set_tweak === 'highlight' && a.value !== false),
    }));
  const stored = (eventId: string) => ({
    bulk: db.prepare('SELECT except_json FROM push_bulk WHERE event_id = ?').get(eventId) as { except_json: string } | undefined,
    rows: (db.prepare('SELECT user_id FROM push_actions WHERE event_id = ? ORDER BY user_id').all(eventId) as { user_id: string }[]).map((r) => r.user_id),
  });

  before(async function () {
    gateway = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        pushed.push(JSON.parse(Buffer.concat(chunks).toString('utf8')).notification);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"rejected":[]}');
      });
    });
    await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
    srv = await startTestServer({ push: { always_push: true }, outbound: { ip_range_whitelist: ['127.0.0.1/32'] } }); // the gateway is on loopback
    db = new Database(join(srv.dataDir, 'hearth.sqlite'), { readonly: true });
    [alice, bob, carol, dave, erin, filler] = await Promise.all(
      ['alice', 'bob', 'carol', 'dave', 'erin', 'filler'].map((u) => makeUser(srv, u, u === 'bob' ? 'Bobby' : undefined)),
    );
    roomId = (await ok(alice.post(`${V3}/createRoom`, { preset: 'public_chat' }), 'createRoom')).room_id;
    for (const u of [bob, carol, dave, filler]) await ok(u.post(roomPath(roomId, 'join'), {}), 'join');
    const { accounts, rooms } = srv.hearth.services;
    for (let i = 0; i < BULK_MIN + 4; i++) await rooms.join({ userId: await accounts.createAccount(`member${i}`, null) }, roomId);
    await ok(carol.put(`${V3}/user/${enc(carol.userId)}/account_data/m.ignored_user_list`, { ignored_users: { [alice.userId]: {} } }), 'ignore');
    await ok(dave.put(`${V3}/pushrules/global/room/${enc(roomId)}`, { actions: [] }), 'mute');
    const port = (gateway.address() as AddressInfo).port;
    await ok(
      filler.post(`${V3}/pushers/set`, {
        kind: 'http',
        app_id: 'org.example.app',
        pushkey: 'filler-key',
        app_display_name: 'Example',
        device_display_name: 'Phone',
        lang: 'en',
        data: { url: `http://127.0.0.1:${port}/_matrix/push/v1/notify` },
      }),
      'pushers/set',
    );
  });
  after(async function () {
    db?.close();
    await srv?.stop();
    gateway?.closeAllConnections();
    await new Promise<void>((resolve) => (gateway ? gateway.close(() => resolve()) : resolve()));
  });

  it('counts, lists and pushes like a row per member, storing the shared result once', async function () {
    const hello = await text(alice, 'hello everyone');
    const s1 = stored(hello);
    assert.ok(s1.bulk, 'stored once');
    assert.deepEqual(JSON.parse(s1.bulk.except_json).sort(), [carol.userId, dave.userId].sort(), 'the ignoring and the muting member');
    assert.deepEqual(s1.rows, []);
    for (const u of [bob, filler]) assert.deepEqual((await counts(u)).main, [1, 0], u.userId);
    for (const u of [alice, carol, dave]) assert.deepEqual((await counts(u)).main, [0, 0], u.userId);

    // A mention: bob gets a row of his own (highlight), everyone else the shared result.
    const mention = await text(alice, 'ping Bobby', { 'm.mentions': { user_ids: [bob.userId] } });
    const s2 = stored(mention);
    assert.ok(s2.bulk);
    assert.deepEqual(JSON.parse(s2.bulk.except_json).sort(), [bob.userId, carol.userId, dave.userId].sort());
    assert.deepEqual(s2.rows, [bob.userId]);
    assert.deepEqual((await counts(bob)).main, [2, 1]);
    assert.deepEqual((await counts(filler)).main, [2, 0]);

    // A member joining now is not notified of what came before, but of what comes after: here
    // a thread reply, counted under its root.
    await ok(erin.post(roomPath(roomId, 'join'), {}), 'join');
    assert.deepEqual(await counts(erin), { main: [0, 0], threads: {} });
    const reply = await text(alice, 'in a thread', { 'm.relates_to': { rel_type: 'm.thread', event_id: hello } });
    assert.ok(stored(reply).bulk);
    assert.deepEqual(await counts(erin), { main: [0, 0], threads: { [hello]: [1, 0] } });
    assert.deepEqual(await counts(bob), { main: [2, 1], threads: { [hello]: [1, 0] } });
    assert.deepEqual(await counts(carol), { main: [0, 0], threads: {} });

    assert.deepEqual(await notifications(bob), [
      { id: reply, read: false, highlight: false },
      { id: mention, read: false, highlight: true },
      { id: hello, read: false, highlight: false },
    ]);
    assert.deepEqual((await notifications(bob, '?only=highlight')).map((n: any) => n.id), [mention]);
    assert.deepEqual(await notifications(erin), [{ id: reply, read: false, highlight: false }]);
    assert.deepEqual(await notifications(carol), []);
    assert.deepEqual(await notifications(dave), []);
    assert.deepEqual(await notifications(alice), []);

    // Receipts clear per timeline; an own event clears everything before it.
    await ok(bob.post(roomPath(roomId, `receipt/m.read/${enc(mention)}`), { thread_id: 'main' }), 'receipt');
    assert.deepEqual(await counts(bob), { main: [0, 0], threads: { [hello]: [1, 0] } });
    assert.deepEqual((await notifications(bob)).map((n: any) => n.read), [false, true, true]);
    await text(filler, 'I am here');
    assert.deepEqual(await counts(filler), { main: [0, 0], threads: {} });
    assert.deepEqual((await notifications(filler)).map((n: any) => n.read), [true, true, true]);

    // The member with a pusher was pushed for each event (always_push: whether or not a /sync
    // was running), with badge counts from the stored shared results.
    const forFiller = () => pushed.filter((n) => n.event_id !== undefined && n.devices?.[0]?.pushkey === 'filler-key');
    const deadline = Date.now() + 5000;
    while (forFiller().length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(forFiller().map((n) => [n.event_id, n.counts.unread]), [[hello, 1], [mention, 2], [reply, 3]]);
  });
});
