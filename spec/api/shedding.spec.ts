// Load shedding over HTTP and the socket (limits.admission): past capacity, sends get 429 with
// retry_after_ms, new /sync requests and socket catch-ups 503 with a jittered retry_after_ms,
// and work admitted before stays served. The capacity signal is forced (Hearth.admission.force)
// or set tiny in config, so the tests are deterministic.

import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';
import { bearer, refusal, socketUrl } from '../socket/helpers.js';

describe('Load shedding (limits.admission)', function () {
  let srv: TestServer;
  let alice: Awaited<ReturnType<Api['register']>>;
  let roomId: string;
  const RETRY = 800;

  before(async function () {
    srv = await startTestServer({ limits: { rate_limits: { enabled: false }, admission: { send_retry_after_ms: 300, catchup_retry_after_ms: RETRY, max_event_loop_lag_ms: 0 } } });
    alice = await new Api(srv.url).register('alice');
    const r = await alice.post('/_matrix/client/v3/createRoom', {});
    assert.equal(r.status, 200);
    roomId = r.body.room_id;
  });
  after(async function () {
    srv.hearth.admission.force(false);
    await srv.stop();
  });

  const send = (body: string, txn: string) =>
    alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${txn}`, { msgtype: 'm.text', body });
  // Long-polls parked in the server (hearth_sync_waiters): a test that needs a poll admitted
  // and parked waits for it, not for a fixed time a loaded machine may overrun.
  const parkedPolls = async (): Promise<number> => {
    const text = await (await fetch(`${srv.hearth.metricsUrl}/metrics`)).text();
    return Number(/^hearth_sync_waiters (\S+)$/m.exec(text)?.[1] ?? NaN);
  };

  it('overloaded: sends get 429, /sync and socket catch-ups 503 with jittered retry_after_ms; a parked long-poll still gets its answer', async function () {
    const first = await alice.get('/_matrix/client/v3/sync?timeout=0');
    assert.equal(first.status, 200);
    // Admitted before the overload, parked waiting.
    const parkedBefore = await parkedPolls();
    const parked = alice.get(`/_matrix/client/v3/sync?timeout=10000&since=${enc(first.body.next_batch)}`);
    await until('the long-poll to park', async () => (await parkedPolls()) === parkedBefore + 1);

    const shedMetric = async (): Promise<number> => {
      const text = await (await fetch(`${srv.hearth.metricsUrl}/metrics`)).text();
      return Number(/^hearth_admission_shed_sends (\S+)$/m.exec(text)?.[1] ?? NaN);
    };
    const shedBefore = await shedMetric();
    srv.hearth.admission.force(true);
    const shedSend = await send('shed', 'shed1');
    assert.equal(shedSend.status, 429);
    assert.equal(await shedMetric(), shedBefore + 1, 'hearth_admission_shed_sends counts the refusal');
    assert.equal(shedSend.body.errcode, 'M_LIMIT_EXCEEDED');
    assert.ok(shedSend.body.retry_after_ms >= 300 && shedSend.body.retry_after_ms < 450, String(shedSend.body.retry_after_ms));

    const retries: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await alice.get(`/_matrix/client/v3/sync?timeout=5000&since=${enc(first.body.next_batch)}`);
      assert.equal(r.status, 503);
      assert.equal(r.body.errcode, 'M_LIMIT_EXCEEDED');
      assert.ok(r.body.retry_after_ms >= RETRY && r.body.retry_after_ms <= 2 * RETRY, String(r.body.retry_after_ms));
      retries.push(r.body.retry_after_ms);
    }
    assert.ok(new Set(retries).size > 1, `jittered: ${retries}`);
    const raw = await fetch(`${srv.url}/_matrix/client/v3/sync?timeout=0`, { headers: { authorization: `Bearer ${alice.token}` } });
    assert.equal(raw.status, 503);
    const body = (await raw.json()) as { retry_after_ms: number };
    assert.equal(Number(raw.headers.get('retry-after')), Math.ceil(body.retry_after_ms / 1000));
    const sock = await refusal(socketUrl(srv.url), bearer(alice.token!));
    assert.equal(sock.status, 503);
    assert.equal(typeof sock.body.retry_after_ms, 'number');
    // Cheap requests are not shed.
    assert.equal((await new Api(srv.url).get('/_matrix/client/versions')).status, 200);

    srv.hearth.admission.force(false);
    const ok = await send('after', 'ok1');
    assert.equal(ok.status, 200);
    const woke = await parked;
    assert.equal(woke.status, 200);
    const events = woke.body.rooms?.join?.[roomId]?.timeline?.events ?? [];
    assert.deepEqual(
      events.map((e: { event_id: string }) => e.event_id),
      [ok.body.event_id],
      'the admitted long-poll gets the admitted send, and not the shed one',
    );
    assert.ok(srv.hearth.admission.stats().shedSends >= 1 && srv.hearth.admission.stats().shedCatchups >= 7);
  });

  it('overloaded, sends and /syncs are refused before their body is read or their token checked', async function () {
    const before = srv.hearth.admission.stats();
    srv.hearth.admission.force(true);
    try {
      // A body that intake would refuse (M_NOT_JSON) and no token (401): shed first, cheaply.
      const raw = await fetch(`${srv.url}/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/early1`, { method: 'PUT', body: 'not json {' });
      assert.equal(raw.status, 429);
      const b = (await raw.json()) as { errcode: string; retry_after_ms: number };
      assert.equal(b.errcode, 'M_LIMIT_EXCEEDED');
      assert.ok(b.retry_after_ms >= 300 && b.retry_after_ms < 450, String(b.retry_after_ms));
      const state = await alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic`, { topic: 'shed' });
      assert.equal(state.status, 429);
      const sync = await fetch(`${srv.url}/_matrix/client/v3/sync?timeout=0`);
      assert.equal(sync.status, 503);
      assert.equal(typeof ((await sync.json()) as { retry_after_ms: unknown }).retry_after_ms, 'number');
      // Routes outside the shed classes answer as usual.
      assert.equal((await alice.get('/_matrix/client/v3/account/whoami')).status, 200);
    } finally {
      srv.hearth.admission.force(false);
    }
    const after = srv.hearth.admission.stats();
    assert.equal(after.shedSends - before.shedSends, 2);
    assert.equal(after.shedCatchups - before.shedCatchups, 1);
    assert.equal(after.sends, 0, 'a refusal takes no slot');
    assert.equal(after.catchups, 0);
    // Not overloaded: the same malformed body gets intake's answer again.
    const again = await fetch(`${srv.url}/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/early2`, { method: 'PUT', body: 'not json {' });
    assert.equal(again.status, 400);
    assert.equal(((await again.json()) as { errcode: string }).errcode, 'M_NOT_JSON');
  });

  it('a parked long-poll does not hold a catch-up slot', async function () {
    const first = await alice.get('/_matrix/client/v3/sync?timeout=0');
    const parkedBefore = await parkedPolls();
    const polls = [0, 1, 2].map(() => alice.get(`/_matrix/client/v3/sync?timeout=30000&since=${enc(first.body.next_batch)}`));
    await until('the three long-polls to park', async () => (await parkedPolls()) === parkedBefore + 3);
    assert.equal(srv.hearth.admission.stats().catchups, 0);
    const ok = await send('wake', 'wake1');
    assert.equal(ok.status, 200);
    for (const p of await Promise.all(polls)) {
      assert.equal(p.status, 200);
      const timeline = p.body.rooms?.join?.[roomId]?.timeline?.events ?? [];
      assert.ok(timeline.some((e: { event_id: string }) => e.event_id === ok.body.event_id), 'woken by the send');
    }
  });
});

describe('Load shedding: at a tiny send capacity every send is answered 200 or 429, and every 200 is delivered', function () {
  let srv: TestServer;
  after(async function () {
    await srv.stop();
  });

  it('0 lost among admitted sends', async function () {
    srv = await startTestServer({ limits: { rate_limits: { enabled: false }, admission: { max_inflight_sends: 2, max_event_loop_lag_ms: 0 } } });
    const bob = await new Api(srv.url).register('bob');
    const roomId = (await bob.post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t${i}`, { msgtype: 'm.text', body: `b${i}` })),
    );
    const admitted = results.filter((r) => r.status === 200);
    for (const r of results) {
      if (r.status === 429) assert.equal(typeof r.body.retry_after_ms, 'number');
      else assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    assert.ok(admitted.length >= 2);
    const page = await bob.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=100`);
    const have = new Set(page.body.chunk.map((e: { event_id: string }) => e.event_id));
    for (const r of admitted) assert.ok(have.has(r.body.event_id), `admitted ${r.body.event_id} delivered`);
    assert.equal(srv.hearth.admission.stats().sends, 0, 'every slot released');
  });
});
