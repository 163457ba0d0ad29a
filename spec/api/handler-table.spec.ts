// The route table (src/api/handlers.ts): its matching rules (those @koa/router had, which clients
// and the 405/404 specs rely on), the one order of checks, the one error renderer; and, on a real
// server, that every declared route answers the same over HTTP and over a socket request frame.

import { StoreUnavailableError } from '../../src/store/types.js';
import { Writable } from 'node:stream';
import pino from 'pino';
import { z } from 'zod';
import { assert } from '../helpers/assert.js';
import { MatrixError } from '../../src/errors.js';
import { compilePattern, HandlerTable, parseQuery, type ApiRequest, type ApiResponse, type RouteSpec } from '../../src/api/handlers.js';
import { memoryBackend, RATE_LIMIT_NAMES, RateLimiter, type RateLimiters } from '../../src/admission/rate-limit.js';
import { parseJsonBody } from '../../src/api/middleware.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeUser, type User } from '../helpers/fixtures.js';
import { bearer, rawConnect, socketUrl, waitFor, type RawClient } from '../socket/helpers.js';

describe('route table: path patterns', () => {
  const m = (pattern: string, path: string) => compilePattern(pattern)(path) || null;

  it('matches case-insensitively, with one optional trailing slash, literal dots', () => {
    assert.ok(m('/_matrix/client/v3/account/whoami', '/_MATRIX/client/V3/account/whoami'));
    assert.ok(m('/_matrix/client/v3/account/whoami', '/_matrix/client/v3/account/whoami/'));
    assert.equal(m('/_matrix/client/v3/account/whoami', '/_matrix/client/v3/account/whoami//'), null);
    assert.equal(m('/.well-known/matrix/client', '/x.well-known/matrix/client'), null);
    assert.equal(m('/.well-known/matrix/client', '/Xwell-known/matrix/client'), null);
  });

  it('a parameter is one non-empty segment; a final {/:name} is optional', () => {
    assert.deepEqual({ ...m('/rooms/:roomId/state/:eventType{/:stateKey}', '/rooms/%21r/state/m.x/k')?.params }, { roomId: '!r', eventType: 'm.x', stateKey: 'k' });
    assert.ok(m('/rooms/:roomId/state/:eventType{/:stateKey}', '/rooms/!r/state/m.room.name'));
    assert.ok(m('/rooms/:roomId/state/:eventType{/:stateKey}', '/rooms/!r/state/m.room.name/'));
    assert.equal(m('/rooms/:roomId/state/:eventType{/:stateKey}', '/rooms/!r/state/m.room.name/k')?.params.stateKey, 'k');
    assert.equal(m('/rooms/:roomId/join', '/rooms//join'), null);
    assert.equal(m('/rooms/:roomId/join', '/rooms/a/b/join'), null);
  });

  it('refuses malformed patterns, rather than matching them literally', () => {
    assert.throws(() => compilePattern('/a/:b?'));
    assert.throws(() => compilePattern('no-slash'));
  });

  it('parses queries as Koa did (repeats become arrays), with no prototype', () => {
    const q = parseQuery('a=1&b=2&a=3&constructor=x&e=%E2%9C%93');
    assert.deepEqual({ ...q }, { a: ['1', '3'], b: '2', constructor: 'x', e: '✓' });
    assert.equal(Object.getPrototypeOf(q), null);
    assert.equal(parseQuery('').toString, undefined);
  });
});

