// Parked syncs without an await chain (src/sync/parked-sync.ts, src/api/deferred.ts): a parked
// long-poll is an object the transport writes when it settles. What must hold as before: it
// answers on timeout (the empty response), on a wake (the new event), and when its client goes
// away it leaves the registry at once, with its end accounting done (connection tracker, catch-up
// slots); the same for idle sockets, whose loop parks the same way. Many at once, so a leak of
// one per request would show.

import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import WebSocket from 'ws';
import { socketUrl, waitFor } from '../socket/helpers.js';

const N = 40;

describe('Parked syncs (deferred answers)', function () {
  this.timeout(60_000);
  let srv: TestServer;
  before(async function () {
    srv = await startTestServer({ limits: { rate_limits: { enabled: false } } });
  });
  after(async function () {
    await srv.stop();
  });

  const waiters = (): number => srv.hearth.services.sync.waiterCount();

  async function userWithToken(name: string): Promise<{ api: Awaited<ReturnType<Api['register']>>; since: string }> {
    const api = await new Api(srv.url).register(name);
    const first = await api.get('/_matrix/client/v3/sync?timeout=0');
    return { api, since: first.body.next_batch as string };
  }

  it(`parks ${N} long-polls, and all leave the registry and the accounting when their clients disconnect`, async function () {
    const users = await Promise.all(Array.from({ length: N }, (_, i) => userWithToken(`gone${i}`)));
    const aborts = users.map(() => new AbortController());
    const polls = users.map((u, i) =>
      fetch(`${srv.url}/_matrix/client/v3/sync?timeout=30000&since=${enc(u.since)}`, {
        headers: { authorization: `Bearer ${u.api.token}` },
        signal: aborts[i].signal,
      }).then(
        () => 'answered',
        () => 'aborted',
      ),
    );
    await waitFor(`${N} parked`, () => waiters() === N);
    const connections = srv.hearth.services.connections;
    for (const u of users) assert.equal(connections.connectedUntil(u.api.userId), Infinity, 'a parked poll counts as connected');
    assert.equal(srv.hearth.services.admission.stats().catchups, 0, 'a parked poll holds no catch-up slot');
    for (const a of aborts) a.abort();
    assert.deepEqual(new Set(await Promise.all(polls)), new Set(['aborted']));
    await waitFor('the registry empty', () => waiters() === 0);
    // The poll's end ran: connected only for the recent window now, not while open.
    await waitFor('polls ended', () => users.every((u) => connections.connectedUntil(u.api.userId) !== Infinity));
  });

  it('a parked long-poll answers on a wake with the new event, and on timeout with the empty answer', async function () {
    const a = await userWithToken('waker');
    const room = (await a.api.post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
    const base = await a.api.get(`/_matrix/client/v3/sync?timeout=0&since=${enc(a.since)}`);
    const since = base.body.next_batch as string;
    const woken = a.api.get(`/_matrix/client/v3/sync?timeout=30000&since=${enc(since)}`);
    await waitFor('parked', () => waiters() === 1);
    const sent = await a.api.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'hi' });
    const res = await woken;
    assert.equal(res.status, 200);
    const events = res.body.rooms?.join?.[room]?.timeline?.events as Array<{ event_id: string }>;
    assert.ok(events?.some((e) => e.event_id === sent.body.event_id), 'the woken poll carries the event');
    assert.equal(waiters(), 0);

    const now = await a.api.get(`/_matrix/client/v3/sync?timeout=0&since=${enc(res.body.next_batch)}`);
    const t0 = Date.now();
    const timedOut = await a.api.get(`/_matrix/client/v3/sync?timeout=400&since=${enc(res.body.next_batch)}`);
    assert.ok(Date.now() - t0 >= 350, 'waited for its timeout');
    assert.equal(timedOut.status, 200);
    assert.deepEqual(timedOut.body, now.body, 'the same answer as an immediate empty sync');
    assert.equal(waiters(), 0);
  });

  it(`${N} idle sockets park, and leave the registry when they close`, async function () {
    const users = await Promise.all(Array.from({ length: N }, (_, i) => new Api(srv.url).register(`sock${i}`)));
    const sockets = users.map((u) => new WebSocket(socketUrl(srv.url), { headers: { authorization: `Bearer ${u.token}` } }));
    const first = sockets.map((ws) => new Promise<void>((resolve) => ws.once('message', () => resolve())));
    await Promise.all(first);
    await waitFor(`${N} parked`, () => waiters() === N);
    // A parked socket still streams: a change wakes it, and it parks again afterwards.
    const room = (await users[0].post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
    const frame = await new Promise<{ type: string; body: any }>((resolve) =>
      sockets[0].on('message', (d) => {
        const f = JSON.parse(String(d));
        if (f.type === 'sync' && f.body.rooms?.join?.[room]) resolve(f);
      }),
    );
    assert.ok(frame.body.rooms.join[room], 'the woken socket pushed the new room');
    await waitFor(`${N} parked again`, () => waiters() === N);
    const closed = sockets.map((ws) => new Promise<void>((resolve) => ws.once('close', () => resolve())));
    for (const ws of sockets) ws.close();
    await Promise.all(closed);
    await waitFor('the registry empty', () => waiters() === 0);
    await waitFor('sockets counted closed', () => users.every((u) => srv.hearth.services.connections.connectedUntil(u.userId) !== Infinity));
  });

  it('a /sync sent as a socket request frame parks, and is cancelled when the socket closes', async function () {
    const u = await new Api(srv.url).register('framed');
    const ws = new WebSocket(socketUrl(srv.url), { headers: { authorization: `Bearer ${u.token}` } });
    const first = await new Promise<{ body: { next_batch: string } }>((resolve) => ws.once('message', (d) => resolve(JSON.parse(String(d)))));
    await waitFor('the stream parked', () => waiters() === 1);
    const path = `/_matrix/client/v3/sync?timeout=30000&since=${enc(first.body.next_batch)}`;
    ws.send(JSON.stringify({ type: 'request', id: 'parked-1', method: 'GET', path }));
    await waitFor('the request frame parked too', () => waiters() === 2);
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    ws.close();
    await closed;
    await waitFor('both left the registry', () => waiters() === 0);
  });
});
