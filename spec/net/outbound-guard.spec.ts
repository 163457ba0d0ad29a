// The SSRF guard (src/net/outbound-guard.ts): every spelling of an internal address is refused by
// default and a public one allowed; the allow-list wins; a real loopback HTTP server is never
// reached through OutboundHttp unless allow-listed, whether named by IP literal or by a name that
// resolves to it; the address is checked after resolution and again on the connected socket;
// redirects are returned, not followed.

import { strict as assert } from 'node:assert';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createOutboundHttp,
  DEFAULT_IP_RANGE_BLACKLIST,
  isOutboundRefused,
  OutboundGuard,
  parseCidr,
  type LookupAll,
} from '../../src/net/outbound-guard.js';
import { validateConfig } from '../../src/config/load.js';

describe('outbound guard: address policy', () => {
  const guard = new OutboundGuard();

  // Each URL's host is refused at URL level (IP literal) in every spelling the URL parser accepts.
  const refusedUrls = [
    'http://127.0.0.1/',
    'http://127.0.0.1:8008/_matrix/push/v1/notify?x=1',
    'http://2130706433/', // decimal 127.0.0.1
    'http://0x7f000001/', // hex
    'http://127.1/', // short form
    'http://017700000001/', // octal
    'http://[::1]/',
    'http://[0:0:0:0:0:0:0:1]/',
    'http://[::ffff:127.0.0.1]/', // IPv4-mapped
    'http://[::ffff:7f00:1]/',
    'http://[::127.0.0.1]/', // IPv4-compatible
    'http://[2002:7f00:1::]/', // 6to4 of 127.0.0.1
    'http://[64:ff9b::7f00:1]/', // NAT64 of 127.0.0.1
    'http://[64:ff9b::a9fe:a9fe]/', // NAT64 of 169.254.169.254
    'http://0.0.0.0/',
    'http://0/',
    'http://[::]/',
    'http://169.254.169.254/latest/meta-data/',
    'http://[fd00:ec2::254]/',
    'http://[fe80::1]/',
    'http://10.0.0.1/',
    'http://172.16.5.4/',
    'http://192.168.1.1/',
    'http://100.64.0.1/',
    'http://224.0.0.1/',
    'http://255.255.255.255/',
    'http://240.0.0.1/',
    'http://192.0.2.1/',
    'http://198.18.0.1/',
    'http://[2001:db8::1]/',
    'http://[ff02::1]/',
    'https://[::ffff:10.0.0.1]:8443/',
  ];

  for (const url of refusedUrls) {
    it(`refuses ${url}`, () => {
      const v = guard.checkUrl(url);
      assert.equal(v.ok, false, `${url} should be refused`);
    });
  }

  it('refuses bare internal addresses in every family and form', () => {
    for (const a of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '0.0.0.0', '::', '169.254.169.254', 'fd00:ec2::254', '10.0.0.1', '100.64.0.1', 'fe80::1%eth0', '[::1]']) {
      assert.equal(guard.isAllowed(a), false, a);
    }
  });

  it('refuses anything that is not an IP address (fail closed)', () => {
    for (const a of ['', 'localhost', 'example.org', '127.0.0.1.', '1.2.3.4.5', '::g']) assert.equal(guard.isAllowed(a), false, a);
  });

  it('allows public addresses', () => {
    for (const a of ['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700:4700::1111', '::ffff:8.8.8.8', '2002:808:808::1']) {
      assert.equal(guard.isAllowed(a), true, a);
    }
    for (const url of ['https://8.8.8.8/_matrix/push/v1/notify', 'https://push.example.org/_matrix/push/v1/notify', 'http://[2606:4700:4700::1111]:8080/']) {
      assert.deepEqual(guard.checkUrl(url).ok, true, url);
    }
  });

  it('refuses non-http(s) schemes and non-URLs', () => {
    for (const url of ['ftp://8.8.8.8/', 'file:///etc/passwd', 'gopher://8.8.8.8/', 'not a url']) assert.equal(guard.checkUrl(url).ok, false, url);
  });

  it('lets the allow-list win, for the v4 range and its IPv6 forms', () => {
    const g = new OutboundGuard({ ip_range_blacklist: DEFAULT_IP_RANGE_BLACKLIST, ip_range_whitelist: ['127.0.0.1/32', '10.1.0.0/16'] });
    for (const a of ['127.0.0.1', '::ffff:127.0.0.1', '10.1.2.3']) assert.equal(g.isAllowed(a), true, a);
    for (const a of ['127.0.0.2', '::1', '10.2.0.1']) assert.equal(g.isAllowed(a), false, a);
  });

  it('always refuses 0.0.0.0 and :: even with an empty blacklist; refuses only those then', () => {
    const g = new OutboundGuard({ ip_range_blacklist: [], ip_range_whitelist: [] });
    assert.equal(g.isAllowed('0.0.0.0'), false);
    assert.equal(g.isAllowed('::'), false);
    assert.equal(g.isAllowed('127.0.0.1'), true);
  });

  it('parses CIDRs and single addresses, rejecting malformed ones', () => {
    assert.deepEqual(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    assert.deepEqual(parseCidr('fc00::/7'), { address: 'fc00::', prefix: 7, family: 'ipv6' });
    assert.deepEqual(parseCidr('1.2.3.4'), { address: '1.2.3.4', prefix: 32, family: 'ipv4' });
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0/8', '10.0.0.0/', '10.0.0.0/8/8', 'x/8', '10.0.0.0/-1', '10.0.0.0/1e1', '']) {
      assert.equal(parseCidr(bad), null, bad);
    }
  });

  it('rejects an invalid range in either config key at start-up, naming the key', () => {
    assert.throws(() => validateConfig({ outbound: { ip_range_blacklist: ['10.0.0.0/33'] } }), /"outbound\.ip_range_blacklist\.0"/);
    assert.throws(() => validateConfig({ outbound: { ip_range_whitelist: ['127.0.0.1/32', 'localhost'] } }), /"outbound\.ip_range_whitelist\.1"/);
    const c = validateConfig({});
    assert.deepEqual(c.outbound.ip_range_blacklist, [...DEFAULT_IP_RANGE_BLACKLIST]);
    assert.deepEqual(c.outbound.ip_range_whitelist, []);
  });
});

