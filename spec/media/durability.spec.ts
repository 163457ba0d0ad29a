// Media survives a restart (metadata in SQLite, bytes in the media directory), and an upload
// cut off mid-stream leaves no file and no metadata: the bytes go to a temporary file that is
// renamed into place only once complete, and the metadata is written only after that.

import { connect } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';
import { dimensions, mediaIdOf, raw, twoTonePng } from './helpers.js';

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** Sends an upload's headers and `sent` of `declared` bytes over a raw socket, then drops it. */
function cutOffUpload(url: string, token: string, declared: number | 'chunked', sent: number, started: () => boolean): Promise<void> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(port), hostname, () => {
      const lengthHeader = declared === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${declared}`;
      sock.write(`POST /_matrix/media/v3/upload?filename=half.bin HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\n${lengthHeader}\r\n\r\n`);
      const body = Buffer.alloc(sent, 0x61);
      sock.write(declared === 'chunked' ? Buffer.concat([Buffer.from(`${sent.toString(16)}\r\n`), body, Buffer.from('\r\n')]) : body);
      // Dropped only once the server is streaming into its temporary file (so the test can fail).
      until(started).then(() => {
        sock.destroy();
        resolve();
      }, reject);
    });
    sock.on('error', reject);
  });
}

async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('media durability', function () {
  this.timeout(30000);
  let dir: string;
  let srv: TestServer | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'hearth-media-'));
  });
  afterEach(async () => {
    await srv?.stop();
    srv = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('survives a restart: the bytes, the metadata and the thumbnails', async function () {
    srv = await startTestServer({}, dir);
    const alice = await new Api(srv.url).register('alice');
    const png = await twoTonePng(400, 300);
    const up = await raw(srv.url, 'POST', '/_matrix/media/v3/upload?filename=kept.png', { token: alice.token, body: png, contentType: 'image/png' });
    const id = mediaIdOf(up.json.content_uri);
    const t1 = await raw(srv.url, 'GET', `/_matrix/client/v1/media/thumbnail/localhost/${id}?width=96&height=96&method=crop`, { token: alice.token });
    const pending = mediaIdOf((await raw(srv.url, 'POST', '/_matrix/media/v1/create', { token: alice.token })).json.content_uri);
    await srv.stop();

    srv = await startTestServer({}, dir);
    const login = await new Api(srv.url).post('/_matrix/client/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'alice' }, password: 'correct horse battery' });
    const token = login.body.access_token as string;
    const got = await raw(srv.url, 'GET', `/_matrix/client/v1/media/download/localhost/${id}`, { token });
    assert.equal(got.status, 200);
    assert.deepEqual(got.bytes, png);
    assert.equal(got.headers.get('content-disposition'), 'inline; filename="kept.png"');
    const t2 = await raw(srv.url, 'GET', `/_matrix/client/v1/media/thumbnail/localhost/${id}?width=96&height=96&method=crop`, { token });
    assert.deepEqual(t2.bytes, t1.bytes);
    assert.deepEqual(await dimensions(t2.bytes), { width: 96, height: 96, format: 'png', pages: 1 });
    // A pending ID from before the restart can still be uploaded to.
    const put = await raw(srv.url, 'PUT', `/_matrix/media/v3/upload/localhost/${pending}`, { token, body: Buffer.from('late'), contentType: 'text/plain' });
    assert.equal(put.status, 200);
    assert.equal((await raw(srv.url, 'GET', `/_matrix/client/v1/media/download/localhost/${pending}`, { token })).bytes.toString(), 'late');
  });

  for (const declared of [1_000_000, 'chunked'] as const) {
    it(`an upload cut off mid-stream (${declared === 'chunked' ? 'chunked' : 'with Content-Length'}) leaves no file and no metadata`, async function () {
      srv = await startTestServer({}, dir);
      const alice = await new Api(srv.url).register('alice');
      const mediaDir = join(dir, 'media');
      const before = filesUnder(mediaDir);
      await cutOffUpload(srv.url, alice.token!, declared, 200_000, () => filesUnder(join(mediaDir, 'tmp')).length === 1);
      // The server notices the reset and removes its temporary file.
      await until(() => filesUnder(join(mediaDir, 'tmp')).length === 0);
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(filesUnder(mediaDir), before);
      assert.deepEqual(await srv.hearth.store.media.listUserMedia(alice.userId), []);
      assert.equal(await srv.hearth.store.media.usage(alice.userId), 0);
      // The server is fine afterwards.
      const ok = await raw(srv.url, 'POST', '/_matrix/media/v3/upload', { token: alice.token, body: Buffer.from('whole'), contentType: 'text/plain' });
      assert.equal(ok.status, 200);
      assert.deepEqual(await srv.hearth.store.media.listUserMedia(alice.userId), [mediaIdOf(ok.json.content_uri)]);
    });
  }

  it('a temporary file left by a crash mid-upload is removed at the next start', async function () {
    mkdirSync(join(dir, 'media', 'tmp'), { recursive: true });
    writeFileSync(join(dir, 'media', 'tmp', 'deadbeef.part'), Buffer.alloc(1000));
    srv = await startTestServer({}, dir);
    assert.deepEqual(filesUnder(join(dir, 'media')), []);
  });
});
