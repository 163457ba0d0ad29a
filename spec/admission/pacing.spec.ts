// Pacing over HTTP: a shed-class request the admission defers (precheck returns a promise) waits
// before its body is read, its token checked or its handler run, while cheap requests are
// answered meanwhile; once resumed it is served as usual. The deferral is controlled by hand
// here (the timing of real pacing is covered with fake clocks in admission.spec.ts).

import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { captureRequests, countCalls, leavingClient } from '../helpers/request-probes.js';
import { until } from '../helpers/until.js';

describe('Pacing: a deferred send or /sync waits for its turn, cheap requests do not', function () {
  let srv: TestServer;
  after(async function () {
    await srv?.stop();
  });

  /** Defers every shed-class request at the admission's precheck until its `go` is called. */
  function deferPrecheck(): { deferred: Array<{ kind: string; go: () => void }>; restore: () => void } {
    const admission = srv.hearth.admission;
    const original = admission.precheck.bind(admission);
    const deferred: Array<{ kind: string; go: () => void }> = [];
    admission.precheck = (kind) => {
      original(kind);
      return new Promise<void>((go) => deferred.push({ kind, go }));
    };
    return { deferred, restore: () => (admission.precheck = original) };
  }

  it('a deferred send is neither persisted nor answered until resumed; /versions answers meanwhile; then 200 and in the timeline', async function () {
    srv = await startTestServer({ limits: { rate_limits: { enabled: false }, admission: { max_event_loop_lag_ms: 0 } } });
    const alice = await new Api(srv.url).register('alice');
    const roomId = (await alice.post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
    const first = await alice.get('/_matrix/client/v3/sync?timeout=0');

    const admission = srv.hearth.admission;
    const auth = countCalls(srv.hearth.services.accounts, 'authenticate');
    const paced = deferPrecheck();
    const deferred = paced.deferred;
    try {
      let sendDone = false;
      const send = alice.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/p1`, { msgtype: 'm.text', body: 'paced' }).then((r) => {
        sendDone = true;
        return r;
      });
      let syncDone = false;
      const sync = alice.get(`/_matrix/client/v3/sync?timeout=0&since=${enc(first.body.next_batch)}`).then((r) => {
        syncDone = true;
        return r;
      });
      while (deferred.length < 2) await new Promise((r) => setTimeout(r, 5));
      const checksWhileDeferred = auth.calls;
      const versions = await fetch(`${srv.url}/_matrix/client/versions`);
      assert.equal(versions.status, 200);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(sendDone, false, 'the deferred send is not answered');
      assert.equal(syncDone, false, 'the deferred /sync is not answered');
      assert.equal(auth.calls, checksWhileDeferred, 'no token checked while deferred');
      const before = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
      assert.ok(!before.body.chunk.some((e: { content?: { body?: string } }) => e.content?.body === 'paced'), 'not persisted while deferred');
      assert.deepEqual(deferred.map((d) => d.kind).sort(), ['catchup', 'send']);

      for (const d of deferred) d.go();
      const sent = await send;
      assert.equal(sent.status, 200, JSON.stringify(sent.body));
      assert.equal((await sync).status, 200);
      const after = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
      assert.ok(after.body.chunk.some((e: { event_id: string }) => e.event_id === sent.body.event_id), 'persisted once resumed');
      assert.equal(admission.stats().sends, 0, 'slot released');
    } finally {
      paced.restore();
      auth.restore();
    }
  });
  it('a deferred send whose client has gone is dropped when resumed: no 500, no error logged, nothing persisted', async function () {
    const alice = await new Api(srv.url).register('alice2');
    const roomId = (await alice.post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
    const admission = srv.hearth.admission;
    const logger = srv.hearth.services.logger;
    const errors: unknown[] = [];
    const logError = logger.error;
    logger.error = ((...args: unknown[]) => void errors.push(args)) as typeof logger.error;
    const paced = deferPrecheck();
    const deferred = paced.deferred;
    // The request the table is given, to know when the server has seen the client leave.
    const requests = captureRequests(srv.hearth.routes);
    const goneBefore = admission.stats().pacedGone;
    try {
      const client = leavingClient(srv.url, alice.token!, 'PUT', `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/gone1`, { msgtype: 'm.text', body: 'gone' });
      while (deferred.length < 1) await new Promise((r) => setTimeout(r, 5));
      await client.leave(() => requests.seen.find((r) => r.path.includes('/send/m.room.message/gone1')));
      // Done with once the route table records its answer (hearth_http_requests_total), a 400.
      const sendAnswers = async (): Promise<string> => {
        const text = await (await fetch(`${srv.hearth.metricsUrl}/metrics`)).text();
        return text
          .split('\n')
          .filter((l) => l.startsWith('hearth_http_requests_total{') && l.includes('method="PUT"') && l.includes('/send/'))
          .join('\n');
      };
      const before = await sendAnswers();
      deferred[0].go();
      const answers = await until('the resumed send to be answered', async () => {
        const now = await sendAnswers();
        return now !== before && now;
      });
      assert.match(answers, /status="400"\} 1$/m, 'answered 400 (counted once), not 500');
      assert.equal(admission.stats().pacedGone, goneBefore + 1, 'skipped as gone');
      assert.deepEqual(errors, [], 'nothing logged as an error');
      const page = await alice.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
      assert.ok(!page.body.chunk.some((e: { content?: { body?: string } }) => e.content?.body === 'gone'), 'not persisted');
      assert.equal(admission.stats().sends, 0);
    } finally {
      requests.restore();
      paced.restore();
      logger.error = logError;
    }
  });

  it('a deferred /sync whose client has gone is skipped when resumed: no token check, no handler, counted in stats and /metrics', async function () {
    const alice = await new Api(srv.url).register('alice3');
    const first = await alice.get('/_matrix/client/v3/sync?timeout=0');
    const admission = srv.hearth.admission;
    const goneBefore = admission.stats().pacedGone;
    const paced = deferPrecheck();
    const deferred = paced.deferred;
    // The real HTTP request the table is given, to wait until the server has seen the close.
    const requests = captureRequests(srv.hearth.routes);
    const seen = requests.seen;
    const handler = countCalls(srv.hearth.services.sync, 'syncOrPark');
    const auth = countCalls(srv.hearth.services.accounts, 'authenticate');
    try {
      const client = leavingClient(srv.url, alice.token!, 'GET', `/_matrix/client/v3/sync?timeout=0&since=${enc(first.body.next_batch)}`);
      await until('the /sync is deferred', () => deferred.length === 1);
      assert.equal(seen.length, 1);
      assert.equal(seen[0].closed, false, 'connected while it waits');
      await client.leave(() => seen[0], 'the server sees the connection close');
      deferred[0].go();
      await until('the skipped /sync is counted', () => admission.stats().pacedGone === goneBefore + 1);
      assert.equal(handler.calls, 0, 'the /sync handler did not run');
      assert.equal(auth.calls, 0, 'no token checked');
      assert.equal(admission.stats().catchups, 0, 'no catch-up slot taken');
      const metrics = await (await fetch(`${srv.metricsUrl!}/metrics`)).text();
      assert.match(metrics, new RegExp(`^hearth_admission_paced_gone ${goneBefore + 1}$`, 'm'));

      // A deferred /sync whose client stays is served as before.
      const kept = alice.get(`/_matrix/client/v3/sync?timeout=0&since=${enc(first.body.next_batch)}`);
      await until('the second /sync is deferred', () => deferred.length === 2);
      deferred[1].go();
      assert.equal((await kept).status, 200);
      assert.equal(handler.calls, 1, 'served once resumed');
      assert.equal(admission.stats().pacedGone, goneBefore + 1, 'not counted as gone');
    } finally {
      paced.restore();
      requests.restore();
      handler.restore();
      auth.restore();
    }
  });

  it('a deferred /sync request frame whose socket has closed (signal aborted, no `closed`) is skipped the same way', async function () {
    const alice = await new Api(srv.url).register('alice4');
    const admission = srv.hearth.admission;
    const goneBefore = admission.stats().pacedGone;
    const paced = deferPrecheck();
    const deferred = paced.deferred;
    const handler = countCalls(srv.hearth.services.sync, 'syncOrPark');
    try {
      const socketGone = new AbortController();
      const answer = srv.hearth.routes.dispatch({
        method: 'GET', path: '/_matrix/client/v3/sync', query: { timeout: '0' }, ip: '127.0.0.1', accessToken: alice.token,
        body: { read: async () => ({}) }, signal: socketGone.signal,
      });
      await until('the frame is deferred', () => deferred.length === 1);
      socketGone.abort();
      deferred[0].go();
      const res = await answer;
      assert.equal(res.status, 400);
      assert.equal((res.body as { errcode: string }).errcode, 'M_UNKNOWN');
      assert.equal(handler.calls, 0, 'the /sync handler did not run');
      assert.equal(admission.stats().pacedGone, goneBefore + 1);
    } finally {
      paced.restore();
      handler.restore();
    }
  });
});
