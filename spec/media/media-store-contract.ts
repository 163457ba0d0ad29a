// The MediaStore contract (src/media/media-store.ts), run against every backend: the local
// filesystem and Cassandra (spec/media/media-store.spec.ts). `open()` gives two handles on one
// repository, as two processes of a cluster would have (two directories objects on one path,
// two drivers on one keyspace), so what one stores the other must read.

import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { assert } from '../helpers/assert.js';
import { BlobTooLargeError, type MediaStore } from '../../src/media/media-store.js';

export interface MediaStoreHarness {
  /** Two handles on one (fresh or emptied) repository, opened. */
  open(): Promise<[MediaStore, MediaStore]>;
  close(): Promise<void>;
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** `bytes` cut into pieces of uneven sizes, so chunk boundaries fall anywhere. */
export function* pieces(bytes: Buffer, sizes = [1, 4093, 70_000, 17, 131_072]): Iterable<Uint8Array> {
  let off = 0;
  for (let i = 0; off < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield bytes.subarray(off, off + n);
    off += n;
  }
}

async function* failingAfter(bytes: Buffer, n: number): AsyncIterable<Uint8Array> {
  yield bytes.subarray(0, n);
  throw new Error('client went away');
}

export function mediaStoreContract(h: MediaStoreHarness): void {
  let a: MediaStore;
  let b: MediaStore;
  beforeEach(async () => {
    [a, b] = await h.open();
  });
  afterEach(() => h.close());

  it('stores a body of many chunks and gives it back whole, with its size and hash, to the other handle', async () => {
    const body = randomBytes(700_000);
    const stored = await a.put('content/AbCdEf123', pieces(body), 1_000_000);
    assert.deepEqual(stored, { size: body.length, sha256: sha(body) });
    for (const h of [a, b]) {
      const got = await h.get('content/AbCdEf123');
      assert.ok(got);
      assert.equal(got.size, body.length);
      assert.ok((await readAll(got.stream)).equals(body));
    }
  });

  it('stores an empty body and a body of exactly one chunk', async () => {
    assert.deepEqual(await a.put('content/empty1', [], 10), { size: 0, sha256: sha(Buffer.alloc(0)) });
    const empty = await b.get('content/empty1');
    assert.ok(empty);
    assert.equal(empty.size, 0);
    assert.equal((await readAll(empty.stream)).length, 0);
    const one = randomBytes(65536);
    await a.put('thumbnails/one1/32x32-crop', [one], one.length);
    assert.ok((await readAll((await b.get('thumbnails/one1/32x32-crop'))!.stream)).equals(one));
  });

  it('answers null for a key that holds nothing', async () => {
    assert.equal(await a.get('content/nothing-here'), null);
  });

  it('refuses a body past the limit with BlobTooLargeError and leaves nothing under the key', async () => {
    const body = randomBytes(300_000);
    await assert.rejects(a.put('content/toolong1', pieces(body), 299_999), (err: unknown) => err instanceof BlobTooLargeError && err.limit === 299_999);
    assert.equal(await b.get('content/toolong1'), null);
    // The key is still free for a body that fits.
    await a.put('content/toolong1', [body.subarray(0, 10)], 100);
    assert.ok((await readAll((await b.get('content/toolong1'))!.stream)).equals(body.subarray(0, 10)));
  });

  it('leaves nothing when the source breaks off mid-body', async () => {
    await assert.rejects(a.put('content/broken1', failingAfter(randomBytes(200_000), 200_000), 1_000_000), /client went away/);
    assert.equal(await b.get('content/broken1'), null);
  });

  it('writes a key once: a second put keeps the first bytes and reports their size and hash', async () => {
    const first = randomBytes(90_000);
    const second = randomBytes(120_000);
    await a.put('content/once1', [first], 1_000_000);
    assert.deepEqual(await b.put('content/once1', pieces(second), 1_000_000), { size: first.length, sha256: sha(first) });
    assert.ok((await readAll((await a.get('content/once1'))!.stream)).equals(first));
  });

  it('two handles putting one key at once agree with each other and with what is read', async () => {
    const x = randomBytes(150_000);
    const y = randomBytes(160_000);
    const [sx, sy] = await Promise.all([a.put('content/race1', pieces(x), 1_000_000), b.put('content/race1', pieces(y), 1_000_000)]);
    assert.deepEqual(sx, sy);
    const got = await readAll((await a.get('content/race1'))!.stream);
    assert.deepEqual({ size: got.length, sha256: sha(got) }, sx);
    assert.ok(got.equals(x) || got.equals(y));
  });

  it('deletes: gone for both handles, a missing key is no error, and the key can be written again', async () => {
    await a.put('thumbnails/del1/96x96-scale', [randomBytes(1000)], 10_000);
    await b.delete('thumbnails/del1/96x96-scale');
    assert.equal(await a.get('thumbnails/del1/96x96-scale'), null);
    await a.delete('thumbnails/del1/96x96-scale');
    await a.delete('content/never-there');
    const again = randomBytes(500);
    await a.put('thumbnails/del1/96x96-scale', [again], 10_000);
    assert.ok((await readAll((await b.get('thumbnails/del1/96x96-scale'))!.stream)).equals(again));
  });

  it('refuses keys outside [A-Za-z0-9._/-] and any . or .. segment', async () => {
    for (const key of ['../etc/passwd', 'content/../x', 'content/a b', 'content/./x', '/abs', '']) {
      await assert.rejects(a.put(key, [Buffer.from('x')], 10), /invalid media key/);
      await assert.rejects(a.get(key), /invalid media key/);
    }
  });
}
