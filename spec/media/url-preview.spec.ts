// GET /preview_url: off by default; when on, pages are fetched through the outbound guard (a
// loopback page is refused unless whitelisted), OpenGraph comes from the HTML, og:image is
// downloaded and stored as media, and size and time limits hold.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { dimensions, mediaIdOf, raw, twoTonePng } from './helpers.js';
import { parseOpenGraph } from '../../src/media/url-preview.js';

const PREVIEW = '/_matrix/client/v1/media/preview_url';

describe('URL previews', function () {
  this.timeout(30000);
  let site: Server;
  let siteUrl: string;
  let png: Buffer;
  const hits: string[] = [];

  before(async function () {
    png = await twoTonePng(120, 60);
    site = createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/page') {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end(`<!doctype html><html><head><title>Fallback title</title>
          <meta property="og:title" content="Caf&eacute; &amp; friends">
          <meta property="og:description" content="A page about caf\u00e9s">
          <meta property="og:image" content="/img.png"><meta property="og:image:width" content="999">
          </head><body><p>hello</p></body></html>`);
      } else if (req.url === '/plain') {
        res.setHeader('content-type', 'text/html');
        res.end('<html><head><title> Just a title </title><meta name="description" content="described"></head></html>');
      } else if (req.url === '/img.png') {
        res.setHeader('content-type', 'image/png');
        res.end(png);
      } else if (req.url === '/redirect') {
        res.statusCode = 302;
        res.setHeader('location', '/plain');
        res.end();
      } else if (req.url === '/huge') {
        res.setHeader('content-type', 'text/html');
        res.write('<html><head><meta property="og:title" content="Huge"></head><body>');
        res.end('x'.repeat(3_000_000));
      } else if (req.url === '/slow') {
        setTimeout(() => res.end('<title>late</title>'), 5000).unref();
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
  });
  after(async () => {
    site.closeAllConnections();
    await new Promise((r) => site.close(r));
  });

  let srv: TestServer | undefined;
  afterEach(async () => {
    await srv?.stop();
    srv = undefined;
  });

  const preview = (token: string, url: string) => raw(srv!.url, 'GET', `${PREVIEW}?url=${enc(url)}`, { token });

  it('is off by default: 404 M_UNRECOGNIZED, and nothing is fetched', async function () {
    srv = await startTestServer();
    const alice = await new Api(srv.url).register('alice');
    const before = hits.length;
    const r = await preview(alice.token!, `${siteUrl}/page`);
    assert.equal(r.status, 404);
    assert.equal(r.json.errcode, 'M_UNRECOGNIZED');
    assert.equal(hits.length, before);
  });

  it('when on, refuses addresses the outbound policy refuses (loopback by default)', async function () {
    srv = await startTestServer({ media: { url_preview: { enabled: true } } });
    const alice = await new Api(srv.url).register('alice');
    const before = hits.length;
    const r = await preview(alice.token!, `${siteUrl}/page`);
    assert.equal(r.status, 403);
    assert.equal(r.json.errcode, 'M_FORBIDDEN');
    assert.equal(hits.length, before, 'no connection was made');
    const bad = await preview(alice.token!, 'file:///etc/passwd');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errcode, 'M_INVALID_PARAM');
    const missing = await raw(srv.url, 'GET', PREVIEW, { token: alice.token });
    assert.equal(missing.json.errcode, 'M_MISSING_PARAM');
    for (const path of [PREVIEW, '/_matrix/media/v3/preview_url', '/_matrix/media/r0/preview_url']) {
      const anon = await raw(srv.url, 'GET', `${path}?url=${enc(`${siteUrl}/page`)}`);
      assert.equal(anon.status, 401);
      assert.equal(anon.json.errcode, 'M_MISSING_TOKEN');
    }
  });

  describe('with the test site whitelisted', function () {
    let alice: Api;
    beforeEach(async function () {
      srv = await startTestServer({
        media: { url_preview: { enabled: true, max_page_bytes: 100_000, timeout_ms: 500 } },
        outbound: { ip_range_whitelist: ['127.0.0.1/32'] },
      });
      alice = await new Api(srv.url).register('alice');
    });

    it('answers OpenGraph with og:image stored as media', async function () {
      const r = await preview(alice.token!, `${siteUrl}/page`);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json['og:title'], 'Café & friends');
      assert.equal(r.json['og:description'], 'A page about cafés');
      // Measured on the stored image (120x60), not the page's claimed width of 999.
      assert.equal(r.json['og:image:width'], 120);
      assert.equal(r.json['og:image:height'], 60);
      assert.equal(r.json['og:image:type'], 'image/png');
      assert.equal(r.json['matrix:image:size'], png.length);
      const id = mediaIdOf(r.json['og:image']);
      const img = await raw(srv!.url, 'GET', `/_matrix/client/v1/media/download/localhost/${id}`, { token: alice.token });
      assert.deepEqual(img.bytes, png);
      const t = await raw(srv!.url, 'GET', `/_matrix/client/v1/media/thumbnail/localhost/${id}?width=60&height=60`, { token: alice.token });
      assert.deepEqual([(await dimensions(t.bytes)).width, (await dimensions(t.bytes)).height], [60, 30]);
      // Cached: a second preview fetches nothing.
      const before = hits.length;
      assert.equal((await preview(alice.token!, `${siteUrl}/page`)).json['og:title'], 'Café & friends');
      assert.equal(hits.length, before);
    });

    it('falls back to <title> and the description meta, and follows redirects', async function () {
      const r = await preview(alice.token!, `${siteUrl}/redirect`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { 'og:title': 'Just a title', 'og:description': 'described' });
    });

    it('a direct image URL is stored and previewed as the image', async function () {
      const r = await preview(alice.token!, `${siteUrl}/img.png`);
      assert.equal(r.json['og:image:type'], 'image/png');
      assert.equal(r.json['matrix:image:size'], png.length);
      assert.deepEqual([r.json['og:image:width'], r.json['og:image:height']], [120, 60]);
    });

    it('size and time limits: a huge page is cut off (its head still read), a slow one times out', async function () {
      const huge = await preview(alice.token!, `${siteUrl}/huge`);
      assert.equal(huge.status, 200);
      assert.equal(huge.json['og:title'], 'Huge');
      const started = Date.now();
      const slow = await preview(alice.token!, `${siteUrl}/slow`);
      assert.equal(slow.status, 504);
      assert.equal(slow.json.errcode, 'M_UNKNOWN');
      assert.ok(Date.now() - started < 3000);
      const gone = await preview(alice.token!, `${siteUrl}/nothing-here`);
      assert.equal(gone.status, 502);
    });
  });

  it('parseOpenGraph: first value wins, entities decoded, relative og:image made absolute, hostile keys are data', function () {
    const og = parseOpenGraph(
      '<meta property="og:title" content="one"><meta property="og:title" content="two"><meta property="og:image" content="../a.png"><meta property="og:__proto__" content="x"><META PROPERTY="og:type" CONTENT="web&amp;site">',
      new URL('https://example.org/dir/page.html'),
    );
    assert.equal(og['og:title'], 'one');
    assert.equal(og['og:image'], 'https://example.org/a.png');
    assert.equal(og['og:type'], 'web&site');
    assert.equal(og['og:__proto__'], 'x');
    assert.equal(({} as Record<string, unknown>).x, undefined);
  });
});
