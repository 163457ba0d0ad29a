// Media across servers: two real Hearth servers on loopback (spec/helpers/federation.ts), a user
// on A uploads, a user on B downloads and thumbnails it through B (B fetches it from A over the
// signed federation media endpoint, keeps it, and serves the next request from its store), and
// a fake remote (HTTPS, on loopback) for what a real Hearth never answers: only the legacy
// download endpoint, a body over B's limit, a hostile type and name, a redirect to the CDN and
// one to an address B's outbound policy refuses.

import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { assert } from '../helpers/assert.js';
import { Agent, request } from 'undici';
import { closeFedRequests, fedRequest, freePort, signingKeyOf, startFederated, startPair, type User } from '../helpers/federation.js';
import { buildXMatrixAuthorization } from '../../src/protocol/x-matrix.js';
import { Api, type TestServer } from '../helpers/server.js';
import { dimensions, raw, twoTonePng } from '../media/helpers.js';
import { generateSelfSignedCertificate } from '../../src/federation/self-signed.js';
import { MEDIA_CSP } from '../../src/media/headers.js';
import { LocalMediaStore } from '../../src/media/local-store.js';
import { remoteKey } from '../../src/media/media-service.js';
import { remoteThumbnailKey } from '../../src/media/remote-cache.js';
import { GRACE_MS } from '../../src/media/remote-eviction.js';
import { multipartBoundary, readMultipartMedia } from '../../src/media/multipart.js';

const V1 = '/_matrix/client/v1/media';
const LIMIT = 100_000;
/** media.remote_media_lifetime_ms on both servers: longer than the grace, so one sweep can pass the grace and keep a fresh fetch. */
const LIFETIME = 2 * GRACE_MS;

interface Seen {
  path: string;
  authorization: string | undefined;
}

/** A remote server that is only an HTTPS listener: answers per media ID, records what it was asked. */
class FakeRemote {
  readonly seen: Seen[] = [];
  private server!: HttpsServer;
  port = 0;

  constructor(private readonly handle: (path: string, res: import('node:http').ServerResponse, port: number) => void) {}