describe('route table: dispatch', () => {
  const lines: string[] = [];
  const logger = pino({ level: 'error' }, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
  const limits = Object.fromEntries(
    RATE_LIMIT_NAMES.map((n) => [n, new RateLimiter(n, memoryBackend(n, { per_second: 0.001, burst: 1 }), 1)]),
  ) as RateLimiters;
  const seen: string[] = [];
  const table = new HandlerTable({
    authenticate: async (token) => {
      seen.push('auth');
      if (token !== 'good' && token !== 'good2') throw new MatrixError('M_UNKNOWN_TOKEN', 'Unknown access token');
      return { userId: token === 'good' ? '@a:hs' : '@b:hs', deviceId: 'D', tokenHash: 'h', isGuest: false };
    },
    limits,
    logger,
    maxBodyBytes: 100,
    maxEventBytes: 50,
  });
  const spec = (s: Partial<RouteSpec> & Pick<RouteSpec, 'method' | 'path' | 'handler'>): RouteSpec => ({ auth: 'none', limit: 'none', intake: 'json', ...s });
  table.add(spec({ method: 'GET', path: '/p/:x', handler: (ctx) => void (ctx.body = { first: ctx.params.x }) }));
  table.add(spec({ method: 'GET', path: '/p/:y', handler: (ctx) => void (ctx.body = { second: ctx.params.y }) }));
  table.add(spec({ method: 'POST', path: '/p/:x', handler: (ctx) => void (ctx.body = { posted: true }) }));
  table.add(spec({ method: 'PUT', path: '/w', auth: 'required', limit: 'write', handler: (ctx, auth) => void (ctx.body = { user: auth!.userId }) }));
  table.add(
    spec({
      method: 'POST',
      path: '/s',
      auth: 'required',
      schema: z.object({ n: z.number() }),
      handler: (ctx) => void (ctx.body = { n: (ctx.state.valid as { n: number }).n, proto: Object.getPrototypeOf(ctx.state.body) }),
    }),
  );
  table.add(spec({ method: 'PUT', path: '/e/:t', intake: 'event', handler: (ctx) => void (ctx.body = {}) }));
  table.add(spec({ method: 'GET', path: '/nobody', handler: () => undefined }));
  table.add(spec({ method: 'GET', path: '/k/l/m/n/:x', handler: (ctx) => void (ctx.body = { keyed: ctx.params.x }) }));
  table.add(spec({ method: 'GET', path: '/k/l/m', handler: (ctx) => void (ctx.body = { short: true }) }));
  table.add(spec({ method: 'GET', path: '/k/:any/m/n/o', handler: (ctx) => void (ctx.body = { wild: ctx.params.any }) }));
  table.add(spec({ method: 'GET', path: '/bug', handler: () => { throw new TypeError('boom'); } }));
  table.add(spec({ method: 'GET', path: '/slowstore', handler: () => { throw new StoreUnavailableError('Cassandra unavailable: timed out', new Error('timeout')); } }));

  const req = (method: string, path: string, opts: { body?: string; token?: string; query?: string } = {}): ApiRequest => ({
    method,
    path,
    query: parseQuery(opts.query ?? ''),
    body: {
      // As the HTTP adapter reads: refused past the rule's limit (there, before buffering it all).
      read: async (rule) => {
        seen.push('intake');
        const raw = Buffer.from(opts.body ?? '');
        if (raw.length > rule.limit) throw new MatrixError('M_TOO_LARGE', 'Request body too large');
        return parseJsonBody(raw, rule);
      },
    },
    accessToken: opts.token,
    ip: '192.0.2.1',
    signal: new AbortController().signal,
  });
  const errcode = (r: ApiResponse) => (r.body as { errcode?: string }).errcode;

  it('the first route registered wins; parameters are percent-decoded, or kept as given if that fails', async () => {
    assert.deepEqual((await table.dispatch(req('GET', '/p/a%20b'))).body, { first: 'a b' });
    assert.deepEqual((await table.dispatch(req('GET', '/p/%E0%A4%A'))).body, { first: '%E0%A4%A' });
    const r = await table.dispatch(req('GET', '/p/z'));
    assert.equal(r.route, '/p/:x');
  });

  it('the prefix index finds what the patterns match: case, trailing slash, short paths, parameters early on', async () => {
    assert.deepEqual((await table.dispatch(req('GET', '/K/L/m/n/1/'))).body, { keyed: '1' });
    assert.deepEqual((await table.dispatch(req('GET', '/k/l/m/'))).body, { short: true });
    assert.deepEqual((await table.dispatch(req('GET', '/k/l/m/n/o'))).body, { keyed: 'o' }, 'registered first');
    assert.deepEqual((await table.dispatch(req('GET', '/k/zz/m/n/o'))).body, { wild: 'zz' });
    assert.equal((await table.dispatch(req('GET', '/k/l/m/n'))).status, 404);
    assert.equal((await table.dispatch(req('GET', '/k/l/m/n//'))).status, 404);
  });

  it('a parameterless path served before is served the same again (case, slash, HEAD); retain() forgets it at once', async () => {
    for (let i = 0; i < 3; i++) {
      assert.deepEqual((await table.dispatch(req('GET', '/k/l/m'))).body, { short: true });
      assert.deepEqual((await table.dispatch(req('GET', '/K/l/M/'))).body, { short: true });
      assert.equal((await table.dispatch(req('HEAD', '/k/l/m'))).status, 200);
      assert.equal((await table.dispatch(req('PUT', '/w'))).status, 401, 'still authenticated');
      const post = await table.dispatch(req('POST', '/k/l/m'));
      assert.deepEqual([post.status, post.headers?.Allow], [405, 'HEAD, GET']);
    }
    const other = new HandlerTable({ authenticate: async () => Promise.reject(new Error('unused')), limits, logger, maxBodyBytes: 100, maxEventBytes: 50 });
    other.add(spec({ method: 'GET', path: '/a/b', handler: (ctx) => void (ctx.body = { ab: true }) }));
    other.add(spec({ method: 'GET', path: '/c', handler: (ctx) => void (ctx.body = { c: true }) }));
    assert.deepEqual((await other.dispatch(req('GET', '/a/b'))).body, { ab: true });
    assert.deepEqual((await other.dispatch(req('GET', '/a/b'))).body, { ab: true });
    other.retain((r) => r.path !== '/a/b');
    assert.equal((await other.dispatch(req('GET', '/a/b'))).status, 404);
    assert.deepEqual((await other.dispatch(req('GET', '/c'))).body, { c: true });
  });

  it('HEAD is served by GET routes; a path without the method is 405 with Allow; an unknown one 404', async () => {
    assert.equal((await table.dispatch(req('HEAD', '/p/a'))).status, 200);
    const put = await table.dispatch(req('PUT', '/p/a'));
    assert.equal(put.status, 405);
    assert.equal(errcode(put), 'M_UNRECOGNIZED');
    assert.deepEqual(put.headers?.Allow.split(', ').sort(), ['GET', 'HEAD', 'POST']);
    assert.equal(put.route, 'unmatched');
    const patch = await table.dispatch(req('PATCH', '/nowhere'));
    assert.deepEqual([patch.status, errcode(patch)], [404, 'M_UNRECOGNIZED']);
    // A method no route could have: 405 even where nothing is served.
    const propfind = await table.dispatch(req('PROPFIND', '/nowhere'));
    assert.deepEqual([propfind.status, errcode(propfind), propfind.headers?.Allow], [405, 'M_UNRECOGNIZED', '']);
  });

  it('checks in one order: intake, then the token, then the rate limit, then the schema', async () => {
    seen.length = 0;
    const badBodyNoToken = await table.dispatch(req('POST', '/s', { body: '{oops' }));
    assert.deepEqual([badBodyNoToken.status, errcode(badBodyNoToken)], [400, 'M_NOT_JSON']);
    assert.deepEqual(seen, ['intake']);
    const noToken = await table.dispatch(req('POST', '/s', { body: '{"n":"x"}' }));
    assert.deepEqual([noToken.status, errcode(noToken)], [401, 'M_MISSING_TOKEN']);
    const badToken = await table.dispatch(req('POST', '/s', { body: '{"n":"x"}', token: 'nope' }));
    assert.deepEqual([badToken.status, errcode(badToken)], [401, 'M_UNKNOWN_TOKEN']);
    const badSchema = await table.dispatch(req('POST', '/s', { body: '{"n":"x"}', token: 'good' }));
    assert.deepEqual([badSchema.status, errcode(badSchema)], [400, 'M_BAD_JSON']);
    const good = await table.dispatch(req('POST', '/s', { body: '{"n":7}', token: 'good' }));
    assert.deepEqual(good.body, { n: 7, proto: null }, 'the handler sees the parsed value and the hardened body');
    // The write bucket holds one request: the second is refused before its handler runs.
    assert.equal((await table.dispatch(req('PUT', '/w', { token: 'good2' }))).status, 200);
    const limited = await table.dispatch(req('PUT', '/w', { token: 'good2', body: '{}' }));
    assert.deepEqual([limited.status, errcode(limited)], [429, 'M_LIMIT_EXCEEDED']);
    assert.match(limited.headers?.['Retry-After'] ?? '', /^\d+$/);
  });

  it('applies the route’s intake rule: the event limit on event routes, the general one elsewhere', async () => {
    const body = JSON.stringify({ x: 'y'.repeat(60) });
    const event = await table.dispatch(req('PUT', '/e/1', { body }));
    assert.deepEqual([event.status, errcode(event)], [413, 'M_TOO_LARGE']);
    const general = await table.dispatch(req('POST', '/p/1', { body }));
    assert.equal(general.status, 200);
  });

  it('a handler that answers nothing is 404 M_UNRECOGNIZED; one that throws a non-Matrix error is 500, logged', async () => {
    const none = await table.dispatch(req('GET', '/nobody'));
    assert.deepEqual([none.status, errcode(none)], [404, 'M_UNRECOGNIZED']);
    lines.length = 0;
    const bug = await table.dispatch(req('GET', '/bug', { query: 'access_token=secret' }));
    assert.deepEqual(bug.body, { errcode: 'M_UNKNOWN', error: 'Internal server error' });
    assert.equal(bug.status, 500);
    assert.equal(lines.length, 1);
    const logged = JSON.parse(lines[0]);
    assert.equal(logged.err.message, 'boom');
    assert.ok(!lines[0].includes('secret'), 'the query (which may hold a token) is not logged');
  });

  it('a storage timeout is a retryable 503 with retry_after_ms, not a 500', async () => {
    const r = await table.dispatch(req('GET', '/slowstore'));
    assert.equal(r.status, 503);
    assert.equal(errcode(r), 'M_UNKNOWN');
    assert.equal(typeof (r.body as { retry_after_ms?: unknown }).retry_after_ms, 'number');
  });
});

describe('route table: every declared route answers the same over HTTP and over a socket', function () {
  let srv: TestServer;
  let a: User;
  let b: User;
  let roomA: string;
  let roomB: string;
  let c: RawClient;

  before(async () => {
    srv = await startTestServer();
    a = await makeUser(srv, 'tablehttp');
    b = await makeUser(srv, 'tablesock');
    roomA = (await a.post('/_matrix/client/v3/createRoom', {})).body.room_id;
    roomB = (await b.post('/_matrix/client/v3/createRoom', {})).body.room_id;
    c = await rawConnect(socketUrl(srv.url), bearer(b.token!));
    await waitFor('the first sync frame', () => c.frames.some((f) => f.type === 'sync'));
  });
  after(async () => {
    c.ws.close(1000);
    await srv.stop();
  });

  // These end the session or the account, which later routes need.
  const SKIP = /\/(logout|logout\/all|account\/deactivate|account\/password)$/;

  const fill = (pattern: string, userId: string, roomId: string) =>
    pattern
      .replace(/\{\/:\w+\}$/, '')
      .replace(/:userId/g, encodeURIComponent(userId))
      .replace(/:(roomId|roomIdOrAlias)/g, encodeURIComponent(roomId))
      .replace(/:eventId/g, encodeURIComponent('$missing'))
      .replace(/:\w+/g, 'x');

  it('in the same state, each route gives both users the same {status, errcode}, and none is unrouted', async () => {
    const routes = srv.hearth.routes.list().filter((r) => r.path.startsWith('/_matrix/') && !SKIP.test(r.path));
    assert.ok(routes.length > 150, `only ${routes.length} routes`);
    const differ: string[] = [];
    let i = 0;
    for (const r of routes) {
      const hasBody = r.method !== 'GET';
      const res = await fetch(srv.url + fill(r.path, a.userId, roomA), {
        method: r.method,
        headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' },
        body: hasBody ? '{}' : undefined,
      });
      const text = await res.text();
      const http = { status: res.status, errcode: text ? JSON.parse(text).errcode : undefined };
      const id = `t${i++}`;
      c.send({ type: 'request', id, method: r.method, path: fill(r.path, b.userId, roomB), ...(hasBody ? { body: {} } : {}) });
      const f = await waitFor(`response ${id}`, () => c.frames.find((x) => x.type === 'response' && x.id === id));
      const sock = { status: f.status, errcode: f.body.errcode };
      if (r.intake === 'media') {
        // Media bytes travel over HTTP only: a frame is refused before anything else.
        if (sock.status !== 400 || sock.errcode !== 'M_UNRECOGNIZED') differ.push(`${r.method} ${r.path}: socket ${JSON.stringify(sock)}, expected 400 M_UNRECOGNIZED`);
      } else if (http.status !== sock.status || http.errcode !== sock.errcode) differ.push(`${r.method} ${r.path}: HTTP ${JSON.stringify(http)} socket ${JSON.stringify(sock)}`);
      const unrouted = http.status === 405 || (http.status === 404 && http.errcode === 'M_UNRECOGNIZED');
      assert.ok(!unrouted, `${r.method} ${r.path} was not routed: ${JSON.stringify(http)}`);
    }
    assert.deepEqual(differ, []);
  });
});
