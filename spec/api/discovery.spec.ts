// Discovery and start-up endpoints over real HTTP: /versions, .well-known, /capabilities, push
// rules, the r0 alias, CORS, and unknown endpoints (spec v1.12 "API Standards", "Web Browser
// Clients", "Server Discovery", "Capabilities negotiation").

import { assert } from '../helpers/assert.js';
import { expectError, V3, type User } from '../helpers/fixtures.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';

const SPEC_VERSIONS = ['v1.1', 'v1.2', 'v1.3', 'v1.4', 'v1.5', 'v1.6', 'v1.7', 'v1.8', 'v1.9', 'v1.10', 'v1.11', 'v1.12'];

function assertCors(res: Response, where: string) {
  assert.equal(res.headers.get('access-control-allow-origin'), '*', `${where}: Access-Control-Allow-Origin`);
  const methods = (res.headers.get('access-control-allow-methods') ?? '').split(/\s*,\s*/);
  for (const m of ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS']) assert.ok(methods.includes(m), `${where}: Allow-Methods lacks ${m}`);
  const headers = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase().split(/\s*,\s*/);
  for (const h of ['x-requested-with', 'content-type', 'authorization']) assert.ok(headers.includes(h), `${where}: Allow-Headers lacks ${h}`);
}

describe('discovery', function () {
  let srv: TestServer;
  let api: Api;
  let alice: User;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
    alice = await api.register('alice');
  });
  after(async () => srv.stop());

  it('JSON answers, errors included, are Content-Type application/json without a charset (RFC 8259 defines none)', async () => {
    for (const [path, status] of [['/_matrix/client/versions', 200], [`${V3}/register`, 401], [`${V3}/nowhere`, 404]] as const) {
      const res = await fetch(`${srv.url}${path}`, path.endsWith('register') ? { method: 'POST', body: '{}' } : {});
      assert.equal(res.status, status, path);
      assert.equal(res.headers.get('content-type'), 'application/json', path);
      assert.equal(typeof (await res.json()), 'object', path);
    }
  });

  it('GET /_matrix/client/versions lists v1.1 to v1.12 as exact strings, without authentication', async () => {
    const r = await api.get('/_matrix/client/versions');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(Array.isArray(r.body.versions));
    for (const v of SPEC_VERSIONS) assert.ok(r.body.versions.includes(v), `missing ${v}`);
    for (const v of r.body.versions) assert.equal(typeof v, 'string');
    if (r.body.unstable_features !== undefined) {
      assert.equal(typeof r.body.unstable_features, 'object');
      for (const flag of Object.values(r.body.unstable_features)) assert.equal(typeof flag, 'boolean');
    }
  });

  it('GET /_matrix/client/versions answers the same with an Authorization header (v1.10: optionally authenticated)', async () => {
    const anon = await api.get('/_matrix/client/versions');
    const authed = await alice.get('/_matrix/client/versions');
    assert.equal(authed.status, 200, JSON.stringify(authed.body));
    assert.deepEqual(authed.body.versions, anon.body.versions);
  });

  it('GET /.well-known/matrix/client points at a base URL that serves the client API', async () => {
    const res = await fetch(`${srv.url}/.well-known/matrix/client`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assertCors(res, 'GET /.well-known/matrix/client');
    const body = (await res.json()) as any;
    const base = body['m.homeserver']?.base_url;
    assert.equal(typeof base, 'string', JSON.stringify(body));
    const url = new URL(base);
    assert.ok(url.protocol === 'http:' || url.protocol === 'https:');
    // No public_baseurl is configured, so the derived one must name the address actually bound
    // (the test server listens on port 0, i.e. an OS-assigned port).
    assert.equal(url.host, new URL(srv.url).host, `base_url ${base} does not reach this server at ${srv.url}`);
    const versions = await fetch(new URL('_matrix/client/versions', base.endsWith('/') ? base : `${base}/`));
    assert.equal(versions.status, 200, 'base_url reaches this server');
  });

  it('GET /capabilities: m.room_versions (default 12; 1 to 12 available) and m.change_password', async () => {
    const r = await alice.get(`${V3}/capabilities`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const caps = r.body.capabilities;
    assert.equal(typeof caps, 'object');
    assert.equal(caps['m.room_versions'].default, '12');
    const available = caps['m.room_versions'].available;
    for (let v = 1; v <= 12; v++) assert.equal(available[String(v)], 'stable');
    assert.equal(Object.keys(available).length, 12);
    for (const stability of Object.values(available)) assert.ok(stability === 'stable' || stability === 'unstable');
    assert.equal(caps['m.change_password'].enabled, true);
    expectError(await api.get(`${V3}/capabilities`), 401, 'M_MISSING_TOKEN');
  });

  it('GET /voip/turnServer and /thirdparty/protocols answer {} when nothing is configured', async () => {
    const turn = await alice.get(`${V3}/voip/turnServer`);
    assert.equal(turn.status, 200, JSON.stringify(turn.body));
    assert.deepEqual(turn.body, {});
    const proto = await alice.get(`${V3}/thirdparty/protocols`);
    assert.equal(proto.status, 200, JSON.stringify(proto.body));
    assert.deepEqual(proto.body, {});
  });

  it('GET /pushrules/ returns the global ruleset with the default rules', async () => {
    const r = await alice.get(`${V3}/pushrules/`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const g = r.body.global;
    assert.equal(typeof g, 'object');
    for (const kind of ['override', 'content', 'room', 'sender', 'underride']) assert.ok(Array.isArray(g[kind]), `global.${kind}`);
    const master = g.override.find((x: any) => x.rule_id === '.m.rule.master');
    assert.ok(master, 'has .m.rule.master');
    assert.equal(master.default, true);
    assert.equal(master.enabled, false);
    assert.equal(g.override[0].rule_id, '.m.rule.master', 'master comes first');
    const userName = g.content.find((x: any) => x.rule_id === '.m.rule.contains_user_name');
    assert.ok(userName);
    assert.equal(userName.pattern, 'alice');
    assert.ok(g.underride.some((x: any) => x.rule_id === '.m.rule.message'));
    for (const kind of ['override', 'content', 'underride']) {
      for (const rule of g[kind]) {
        assert.equal(typeof rule.rule_id, 'string');
        assert.ok(Array.isArray(rule.actions), `${rule.rule_id} actions`);
        assert.equal(typeof rule.enabled, 'boolean');
        assert.equal(typeof rule.default, 'boolean');
      }
    }
  });

  it('serves /_matrix/client/r0/account/whoami as an alias of v3', async () => {
    const r0 = await alice.get('/_matrix/client/r0/account/whoami');
    const v3 = await alice.get(`${V3}/account/whoami`);
    assert.equal(r0.status, 200, JSON.stringify(r0.body));
    assert.deepEqual(r0.body, v3.body);
    assert.equal(r0.body.user_id, alice.userId);
  });

  it('ignores unknown query parameters', async () => {
    const v = await api.get('/_matrix/client/versions?_cacheBuster=1');
    assert.equal(v.status, 200, JSON.stringify(v.body));
    assert.ok(v.body.versions.includes('v1.12'));
    const who = await alice.get(`${V3}/account/whoami?_cacheBuster=1700000000000&foo=bar`);
    assert.equal(who.status, 200, JSON.stringify(who.body));
    assert.equal(who.body.user_id, alice.userId);
    const wk = await api.get('/.well-known/matrix/client?_cacheBuster=1');
    assert.equal(wk.status, 200);
    const caps = await alice.get(`${V3}/capabilities?_cacheBuster=1`);
    assert.equal(caps.status, 200);
  });

  it('answers unknown endpoints with 404 M_UNRECOGNIZED (with CORS headers)', async () => {
    expectError(await api.get(`${V3}/this/does/not/exist`), 404, 'M_UNRECOGNIZED');
    expectError(await alice.post(`${V3}/this/does/not/exist`, {}), 404, 'M_UNRECOGNIZED');
    expectError(await api.get('/_matrix/client/v9/account/whoami'), 404, 'M_UNRECOGNIZED');
    expectError(await api.get('/_matrix/client/v1/auth_metadata'), 404, 'M_UNRECOGNIZED');
    const res = await fetch(`${srv.url}${V3}/this/does/not/exist`);
    assert.equal(res.status, 404);
    assertCors(res, 'a 404');
  });

  it('answers OPTIONS on every path with CORS headers and without running the endpoint', async () => {
    for (const path of [
      '/.well-known/matrix/client',
      '/_matrix/client/versions',
      `${V3}/login`,
      `${V3}/register`,
      `${V3}/sync`,
      `${V3}/account/whoami`,
      `${V3}/this/does/not/exist`,
    ]) {
      const res = await fetch(`${srv.url}${path}`, {
        method: 'OPTIONS',
        headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
      });
      assert.ok(res.status >= 200 && res.status < 300, `OPTIONS ${path}: ${res.status}`);
      assertCors(res, `OPTIONS ${path}`);
    }
    // OPTIONS on /register must not start a UIA session or register anything.
    const res = await fetch(`${srv.url}${V3}/register`, { method: 'OPTIONS', body: JSON.stringify({ username: 'optioned', password: 'x' }) });
    assert.ok(res.status >= 200 && res.status < 300);
    assert.equal((await api.get(`${V3}/register/available?username=optioned`)).status, 200);
  });

  it('puts CORS headers on ordinary responses and errors too', async () => {
    const ok = await fetch(`${srv.url}/_matrix/client/versions`);
    assertCors(ok, 'GET /versions');
    const unauth = await fetch(`${srv.url}${V3}/account/whoami`);
    assert.equal(unauth.status, 401);
    assertCors(unauth, '401 on whoami');
  });
});
