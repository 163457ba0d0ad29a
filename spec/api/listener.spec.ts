// The client listener against slow and greedy clients (limits.http): header, request, keep-alive
// and idle timeouts, and the per-address connection cap. Raw TCP sockets, so the test controls
// every byte and sees exactly when the server closes.

import { strict as assert } from 'node:assert';
import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { makeUser, V3 } from '../helpers/fixtures.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Raw {
  socket: Socket;
  /** Everything received so far. */
  text(): string;
  /** Resolves when the server closed the connection, with ms since it was opened. */
  closed: Promise<number>;
}

function openRaw(url: string): Promise<Raw> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const socket = connect(Number(port), hostname);
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (data += c));
    socket.on('error', () => undefined); // writes after the server cut us off: EPIPE / ECONNRESET
    const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now() - t0)));
    socket.once('connect', () => resolve({ socket, text: () => data, closed }));
    socket.once('error', reject);
  });
}

/** Resolves with `v` after `ms`, for racing against a close that must not happen (yet). */
const later = <T>(ms: number, v: T) => sleep(ms).then(() => v);

/** The status code of the first response in `text`. */
const statusOf = (text: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);

/** A whole raw response, headers lower-cased, body parsed as JSON. */
function parseResponse(text: string): { status: number; headers: Record<string, string>; body: any } {
  const split = text.indexOf('\r\n\r\n');
  assert.ok(split > 0, `no complete response in ${JSON.stringify(text)}`);
  const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const raw = text.slice(split + 4);
  assert.equal(Buffer.byteLength(raw), Number(headers['content-length']), 'Content-Length matches the body');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1]), headers, body: JSON.parse(raw) };
}

/** Asserts a parser-layer answer: this status and errcode as a Matrix error, and Connection: close. */
function expectClientError(text: string, status: number, errcode: string): void {
  const r = parseResponse(text);
  assert.equal(r.status, status, text);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.headers.connection, 'close');
  assert.equal(r.body.errcode, errcode, text);
  assert.equal(typeof r.body.error, 'string');
}

