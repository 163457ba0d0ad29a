// Pacing over HTTP: a shed-class request the admission defers (precheck returns a promise) waits
// before its body is read, its token checked or its handler run, while cheap requests are
// answered meanwhile; once resumed it is served as usual. The deferral is controlled by hand
// here (the timing of real pacing is covered with fake clocks in admission.spec.ts).

import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';
import type { ApiRequest } from '../../src/api/handlers.js';

describe('Pacing: a deferred send or /sync waits for its turn, cheap requests do not', function () {
  let srv: TestServer;
  after(async function () {
    await srv?.stop();
  });

  it('a deferred send is neither persisted nor answered until resumed; /versions answers meanwhile; then 200 and in the timeline', async function () {
    srv = await startTestServer({ limits: { rate_limits: { enabled: false }, admission: { max_event_loop_lag_ms: 0 } } });
    const alice = await new Api(srv.url).register('alice');
    const roomId = (await alice.post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
    const first = await alice.get('/_matrix/client/v3/sync?timeout=0');

    const admission = srv.hearth.admission;
    const original = admission.precheck.bind(admission);
    const deferred: Array<{ kind: string; go: () => void }> = [];
    let authChecks = 0;
    const auth = srv.hearth.services.accounts;
    const authenticate = auth.authenticate.bind(auth);
    auth.authenticate = (...args: Parameters<typeof authenticate>) => {
      authChecks++;
      return authenticate(...args);
    };
    admission.precheck = (kind) => {
      original(kind);
      return new Promise<void>((go) => deferred.push({ kind, go }));
    };
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
      const checksWhileDeferred = authChecks;
      const versions = await fetch(`${srv.url}/_matrix/client/versions`);
      assert.equal(versions.status, 200);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(sendDone, false, 'the deferred send is not answered');
      assert.equal(syncDone, false, 'the deferred /sync is not answered');
      assert.equal(authChecks, checksWhileDeferred, 'no token checked while deferred');
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
      admission.precheck = original;
      auth.authenticate = authenticate;
    }
  });
  it('a deferred send whose client has gone is dropped when resumed: no 500, no error logged, nothing persisted', async function () {
    const alice = await new Api(srv.url).register('alice2');
    const roomId = (await alice.post('/_matrix/client/v3/createRoom', {})).body.room_id as string;
    const admission = srv.hearth.admission;
    const original = admission.precheck.bind(admission);
    const deferred: Array<() => void> = [];
    const logger = srv.hearth.services.logger;
    const errors: unknown[] = [];
    const logError = logger.error;
    logger.error = ((...args: unknown[]) => void errors.push(args)) as typeof logger.error;
    admission.precheck = (kind) => {
      original(kind);
      return new Promise<void>((go) => deferred.push(go));
    };
    // The request the table is given, to know when the server has seen the client leave (a
    // fixed sleep for that can be overrun on a loaded machine: the send then goes on).
    const table = srv.hearth.routes;
    const dispatch = table.dispatch.bind(table);
    const seen: ApiRequest[] = [];
    table.dispatch = (req) => {
      seen.push(req);
      return dispatch(req);
    };
    const goneBefore = admission.stats().pacedGone;
    try {
      const gone = new AbortController();
      const send = fetch(`${srv.url}/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/gone1`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ msgtype: 'm.text', body: 'gone' }),
        signal: gone.signal,
      }).catch((err: Error) => err);
      while (deferred.length < 1) await new Promise((r) => setTimeout(r, 5));
      gone.abort();
      assert.ok((await send) instanceof Error, 'the client gave up');
      const req = seen.find((r) => r.path.includes('/send/m.room.message/gone1'));
      assert.ok(req, 'the server saw the send');
      await until('the server to see the client leave', () => req.closed === true);
      // Done with once the route table records its answer (hearth_http_requests_total), a 400.
      const sendAnswers = async (): Promise<string> => {
        const text = await (await fetch(`${srv.hearth.metricsUrl}/metrics`)).text();
        return text
          .split('\n')
          .filter((l) => l.startsWith('hearth_http_requests_total{') && l.includes('method="PUT"') && l.includes('/send/'))
          .join('\n');
      };
      const before = await sendAnswers();
      deferred[0]();
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
      table.dispatch = dispatch;
      admission.precheck = original;
      logger.error = logError;
    }
  });

  it('a deferred /sync whose client has gone is skipped when resumed: no token check, no handler, counted in stats and /metrics', async function () {
    const alice = await new Api(srv.url).register('alice3');
    const first = await alice.get('/_matrix/client/v3/sync?timeout=0');
    const admission = srv.hearth.admission;
    const goneBefore = admission.stats().pacedGone;
    const original = admission.precheck.bind(admission);
    const deferred: Array<() => void> = [];
    admission.precheck = (kind) => {
      original(kind);
      return new Promise<void>((go) => deferred.push(go));
    };
    // The real HTTP request the table is given, to wait until the server has seen the close.
    const table = srv.hearth.routes;
    const dispatch = table.dispatch.bind(table);
    const seen: ApiRequest[] = [];
    table.dispatch = (req) => {
      seen.push(req);
      return dispatch(req);
    };
    const sync = srv.hearth.services.sync;
    const syncOrPark = sync.syncOrPark.bind(sync);
    let handled = 0;
    sync.syncOrPark = (...args: Parameters<typeof syncOrPark>) => {
      handled++;
      return syncOrPark(...args);
    };
    const auth = srv.hearth.services.accounts;
    const authenticate = auth.authenticate.bind(auth);
    let authChecks = 0;
    auth.authenticate = (...args: Parameters<typeof authenticate>) => {
      authChecks++;
      return authenticate(...args);
    };
    try {
      const gone = new AbortController();
      const request = fetch(`${srv.url}/_matrix/client/v3/sync?timeout=0&since=${enc(first.body.next_batch)}`, {
        headers: { authorization: `Bearer ${alice.token}` },
        signal: gone.signal,
      }).catch((err: Error) => err);
      await until('the /sync is deferred', () => deferred.length === 1);
      assert.equal(seen.length, 1);
      assert.equal(seen[0].closed, false, 'connected while it waits');
      gone.abort();
      assert.ok((await request) instanceof Error, 'the client gave up');
      await until('the server sees the connection close', () => seen[0].closed === true);
      deferred[0]();
      await until('the skipped /sync is counted', () => admission.stats().pacedGone === goneBefore + 1);
      assert.equal(handled, 0, 'the /sync handler did not run');
      assert.equal(authChecks, 0, 'no token checked');
      assert.equal(admission.stats().catchups, 0, 'no catch-up slot taken');
      const metrics = await (await fetch(`${srv.metricsUrl!}/metrics`)).text();
      assert.match(metrics, new RegExp(`^hearth_admission_paced_gone ${goneBefore + 1}$`, 'm'));

      // A deferred /sync whose client stays is served as before.
      const kept = alice.get(`/_matrix/client/v3/sync?timeout=0&since=${enc(first.body.next_batch)}`);
      await until('the second /sync is deferred', () => deferred.length === 2);
      deferred[1]();
      assert.equal((await kept).status, 200);
      assert.equal(handled, 1, 'served once resumed');
      assert.equal(admission.stats().pacedGone, goneBefore + 1, 'not counted as gone');
    } finally {
      admission.precheck = original;
      table.dispatch = dispatch;
      sync.syncOrPark = syncOrPark;
      auth.authenticate = authenticate;
    }
  });

  it('a deferred /sync request frame whose socket has closed (signal aborted, no `closed`) is skipped the same way', async function () {
    const alice = await new Api(srv.url).register('alice4');
    const admission = srv.hearth.admission;
    const goneBefore = admission.stats().pacedGone;
    const original = admission.precheck.bind(admission);
    const deferred: Array<() => void> = [];
    admission.precheck = (kind) => {
      original(kind);
      return new Promise<void>((go) => deferred.push(go));
    };
    const sync = srv.hearth.services.sync;
    const syncOrPark = sync.syncOrPark.bind(sync);
    let handled = 0;
    sync.syncOrPark = (...args: Parameters<typeof syncOrPark>) => {
      handled++;
      return syncOrPark(...args);
    };
    try {
      const socketGone = new AbortController();
      const answer = srv.hearth.routes.dispatch({
        method: 'GET', path: '/_matrix/client/v3/sync', query: { timeout: '0' }, ip: '127.0.0.1', accessToken: alice.token,
        body: { read: async () => ({}) }, signal: socketGone.signal,
      });
      await until('the frame is deferred', () => deferred.length === 1);
      socketGone.abort();
      deferred[0]();
      const res = await answer;
      assert.equal(res.status, 400);
      assert.equal((res.body as { errcode: string }).errcode, 'M_UNKNOWN');
      assert.equal(handled, 0, 'the /sync handler did not run');
      assert.equal(admission.stats().pacedGone, goneBefore + 1);
    } finally {
      admission.precheck = original;
      sync.syncOrPark = syncOrPark;
    }
  });
});