  get name(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.port = await freePort();
    const cert = await generateSelfSignedCertificate('127.0.0.1');
    this.server = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) => {
      this.seen.push({ path: req.url ?? '', authorization: req.headers.authorization });
      this.handle(req.url ?? '', res, this.port);
    });
    await new Promise<void>((resolve) => this.server.listen(this.port, '127.0.0.1', resolve));
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe('federation: media across two Hearth servers', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let nameA: string;
  let alice: User;
  let bob: User;
  let png: Buffer;
  let fake: FakeRemote;
  let internal: Server;
  let internalHits = 0;
  /** B's fetches (client.stream calls), `destination path`. */
  const fetches: string[] = [];
  let insecure: Agent | undefined;

  before(async () => {
    ({ a, b, nameA } = await startPair({ media: { max_upload_bytes: LIMIT, remote_media_lifetime_ms: LIFETIME } }));
    alice = await new Api(a.url).register('alice');
    bob = await new Api(b.url).register('bob');
    png = await twoTonePng(320, 240);
    const client = b.hearth.federation!.core.client;
    const stream = client.stream;
    client.stream = (destination, path, signal) => {
      fetches.push(`${destination} ${path}`);
      return stream.call(client, destination, path, signal);
    };
    // An "internal" service on an address B's policy refuses (only 127.0.0.1/32 is allowed).
    internal = createHttpServer((_req, res) => {
      internalHits++;
      res.end('secret');
    });
    await new Promise<void>((resolve) => internal.listen(0, '127.0.0.2', resolve));
    const internalPort = (internal.address() as AddressInfo).port;
    fake = new FakeRemote((path, res, port) => {
      const url = new URL(path, 'https://x');
      if (url.pathname.startsWith('/_matrix/federation/v1/media/download/')) {
        const id = url.pathname.split('/').pop();
        const boundary = 'b0undary';
        if (id === 'huge') {
          // Chunked, no length: B learns the size only while streaming.
          res.writeHead(200, { 'content-type': `multipart/mixed; boundary=${boundary}` });
          res.write(`--${boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${boundary}\r\nContent-Type: image/png\r\n\r\n`);
          for (let i = 0; i < 30; i++) res.write(Buffer.alloc(10_000, i));
          res.end(`\r\n--${boundary}--\r\n`);
          return;
        }
        if (id === 'cdn' || id === 'internal') {
          const location = id === 'cdn' ? `https://127.0.0.1:${port}/cdn/file` : `http://127.0.0.2:${internalPort}/x`;
          res.writeHead(200, { 'content-type': `multipart/mixed; boundary=${boundary}` });
          res.end(`--${boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${boundary}\r\nLocation: ${location}\r\n\r\n\r\n--${boundary}--\r\n`);
          return;
        }
        // Everything else: a server from before authenticated media.
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' }));
        return;
      }
      if (url.pathname === '/cdn/file') {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-disposition': 'inline; filename="from-cdn.txt"' });
        res.end('bytes from the CDN');
        return;
      }
      if (url.pathname.startsWith('/_matrix/media/v3/download/')) {
        const id = url.pathname.split('/').pop();
        if (id === 'legacy') {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-disposition': 'inline; filename="old.txt"' });
          res.end('legacy bytes');
        } else if (id === 'biglen') {
          // Announces more than B takes: refused on the header, before the body.
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(LIMIT + 1) });
          res.write(Buffer.alloc(1000));
          setTimeout(() => res.destroy(), 2000).unref();
        } else if (id === 'evil') {
          res.writeHead(200, { 'content-type': 'text/html', 'content-disposition': 'inline; filename="evil.html"' });
          res.end('<script>alert(1)</script>');
        } else if (id === 'badtype') {
          res.writeHead(200, { 'content-type': 'text/plain; x=\u00e9' });
          res.end('x');
        } else {
          res.writeHead(404, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ errcode: 'M_NOT_FOUND', error: 'Not found' }));
        }
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' }));
    });
    await fake.start();
  });

  after(async () => {
    await fake?.stop();
    await new Promise<void>((resolve) => (internal ? internal.close(() => resolve()) : resolve()));
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
    await insecure?.close();
  });

  const uploadOnA = async (body: Buffer | string, type: string, query = '') => {
    const r = await raw(a.url, 'POST', `${V1}/upload${query}`, { token: alice.token, body, contentType: type });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return String(r.json.content_uri).split('/').pop()!;
  };
  const viaB = (server: string, id: string, rest = '') => raw(b.url, 'GET', `${V1}/download/${server}/${id}${rest}`, { token: bob.token });
  const fetchesOf = (id: string) => fetches.filter((f) => f.includes(`/${id}`));
  /** B's eviction counters as GET /metrics shows them (counters: each with its TYPE line). */
  const evictedOnB = async () => {
    const text = await (await fetch(`${b.metricsUrl!}/metrics`)).text();
    const read = (name: string) => {
      assert.match(text, new RegExp(`^# TYPE ${name} counter$`, 'm'));
      return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
    };
    return { files: read('hearth_remote_media_evicted_files_total'), bytes: read('hearth_remote_media_evicted_bytes_total') };
  };

  /** A signed GET to A's federation listener as B, its multipart answer read. */
  const fromA = async (path: string) => {
    const auth = buildXMatrixAuthorization({ method: 'GET', uri: path, origin: b.hearth.config.server_name, destination: nameA }, await signingKeyOf(b));
    insecure ??= new Agent({ connect: { rejectUnauthorized: false } });
    const res = await request(a.hearth.federation!.url + path, { headers: { authorization: auth }, dispatcher: insecure });
    const type = String(res.headers['content-type']);
    const boundary = multipartBoundary(type);
    if (!boundary) return { status: res.statusCode, type, json: (await res.body.json()) as any };
    const part = await readMultipartMedia(res.body, boundary);
    const chunks: Buffer[] = [];
    for await (const c of part.body) chunks.push(c);
    return { status: res.statusCode, type, metadata: JSON.parse(part.metadata.toString()), headers: part.headers, bytes: Buffer.concat(chunks) };
  };

  it('serves our media to other servers: signed GET /federation/v1/media/download, multipart/mixed', async function () {
    const id = await uploadOnA(png, 'image/png', '?filename=cat.png');
    const unsigned = await fedRequest(a.hearth.federation!.url, 'GET', `/_matrix/federation/v1/media/download/${id}`, {});
    assert.equal(unsigned.status, 401);
    const got = await fromA(`/_matrix/federation/v1/media/download/${id}`);
    assert.equal(got.status, 200);
    assert.deepEqual(got.metadata, {});
    assert.equal(got.headers?.['content-type'], 'image/png');
    assert.equal(got.headers?.['content-disposition'], 'inline; filename="cat.png"');
    assert.deepEqual(got.bytes, png);
    const missing = await fromA('/_matrix/federation/v1/media/download/nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.json.errcode, 'M_NOT_FOUND');
  });

  it('serves thumbnails of our media over federation', async function () {
    const id = await uploadOnA(png, 'image/png');
    const got = await fromA(`/_matrix/federation/v1/media/thumbnail/${id}?width=64&height=64&method=crop`);
    assert.equal(got.status, 200);
    assert.equal(got.headers?.['content-type'], 'image/png');
    const d = await dimensions(got.bytes!);
    assert.deepEqual([d.width, d.height], [64, 64]);
    const bad = await fromA(`/_matrix/federation/v1/media/thumbnail/${id}?width=0&height=64`);
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errcode, 'M_INVALID_PARAM');
  });

  it('bob@B downloads alice@A\'s upload through B: same bytes and type; the second download comes from B\'s store', async function () {
    const id = await uploadOnA(png, 'image/png', '?filename=cat.png');
    const first = await viaB(nameA, id);
    assert.equal(first.status, 200, JSON.stringify(first.json));
    assert.deepEqual(first.bytes, png);
    assert.equal(first.headers.get('content-type'), 'image/png');
    assert.equal(first.headers.get('content-disposition'), 'inline; filename="cat.png"');
    assert.equal(first.headers.get('content-security-policy'), MEDIA_CSP);
    assert.deepEqual(fetchesOf(id), [`${nameA} /_matrix/federation/v1/media/download/${id}?timeout_ms=20000`]);
    const rec = await b.hearth.store.media.getRemoteMedia(nameA, id);
    assert.equal(rec?.size, png.length);
    assert.match(rec?.generation ?? '', /^[A-Za-z0-9_-]{16}$/);
    assert.deepEqual(readFileSync(new LocalMediaStore(b.hearth.config.media.path).pathOf(remoteKey(nameA, id, rec!.generation))), png);
    assert.equal(rec?.contentType, 'image/png');
    // Again, on v1 and the legacy path: from B's store, A is not asked again.
    const second = await viaB(nameA, id);
    const legacy = await raw(b.url, 'GET', `/_matrix/media/v3/download/${nameA}/${id}/other.png`, { token: bob.token });
    assert.deepEqual(second.bytes, png);
    assert.deepEqual(legacy.bytes, png);
    assert.equal(legacy.headers.get('content-disposition'), 'inline; filename="other.png"');
    assert.equal(fetchesOf(id).length, 1);
  });

  it('allow_remote=false: kept remote media is served, other remote media is not fetched', async function () {
    const id = await uploadOnA(png, 'image/png');
    const refused = await raw(b.url, 'GET', `/_matrix/media/v3/download/${nameA}/${id}?allow_remote=false`, { token: bob.token });
    assert.equal(refused.status, 404);
    assert.equal(fetchesOf(id).length, 0);
    assert.equal((await viaB(nameA, id)).status, 200);
    const kept = await raw(b.url, 'GET', `/_matrix/media/v3/download/${nameA}/${id}?allow_remote=false`, { token: bob.token });
    assert.deepEqual(kept.bytes, png);
    assert.equal(fetchesOf(id).length, 1);
  });

  it('media.fetch_remote: false: remote media is 404 and the origin is never asked', async function () {
    const id = await uploadOnA(png, 'image/png');
    const c = await startFederated(await freePort(), undefined, { media: { fetch_remote: false } });
    try {
      const asked: string[] = [];
      const client = c.hearth.federation!.core.client;
      const stream = client.stream;
      client.stream = (destination, path, signal) => {
        asked.push(path);
        return stream.call(client, destination, path, signal);
      };
      const carol = await new Api(c.url).register('carol');
      const r = await raw(c.url, 'GET', `${V1}/download/${nameA}/${id}`, { token: carol.token });
      assert.equal(r.status, 404);
      assert.equal(r.json.errcode, 'M_NOT_FOUND');
      const t = await raw(c.url, 'GET', `${V1}/thumbnail/${nameA}/${id}?width=8&height=8`, { token: carol.token });
      assert.equal(t.status, 404);
      assert.deepEqual(asked, []);
    } finally {
      await c.stop();
    }
  });

  it('concurrent downloads of one remote item share one fetch', async function () {
    const id = await uploadOnA(png, 'image/png');
    const all = await Promise.all([1, 2, 3, 4].map(() => viaB(nameA, id)));
    for (const r of all) assert.deepEqual(r.bytes, png);
    assert.equal(fetchesOf(id).length, 1);
  });

  it('thumbnails of remote media are made on B from the fetched original', async function () {
    const id = await uploadOnA(png, 'image/png');
    const r = await raw(b.url, 'GET', `${V1}/thumbnail/${nameA}/${id}?width=32&height=32&method=scale`, { token: bob.token });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.headers.get('content-type'), 'image/png');
    const d = await dimensions(r.bytes);
    assert.deepEqual([d.width, d.height], [32, 24]);
    assert.deepEqual(fetchesOf(id), [`${nameA} /_matrix/federation/v1/media/download/${id}?timeout_ms=20000`]);
    const again = await raw(b.url, 'GET', `${V1}/thumbnail/${nameA}/${id}?width=32&height=32&method=scale`, { token: bob.token });
    assert.deepEqual(again.bytes, r.bytes);
    const rec = await b.hearth.store.media.getRemoteMedia(nameA, id);
    assert.ok(await b.hearth.store.media.getRemoteThumbnail(nameA, id, rec!.generation, 32, 32, 'scale', false));
    assert.equal(fetchesOf(id).length, 1);
  });

  it('unknown remote media is 404, and the failure is remembered for a while', async function () {
    const r = await viaB(nameA, 'doesNotExist');
    assert.equal(r.status, 404);
    assert.equal(r.json.errcode, 'M_NOT_FOUND');
    const again = await viaB(nameA, 'doesNotExist');
    assert.equal(again.status, 404);
    assert.equal(fetchesOf('doesNotExist').length, 1);
    // Media IDs that cannot exist and bad server names are never fetched.
    assert.equal((await viaB(nameA, 'bad%2Fid')).status, 404);
    assert.equal((await viaB('bad!name', 'abc')).status, 404);
    assert.equal(fetches.filter((f) => f.includes('bad')).length, 0);
  });

  it('a remote over media.max_upload_bytes is refused while streaming and nothing is kept', async function () {
    const r = await viaB(fake.name, 'huge');
    assert.equal(r.status, 502);
    assert.equal(r.json.errcode, 'M_TOO_LARGE');
    assert.equal(await b.hearth.store.media.getRemoteMedia(fake.name, 'huge'), null);
    const dir = dirname(new LocalMediaStore(b.hearth.config.media.path).pathOf(remoteKey(fake.name, 'huge', 'any')));
    assert.ok(!existsSync(dir) || readdirSync(dir).every((f) => !f.startsWith('huge')), 'no bytes of any generation');
    const announced = await viaB(fake.name, 'biglen');
    assert.equal(announced.status, 502);
    assert.equal(announced.json.errcode, 'M_TOO_LARGE');
    assert.equal(await b.hearth.store.media.getRemoteMedia(fake.name, 'biglen'), null);
  });

  it('falls back to the legacy download (allow_remote=false, signed) for a server without the federation endpoint', async function () {
    const r = await viaB(fake.name, 'legacy');
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.bytes.toString(), 'legacy bytes');
    assert.equal(r.headers.get('content-type'), 'text/plain');
    assert.equal(r.headers.get('content-disposition'), 'inline; filename="old.txt"');
    const asked = fake.seen.filter((s) => s.path.includes('/legacy')).map((s) => s.path.split('?')[0]);
    assert.deepEqual(asked, ['/_matrix/federation/v1/media/download/legacy', `/_matrix/media/v3/download/${encodeURIComponent(fake.name)}/legacy`]);
    const legacy = fake.seen.find((s) => s.path.startsWith('/_matrix/media/v3/download/'))!;
    assert.match(legacy.path, /[?&]allow_remote=false(&|$)/);
    assert.match(legacy.authorization ?? '', /^X-Matrix /);
    // Unknown there too: 404.
    assert.equal((await viaB(fake.name, 'nothing')).status, 404);
  });

  it('a remote\'s type and name are sanitised: HTML is an attachment, a malformed type is dropped', async function () {
    const evil = await viaB(fake.name, 'evil');
    assert.equal(evil.status, 200);
    assert.equal(evil.headers.get('content-disposition'), 'attachment; filename="evil.html"');
    assert.equal(evil.headers.get('content-security-policy'), MEDIA_CSP);
    assert.equal(evil.headers.get('x-content-type-options'), 'nosniff');
    const bad = await viaB(fake.name, 'badtype');
    assert.equal(bad.status, 200);
    assert.equal(bad.headers.get('content-type'), 'application/octet-stream');
    assert.equal(bad.headers.get('content-disposition'), 'attachment');
  });

  it('follows a Location to the bytes, but never to an address the outbound policy refuses', async function () {
    const cdn = await viaB(fake.name, 'cdn');
    assert.equal(cdn.status, 200, JSON.stringify(cdn.json));
    assert.equal(cdn.bytes.toString(), 'bytes from the CDN');
    assert.equal(cdn.headers.get('content-disposition'), 'inline; filename="from-cdn.txt"');
    const refused = await viaB(fake.name, 'internal');
    assert.equal(refused.status, 502);
    assert.equal(internalHits, 0);
    assert.equal(await b.hearth.store.media.getRemoteMedia(fake.name, 'internal'), null);
  });

  // Eviction (src/media/remote-eviction.ts): by age of last access, or the admin purge.
  it('the sweep evicts remote media not accessed within media.remote_media_lifetime_ms; the next download fetches it again; the old bytes go after the grace', async function () {
    const id = await uploadOnA(png, 'image/png');
    const media = b.hearth.services.media;
    const files = new LocalMediaStore(b.hearth.config.media.path);
    assert.deepEqual((await viaB(nameA, id)).bytes, png);
    assert.equal((await raw(b.url, 'GET', `${V1}/thumbnail/${nameA}/${id}?width=32&height=32&method=scale`, { token: bob.token })).status, 200);
    const first = (await b.hearth.store.media.getRemoteMedia(nameA, id))!;
    const bytes1 = files.pathOf(remoteKey(nameA, id, first.generation));
    const thumb1 = files.pathOf(remoteThumbnailKey(nameA, first.generation, { mediaId: id, reqWidth: 32, reqHeight: 32, method: 'scale', animated: false }));
    assert.ok(existsSync(bytes1) && existsSync(thumb1));

    const counted = await evictedOnB();
    await media.sweepRemoteMedia();
    assert.deepEqual(await b.hearth.store.media.getRemoteMedia(nameA, id), first, 'accessed just now: kept');
    assert.deepEqual(await evictedOnB(), counted, 'nothing evicted, nothing counted');
    const sweepAt = Date.now() + LIFETIME + 1000;
    // Every remote item B holds goes in this sweep (earlier tests fetched others).
    const going = await b.hearth.store.media.listRemoteMediaBefore(sweepAt - LIFETIME, 1000);
    assert.ok(going.some((r) => r.mediaId === id && r.size === png.length));
    await media.sweepRemoteMedia(sweepAt);
    assert.equal(await b.hearth.store.media.getRemoteMedia(nameA, id), null, 'evicted');
    const goingBytes = going.reduce((n, r) => n + r.size, 0);
    assert.deepEqual(await evictedOnB(), { files: counted.files + going.length, bytes: counted.bytes + goingBytes }, 'counted on /metrics');
    assert.ok(existsSync(bytes1) && existsSync(thumb1), 'the bytes outlive the record by the grace');

    const again = await viaB(nameA, id);
    assert.deepEqual(again.bytes, png);
    assert.equal(fetchesOf(id).length, 2, 'fetched from A again');
    const second = (await b.hearth.store.media.getRemoteMedia(nameA, id))!;
    assert.notEqual(second.generation, first.generation);
    const bytes2 = files.pathOf(remoteKey(nameA, id, second.generation));

    // Past the grace (and within the lifetime of the new fetch): the old generation goes, the new stays.
    await media.sweepRemoteMedia(Date.now() + GRACE_MS + 1000);
    assert.equal(existsSync(bytes1), false);
    assert.equal(existsSync(thumb1), false);
    assert.deepEqual(readFileSync(bytes2), png);
    assert.deepEqual(await b.hearth.store.media.getRemoteMedia(nameA, id), second);
    assert.deepEqual((await viaB(nameA, id)).bytes, png);
    const thumb = await raw(b.url, 'GET', `${V1}/thumbnail/${nameA}/${id}?width=32&height=32&method=scale`, { token: bob.token });
    assert.equal(thumb.status, 200);
    assert.equal(fetchesOf(id).length, 2, 'served from B\'s store');
  });

  it('media.max_remote_media_bytes: past the cap the least recently accessed remote media is evicted, and fetched again when asked', async function () {
    const ids = [await uploadOnA(png, 'image/png'), await uploadOnA(png, 'image/png'), await uploadOnA(png, 'image/png')];
    const c = await startFederated(await freePort(), undefined, { media: { max_upload_bytes: LIMIT, max_remote_media_bytes: 2 * png.length } });
    try {
      const asked: string[] = [];
      const client = c.hearth.federation!.core.client;
      const stream = client.stream;
      client.stream = (destination, path, signal) => {
        asked.push(path);
        return stream.call(client, destination, path, signal);
      };
      const askedFor = (id: string) => asked.filter((p) => p.includes(`/${id}`)).length;
      const carol = await new Api(c.url).register('carol');
      const viaC = (id: string) => raw(c.url, 'GET', `${V1}/download/${nameA}/${id}`, { token: carol.token });
      for (const id of ids) {
        assert.deepEqual((await viaC(id)).bytes, png);
        await new Promise((r) => setTimeout(r, 5)); // distinct access times
      }
      const kept = async () => Promise.all(ids.map(async (id) => (await c.hearth.store.media.getRemoteMedia(nameA, id)) !== null));
      assert.deepEqual(await kept(), [true, true, true]);
      await c.hearth.services.media.sweepRemoteMedia();
      assert.deepEqual(await kept(), [false, true, true], 'the least recently accessed went');
      assert.deepEqual((await viaC(ids[0]!)).bytes, png);
      assert.equal(askedFor(ids[0]!), 2, 'fetched again');
      await c.hearth.services.media.sweepRemoteMedia();
      assert.deepEqual(await kept(), [true, false, true]);
    } finally {
      await c.stop();
    }
  });

  it('POST /_synapse/admin/v1/purge_media_cache: admins only, before_ts in ms; evicts remote media, never local uploads', async function () {
    const accounts = b.hearth.services.accounts;
    const rootId = await accounts.createAccount('mediaroot', null, true);
    const login = await accounts.login(rootId, undefined, null, null);
    const purge = (token: string, query: string) => raw(b.url, 'POST', `/_synapse/admin/v1/purge_media_cache${query}`, { token });
    const remoteId = await uploadOnA(png, 'image/png');
    assert.deepEqual((await viaB(nameA, remoteId)).bytes, png);
    const local = await raw(b.url, 'POST', `${V1}/upload`, { token: bob.token, body: png, contentType: 'image/png' });
    const localId = String(local.json.content_uri).split('/').pop()!;
    const soon = Date.now() + 1000;

    const denied = await purge(bob.token!, `?before_ts=${soon}`);
    assert.equal(denied.status, 403);
    assert.equal(denied.json.errcode, 'M_FORBIDDEN');
    for (const [q, code] of [['', 'M_MISSING_PARAM'], ['?before_ts=1700000000', 'M_INVALID_PARAM'], ['?before_ts=-5', 'M_INVALID_PARAM'], ['?before_ts=soon', 'M_INVALID_PARAM']] as const) {
      const r = await purge(login.access_token, q);
      assert.equal(r.status, 400, q);
      assert.equal(r.json.errcode, code, q);
    }
    assert.ok(await b.hearth.store.media.getRemoteMedia(nameA, remoteId), 'refused purges evict nothing');

    const counted = await evictedOnB();
    const r = await purge(login.access_token, `?before_ts=${soon}`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.ok(r.json.deleted >= 1, JSON.stringify(r.json));
    assert.equal((await evictedOnB()).files, counted.files + r.json.deleted, 'the admin purge counts too');
    assert.equal(await b.hearth.store.media.getRemoteMedia(nameA, remoteId), null);
    assert.ok(await b.hearth.store.media.getMedia(localId), 'local upload kept');
    assert.deepEqual((await raw(b.url, 'GET', `${V1}/download/${b.hearth.config.server_name}/${localId}`, { token: bob.token })).bytes, png);
    assert.deepEqual((await viaB(nameA, remoteId)).bytes, png);
    assert.equal(fetchesOf(remoteId).length, 2);
    assert.deepEqual((await purge(login.access_token, '?before_ts=30000000000')).json, { deleted: 0 });
  });
});
