// Two hearth instances sharing one Redis (cluster.redis.url), in one process. They cannot share
// a SQLite file (one writer), so each has its own database; a user is made to exist on both by
// registering the same name on each, and a device by logging in with the same device_id. What
// this shows is the state that lives in Redis: a registration nonce issued by A and spent on B,
// a UIA session begun on A and completed on B (a registration too, with the parameters A's request
// carried), a device logged out on A whose socket on B
// closes, a rate limit that counts requests to both, and a user connected to B who is not pushed
// for an event on A.

import { assert } from '../helpers/assert.js';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ok, roomWith, sendEvent, V3 } from '../helpers/fixtures.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';
import type { HearthConfigInput } from '../../src/config/load.js';
import { bearer, rawConnect, socketUrl, within } from '../socket/helpers.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';
import { until } from '../helpers/until.js';

const SECRET = 's'.repeat(32);
const ADMIN = '/_synapse/admin/v1/register';

async function pair(label: string, extra: HearthConfigInput = {}): Promise<[TestServer, TestServer]> {
  const redis = { url: startRedis(), key_prefix: freshPrefix(label) };
  const cfg: HearthConfigInput = { registration: { shared_secret: SECRET }, cluster: { redis }, ...extra };
  return [await startTestServer(cfg), await startTestServer(cfg)];
}

