// Single sign-on across two instances sharing one Redis (as two-instances.spec.ts: each has its
// own SQLite, so the user is registered on both): a login token issued by A's ticket endpoint is
// redeemed on B, once; an SSO UIA session begun on B is completed by a ticket on A.

import assert from 'node:assert/strict';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';
import { FakeIdp, casTicketPage, loginTokenIn, raw, unescapeHtml } from '../helpers/fake-idp.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';

const V3 = '/_matrix/client/v3';

describe('cluster: SSO across two instances on one Redis', function () {
  this.timeout(60_000);
  const idp = new FakeIdp();
  let a: TestServer;
  let b: TestServer;
  before(async function () {
    this.timeout(300_000);
    await idp.start();
    const cfg = { cluster: { redis: { url: startRedis(), key_prefix: freshPrefix('sso') } }, cas: { enabled: true, server_url: `${idp.url}/cas` } };
    a = await startTestServer(cfg);
    b = await startTestServer(cfg);
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await idp.stop();
  });

  it('a login token from A logs in on B, once, and not again on A', async () => {
    await new Api(a.url).register('roamer');
    await new Api(b.url).register('roamer');
    const { page } = await casTicketPage(idp, a.url, 'roamer', 'https://client.example/');
    const token = loginTokenIn(page.text);
    const onB = await new Api(b.url).post(`${V3}/login`, { type: 'm.login.token', token });
    assert.equal(onB.status, 200, JSON.stringify(onB.body));
    assert.equal(onB.body.user_id, '@roamer:localhost');
    const onA = await new Api(a.url).post(`${V3}/login`, { type: 'm.login.token', token });
    assert.equal(onA.status, 403);
  });

  it('an SSO UIA session begun on B is completed by a ticket on A', async () => {
    await new Api(a.url).register('uiaer');
    const userB = await new Api(b.url).register('uiaer');
    const first = await userB.req('DELETE', `${V3}/devices/${userB.deviceId}`, {});
    assert.equal(first.status, 401);
    const fb = await raw(`${a.url}${V3}/auth/m.login.sso/fallback/web?session=${encodeURIComponent(first.body.session)}`);
    const service = new URL(unescapeHtml(/href="([^"]*)"/.exec(fb.text)![1]!)).searchParams.get('service')!;
    idp.tickets.set('ST-cluster', { user: 'uiaer' });
    const done = await raw(`${service}&ticket=ST-cluster`);
    assert.equal(done.status, 200);
    const del = await userB.req('DELETE', `${V3}/devices/${userB.deviceId}`, { auth: { session: first.body.session } });
    assert.equal(del.status, 200, JSON.stringify(del.body));
  });
});
