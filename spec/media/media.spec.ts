// The media repository over HTTP: uploads of real images (made with sharp here), downloads with
// their safe headers, thumbnails (dimensions checked), limits, quota, rate limits, async uploads,
// authentication, hostile query keys, admin deletion, and that every error is a Matrix error.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { animatedGif, dimensions, mediaIdOf, raw, solidJpeg, twoTonePng } from './helpers.js';
import { MEDIA_CSP } from '../../src/media/headers.js';

type User = Api & { userId: string; deviceId: string };

const V1 = '/_matrix/client/v1/media';
const V3 = '/_matrix/media/v3';

/** Every file below the media root, except the (normally empty) tmp/ directory's. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

function assertMatrixError(r: { status: number; json: any; headers: Headers }, status: number, errcode: string): void {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(r.json.errcode, errcode);
  assert.equal(typeof r.json.error, 'string');
}

describe('media repository (HTTP)', function () {
  this.timeout(30000);
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let png: Buffer;

  before(async function () {
    srv = await startTestServer({ media: { max_upload_bytes: 200_000, max_pending_uploads: 3 } });
    const api = new Api(srv.url);
    alice = await api.register('alice');
    bob = await api.register('bob');
    png = await twoTonePng(640, 480);
  });
  after(async () => srv?.stop());

  const upload = async (who: User, body: Buffer | string, contentType?: string, query = '', prefix = V3) => {
    const r = await raw(srv.url, 'POST', `${prefix}/upload${query}`, { token: who.token, body, contentType });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.match(r.json.content_uri, /^mxc:\/\/localhost\/[A-Za-z0-9_-]+$/);
    return mediaIdOf(r.json.content_uri);
  };
  const download = (who: User | undefined, id: string, rest = '', prefix = V1) => raw(srv.url, 'GET', `${prefix}/download/localhost/${id}${rest}`, { token: who?.token });
  const thumb = (id: string, q: string, who: User = alice) => raw(srv.url, 'GET', `${V1}/thumbnail/localhost/${id}?${q}`, { token: who.token });

  it('GET /config (v1 and legacy) advertises the upload limit', async function () {
    for (const p of [V1, V3, '/_matrix/media/r0']) {
      const r = await raw(srv.url, 'GET', `${p}/config`, { token: alice.token });
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, { 'm.upload.size': 200_000 });
    }
  });

  it('needs an access token on every media endpoint, v1 and legacy', async function () {
    const id = await upload(alice, png, 'image/png');
    const paths: [string, string][] = [
      ['GET', `${V1}/config`], ['GET', `${V3}/config`],
      ['POST', `${V1}/upload`], ['POST', `${V3}/upload`], ['POST', '/_matrix/media/r0/upload'],
      ['POST', '/_matrix/media/v1/create'], ['PUT', `${V3}/upload/localhost/${id}`],
      ['GET', `${V1}/download/localhost/${id}`], ['GET', `${V3}/download/localhost/${id}`], ['GET', `/_matrix/media/r0/download/localhost/${id}/x.png`],
      ['GET', `${V1}/thumbnail/localhost/${id}?width=32&height=32`], ['GET', `${V3}/thumbnail/localhost/${id}?width=32&height=32`],
      ['DELETE', `/_synapse/admin/v1/media/localhost/${id}`], ['DELETE', `/_synapse/admin/v1/users/${enc(alice.userId)}/media`],
    ];
    for (const [method, path] of paths) {
      const r = await raw(srv.url, method, path, /\/upload/.test(path) ? { body: png, contentType: 'image/png' } : {});
      assertMatrixError(r, 401, 'M_MISSING_TOKEN');
      const bad = await raw(srv.url, method, path, { token: 'not-a-token' });
      assertMatrixError(bad, 401, 'M_UNKNOWN_TOKEN');
    }
    // The bytes are still there, unchanged: none of those requests touched them.
    assert.deepEqual((await download(alice, id)).bytes, png);
  });

  it('uploads a PNG and serves it back byte for byte on v1, v3 and r0, with safe headers', async function () {
    const id = await upload(alice, png, 'image/png', '?filename=cat.png');
    for (const prefix of [V1, V3, '/_matrix/media/r0']) {
      const r = await download(bob, id, '', prefix);
      assert.equal(r.status, 200);
      assert.deepEqual(r.bytes, png);
      assert.equal(r.headers.get('content-type'), 'image/png');
      assert.equal(r.headers.get('content-length'), String(png.length));
      assert.equal(r.headers.get('content-security-policy'), MEDIA_CSP);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(r.headers.get('cross-origin-resource-policy'), 'cross-origin');
      assert.equal(r.headers.get('content-disposition'), 'inline; filename="cat.png"');
    }
    // A name in the path wins; a non-ASCII one is sent RFC 5987-encoded.
    const named = await download(bob, id, '/other.png');
    assert.equal(named.headers.get('content-disposition'), 'inline; filename="other.png"');
    const unicode = await download(bob, id, `/${enc('küçük "kedi".png')}`);
    assert.equal(unicode.headers.get('content-disposition'), "inline; filename*=utf-8''k%C3%BC%C3%A7%C3%BCk%20%22kedi%22.png");
    // HEAD: the headers without the bytes.
    const head = await fetch(`${srv.url}${V1}/download/localhost/${id}`, { method: 'HEAD', headers: { authorization: `Bearer ${bob.token}` } });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(png.length));
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    // The metadata is in the store.
    const rec = await srv.hearth.store.media.getMedia(id);
    assert.equal(rec?.userId, alice.userId);
    assert.equal(rec?.size, png.length);
    assert.equal(rec?.contentType, 'image/png');
    assert.equal(rec?.uploadName, 'cat.png');
  });

  it('serves active and unknown types as attachments, never inline', async function () {
    const cases: [string | undefined, string][] = [
      ['text/html', '<script>alert(1)</script>'],
      ['image/svg+xml', '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'],
      ['application/javascript', 'alert(1)'],
      [undefined, 'no type at all'],
    ];
    for (const [type, body] of cases) {
      // fetch adds text/plain to a string body; a Buffer body goes without a type.
      const id = await upload(alice, Buffer.from(body), type, '?filename=evil.html');
      const r = await download(bob, id);
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), type ?? 'application/octet-stream');
      assert.equal(r.headers.get('content-disposition'), 'attachment; filename="evil.html"', String(type));
      assert.equal(r.headers.get('content-security-policy'), MEDIA_CSP);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    }
    const text = await upload(alice, Buffer.from('plain words'), 'text/plain; charset=utf-8');
    assert.equal((await download(bob, text)).headers.get('content-disposition'), 'inline');
  });

  it('thumbnails: scale keeps the aspect ratio, crop takes the centre, neither upscales', async function () {
    const id = await upload(alice, png, 'image/png');
    const cases: [string, number, number][] = [
      ['width=320&height=240&method=scale', 320, 240],
      ['width=100&height=100&method=scale', 100, 75],
      ['width=100&height=100', 100, 75], // scale is the default
      ['width=96&height=96&method=crop', 96, 96],
      ['width=32&height=64&method=crop', 32, 64],
      ['width=1000&height=1000&method=scale', 640, 480], // never larger than the original
      ['width=1000&height=500&method=crop', 640, 320], // the largest 2:1 box of the original
      ['width=99999&height=99999&method=crop', 480, 480],
    ];
    for (const [q, w, h] of cases) {
      const r = await thumb(id, q);
      assert.equal(r.status, 200, `${q}: ${JSON.stringify(r.json)}`);
      assert.equal(r.headers.get('content-type'), 'image/png');
      assert.equal(r.headers.get('content-disposition'), 'inline; filename="thumbnail.png"');
      assert.equal(r.headers.get('content-security-policy'), MEDIA_CSP);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
      const d = await dimensions(r.bytes);
      assert.deepEqual([d.format, d.width, d.height], ['png', w, h], q);
    }
    // The crop is from the centre: red on the left, blue on the right.
    const crop = await thumb(id, 'width=96&height=96&method=crop');
    const { data, info } = await sharp(crop.bytes).raw().toBuffer({ resolveWithObject: true });
    const px = (x: number, y: number) => [...data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3)];
    assert.deepEqual(px(5, 48), [255, 0, 0]);
    assert.deepEqual(px(90, 48), [0, 0, 255]);
    // Kept: the same bytes again, from the cache the store knows about.
    assert.deepEqual((await thumb(id, 'width=96&height=96&method=crop')).bytes, crop.bytes);
    const kept = await srv.hearth.store.media.listThumbnails(id);
    assert.ok(kept.some((t) => t.reqWidth === 96 && t.reqHeight === 96 && t.method === 'crop' && t.width === 96 && t.height === 96));
    // Legacy path too.
    const legacy = await raw(srv.url, 'GET', `${V3}/thumbnail/localhost/${id}?width=32&height=32&method=crop`, { token: bob.token });
    assert.deepEqual((await dimensions(legacy.bytes)).width, 32);
  });

  it('thumbnails: JPEG stays JPEG; animated only when asked for, as WebP', async function () {
    const jpg = await upload(alice, await solidJpeg(300, 200), 'image/jpeg');
    const t = await thumb(jpg, 'width=150&height=150&method=scale');
    assert.equal(t.headers.get('content-type'), 'image/jpeg');
    assert.deepEqual(await dimensions(t.bytes), { width: 150, height: 100, format: 'jpeg', pages: 1 });

    const gif = await upload(alice, await animatedGif(64, 48, 3), 'image/gif');
    const still = await thumb(gif, 'width=32&height=32&method=scale');
    assert.equal(still.headers.get('content-type'), 'image/png');
    assert.deepEqual(await dimensions(still.bytes), { width: 32, height: 24, format: 'png', pages: 1 });
    const notAnimated = await thumb(gif, 'width=32&height=32&method=scale&animated=false');
    assert.equal(notAnimated.headers.get('content-type'), 'image/png');
    const moving = await thumb(gif, 'width=32&height=32&method=scale&animated=true');
    assert.equal(moving.headers.get('content-type'), 'image/webp');
    assert.equal(moving.headers.get('content-disposition'), 'inline; filename="thumbnail.webp"');
    assert.deepEqual(await dimensions(moving.bytes), { width: 32, height: 24, format: 'webp', pages: 3 });
    // animated=true on a JPEG: as if false.
    assert.equal((await thumb(jpg, 'width=32&height=32&animated=true')).headers.get('content-type'), 'image/jpeg');
  });

  it('thumbnails: bad parameters and unthumbnailable content are Matrix errors', async function () {
    const id = await upload(alice, png, 'image/png');
    assertMatrixError(await thumb(id, 'height=32'), 400, 'M_MISSING_PARAM');
    assertMatrixError(await thumb(id, 'width=32'), 400, 'M_MISSING_PARAM');
    assertMatrixError(await thumb(id, 'width=abc&height=32'), 400, 'M_INVALID_PARAM');
    assertMatrixError(await thumb(id, 'width=0&height=32'), 400, 'M_INVALID_PARAM');
    assertMatrixError(await thumb(id, 'width=-5&height=32'), 400, 'M_INVALID_PARAM');
    assertMatrixError(await thumb(id, 'width=32&height=32&method=stretch'), 400, 'M_INVALID_PARAM');
    assertMatrixError(await thumb(id, 'width=32&height=32&animated=maybe'), 400, 'M_INVALID_PARAM');
    const text = await upload(alice, Buffer.from('not an image'), 'text/plain');
    assertMatrixError(await thumb(text, 'width=32&height=32'), 400, 'M_UNKNOWN');
    const liar = await upload(alice, Buffer.from('this is not a PNG at all'), 'image/png');
    assertMatrixError(await thumb(liar, 'width=32&height=32'), 400, 'M_UNKNOWN');
    assertMatrixError(await thumb('nosuchmedia', 'width=32&height=32'), 404, 'M_NOT_FOUND');
  });

  it('downloads of unknown, remote or malformed media IDs are 404 M_NOT_FOUND', async function () {
    assertMatrixError(await download(alice, 'doesnotexist'), 404, 'M_NOT_FOUND');
    assertMatrixError(await raw(srv.url, 'GET', `${V1}/download/other.example/abc`, { token: alice.token }), 404, 'M_NOT_FOUND');
    assertMatrixError(await download(alice, enc('../../etc/passwd')), 404, 'M_NOT_FOUND');
    assertMatrixError(await download(alice, enc('a.b')), 404, 'M_NOT_FOUND');
    assertMatrixError(await download(alice, 'abc', '?timeout_ms=-1'), 400, 'M_INVALID_PARAM');
  });

  it('hostile query keys (__proto__, constructor) are plain data', async function () {
    const id = await upload(alice, png, 'image/png', '?__proto__=x&constructor=y&filename=p.png&__proto__%5Bpolluted%5D=1');
    assert.equal((await srv.hearth.store.media.getMedia(id))?.uploadName, 'p.png');
    const r = await download(alice, id, '?__proto__=1&constructor=2&hasOwnProperty=3&timeout_ms=0');
    assert.equal(r.status, 200);
    const t = await thumb(id, '__proto__=1&width=32&height=32&constructor=crop&toString=1');
    assert.equal(t.status, 200);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    // A filename or type the server will not echo into a header is refused before any byte is kept.
    const before = filesUnder(join(srv.dataDir, 'media')).length;
    assertMatrixError(await raw(srv.url, 'POST', `${V3}/upload?filename=${enc('a\r\nSet-Cookie: x=1')}`, { token: alice.token, body: png, contentType: 'image/png' }), 400, 'M_INVALID_PARAM');
    assert.equal(filesUnder(join(srv.dataDir, 'media')).length, before);
  });

  it('refuses an upload over media.max_upload_bytes with 413 M_TOO_LARGE, leaving nothing behind', async function () {
    const before = filesUnder(join(srv.dataDir, 'media')).length;
    const big = Buffer.alloc(200_001, 7);
    assertMatrixError(await raw(srv.url, 'POST', `${V3}/upload`, { token: alice.token, body: big, contentType: 'application/octet-stream' }), 413, 'M_TOO_LARGE');
    // Without a Content-Length (chunked): cut off while streaming.
    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(50_000));
        c.close();
      },
    });
    const res = await fetch(`${srv.url}${V1}/upload`, { method: 'POST', headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/octet-stream' }, body: chunked, duplex: 'half' } as RequestInit);
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { errcode: string }).errcode, 'M_TOO_LARGE');
    assert.equal(filesUnder(join(srv.dataDir, 'media')).length, before);
    // Exactly at the limit is fine.
    await upload(alice, Buffer.alloc(200_000, 1), 'application/octet-stream');
  });

  describe('async uploads (POST /create + PUT)', function () {
    it('create, download too early (504 M_NOT_YET_UPLOADED), upload, then no overwrite', async function () {
      const before = Date.now();
      const c = await raw(srv.url, 'POST', '/_matrix/media/v1/create', { token: alice.token });
      assert.equal(c.status, 200);
      const id = mediaIdOf(c.json.content_uri);
      assert.ok(c.json.unused_expires_at >= before + 86_400_000 && c.json.unused_expires_at <= Date.now() + 86_400_000);
      assertMatrixError(await download(bob, id, '?timeout_ms=0'), 504, 'M_NOT_YET_UPLOADED');
      assertMatrixError(await thumb(id, 'width=32&height=32&timeout_ms=0', bob), 504, 'M_NOT_YET_UPLOADED');
      // Not another user's to fill.
      assertMatrixError(await raw(srv.url, 'PUT', `${V3}/upload/localhost/${id}`, { token: bob.token, body: png, contentType: 'image/png' }), 403, 'M_FORBIDDEN');
      // A download waiting with timeout_ms gets the bytes once they arrive.
      const waiting = download(bob, id, '?timeout_ms=10000');
      await new Promise((r) => setTimeout(r, 200));
      const put = await raw(srv.url, 'PUT', `${V3}/upload/localhost/${id}?filename=later.png`, { token: alice.token, body: png, contentType: 'image/png' });
      assert.equal(put.status, 200);
      assert.deepEqual(put.json, {});
      const got = await waiting;
      assert.equal(got.status, 200);
      assert.deepEqual(got.bytes, png);
      assert.equal(got.headers.get('content-disposition'), 'inline; filename="later.png"');
      assertMatrixError(await raw(srv.url, 'PUT', `${V3}/upload/localhost/${id}`, { token: alice.token, body: png, contentType: 'image/png' }), 409, 'M_CANNOT_OVERWRITE_MEDIA');
      assert.deepEqual((await download(bob, id)).bytes, png);
    });

    it('two concurrent PUTs to one ID: one wins, the other is 409, and the winner\'s bytes are served', async function () {
      const id = mediaIdOf((await raw(srv.url, 'POST', '/_matrix/media/v1/create', { token: alice.token })).json.content_uri);
      const one = Buffer.alloc(150_000, 1);
      const two = Buffer.alloc(150_000, 2);
      const [a, b] = await Promise.all([one, two].map((body) => raw(srv.url, 'PUT', `${V3}/upload/localhost/${id}`, { token: alice.token, body, contentType: 'application/octet-stream' })));
      assert.deepEqual([a.status, b.status].sort(), [200, 409]);
      const winner = a.status === 200 ? one : two;
      assert.deepEqual((await download(bob, id)).bytes, winner);
      assert.equal((await srv.hearth.store.media.getMedia(id))?.sha256, (await import('node:crypto')).createHash('sha256').update(winner).digest('hex'));
    });

    it('concurrent requests for one new thumbnail size make it once and agree', async function () {
      const id = await upload(alice, png, 'image/png');
      const all = await Promise.all([1, 2, 3, 4].map(() => thumb(id, 'width=77&height=77&method=crop')));
      for (const r of all) assert.deepEqual(r.bytes, all[0].bytes);
      assert.equal((await srv.hearth.store.media.listThumbnails(id)).length, 1);
    });

    it('unknown IDs, other servers and direct-upload IDs cannot be PUT to', async function () {
      assertMatrixError(await raw(srv.url, 'PUT', `${V3}/upload/localhost/neverCreated`, { token: alice.token, body: png, contentType: 'image/png' }), 404, 'M_NOT_FOUND');
      const c = await raw(srv.url, 'POST', '/_matrix/media/v1/create', { token: alice.token });
      assertMatrixError(await raw(srv.url, 'PUT', `${V3}/upload/elsewhere.example/${mediaIdOf(c.json.content_uri)}`, { token: alice.token, body: png, contentType: 'image/png' }), 404, 'M_NOT_FOUND');
      const direct = await upload(alice, png, 'image/png');
      assertMatrixError(await raw(srv.url, 'PUT', `${V3}/upload/localhost/${direct}`, { token: alice.token, body: png, contentType: 'image/png' }), 409, 'M_CANNOT_OVERWRITE_MEDIA');
    });

    it('limits pending IDs per user (429 M_LIMIT_EXCEEDED)', async function () {
      const carol = await new Api(srv.url).register('carol');
      for (let i = 0; i < 3; i++) assert.equal((await raw(srv.url, 'POST', '/_matrix/media/v1/create', { token: carol.token })).status, 200);
      const over = await raw(srv.url, 'POST', '/_matrix/media/v1/create', { token: carol.token });
      assertMatrixError(over, 429, 'M_LIMIT_EXCEEDED');
      assert.equal(typeof over.json.retry_after_ms, 'number');
    });
  });

  describe('admin deletion', function () {
    let admin: Api;
    before(async function () {
      await srv.hearth.services.accounts.createAccount('root', 'an admin password', true);
      const login = await new Api(srv.url).post('/_matrix/client/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'root' }, password: 'an admin password' });
      admin = new Api(srv.url, login.body.access_token);
    });

    it('deletes one item and its thumbnails; only admins may', async function () {
      const id = await upload(bob, png, 'image/png');
      assert.equal((await thumb(id, 'width=32&height=32&method=crop')).status, 200);
      const filesBefore = filesUnder(join(srv.dataDir, 'media')).length;
      assertMatrixError(await raw(srv.url, 'DELETE', `/_synapse/admin/v1/media/localhost/${id}`, { token: bob.token }), 403, 'M_FORBIDDEN');
      const r = await admin.req('DELETE', `/_synapse/admin/v1/media/localhost/${id}`);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, { deleted_media: [id], total: 1 });
      assertMatrixError(await download(alice, id), 404, 'M_NOT_FOUND');
      assert.equal(await srv.hearth.store.media.getMedia(id), null);
      assert.deepEqual(await srv.hearth.store.media.listThumbnails(id), []);
      assert.equal(filesUnder(join(srv.dataDir, 'media')).length, filesBefore - 2, 'the file and its one thumbnail are gone');
      assert.equal((await admin.req('DELETE', `/_synapse/admin/v1/media/localhost/${id}`)).status, 404);
    });

    it("deletes all of a user's media", async function () {
      const dave = await new Api(srv.url).register('dave');
      const ids = [await upload(dave, png, 'image/png'), await upload(dave, Buffer.from('x'), 'text/plain')];
      const pending = mediaIdOf((await raw(srv.url, 'POST', '/_matrix/media/v1/create', { token: dave.token })).json.content_uri);
      const keep = await upload(alice, Buffer.from('alice keeps this'), 'text/plain');
      assertMatrixError(await raw(srv.url, 'DELETE', `/_synapse/admin/v1/users/${enc(dave.userId)}/media`, { token: dave.token }), 403, 'M_FORBIDDEN');
      const r = await admin.req('DELETE', `/_synapse/admin/v1/users/${enc(dave.userId)}/media`);
      assert.equal(r.status, 200);
      assert.deepEqual([...r.body.deleted_media].sort(), [...ids, pending].sort());
      assert.equal(r.body.total, 3);
      for (const id of ids) assertMatrixError(await download(alice, id), 404, 'M_NOT_FOUND');
      assert.equal((await srv.hearth.store.media.usage(dave.userId)), 0);
      assert.equal((await download(bob, keep)).status, 200);
    });
  });

  it('media routes refuse socket frames (bytes are served over HTTP only)', async function () {
    const id = await upload(alice, png, 'image/png');
    const res = await srv.hearth.routes.dispatch({
      method: 'GET', path: `${V1}/download/localhost/${id}`, query: {}, ip: '127.0.0.1', accessToken: alice.token,
      body: { read: async () => ({}) }, signal: new AbortController().signal,
    });
    assert.equal(res.status, 400);
    assert.equal((res.body as { errcode: string }).errcode, 'M_UNRECOGNIZED');
  });
});

describe('media limits: quota and rate limit', function () {
  this.timeout(30000);
  let srv: TestServer | undefined;
  afterEach(async () => {
    await srv?.stop();
    srv = undefined;
  });

  it('media.max_user_bytes: 403 M_FORBIDDEN past the quota, per user; deleting frees it', async function () {
    srv = await startTestServer({ media: { max_user_bytes: 5000 } });
    const api = new Api(srv.url);
    const alice = await api.register('alice');
    const bob = await api.register('bob');
    const up = (who: User, n: number, viaStream = false) =>
      viaStream
        ? fetch(`${srv!.url}${V3}/upload`, { method: 'POST', headers: { authorization: `Bearer ${who.token}` }, body: new ReadableStream({ start(c) { c.enqueue(new Uint8Array(n)); c.close(); } }), duplex: 'half' } as RequestInit).then(async (r) => ({ status: r.status, json: (await r.json()) as any }))
        : raw(srv!.url, 'POST', `${V3}/upload`, { token: who.token, body: Buffer.alloc(n), contentType: 'application/octet-stream' });
    const first = await up(alice, 3000);
    assert.equal(first.status, 200);
    const over = await up(alice, 2001);
    assert.equal(over.status, 403);
    assert.equal(over.json.errcode, 'M_FORBIDDEN');
    // Without a Content-Length the quota is checked at commit.
    const streamed = await up(alice, 2500, true);
    assert.equal(streamed.status, 403);
    assert.equal(streamed.json.errcode, 'M_FORBIDDEN');
    assert.equal(await srv.hearth.store.media.usage(alice.userId), 3000);
    assert.equal((await up(alice, 2000)).status, 200);
    assert.equal((await up(bob, 5000)).status, 200, "bob's quota is his own");
    await srv.hearth.services.media.deleteUserMedia(alice.userId);
    assert.equal((await up(alice, 5000)).status, 200);
  });

  it('uploads and creates spend from the write rate limit', async function () {
    srv = await startTestServer({ limits: { rate_limits: { enabled: true, write: { per_second: 0.01, burst: 3 }, registration: { per_second: 10, burst: 10 } } } });
    const alice = await new Api(srv.url).register('alice');
    const results: number[] = [];
    for (let i = 0; i < 3; i++) results.push((await raw(srv.url, 'POST', `${V3}/upload`, { token: alice.token, body: Buffer.from('x'), contentType: 'text/plain' })).status);
    const limited = await raw(srv.url, 'POST', '/_matrix/media/v1/create', { token: alice.token });
    assert.deepEqual(results, [200, 200, 200]);
    assertMatrixError(limited, 429, 'M_LIMIT_EXCEEDED');
    assert.ok(limited.headers.get('retry-after'));
  });
});