describe('client listener limits', function () {
  describe('timeouts', function () {
    const HEADER = 300;
    const REQUEST = 600;
    const KEEP_ALIVE = 300;
    const IDLE = 2000;
    // Node checks the header and request deadlines every quarter of the shorter one (75 ms here).
    const SLACK = 400;
    let srv: TestServer;

    before(async () => {
      srv = await startTestServer({
        limits: {
          rate_limits: { enabled: false },
          http: { header_timeout_ms: HEADER, request_timeout_ms: REQUEST, keep_alive_timeout_ms: KEEP_ALIVE, idle_timeout_ms: IDLE },
        },
        sync: { max_timeout_ms: 1000 },
      });
    });
    after(async () => srv.stop());

    it('closes a connection that sends nothing within the header timeout', async () => {
      const c = await openRaw(srv.url);
      const ms = await Promise.race([c.closed, later(HEADER + SLACK, NaN)]);
      assert.ok(ms >= HEADER - 50 && ms <= HEADER + SLACK, `closed after ${ms} ms`);
      expectClientError(c.text(), 408, 'M_UNKNOWN');
    });

    it('closes a client that sends its headers slowly within the header timeout', async () => {
      const c = await openRaw(srv.url);
      c.socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n');
      // A header line every 50 ms: the socket is never idle, but the headers never end.
      const drip = setInterval(() => c.socket.write('X-Slow: 1\r\n'), 50);
      try {
        const ms = await Promise.race([c.closed, later(HEADER + SLACK, NaN)]);
        assert.ok(ms >= HEADER - 50 && ms <= HEADER + SLACK, `closed after ${ms} ms`);
      } finally {
        clearInterval(drip);
      }
      expectClientError(c.text(), 408, 'M_UNKNOWN');
    });

    it('cuts a client that trickles its body byte by byte within the request timeout', async () => {
      const c = await openRaw(srv.url);
      const body = JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'nobody' }, password: 'x'.repeat(40) });
      c.socket.write(`POST ${V3}/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
      // One byte every 50 ms would take about 5 s.
      let i = 0;
      const drip = setInterval(() => c.socket.write(body[i++ % body.length]), 50);
      try {
        const ms = await Promise.race([c.closed, later(REQUEST + SLACK, NaN)]);
        assert.ok(ms >= REQUEST - 50 && ms <= REQUEST + SLACK, `closed after ${ms} ms`);
      } finally {
        clearInterval(drip);
      }
      assert.ok(i < body.length, 'cut before the body was complete');
      expectClientError(c.text(), 408, 'M_UNKNOWN');
    });

    it('closes an idle kept-alive connection after the keep-alive timeout', async () => {
      const c = await openRaw(srv.url);
      c.socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
      const ms = await Promise.race([c.closed, later(KEEP_ALIVE + 1000 + SLACK, NaN)]);
      // Node adds 1 s to the advertised keep-alive timeout.
      assert.ok(ms >= KEEP_ALIVE && ms <= KEEP_ALIVE + 1000 + SLACK, `closed after ${ms} ms`);
      assert.equal(statusOf(c.text()), 200, c.text());
    });

    it('answers a long-poll /sync that outlasts the header, request and keep-alive timeouts', async () => {
      const alice = await makeUser(srv, 'poller');
      const first = await alice.get(`${V3}/sync`);
      assert.equal(first.status, 200);
      const t0 = Date.now();
      const res = await alice.get(`${V3}/sync?since=${encodeURIComponent(first.body.next_batch)}&timeout=1000`);
      const ms = Date.now() - t0;
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(typeof res.body.next_batch, 'string');
      assert.ok(ms >= 900, `the long-poll waited (${ms} ms), longer than request_timeout_ms ${REQUEST}`);
    });

    it('a parked long-poll answers with its headers and CORS, then its connection keeps the keep-alive timeout', async () => {
      // While parked the request gives up its headers and the socket its inactivity timer
      // (http.ts serve); the answer and what follows it on the connection must not notice.
      const bob = await makeUser(srv, 'rawpoller');
      const first = await bob.get(`${V3}/sync`);
      const c = await openRaw(srv.url);
      const t0 = Date.now();
      c.socket.write(
        `GET ${V3}/sync?since=${encodeURIComponent(first.body.next_batch)}&timeout=700 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${bob.token}\r\n\r\n`,
      );
      while (!/\r\n\r\n[\s\S]*\}$/.test(c.text()) && Date.now() - t0 < 5000) await sleep(20);
      const answeredAt = Date.now() - t0;
      assert.ok(answeredAt >= 650, `parked until its timeout (${answeredAt} ms)`);
      const r = parseResponse(c.text());
      assert.equal(r.status, 200, c.text());
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.headers['access-control-allow-origin'], '*');
      assert.equal(typeof r.body.next_batch, 'string');
      // Node's keep-alive timeout (plus its 1 s), not the 2 s inactivity timeout armed again for the answer.
      const ms = (await Promise.race([c.closed, later(IDLE + 2000, NaN)])) - answeredAt;
      assert.ok(ms >= KEEP_ALIVE - 50 && ms <= KEEP_ALIVE + 1000 + SLACK, `closed ${ms} ms after the answer`);
    });

    it('keeps a WebSocket open past every timeout, idle one included', async () => {
      const bob = await makeUser(srv, 'streamer');
      const ws = new WebSocket(`${srv.url.replace(/^http/, 'ws')}/_matrix/client/unstable/io.hearth.sync/ws`, {
        headers: { authorization: `Bearer ${bob.token}` },
        perMessageDeflate: false,
      });
      const frames: any[] = [];
      ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
      let closedAt: number | undefined;
      ws.on('close', () => (closedAt = Date.now()));
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      try {
        await sleep(IDLE + 500);
        assert.equal(closedAt, undefined, 'the socket was closed');
        assert.equal(ws.readyState, WebSocket.OPEN);
        ws.send(JSON.stringify({ type: 'ping', id: 'p1' }));
        for (let i = 0; i < 100 && !frames.some((f) => f.type === 'pong'); i++) await sleep(10);
        assert.ok(frames.some((f) => f.type === 'pong' && f.id === 'p1'), JSON.stringify(frames.map((f) => f.type)));
        assert.ok(frames.some((f) => f.type === 'sync'), 'the initial sync frame arrived');
      } finally {
        ws.close();
      }
    });
  });

  describe('errors Node answers before routing', function () {
    let srv: TestServer;
    before(async () => {
      srv = await startTestServer();
    });
    after(async () => srv.stop());

    /** Sends `bytes` on a fresh connection and returns everything received until the server closes. */
    const exchange = async (bytes: string): Promise<string> => {
      const c = await openRaw(srv.url);
      c.socket.write(bytes);
      const ms = await Promise.race([c.closed, later(2000, NaN)]);
      assert.ok(!Number.isNaN(ms), 'the server closed the connection');
      return c.text();
    };

    it('400 M_UNKNOWN for a malformed request line', async () => {
      expectClientError(await exchange('GET /health HTTP/1.1 trailing junk\r\nHost: localhost\r\n\r\n'), 400, 'M_UNKNOWN');
      expectClientError(await exchange('\x00\x01\x02 not http at all\r\n\r\n'), 400, 'M_UNKNOWN');
    });

    it('400 M_UNKNOWN for a method the parser does not know', async () => {
      const text = await exchange('BREW /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
      expectClientError(text, 400, 'M_UNKNOWN');
      assert.match(parseResponse(text).body.error, /^Bad request/);
    });

    it('431 M_TOO_LARGE for request headers over the limit', async () => {
      expectClientError(await exchange(`GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`), 431, 'M_TOO_LARGE');
    });

    it('a client that resets mid-request is dropped, and the server carries on', async () => {
      const c = await openRaw(srv.url);
      c.socket.write('POST /_matrix/client/v3/login HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{"ty');
      await sleep(20);
      c.socket.resetAndDestroy();
      await c.closed;
      assert.equal((await fetch(`${srv.url}/health`)).status, 200);
    });

    it('counts them in hearth_http_client_errors_total', async () => {
      const text = await (await fetch(`${srv.metricsUrl}/metrics`)).text();
      const count = (status: number) => Number(new RegExp(`^hearth_http_client_errors_total\\{status="${status}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
      assert.ok(count(400) >= 3, text.split('\n').filter((l) => l.includes('client_errors')).join('\n'));
      assert.ok(count(431) >= 1);
    });
  });

  describe('connections per address', function () {
    let srv: TestServer;
    const open: Raw[] = [];

    before(async () => {
      srv = await startTestServer({
        limits: { rate_limits: { enabled: false }, http: { max_connections_per_address: 3, exempt_addresses: [] } },
      });
    });
    afterEach(() => {
      for (const c of open.splice(0)) c.socket.destroy();
    });
    after(async () => srv.stop());

    const health = async (c: Raw): Promise<number> => {
      c.socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
      for (let i = 0; i < 200 && !c.text().includes('\r\n\r\n'); i++) await sleep(5);
      return statusOf(c.text());
    };

    it('closes the N+1th connection from one address at once, and counts it', async () => {
      for (let i = 0; i < 3; i++) open.push(await openRaw(srv.url));
      const extra = await openRaw(srv.url);
      open.push(extra);
      const ms = await Promise.race([extra.closed, later(1000, NaN)]);
      assert.ok(ms < 1000, 'the 4th connection was closed');
      assert.equal(extra.text(), '', 'nothing was sent on it');
      // The three within the cap are served.
      for (const c of open.slice(0, 3)) assert.equal(await health(c), 200);

      // A closed connection frees its slot.
      open[0].socket.destroy();
      await open[0].closed;
      let again: Raw | undefined;
      for (let i = 0; i < 50; i++) {
        const c = await openRaw(srv.url);
        open.push(c);
        if ((await Promise.race([c.closed.then(() => 'closed'), later(100, 'open')])) === 'open') {
          again = c;
          break;
        }
      }
      assert.ok(again, 'a new connection is accepted once one closed');
      assert.equal(await health(again), 200);

      for (const c of open.splice(0)) c.socket.destroy();
      await sleep(50);
      const text = await (await fetch(`${srv.metricsUrl}/metrics`)).text();
      const m = /^hearth_http_connections_refused_total\{reason="per_address"\} (\d+)$/m.exec(text);
      assert.ok(m && Number(m[1]) >= 1, text.split('\n').filter((l) => l.includes('refused')).join('\n'));
    });
  });

  it('does not cap exempt addresses (loopback by default)', async () => {
    const srv = await startTestServer({ limits: { rate_limits: { enabled: false }, http: { max_connections_per_address: 2 } } });
    const conns: Raw[] = [];
    try {
      for (let i = 0; i < 4; i++) conns.push(await openRaw(srv.url));
      for (const c of conns) {
        c.socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
        for (let i = 0; i < 200 && !c.text().includes('\r\n\r\n'); i++) await sleep(5);
        assert.equal(statusOf(c.text()), 200);
      }
    } finally {
      for (const c of conns) c.socket.destroy();
      await srv.stop();
    }
  });
});
