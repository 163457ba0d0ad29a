// Application services over HTTP: a real Hearth with registration files in a temp dir, and a real
// HTTP server (fake-as.ts) as the AS. Delivery order and retries, masquerading, exclusive
// namespaces, user and alias queries, m.login.application_service registration and login,
// restart resuming from the stored position, AS room lists, third-party lookups, bad input.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { createRoom, expectError, makeUser, ok, roomPath } from '../helpers/fixtures.js';
import { FakeAppService, writeRegistrations } from './fake-as.js';

const V3 = '/_matrix/client/v3';
const AS_TOKEN = 'as-token-bridge-0123456789';
const HS_TOKEN = 'hs-token-bridge-0123456789';

function registration(url: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'bridge',
    url,
    as_token: AS_TOKEN,
    hs_token: HS_TOKEN,
    sender_localpart: 'bridgebot',
    namespaces: {
      users: [{ regex: '@bridge_.*:localhost', exclusive: true }],
      aliases: [{ regex: '#bridge_.*:localhost', exclusive: true }],
      rooms: [],
    },
    rate_limited: false,
    protocols: ['ymca'],
    ...extra,
  };
}

async function startWith(regFiles: string[], dataDir?: string): Promise<TestServer> {
  return startTestServer(
    {
      app_services: regFiles,
      app_service_delivery: { min_backoff_ms: 50, max_backoff_ms: 200 },
      outbound: { ip_range_whitelist: ['127.0.0.0/8'] },
    },
    dataDir,
  );
}

/** A client acting with the AS's token, optionally as ?user_id=. */
class AsClient extends Api {
  constructor(base: string, private readonly as?: string) {
    super(base, AS_TOKEN);
  }
  override req(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    if (!this.as) return super.req(method, path, body, headers);
    return super.req(method, `${path}${path.includes('?') ? '&' : '?'}user_id=${enc(this.as)}`, body, headers);
  }
}

const texts = (events: any[], roomId: string) => events.filter((e) => e.room_id === roomId && e.type === 'm.room.message').map((e) => e.content.body);

