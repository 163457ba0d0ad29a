// Remote media eviction racing re-fetches across two instances (src/media/remote-eviction.ts):
// two media services, each on its own Cassandra store connection and chunk store over one
// keyspace (as two workers of a cluster), fetching one remote item from a fake origin. Instance
// A evicts the item again and again while both download it (which re-fetches it whenever its
// record is gone). Checked: every download that completes has exactly the origin's bytes; with
// the real grace no download fails at all; and even with the grace skipped (bytes deleted the
// moment their record is) no record is ever left naming missing bytes, and after the last sweep
// the only remote bytes kept are the current record's.

import { randomBytes } from 'node:crypto';
import type cassandra from 'cassandra-driver';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { MediaService, remoteKey, type RemoteDownload, type RemoteMedia } from '../../src/media/media-service.js';
import { GRACE_MS } from '../../src/media/remote-eviction.js';
import { openCassandraStore, type CassandraStore } from '../../src/store/cassandra/index.js';
import { remoteMediaConfig, warnLogger } from './media-helpers.js';

const ORIGIN = 'origin.example';
const ID = 'racedItem';

/** An origin serving one body in 16 KiB pieces, yielding between them so the instances interleave. */
class SlowOrigin implements RemoteMedia {
  fetches = 0;
  constructor(private readonly body: Buffer) {}
  async fetch(_origin: string, _id: string): Promise<RemoteDownload> {
    this.fetches++;
    const body = this.body;
    return {
      contentType: 'application/octet-stream',
      filename: null,
      length: body.length,
      body: (async function* () {
        for (let i = 0; i < body.length; i += 16_384) {
          await new Promise((r) => setImmediate(r));
          yield body.subarray(i, i + 16_384);
        }
      })(),
      cancel: () => undefined,
    };
  }
}

