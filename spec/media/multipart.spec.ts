// The multipart/mixed reader and writer of the federation media endpoints (src/media/multipart.ts)
// and the Content-Disposition file name a remote's answer gives (src/federation/media-fetch.ts):
// bytes survive any chunking (a delimiter split across chunks, lookalike delimiters inside the
// bytes), and a body cut off before its closing delimiter fails instead of passing as complete.

import { randomBytes } from 'node:crypto';
import { assert } from '../helpers/assert.js';
import { MultipartError, multipartBoundary, multipartMediaParts, readMultipartMedia } from '../../src/media/multipart.js';
import { dispositionFilename } from '../../src/federation/media-fetch.js';

async function* chunked(buf: Buffer, sizes: () => number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; ) {
    const n = Math.max(1, sizes());
    yield buf.subarray(i, i + n);
    i += n;
  }
}

async function readAll(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of body) out.push(c);
  return Buffer.concat(out);
}

describe('federation media multipart', function () {
  it('round-trips the bytes under any chunking, lookalike delimiters included', async function () {
    const parts = multipartMediaParts('image/png', 'inline; filename="a.png"');
    const boundary = multipartBoundary(parts.contentType)!;
    assert.ok(boundary);
    // Starts of the delimiter inside the content must not end it.
    const bytes = Buffer.concat([randomBytes(5000), Buffer.from(`\r\n--${boundary.slice(0, 10)}`), randomBytes(3000), Buffer.from('\r\n--'), randomBytes(10)]);
    const whole = Buffer.concat([parts.head, bytes, parts.tail]);
    for (const sizes of [() => 1, () => 7, () => 1 + Math.floor(Math.random() * 100), () => whole.length]) {
      const got = await readMultipartMedia(chunked(whole, sizes), boundary);
      assert.deepEqual(JSON.parse(got.metadata.toString()), {});
      assert.equal(got.headers['content-type'], 'image/png');
      assert.equal(got.headers['content-disposition'], 'inline; filename="a.png"');
      assert.deepEqual(await readAll(got.body), bytes);
    }
  });

  it('reads a redirect part (Location, no bytes), a preamble and a quoted boundary', async function () {
    const body = Buffer.from('preamble\r\n--xyz\r\nContent-Type: application/json\r\n\r\n{"a":1}\r\n--xyz\r\nLocation: https://cdn.example/f\r\n\r\n\r\n--xyz--\r\n');
    const boundary = multipartBoundary('multipart/mixed; boundary="xyz"')!;
    assert.equal(boundary, 'xyz');
    const got = await readMultipartMedia(chunked(body, () => 3), boundary);
    assert.equal(got.metadata.toString(), '{"a":1}');
    assert.equal(got.headers['location'], 'https://cdn.example/f');
    assert.deepEqual(await readAll(got.body), Buffer.alloc(0));
  });

  it('fails a body cut off before its closing delimiter, or with the metadata part only', async function () {
    const parts = multipartMediaParts('text/plain', 'inline');
    const boundary = multipartBoundary(parts.contentType)!;
    const cut = Buffer.concat([parts.head, Buffer.from('half of it')]);
    const got = await readMultipartMedia(chunked(cut, () => 5), boundary);
    await assert.rejects(readAll(got.body), MultipartError);
    const one = Buffer.from(`--${boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${boundary}--\r\n`);
    await assert.rejects(readMultipartMedia(chunked(one, () => 4), boundary), MultipartError);
    await assert.rejects(readMultipartMedia(chunked(Buffer.from('no delimiter at all'), () => 4), boundary), MultipartError);
  });

  it('knows multipart/mixed from other types', function () {
    assert.equal(multipartBoundary('multipart/mixed; boundary=abc'), 'abc');
    assert.equal(multipartBoundary('Multipart/Mixed;boundary=abc; charset=x'), 'abc');
    assert.equal(multipartBoundary('multipart/form-data; boundary=abc'), null);
    assert.equal(multipartBoundary('image/png'), null);
    assert.equal(multipartBoundary('multipart/mixed'), null);
    assert.equal(multipartBoundary(undefined), null);
  });

  it('takes the file name from Content-Disposition, filename* first', function () {
    assert.equal(dispositionFilename('inline; filename="cat.png"'), 'cat.png');
    assert.equal(dispositionFilename('attachment; filename=plain.txt'), 'plain.txt');
    assert.equal(dispositionFilename(`inline; filename="x.png"; filename*=utf-8''k%C3%BC%C3%A7.png`), 'küç.png');
    assert.equal(dispositionFilename('inline; filename="a\\"b"'), 'a"b');
    assert.equal(dispositionFilename('inline'), null);
    assert.equal(dispositionFilename(undefined), null);
  });
});