describe('Application services', function () {
  this.timeout(30_000);
  const fake = new FakeAppService();
  let srv: TestServer;
  let bot: AsClient;

  before(async () => {
    await fake.start();
    srv = await startWith(writeRegistrations(registration(fake.url)));
    bot = new AsClient(srv.url);
  });
  after(async () => {
    await srv?.stop();
    await fake.stop();
  });

  describe('delivery', function () {
    it('pushes the events of rooms its user is in, in order, and retries a transaction that got a 500 under the same ID', async () => {
      const alice = await makeUser(srv, 'alice');
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await ok(alice.post(roomPath(roomId, 'invite'), { user_id: '@bridgebot:localhost' }), 'invite bot');
      await fake.waitFor((evs) => evs.some((e) => e.type === 'm.room.member' && e.state_key === '@bridgebot:localhost'), 'the invite');
      await ok(bot.post(`${V3}/join/${enc(roomId)}`, {}), 'bot joins with the as_token');
      fake.failNext = 1;
      const failedBefore = fake.txns.filter((t) => t.status === 500).length;
      for (let i = 1; i <= 6; i++) {
        await ok(alice.put(roomPath(roomId, `send/m.room.message/t${i}`), { msgtype: 'm.text', body: `m${i}` }), `send m${i}`);
      }
      const events = await fake.waitFor((evs) => texts(evs, roomId).length === 6, 'six messages');
      assert.deepEqual(texts(events, roomId), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
      const failed = fake.txns.filter((t) => t.status === 500);
      assert.equal(failed.length, failedBefore + 1, 'one transaction was refused');
      const refused = failed[failed.length - 1]!;
      const retried = fake.txns.find((t) => t.status === 200 && t.txnId === refused.txnId);
      assert.ok(retried, 'the refused transaction came again under its ID');
      assert.deepEqual(retried.events.map((e) => e.event_id), refused.events.map((e) => e.event_id), 'with the same events');
      // IDs only grow among acknowledged transactions, and every request carried the hs_token.
      const ids = fake.txns.filter((t) => t.status === 200).map((t) => Number(t.txnId));
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
      assert.equal(new Set(ids).size, ids.length);
      assert.ok(fake.txns.every((t) => t.auth === `Bearer ${HS_TOKEN}`));
      // Events are in the client format with room_id.
      const m1 = events.find((e) => e.content?.body === 'm1');
      assert.equal(m1.sender, alice.userId);
      assert.equal(typeof m1.event_id, 'string');
      assert.equal(typeof m1.origin_server_ts, 'number');
    });

    it('does not push events of rooms it has no interest in', async () => {
      const carol = await makeUser(srv, 'carol');
      const quiet = await createRoom(carol, { preset: 'private_chat' });
      await ok(carol.put(roomPath(quiet, 'send/m.room.message/q1'), { msgtype: 'm.text', body: 'private' }), 'send');
      // A later interesting event proves the earlier one was passed over, not merely late.
      const loud = await createRoom(carol, { preset: 'public_chat' });
      await ok(carol.post(roomPath(loud, 'invite'), { user_id: '@bridgebot:localhost' }), 'invite');
      await fake.waitFor((evs) => evs.some((e) => e.room_id === loud && e.state_key === '@bridgebot:localhost'), 'the later invite');
      assert.equal(fake.acknowledged().filter((e) => e.room_id === quiet).length, 0);
    });

    it('pushes events of rooms with an alias in its namespace', async () => {
      const dave = await makeUser(srv, 'dave');
      const roomId = await createRoom(dave, { preset: 'public_chat' });
      await ok(bot.put(`${V3}/directory/room/${enc('#bridge_dave:localhost')}`, { room_id: roomId }), 'the AS maps its alias without joining');
      await ok(dave.put(roomPath(roomId, 'send/m.room.message/a1'), { msgtype: 'm.text', body: 'aliased' }), 'send');
      await fake.waitFor((evs) => texts(evs, roomId).includes('aliased'), 'the message in the aliased room');
    });
  });

  describe('identity', function () {
    it('registers namespace users with m.login.application_service, without UIA, and masquerades as them', async () => {
      const reg = await ok(bot.post(`${V3}/register`, { type: 'm.login.application_service', username: 'bridge_alice' }), 'AS register');
      assert.equal(reg.user_id, '@bridge_alice:localhost');
      assert.equal(typeof reg.access_token, 'string');
      const inhibited = await ok(bot.post(`${V3}/register`, { type: 'm.login.application_service', username: '@bridge_bob:localhost', inhibit_login: true }), 'AS register, full ID');
      assert.deepEqual(Object.keys(inhibited).sort(), ['home_server', 'user_id']);
      expectError(await bot.post(`${V3}/register`, { type: 'm.login.application_service', username: 'bridge_alice' }), 400, 'M_USER_IN_USE');

      const ghost = new AsClient(srv.url, '@bridge_alice:localhost');
      assert.equal((await ok(ghost.get(`${V3}/account/whoami`), 'whoami')).user_id, '@bridge_alice:localhost');
      assert.equal((await ok(bot.get(`${V3}/account/whoami`), 'whoami')).user_id, '@bridgebot:localhost');
      const roomId = await createRoom(ghost, { preset: 'public_chat', name: 'ghost room' });
      const sent = await ok(ghost.put(roomPath(roomId, 'send/m.room.message/g1'), { msgtype: 'm.text', body: 'from a ghost' }), 'ghost sends');
      const ev = await ok(ghost.get(roomPath(roomId, `event/${enc(sent.event_id)}`)), 'read back');
      assert.equal(ev.sender, '@bridge_alice:localhost');
      // The ghost's own token from registration works too.
      assert.equal((await ok(new Api(srv.url, reg.access_token).get(`${V3}/account/whoami`), 'ghost token')).user_id, '@bridge_alice:localhost');
      // And the AS can log it in again (m.login.application_service login).
      const login = await ok(bot.post(`${V3}/login`, { type: 'm.login.application_service', identifier: { type: 'm.id.user', user: 'bridge_alice' } }), 'AS login');
      assert.equal(login.user_id, '@bridge_alice:localhost');
      const flows = await ok(new Api(srv.url).get(`${V3}/login`), 'login flows');
      assert.ok(flows.flows.some((f: any) => f.type === 'm.login.application_service'));
    });

    it('refuses to masquerade outside the namespaces or as unregistered users', async () => {
      await makeUser(srv, 'erin');
      expectError(await new AsClient(srv.url, '@erin:localhost').get(`${V3}/account/whoami`), 403, 'M_FORBIDDEN');
      expectError(await new AsClient(srv.url, '@bridge_nobody:localhost').get(`${V3}/account/whoami`), 403, 'M_FORBIDDEN');
      expectError(await new AsClient(srv.url, '@bridge_x:elsewhere.example').get(`${V3}/account/whoami`), 403, 'M_FORBIDDEN');
      expectError(await new AsClient(srv.url, 'not a user id').get(`${V3}/account/whoami`), 400, 'M_INVALID_PARAM');
      // A user's own token ignores user_id.
      // A ghost the AS deactivated (without UIA) can no longer be acted as.
      await ok(bot.post(`${V3}/register`, { type: 'm.login.application_service', username: 'bridge_gone', inhibit_login: true }), 'register');
      const gone = new AsClient(srv.url, '@bridge_gone:localhost');
      await ok(gone.post(`${V3}/account/deactivate`, {}), 'AS deactivates its ghost');
      expectError(await gone.get(`${V3}/account/whoami`), 403, 'M_USER_DEACTIVATED');
      const erin = await makeUser(srv, 'erin2');
      const r = await erin.get(`${V3}/account/whoami?user_id=${enc('@bridge_alice:localhost')}`);
      assert.equal(r.body.user_id, '@erin2:localhost');
    });

    it('keeps exclusive namespaces for the AS', async () => {
      const anon = new Api(srv.url);
      expectError(await anon.get(`${V3}/register/available?username=bridge_taken`), 400, 'M_EXCLUSIVE');
      expectError(await anon.post(`${V3}/register`, { username: 'bridge_mallory', password: 'correct horse battery' }), 400, 'M_EXCLUSIVE');
      expectError(await bot.post(`${V3}/register`, { type: 'm.login.application_service', username: 'outsider' }), 400, 'M_EXCLUSIVE');
      const frank = await makeUser(srv, 'frank');
      const roomId = await createRoom(frank, { preset: 'public_chat' });
      expectError(await frank.put(`${V3}/directory/room/${enc('#bridge_frank:localhost')}`, { room_id: roomId }), 400, 'M_EXCLUSIVE');
      expectError(await frank.post(`${V3}/createRoom`, { room_alias_name: 'bridge_room2' }), 400, 'M_EXCLUSIVE');
      // Outside the namespaces nothing changes.
      await ok(frank.put(`${V3}/directory/room/${enc('#frank:localhost')}`, { room_id: roomId }), 'ordinary alias');
    });

    it('answers bad input with Matrix errors', async () => {
      expectError(await new Api(srv.url).post(`${V3}/register`, { type: 'm.login.application_service', username: 'bridge_z' }), 401, 'M_MISSING_TOKEN');
      expectError(await new Api(srv.url, 'wrong').post(`${V3}/register`, { type: 'm.login.application_service', username: 'bridge_z' }), 401, 'M_UNKNOWN_TOKEN');
      expectError(await bot.post(`${V3}/register`, { type: 'm.login.application_service' }), 400, 'M_MISSING_PARAM');
      expectError(await bot.post(`${V3}/register`, { type: 'm.login.application_service', username: 'bridge_Bad Name' }), 400, 'M_INVALID_USERNAME');
      expectError(await bot.post(`${V3}/login`, { type: 'm.login.application_service', identifier: { type: 'm.id.user', user: 'bridge_never' } }), 403, 'M_FORBIDDEN');
      const room = await createRoom(await makeUser(srv, 'gina'), { preset: 'public_chat' });
      expectError(await bot.put(`${V3}/directory/list/appservice/net/${enc(room)}`, { visibility: 'sideways' }), 400, 'M_BAD_JSON');
      expectError(await bot.put(`${V3}/directory/list/appservice/net/${enc('!nope:localhost')}`, { visibility: 'public' }), 404, 'M_NOT_FOUND');
      expectError(await bot.get(`${V3}/thirdparty/location`), 400, 'M_MISSING_PARAM');
      expectError(await bot.get(`${V3}/thirdparty/user/unknownproto`), 404, 'M_NOT_FOUND');
    });
  });

  describe('queries', function () {
    it('asks the AS about an unknown namespace user before an invite, and the AS creates it', async () => {
      const hank = await makeUser(srv, 'hank');
      const roomId = await createRoom(hank, { preset: 'private_chat' });
      fake.onQuery = async (path) => {
        if (path === '/_matrix/app/v1/users/@bridge_new:localhost') {
          await ok(bot.post(`${V3}/register`, { type: 'm.login.application_service', username: 'bridge_new', inhibit_login: true }), 'AS creates the user');
          return { status: 200, body: {} };
        }
        return { status: 404, body: {} };
      };
      await ok(hank.post(roomPath(roomId, 'invite'), { user_id: '@bridge_new:localhost' }), 'invite');
      assert.ok(fake.queries.some((q) => q.path === '/_matrix/app/v1/users/@bridge_new:localhost' && q.auth === `Bearer ${HS_TOKEN}`));
      const ghost = new AsClient(srv.url, '@bridge_new:localhost');
      await ok(ghost.post(roomPath(roomId, 'join'), {}), 'the ghost accepts');
    });

    it('asks the AS about an unknown namespace alias, and resolves the room it creates', async () => {
      fake.onQuery = async (path) => {
        if (path === '/_matrix/app/v1/rooms/#bridge_lobby:localhost') {
          const roomId = (await ok(bot.post(`${V3}/createRoom`, { preset: 'public_chat', room_alias_name: 'bridge_lobby' }), 'AS creates the room')).room_id;
          assert.equal(typeof roomId, 'string');
          return { status: 200, body: {} };
        }
        return { status: 404, body: { errcode: 'M_NOT_FOUND', error: 'no' } };
      };
      const ivy = await makeUser(srv, 'ivy');
      const found = await ok(ivy.get(`${V3}/directory/room/${enc('#bridge_lobby:localhost')}`), 'resolve');
      assert.equal(typeof found.room_id, 'string');
      await ok(ivy.post(`${V3}/join/${enc('#bridge_lobby:localhost')}`, {}), 'join by alias');
      expectError(await ivy.get(`${V3}/directory/room/${enc('#bridge_unknown:localhost')}`), 404, 'M_NOT_FOUND');
      // An alias outside every namespace is never asked about.
      const before = fake.queries.length;
      expectError(await ivy.get(`${V3}/directory/room/${enc('#plain:localhost')}`), 404, 'M_NOT_FOUND');
      assert.equal(fake.queries.length, before);
    });

    it('proxies third-party lookups to the AS with the client\'s fields', async () => {
      fake.onQuery = (path, q) => {
        if (path === '/_matrix/app/v1/thirdparty/protocol/ymca') {
          return { status: 200, body: { user_fields: ['nick'], location_fields: ['channel'], icon: 'mxc://x/y', field_types: {}, instances: [{ desc: 'one', network_id: 'libera' }] } };
        }
        if (path === '/_matrix/app/v1/thirdparty/user/ymca') return { status: 200, body: [{ protocol: 'ymca', fields: { nick: q.get('nick') }, userid: '@bridge_n:localhost' }] };
        if (path === '/_matrix/app/v1/thirdparty/location') return { status: 200, body: [{ protocol: 'ymca', fields: {}, alias: q.get('alias') }] };
        return { status: 500, body: {} };
      };
      const protocols = await ok(bot.get(`${V3}/thirdparty/protocols`), 'protocols');
      assert.deepEqual(Object.keys(protocols), ['ymca']);
      assert.deepEqual(protocols.ymca.instances, [{ desc: 'one', network_id: 'libera', instance_id: 'bridge|libera' }]);
      assert.equal((await ok(bot.get(`${V3}/thirdparty/protocol/ymca`), 'one protocol')).icon, 'mxc://x/y');
      expectError(await bot.get(`${V3}/thirdparty/protocol/other`), 404, 'M_NOT_FOUND');
      const users = await ok(bot.get(`${V3}/thirdparty/user/ymca?nick=joe`), 'user lookup');
      assert.deepEqual(users, [{ protocol: 'ymca', fields: { nick: 'joe' }, userid: '@bridge_n:localhost' }]);
      const q = fake.queries.find((x) => x.path === '/_matrix/app/v1/thirdparty/user/ymca')!;
      assert.equal(q.query.get('access_token'), null, 'the client\'s token is not passed on');
      const locs = await ok(bot.get(`${V3}/thirdparty/location?alias=${enc('#x:y')}`), 'location by alias');
      assert.deepEqual(locs, [{ protocol: 'ymca', fields: {}, alias: '#x:y' }]);
    });
  });

  describe('ping', function () {
    it('reaches the AS for the AS itself only, and reports what went wrong', async () => {
      fake.onQuery = (path) => (path === '/_matrix/app/v1/ping' ? { status: 200, body: {} } : { status: 404, body: {} });
      const pong = await ok(bot.post('/_matrix/client/v1/appservice/bridge/ping', { transaction_id: 'p-1' }), 'ping');
      assert.equal(typeof pong.duration_ms, 'number');
      const q = fake.queries.filter((x) => x.path === '/_matrix/app/v1/ping').pop()!;
      assert.deepEqual(JSON.parse(q.body), { transaction_id: 'p-1' });
      assert.equal(q.auth, `Bearer ${HS_TOKEN}`);
      expectError(await bot.post('/_matrix/client/v1/appservice/other/ping', {}), 403, 'M_FORBIDDEN');
      expectError(await (await makeUser(srv, 'kim')).post('/_matrix/client/v1/appservice/bridge/ping', {}), 403, 'M_FORBIDDEN');
      fake.onQuery = () => ({ status: 500, body: { errcode: 'M_UNKNOWN', error: 'sad' } });
      expectError(await bot.post('/_matrix/client/v1/appservice/bridge/ping', {}), 502, 'M_BAD_STATUS');
    });
  });

  describe('room lists', function () {
    it('publishes rooms in the AS\'s own network list, apart from the main directory', async () => {
      const jill = await makeUser(srv, 'jill');
      const roomId = await createRoom(jill, { preset: 'public_chat', name: 'bridged' });
      expectError(await jill.put(`${V3}/directory/list/appservice/libera/${enc(roomId)}`, { visibility: 'public' }), 403, 'M_FORBIDDEN');
      await ok(bot.put(`${V3}/directory/list/appservice/libera/${enc(roomId)}`, { visibility: 'public' }), 'publish');
      const ids = async (body: Record<string, unknown>) => (await ok(jill.post(`${V3}/publicRooms`, body), 'publicRooms')).chunk.map((c: any) => c.room_id);
      assert.ok(!(await ids({})).includes(roomId), 'not in the main list');
      assert.ok((await ids({ third_party_instance_id: 'bridge|libera' })).includes(roomId), 'in the network list');
      assert.ok(!(await ids({ third_party_instance_id: 'bridge|other' })).includes(roomId));
      assert.ok((await ids({ include_all_networks: true })).includes(roomId), 'in the full list');
      await ok(bot.req('DELETE', `${V3}/directory/list/appservice/libera/${enc(roomId)}`), 'withdraw');
      assert.ok(!(await ids({ third_party_instance_id: 'bridge|libera' })).includes(roomId));
    });
  });
});

describe('Application services: restart', function () {
  this.timeout(60_000);

  it('resumes delivery after a restart from the stored position, without resending what was acknowledged', async () => {
    const fake = new FakeAppService();
    await fake.start();
    const dataDir = mkdtempSync(join(tmpdir(), 'hearth-as-restart-'));
    const regs = writeRegistrations(registration(fake.url));
    let srv = await startWith(regs, dataDir);
    try {
      const alice = await makeUser(srv, 'alice');
      const roomId = await createRoom(alice, { preset: 'public_chat' });
      await ok(alice.post(roomPath(roomId, 'invite'), { user_id: '@bridgebot:localhost' }), 'invite');
      await ok(new AsClient(srv.url).post(`${V3}/join/${enc(roomId)}`, {}), 'join');
      await ok(alice.put(roomPath(roomId, 'send/m.room.message/r1'), { msgtype: 'm.text', body: 'before' }), 'send');
      await fake.waitFor((evs) => texts(evs, roomId).includes('before'), 'the first message');
      const lastId = Math.max(...fake.txns.map((t) => Number(t.txnId)));
      // The AS goes down: these are not acknowledged before the server stops.
      fake.down = true;
      await ok(alice.put(roomPath(roomId, 'send/m.room.message/r2'), { msgtype: 'm.text', body: 'during 1' }), 'send');
      await ok(alice.put(roomPath(roomId, 'send/m.room.message/r3'), { msgtype: 'm.text', body: 'during 2' }), 'send');
      const deadline = Date.now() + 10_000;
      while (!fake.txns.some((t) => t.status === 500) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await srv.stop();
      fake.down = false;
      srv = await startWith(regs, dataDir);
      const aliceAgain = new Api(srv.url, alice.token);
      await ok(aliceAgain.put(roomPath(roomId, 'send/m.room.message/r4'), { msgtype: 'm.text', body: 'after' }), 'send after restart');
      const events = await fake.waitFor((evs) => texts(evs, roomId).includes('after'), 'the message after the restart');
      assert.deepEqual(texts(events, roomId), ['before', 'during 1', 'during 2', 'after']);
      const afterIds = fake.txns.filter((t) => t.status === 200 && t.events.some((e) => e.content?.body === 'during 1')).map((t) => Number(t.txnId));
      assert.ok(afterIds.length === 1 && afterIds[0]! > lastId, `a new transaction ID after the restart (${afterIds} > ${lastId})`);
    } finally {
      await srv.stop();
      await fake.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('Application services: delivery off on this process', function () {
  this.timeout(30_000);

  it('still serves as_token requests but pushes nothing (app_service_delivery.enabled: false)', async () => {
    const fake = new FakeAppService();
    await fake.start();
    const srv = await startTestServer({
      app_services: writeRegistrations(registration(fake.url)),
      app_service_delivery: { enabled: false },
      outbound: { ip_range_whitelist: ['127.0.0.0/8'] },
    });
    try {
      const bot = new AsClient(srv.url);
      const roomId = await createRoom(bot, { preset: 'public_chat' });
      await ok(bot.put(roomPath(roomId, 'send/m.room.message/x1'), { msgtype: 'm.text', body: 'hello' }), 'send');
      // The ping goes through the same client: proof the AS is reachable, so silence is the switch.
      fake.onQuery = () => ({ status: 200, body: {} });
      await ok(bot.post('/_matrix/client/v1/appservice/bridge/ping', {}), 'ping');
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(fake.txns.length, 0);
    } finally {
      await srv.stop();
      await fake.stop();
    }
  });
});

describe('Application services: a backlog past max_pending_events', function () {
  this.timeout(60_000);

  it('holds only max_pending_events in memory and reads the rest back from the store, in order', async () => {
    const fake = new FakeAppService();
    await fake.start();
    const srv = await startTestServer({
      app_services: writeRegistrations(registration(fake.url)),
      app_service_delivery: { min_backoff_ms: 50, max_backoff_ms: 100, max_pending_events: 2, max_events_per_transaction: 1 },
      outbound: { ip_range_whitelist: ['127.0.0.0/8'] },
    });
    try {
      const bot = new AsClient(srv.url);
      const roomId = await createRoom(bot, { preset: 'public_chat' });
      await fake.waitFor((evs) => evs.some((e) => e.room_id === roomId), 'the room creation');
      fake.down = true;
      const bodies = Array.from({ length: 7 }, (_, i) => `b${i}`);
      for (const b of bodies) await ok(bot.put(roomPath(roomId, `send/m.room.message/${b}`), { msgtype: 'm.text', body: b }), `send ${b}`);
      fake.down = false;
      const events = await fake.waitFor((evs) => texts(evs, roomId).length >= bodies.length, 'the backlog');
      assert.deepEqual(texts(events, roomId), bodies);
      // One event per transaction: each acknowledged ID carries one event, none twice.
      const ids = fake.txns.filter((t) => t.status === 200).map((t) => t.txnId);
      assert.equal(new Set(ids).size, ids.length);
    } finally {
      await srv.stop();
      await fake.stop();
    }
  });
});