describe('remote media eviction racing re-fetches on two instances (Cassandra)', function () {
  this.timeout(300_000);
  const keyspace = freshKeyspace('remoteevict');
  const body = randomBytes(300_000); // 5 chunks of 64 KiB
  const origin = new SlowOrigin(body);
  const warnings: string[] = [];
  const logger = warnLogger(warnings);
  let admin: cassandra.Client;
  const stores: CassandraStore[] = [];
  let a: MediaService;
  let b: MediaService;

  const blobs: Array<ReturnType<CassandraStore['mediaBlobs']>> = [];
  const service = (store: CassandraStore) =>
    new MediaService({
      meta: store.media,
      blobs: blobs[blobs.push(store.mediaBlobs(65536)) - 1]!,
      serverName: 'here.example',
      config: remoteMediaConfig(null),
      logger,
      now: Date.now,
      remote: origin,
    });

  before(async function () {
    this.timeout(600_000);
    const addr = await startCassandra();
    admin = await cassandraClient(addr);
    for (let i = 0; i < 2; i++) stores.push(await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace, skipMigrations: i > 0 }));
    a = service(stores[0]!);
    b = service(stores[1]!);
    await a.start();
    await b.start();
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
    for (const s of stores) await s.close();
    if (admin) {
      await dropKeyspace(admin, keyspace).catch(() => undefined);
      await admin.shutdown();
    }
  });

  /** A whole download through `s`: its bytes, or the error it ended with. */
  const download = async (s: MediaService): Promise<Buffer | Error> => {
    try {
      const got = await s.download(ORIGIN, ID, 0, new AbortController().signal);
      const chunks: Buffer[] = [];
      for await (const c of got.stream) chunks.push(c as Buffer);
      const bytes = Buffer.concat(chunks);
      assert.equal(got.size, bytes.length, 'the announced size is what came');
      return bytes;
    } catch (err) {
      return err as Error;
    }
  };

  /** Remote keys with bytes in the keyspace. */
  const remoteBlobKeys = async () =>
    (await admin.execute(`SELECT key FROM ${keyspace}.media_blobs`)).rows.map((r) => r['key'] as string).filter((k) => k.startsWith('remote/'));

  /** At rest: a record names whole bytes (checked through both instances), or there is none. */
  const assertConsistent = async (what: string) => {
    const rec = await stores[0]!.media.getRemoteMedia(ORIGIN, ID);
    if (!rec) return;
    for (const store of blobs) {
      const blob = await store.get(remoteKey(ORIGIN, ID, rec.generation));
      assert.ok(blob, `${what}: the record's bytes exist`);
      const chunks: Buffer[] = [];
      for await (const c of blob.stream) chunks.push(c as Buffer);
      assert.ok(Buffer.concat(chunks).equals(body), `${what}: the record's bytes are whole`);
    }
  };

  it('with the real grace: every download racing evictions gets the whole body, and the evicted generations go once due', async function () {
    const fetchesBefore = origin.fetches;
    let evicted = 0;
    const results: Array<Buffer | Error> = [];
    for (let round = 0; round < 12; round++) {
      const [ra, rb, n] = await Promise.all([download(a), download(b), a.purgeRemoteMedia(Date.now() + 60_000)]);
      results.push(ra, rb);
      evicted += n;
      await a.sweepRemoteMedia();
      const [rb2] = await Promise.all([download(b), a.purgeRemoteMedia(Date.now() + 60_000).then((k) => (evicted += k))]);
      results.push(rb2);
    }
    const failed = results.filter((r): r is Error => r instanceof Error);
    assert.deepEqual(failed.map((e) => e.message), [], 'no download failed');
    for (const r of results) assert.ok((r as Buffer).equals(body), 'whole bytes');
    assert.ok(evicted >= 10, `evictions happened (${evicted})`);
    assert.ok(origin.fetches - fetchesBefore >= 10, `re-fetched after evictions (${origin.fetches - fetchesBefore})`);
    await assertConsistent('after the rounds');
    // The evicted generations' bytes are still there (their grace has not ended)...
    assert.ok((await remoteBlobKeys()).length > 1);
    // ...until a sweep past the grace.
    await a.sweepRemoteMedia(Date.now() + GRACE_MS + 60_000);
    const rec = await stores[1]!.media.getRemoteMedia(ORIGIN, ID);
    assert.deepEqual(await remoteBlobKeys(), rec ? [remoteKey(ORIGIN, ID, rec.generation)] : []);
    await assertConsistent('after the last sweep');
    assert.deepEqual(warnings, []);
  });

  it('with the grace skipped (bytes deleted with their record): downloads may fail, but never with wrong bytes, and no record is left without its bytes', async function () {
    let failures = 0;
    for (let round = 0; round < 12; round++) {
      const past = Date.now() + GRACE_MS + 60_000;
      const results = await Promise.all([
        download(a),
        download(b),
        (async () => {
          await a.purgeRemoteMedia(Date.now() + 60_000);
          await a.sweepRemoteMedia(past);
          return null;
        })(),
        download(b),
      ]);
      for (const r of results) {
        if (r === null) continue;
        if (r instanceof Error) failures++;
        else assert.ok(r.equals(body), `round ${round}: whole bytes when not failed`);
      }
      await assertConsistent(`round ${round}`);
      // Whatever the race left, a download now works (re-fetching when the record went).
      const after = await download(b);
      assert.ok(!(after instanceof Error) && after.equals(body), `round ${round}: a download after the race: ${after instanceof Error ? after.message : 'ok'}`);
    }
    await a.sweepRemoteMedia(Date.now() + GRACE_MS + 60_000);
    const rec = await stores[0]!.media.getRemoteMedia(ORIGIN, ID);
    assert.deepEqual(await remoteBlobKeys(), rec ? [remoteKey(ORIGIN, ID, rec.generation)] : []);
    // Not asserted: how many failed (it depends on the interleaving); logged for the reader.
    if (failures > 0) console.log(`      (${failures} downloads cut by the skipped grace, as expected)`);
  });

  it('media fetched before eviction existed (no generation, no last access): listed by its fetch time, evicted with its own keys', async function () {
    // A row as migration 0018 wrote it, and its bytes under the key without a generation.
    const id = `legacy${randomBytes(4).toString('hex')}`;
    const key = remoteKey(ORIGIN, id, '');
    assert.equal(key, `remote/${Buffer.from(ORIGIN).toString('base64url')}/${id}`);
    await blobs[0]!.put(key, [body], body.length);
    await admin.execute(
      `INSERT INTO ${keyspace}.remote_media (origin, media_id, content_type, size, sha256, fetched_ts) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
      [ORIGIN, id, 'application/octet-stream', body.length, 'ab'.repeat(32), 5000],
      { prepare: true },
    );
    const rec = await stores[0]!.media.getRemoteMedia(ORIGIN, id);
    assert.deepEqual([rec?.generation, rec?.lastAccessTs], ['', 5000], 'read as generation \'\', last access = fetch');
    // A store that has not listed yet fills the last access from the fetch time first, so the
    // index finds the row.
    const fresh = await openCassandraStore({ contactPoints: [await startCassandra()], localDataCenter: 'datacenter1', keyspace, skipMigrations: true });
    stores.push(fresh);
    const listed = (await fresh.media.listRemoteMediaBefore(6000, 1000)).filter((r) => r.mediaId === id);
    assert.deepEqual(listed.map((r) => [r.generation, r.lastAccessTs]), [['', 5000]]);
    const row = (await admin.execute(`SELECT last_access_ts FROM ${keyspace}.remote_media WHERE origin = ? AND media_id = ?`, [ORIGIN, id], { prepare: true })).first();
    assert.equal(Number(row['last_access_ts']), 5000, 'filled in');
    const got = await b.download(ORIGIN, id, 0, new AbortController().signal);
    const chunks: Buffer[] = [];
    for await (const c of got.stream) chunks.push(c as Buffer);
    assert.ok(Buffer.concat(chunks).equals(body), 'served from its key without a generation');
    // Downloads note the access (in the background, at most once a minute per item).
    const touchedBy = Date.now();
    await Promise.all([1, 2, 3].map(() => b.download(ORIGIN, id, 0, new AbortController().signal).then((d) => d.stream.destroy())));
    for (let i = 0; i < 100 && (await fresh.media.getRemoteMedia(ORIGIN, id))!.lastAccessTs < touchedBy - 1000; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok((await fresh.media.getRemoteMedia(ORIGIN, id))!.lastAccessTs >= touchedBy - 1000, 'last access moved to the download');
    assert.deepEqual((await fresh.media.listRemoteMediaBefore(6000, 1000)).filter((r) => r.mediaId === id), [], 'no longer old');

    const evicter = service(fresh);
    assert.ok((await evicter.purgeRemoteMedia(Date.now() + 60_000)) >= 1, "this one and the raced item");
    assert.equal(await fresh.media.getRemoteMedia(ORIGIN, id), null);
    assert.ok(await blobs[0]!.get(key), 'kept through the grace');
    await evicter.sweepRemoteMedia(Date.now() + GRACE_MS + 60_000);
    assert.equal(await blobs[0]!.get(key), null, 'deleted once due');
  });
});