describe('outbound guard: OutboundHttp against a real loopback server', function () {
  this.timeout(10000);
  let server: Server;
  let port = 0;
  let hits: string[] = [];
  let answer: (path: string) => { status: number; headers?: Record<string, string>; body?: string } = () => ({ status: 200, body: 'ok' });

  before(async () => {
    server = createServer((req, res) => {
      hits.push(`${req.method} ${req.url} host=${req.headers.host}`);
      const a = answer(req.url ?? '');
      res.writeHead(a.status, a.headers ?? {});
      res.end(a.body ?? '');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  beforeEach(() => {
    hits = [];
    answer = () => ({ status: 200, body: 'ok' });
  });

  async function refused(http: ReturnType<typeof createOutboundHttp>, url: string): Promise<Error> {
    try {
      await http.request(url, { method: 'POST', body: '{}' });
    } catch (err) {
      assert.ok(isOutboundRefused(err), `expected a refusal for ${url}, got ${String(err)}`);
      return err as Error;
    }
    assert.fail(`${url} was not refused`);
  }

  it('never connects to loopback with the default policy, by literal or by name', async () => {
    const http = createOutboundHttp(new OutboundGuard());
    try {
      for (const host of ['127.0.0.1', '2130706433', '0x7f000001', '127.1', '[::ffff:127.0.0.1]']) {
        await refused(http, `http://${host}:${port}/_matrix/push/v1/notify`);
      }
      // `localhost` is a name: the refusal happens at connect time, after resolution.
      const err = await refused(http, `http://localhost:${port}/_matrix/push/v1/notify`);
      assert.match(err.message, /localhost.*resolves only to refused addresses/);
      assert.deepEqual(hits, []);
    } finally {
      await http.close();
    }
  });

  it('connects when the allow-list lets loopback through, keeping the name as Host', async () => {
    const http = createOutboundHttp(new OutboundGuard({ ip_range_blacklist: DEFAULT_IP_RANGE_BLACKLIST, ip_range_whitelist: ['127.0.0.1/32'] }));
    try {
      const res = await http.request(`http://localhost:${port}/a?b=1`, { method: 'POST', body: '{}' });
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'ok');
      const lit = await http.request(`http://127.0.0.1:${port}/c`);
      assert.equal(lit.status, 200);
      assert.deepEqual(hits, [`POST /a?b=1 host=localhost:${port}`, `GET /c host=127.0.0.1:${port}`]);
    } finally {
      await http.close();
    }
  });

  it('drops refused addresses from a DNS answer and dials an allowed one', async () => {
    // The name resolves to the metadata address and to loopback; only loopback is allow-listed.
    const lookup: LookupAll = async () => [
      { address: '169.254.169.254', family: 4 },
      { address: '127.0.0.1', family: 4 },
    ];
    const http = createOutboundHttp(new OutboundGuard({ ip_range_blacklist: DEFAULT_IP_RANGE_BLACKLIST, ip_range_whitelist: ['127.0.0.1/32'] }), { lookup });
    try {
      const res = await http.request(`http://gateway.example:${port}/x`);
      assert.equal(res.status, 200);
      assert.deepEqual(hits, [`GET /x host=gateway.example:${port}`]);
    } finally {
      await http.close();
    }
  });

  it('refuses a name that resolves only to refused addresses (DNS rebinding to internal IPs)', async () => {
    const lookup: LookupAll = async () => [
      { address: '10.0.0.1', family: 4 },
      { address: 'fd00:ec2::254', family: 6 },
    ];
    const http = createOutboundHttp(new OutboundGuard(), { lookup });
    try {
      const err = await refused(http, `http://rebind.example:${port}/x`);
      assert.match(err.message, /10\.0\.0\.1, fd00:ec2::254/);
    } finally {
      await http.close();
    }
  });

  it('checks socket.remoteAddress after connecting', async () => {
    // A policy that accepts the address before dialling and refuses it once connected stands in
    // for a connection that ends up somewhere else than the address checked.
    class Flipping extends OutboundGuard {
      calls = 0;
      override isAllowed(address: string): boolean {
        this.calls++;
        return this.calls === 1 ? true : super.isAllowed(address);
      }
    }
    const guard = new Flipping();
    // Skip checkUrl's own pre-check by using a name, so the first isAllowed call is the connector's.
    const http = createOutboundHttp(guard, { lookup: async () => [{ address: '127.0.0.1', family: 4 }] });
    try {
      const err = await refused(http, `http://gw.example:${port}/x`);
      assert.match(err.message, /connected to 127\.0\.0\.1/);
      assert.equal(guard.calls, 2);
    } finally {
      await http.close();
    }
  });

  it('returns a redirect without following it', async () => {
    answer = (path) => (path === '/start' ? { status: 302, headers: { location: `http://127.0.0.1:${port}/elsewhere` } } : { status: 200, body: 'followed' });
    const http = createOutboundHttp(new OutboundGuard({ ip_range_blacklist: DEFAULT_IP_RANGE_BLACKLIST, ip_range_whitelist: ['127.0.0.1/32'] }));
    try {
      const res = await http.request(`http://127.0.0.1:${port}/start`, { method: 'POST', body: '{}' });
      assert.equal(res.status, 302);
      assert.deepEqual(hits, ['POST /start host=127.0.0.1:' + port]);
    } finally {
      await http.close();
    }
  });

  it('caps the response body it keeps', async () => {
    answer = () => ({ status: 200, body: 'x'.repeat(5000) });
    const http = createOutboundHttp(new OutboundGuard({ ip_range_blacklist: [], ip_range_whitelist: [] }));
    try {
      const res = await http.request(`http://127.0.0.1:${port}/big`, { maxResponseBytes: 100 });
      assert.equal(res.body.length, 100);
      assert.equal(res.truncated, true);
    } finally {
      await http.close();
    }
  });
});