const login = (base: string, user: string, password: string, deviceId: string) =>
  new Api(base).post(`${V3}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password, device_id: deviceId });

describe('cluster: two instances on one Redis', function () {
  let a: TestServer;
  let b: TestServer;
  before(async () => {
    [a, b] = await pair('two');
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  it('a shared-secret registration nonce from A is good on B, once', async () => {
    const mac = (nonce: string, user: string) => createHmac('sha1', SECRET).update(`${nonce}\0${user}\0pw\0notadmin`).digest('hex');
    const { nonce } = (await new Api(a.url).get(ADMIN)).body;
    const onB = await new Api(b.url).post(ADMIN, { nonce, username: 'viab', password: 'pw', mac: mac(nonce, 'viab') });
    assert.equal(onB.status, 200, JSON.stringify(onB.body));
    assert.equal(onB.body.user_id, '@viab:localhost');
    const again = await new Api(a.url).post(ADMIN, { nonce, username: 'viaa', password: 'pw', mac: mac(nonce, 'viaa') });
    assert.equal(again.status, 400, JSON.stringify(again.body));
    assert.equal((await new Api(a.url).get(`${V3}/register/available?username=viaa`)).status, 200, 'nothing created on A');
  });

  it('a UIA session begun on A is bound and completed on B', async () => {
    await new Api(a.url).register('uia', 'uia password');
    const onB = await new Api(b.url).register('uia', 'uia password');
    const begun = await new Api(a.url, (await login(a.url, 'uia', 'uia password', 'DEVA')).body.access_token).post(`${V3}/delete_devices`, { devices: ['GONE'] });
    assert.equal(begun.status, 401);
    const session = begun.body.session as string;
    const auth = { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'uia' }, password: 'uia password', session };
    // B knows the session and what it was begun for: another request cannot use it.
    const changed = await onB.post(`${V3}/delete_devices`, { devices: ['OTHER'], auth });
    assert.equal(changed.status, 403, JSON.stringify(changed.body));
    assert.match(changed.body.error, /changed/);
    const done = await onB.post(`${V3}/delete_devices`, { devices: ['GONE'], auth });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    // Completed on B, so gone on A too: the same session id there starts afresh (bound anew).
    const fresh = await new Api(a.url, (await login(a.url, 'uia', 'uia password', 'DEVA2')).body.access_token).post(`${V3}/delete_devices`, { devices: ['OTHER'], auth });
    assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
  });

  it('a registration begun on A is completed on B with only auth, with A\'s parameters; a retry answers for the same account', async () => {
    const begun = await new Api(a.url).post(`${V3}/register`, { username: 'RegAB', password: 'reg password', device_id: 'REGDEV', initial_device_display_name: 'begun on A' });
    assert.equal(begun.status, 401, JSON.stringify(begun.body));
    const auth = { type: 'm.login.dummy', session: begun.body.session as string };
    const done = await new Api(b.url).post(`${V3}/register`, { auth });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.user_id, '@regab:localhost');
    assert.equal(done.body.device_id, 'REGDEV');
    const device = await new Api(b.url, done.body.access_token as string).get(`${V3}/devices/REGDEV`);
    assert.equal(device.body.display_name, 'begun on A', JSON.stringify(device.body));
    // The password came from A's request as a hash in the shared session: it logs in on B.
    assert.equal((await login(b.url, 'regab', 'reg password', 'OTHER')).status, 200);
    // (Each instance has its own database here, so the retry goes to B, where the account is.)
    const retry = await new Api(b.url).post(`${V3}/register`, { auth });
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.equal(retry.body.user_id, '@regab:localhost');
    assert.notEqual(retry.body.access_token, done.body.access_token);
  });

  it('logging a device out on A closes its socket on B', async () => {
    await new Api(a.url).register('sock', 'sock password');
    await new Api(b.url).register('sock', 'sock password');
    const onA = await login(a.url, 'sock', 'sock password', 'SHARED');
    const onB = await login(b.url, 'sock', 'sock password', 'SHARED');
    assert.equal(onA.status, 200);
    assert.equal(onB.status, 200);
    const other = await login(b.url, 'sock', 'sock password', 'OTHER');
    const sock = await rawConnect(socketUrl(b.url), bearer(onB.body.access_token));
    const bystander = await rawConnect(socketUrl(b.url), bearer(other.body.access_token));
    assert.equal(await within(sock.closed, 300, null), null, 'open before the logout');
    assert.equal((await new Api(a.url, onA.body.access_token).post(`${V3}/logout`, {})).status, 200);
    const closed = await within(sock.closed, 3000, null);
    assert.ok(closed, 'the socket on B closed');
    assert.ok(sock.frames.some((f) => f.errcode === 'M_UNKNOWN_TOKEN'), JSON.stringify(sock.frames.slice(-2)));
    assert.equal(await within(bystander.closed, 300, null), null, 'another device of the user stays');
    bystander.ws.close(1000);
  });
});

describe('cluster: a rate limit counts requests to both instances', function () {
  let a: TestServer;
  let b: TestServer;
  before(async () => {
    [a, b] = await pair('rate', { limits: { rate_limits: { enabled: true, registration: { per_second: 0.01, burst: 3 } } } });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  it('three requests spread over A and B use the bucket; the fourth is refused on either', async () => {
    const avail = (s: TestServer, n: number) => new Api(s.url).get(`${V3}/register/available?username=free${n}`);
    assert.equal((await avail(a, 1)).status, 200);
    assert.equal((await avail(b, 2)).status, 200);
    assert.equal((await avail(a, 3)).status, 200);
    const refused = await avail(b, 4);
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body.errcode, 'M_LIMIT_EXCEEDED');
    assert.ok(refused.body.retry_after_ms > 0);
    assert.equal((await avail(a, 5)).status, 429);
  });
});

describe('cluster: no push for a user connected to the other instance', function () {
  let a: TestServer;
  let b: TestServer;
  let gateway: Server;
  let gatewayUrl: string;
  const pushedKeys: string[] = [];

  before(async () => {
    gateway = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const n = JSON.parse(Buffer.concat(chunks).toString('utf8')).notification;
        for (const d of n.devices ?? []) pushedKeys.push(`${d.pushkey} ${n.event_id}`);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"rejected":[]}');
      });
    });
    await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', r));
    gatewayUrl = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}/_matrix/push/v1/notify`;
    [a, b] = await pair('push', { push: { connected_window_ms: 200, request_timeout_ms: 2000 }, outbound: { ip_range_whitelist: ['127.0.0.1/32'] } });
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    gateway.closeAllConnections();
    await new Promise<void>((r) => gateway.close(() => r()));
  });

  it('bob, offline on A but with a socket on B, is not pushed; once it closes he is', async () => {
    const api = new Api(a.url);
    const [alice, bob, carol] = [await api.register('alice'), await api.register('bob'), await api.register('carol')];
    for (const u of [bob, carol]) {
      await ok(
        u.post(`${V3}/pushers/set`, { kind: 'http', app_id: 'org.example.app', pushkey: `key-${u.userId}`, app_display_name: 'E', device_display_name: 'P', lang: 'en', data: { url: gatewayUrl } }),
        'pushers/set',
      );
    }
    const roomId = await roomWith(alice, [bob, carol], { preset: 'public_chat' });
    const bobOnB = await new Api(b.url).register('bob');
    const sock = await rawConnect(socketUrl(b.url), bearer(bobOnB.token!));
    await new Promise((r) => setTimeout(r, 100)); // the socket's announcement reaches Redis
    const first = await sendEvent(alice, roomId, 'm.room.message', 't1', { msgtype: 'm.text', body: 'one' }, 'send');
    await until(() => `carol is pushed; pushed ${JSON.stringify(pushedKeys)}`, () => pushedKeys.includes(`key-@carol:localhost ${first}`));
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!pushedKeys.includes(`key-@bob:localhost ${first}`), `bob was pushed: ${JSON.stringify(pushedKeys)}`);
    sock.ws.close(1000);
    await sock.closed;
    await new Promise((r) => setTimeout(r, 100));
    const second = await sendEvent(alice, roomId, 'm.room.message', 't2', { msgtype: 'm.text', body: 'two' }, 'send');
    await until(() => `bob is pushed once his socket is gone; pushed ${JSON.stringify(pushedKeys)}`, () => pushedKeys.includes(`key-@bob:localhost ${second}`));
  });
});
