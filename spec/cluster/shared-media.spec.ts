// Media across two workers (media.store: cassandra, src/store/cassandra/media-blobs.ts): worker 1
// in this process, worker 2 a child process, one keyspace and Redis prefix, each with its own
// (different, empty) media.path, so nothing can pass through a shared directory. A file uploaded
// through either worker downloads whole through the other, an image thumbnails there (and the
// thumbnail it kept is served by the first), an async upload PUT to worker 2 ends a download
// waiting on worker 1, and an admin deletion on one worker is a 404 on the other.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import type { ChildServer } from '../helpers/child-server.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';
import { dimensions, mediaIdOf, raw, twoTonePng } from '../media/helpers.js';
import { retryBusyCassandra, showChildWarningsOnFailure, startChildWorker } from './room-owner-helpers.js';

const V1 = '/_matrix/client/v1/media';
const V3 = '/_matrix/media/v3';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('cluster: media shared through Cassandra', function () {
  this.timeout(120_000);
  const keyspace = freshKeyspace('sharedmedia');
  const prefix = freshPrefix('sharedmedia');
  const dir = mkdtempSync(join(tmpdir(), 'hearth-shared-media-'));
  let addr = '';
  let w1: TestServer | null = null;
  let w2: ChildServer | null = null;
  let alice: Api & { userId: string };
  let bob: Api & { userId: string };
  let root: Api;
  const worker = (n: string) => ({
    storage: { backend: 'cassandra', cassandra: { contact_points: [addr], keyspace } },
    cluster: { redis: { url: startRedis(), key_prefix: prefix } },
    signing_key_path: join(dir, 'signing.key'),
    media: { store: 'cassandra', chunk_bytes: 65536, path: join(dir, `media-${n}`) },
  });

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    w1 = await retryBusyCassandra('worker 1', () => startTestServer(worker('1') as never));
    w2 = await startChildWorker(worker('2'));
    alice = await new Api(w1.url).register('alice');
    bob = await new Api(w2.url).register('bob');
    const accounts = w1.hearth.services.accounts;
    const rootId = await accounts.createAccount('root', null, true);
    root = new Api(w2.url, (await accounts.login(rootId, undefined, null, null)).access_token);
  });

  showChildWarningsOnFailure(() => w2);

  after(async () => {
    await w2?.dispose();
    await w1?.stop().catch(() => undefined);
    const admin = await cassandraClient(addr);
    await dropKeyspace(admin, keyspace).catch(() => undefined);
    await admin.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  const upload = async (base: string, token: string, body: Buffer, contentType: string) => {
    const r = await raw(base, 'POST', `${V3}/upload?filename=f.bin`, { token, body, contentType });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return mediaIdOf(r.json.content_uri);
  };

  it('a file uploaded through worker 1 downloads whole through worker 2, and back the other way', async () => {
    const body = randomBytes(700_000); // 11 chunks of 64 KiB
    const id = await upload(w1!.url, alice.token!, body, 'application/octet-stream');
    const r = await raw(w2!.url, 'GET', `${V1}/download/localhost/${id}`, { token: bob.token });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-length'), String(body.length));
    assert.equal(sha(r.bytes), sha(body));

    const back = randomBytes(123_457);
    const id2 = await upload(w2!.url, bob.token!, back, 'text/plain');
    const r2 = await raw(w1!.url, 'GET', `${V1}/download/localhost/${id2}`, { token: alice.token });
    assert.equal(r2.status, 200);
    assert.match(r2.headers.get('content-type') ?? '', /^text\/plain/);
    assert.ok(r2.bytes.equals(back));
    // Neither worker wrote a file under its media.path: the bytes are in the keyspace.
    for (const n of ['1', '2']) {
      const path = join(dir, `media-${n}`);
      const files = existsSync(path) ? readdirSync(path, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()) : [];
      assert.deepEqual(files.map((e) => e.name), []);
    }
  });

  it('an image uploaded through worker 1 thumbnails through worker 2, whose kept thumbnail worker 1 serves', async () => {
    const png = await twoTonePng(640, 480);
    const id = await upload(w1!.url, alice.token!, png, 'image/png');
    const t = await raw(w2!.url, 'GET', `${V1}/thumbnail/localhost/${id}?width=64&height=64&method=scale`, { token: bob.token });
    assert.equal(t.status, 200, t.json ? JSON.stringify(t.json) : '');
    assert.deepEqual(await dimensions(t.bytes).then((d) => [d.width, d.height]), [64, 48]);
    const kept = await w1!.hearth.store.media.getThumbnail(id, 64, 64, 'scale', false);
    assert.ok(kept, 'worker 2 kept the thumbnail');
    const again = await raw(w1!.url, 'GET', `${V1}/thumbnail/localhost/${id}?width=64&height=64&method=scale`, { token: alice.token });
    assert.equal(again.status, 200);
    assert.ok(again.bytes.equals(t.bytes), 'worker 1 served the thumbnail worker 2 made');
  });

  it('an async upload PUT through worker 2 ends a download waiting on worker 1', async () => {
    const c = await raw(w1!.url, 'POST', `/_matrix/media/v1/create`, { token: alice.token });
    assert.equal(c.status, 200, JSON.stringify(c.json));
    const id = mediaIdOf(c.json.content_uri);
    const waiting = raw(w1!.url, 'GET', `${V1}/download/localhost/${id}?timeout_ms=20000`, { token: bob.token });
    await new Promise((r) => setTimeout(r, 300));
    const body = randomBytes(200_000);
    const put = await raw(w2!.url, 'PUT', `${V3}/upload/localhost/${id}`, { token: alice.token, body, contentType: 'application/octet-stream' });
    assert.equal(put.status, 200, JSON.stringify(put.json));
    const got = await waiting;
    assert.equal(got.status, 200);
    assert.ok(got.bytes.equals(body));
  });

  it('media deleted by an admin through worker 2 is gone on worker 1', async () => {
    const id = await upload(w1!.url, alice.token!, randomBytes(90_000), 'application/octet-stream');
    assert.equal((await raw(w2!.url, 'GET', `${V1}/download/localhost/${id}`, { token: bob.token })).status, 200);
    const del = await raw(w2!.url, 'DELETE', `/_synapse/admin/v1/media/localhost/${id}`, { token: root.token });
    assert.equal(del.status, 200, JSON.stringify(del.json));
    const gone = await raw(w1!.url, 'GET', `${V1}/download/localhost/${id}`, { token: alice.token });
    assert.equal(gone.status, 404);
    assert.equal(gone.json.errcode, 'M_NOT_FOUND');
    const admin = await cassandraClient(addr);
    try {
      const left = await admin.execute(`SELECT blob_id FROM ${keyspace}.media_blobs WHERE key = ?`, [`content/${id}`], { prepare: true });
      assert.equal(left.rowLength, 0, 'the bytes are gone from the keyspace');
    } finally {
      await admin.shutdown();
    }
  });
});
