// /health and /metrics over real HTTP: the Prometheus exposition of a running server, served on
// its own listener (metrics.listen), not on the client port.

import { assert } from '../helpers/assert.js';
import { V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

/** Sample value of an unlabelled metric, or undefined if absent. */
function sample(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Lines of one metric family with labels, parsed into label maps and values. */
function series(text: string, name: string): Array<{ labels: Record<string, string>; value: number }> {
  const out: Array<{ labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const m = /^[^{]+\{(.*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of m[1].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ labels, value: Number(m[2]) });
  }
  return out;
}

describe('observability', function () {
  let srv: TestServer;
  let api: Api;
  let alice: User;
  let roomId: string;

  const metrics = async (): Promise<string> => {
    const res = await fetch(`${srv.metricsUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    return res.text();
  };

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
    alice = await api.register('alice');
    roomId = (await alice.post(`${V3}/createRoom`, {})).body.room_id;
  });
  after(async () => srv.stop());

  it('GET /health answers 200 "OK" without authentication', async () => {
    const res = await fetch(`${srv.url}/health`);
    assert.equal(res.status, 200);
    assert.equal((await res.text()).trim(), 'OK');
  });

  it('counts requests per route pattern, never per raw room ID or path', async () => {
    const send = await alice.put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/obs1`, { msgtype: 'm.text', body: 'hello' });
    assert.equal(send.status, 200, JSON.stringify(send.body));
    assert.equal((await alice.get(`${V3}/rooms/${enc(roomId)}/state`)).status, 200);
    assert.equal((await api.get(`${V3}/no-such-endpoint-7f3a9c`)).status, 404);

    const text = await metrics();
    assert.ok(text.includes('# TYPE hearth_http_requests_total counter'), 'hearth_http_requests_total is a counter');
    const reqs = series(text, 'hearth_http_requests_total');
    assert.ok(reqs.length > 0);
    for (const s of reqs) {
      assert.ok('route' in s.labels && 'method' in s.labels && 'status' in s.labels, JSON.stringify(s.labels));
    }
    const sendSeries = reqs.find((s) => s.labels.method === 'PUT' && s.labels.route.includes('/send/') && s.labels.status === '200');
    assert.ok(sendSeries, `no PUT /send series in:\n${reqs.map((s) => JSON.stringify(s.labels)).join('\n')}`);
    assert.match(sendSeries.labels.route, /:roomId/);
    assert.ok(!/![A-Za-z0-9]/.test(sendSeries.labels.route), 'route label holds no room ID');
    assert.ok(sendSeries.value >= 1);
    const stateSeries = reqs.find((s) => s.labels.method === 'GET' && /\/rooms\/:roomId\/state$/.test(s.labels.route));
    assert.ok(stateSeries, 'GET /rooms/:roomId/state series');

    // Neither the room ID (raw or percent-encoded), the txn ID nor an unknown path leaks into labels.
    for (const raw of [roomId, enc(roomId), roomId.slice(1, roomId.indexOf(':')), 'obs1', 'no-such-endpoint-7f3a9c']) {
      assert.ok(!text.includes(raw), `metrics contain ${raw}`);
    }
    assert.ok(reqs.some((s) => s.labels.status === '404'), 'the 404 is counted');
    // Login/register routes are labelled as patterns too.
    assert.ok(reqs.some((s) => s.labels.method === 'POST' && s.labels.route.endsWith('/register')), 'POST /register counted');
  });

  it('hearth_events_persisted_total grows when events are sent', async () => {
    const before = sample(await metrics(), 'hearth_events_persisted_total') ?? NaN;
    assert.ok(before > 0, `createRoom and a send persisted events: ${before}`);
    for (let i = 0; i < 3; i++) {
      const r = await alice.put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/grow${i}`, { msgtype: 'm.text', body: `n${i}` });
      assert.equal(r.status, 200);
    }
    const after = sample(await metrics(), 'hearth_events_persisted_total');
    assert.equal(after, before + 3);
    // An idempotent retry persists nothing new.
    assert.equal((await alice.put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/grow0`, { msgtype: 'm.text', body: 'n0' })).status, 200);
    assert.equal(sample(await metrics(), 'hearth_events_persisted_total'), before + 3);
  });

  it('hearth_sync_waiters counts parked /sync long-polls', async () => {
    assert.equal(sample(await metrics(), 'hearth_sync_waiters'), 0);
    const since = (await alice.get(`${V3}/sync`)).body.next_batch;
    assert.equal(typeof since, 'string');
    const parked = alice.get(`${V3}/sync?since=${enc(since)}&timeout=10000`);
    let seen: number | undefined;
    for (let i = 0; i < 50; i++) {
      seen = sample(await metrics(), 'hearth_sync_waiters');
      if (seen === 1) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(seen, 1, 'one parked /sync');
    const send = await alice.put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/wake`, { msgtype: 'm.text', body: 'wake up' });
    assert.equal(send.status, 200);
    const woke = await parked;
    assert.equal(woke.status, 200);
    const events = woke.body.rooms?.join?.[roomId]?.timeline?.events ?? [];
    assert.ok(events.some((e: any) => e.content?.body === 'wake up'), 'the long-poll returned the new event');
    assert.equal(sample(await metrics(), 'hearth_sync_waiters'), 0);
  });

  it('the client port does not serve /metrics by default', async () => {
    const r = await new Api(srv.url).get('/metrics');
    assert.equal(r.status, 404);
    assert.equal(r.body.errcode, 'M_UNRECOGNIZED');
    // Not even to someone who guesses at a token.
    assert.equal((await new Api(srv.url, 'guess').get('/metrics')).status, 404);
    assert.notEqual(srv.metricsUrl, srv.url);
  });

  it('the metrics listener serves GET and HEAD /metrics and nothing else', async () => {
    const head = await fetch(`${srv.metricsUrl}/metrics`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    const other = await new Api(srv.metricsUrl!).get(`${V3}/account/whoami`);
    assert.equal(other.status, 404);
    assert.equal(other.body.errcode, 'M_UNRECOGNIZED');
    const post = await new Api(srv.metricsUrl!).post('/metrics', {});
    assert.equal(post.status, 405);
    assert.equal(post.body.errcode, 'M_UNRECOGNIZED');
  });

  it('serves /metrics on the client port too behind metrics.client_port_secret', async () => {
    const secret = 'a-long-enough-metrics-secret';
    const s = await startTestServer({ metrics: { client_port_secret: secret } });
    try {
      const none = await new Api(s.url).get('/metrics');
      assert.equal(none.status, 403);
      assert.equal(none.body.errcode, 'M_FORBIDDEN');
      const wrong = await new Api(s.url, `${secret}x`).get('/metrics');
      assert.equal(wrong.status, 403);
      const right = await fetch(`${s.url}/metrics`, { headers: { authorization: `Bearer ${secret}` } });
      assert.equal(right.status, 200);
      assert.match(await right.text(), /^# HELP /m);
      // The metrics listener still serves them, without the secret.
      assert.equal((await fetch(`${s.metricsUrl}/metrics`)).status, 200);
    } finally {
      await s.stop();
    }
  });

  it('/metrics is absent when metrics are disabled, and so is the metrics listener', async () => {
    const off = await startTestServer({ metrics: { enabled: false, client_port_secret: 'a-long-enough-metrics-secret' } });
    try {
      assert.equal(off.metricsUrl, undefined);
      const r = await new Api(off.url, 'a-long-enough-metrics-secret').get('/metrics');
      assert.equal(r.status, 404);
      assert.equal(r.body.errcode, 'M_UNRECOGNIZED');
      assert.equal((await fetch(`${off.url}/health`)).status, 200);
    } finally {
      await off.stop();
    }
  });
});
