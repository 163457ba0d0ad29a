// The MediaStore contract (media-store-contract.ts) on both backends: files under a directory,
// and chunks in a real Cassandra keyspace (scripts/cassandra.sh). Cassandra-only checks below:
// nothing is left of a failed put, a delete drops the chunks, and a blob deleted while it is
// read ends its stream with an error instead of short data.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import cassandra from 'cassandra-driver';
import { assert } from '../helpers/assert.js';
import { until } from '../helpers/until.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { LocalMediaStore } from '../../src/media/local-store.js';
import { openCassandraStore, type CassandraStore } from '../../src/store/cassandra/index.js';
import { CassandraMediaBlobs } from '../../src/store/cassandra/media-blobs.js';
import { mediaStoreContract, pieces, readAll } from './media-store-contract.js';

describe('MediaStore contract: local directory', function () {
  let dir = '';
  mediaStoreContract({
    async open() {
      dir = mkdtempSync(join(tmpdir(), 'hearth-blobs-'));
      const a = new LocalMediaStore(dir);
      const b = new LocalMediaStore(dir);
      await a.open();
      await b.open();
      return [a, b];
    },
    async close() {
      rmSync(dir, { recursive: true, force: true });
    },
  });
});

describe('MediaStore contract: Cassandra chunks', function () {
  this.timeout(120_000);
  const keyspace = freshKeyspace('blobs');
  let addr = '';
  let admin: cassandra.Client | undefined;
  let stores: CassandraStore[] = [];
  let migrated = false;
  const handles: Array<ReturnType<CassandraStore['mediaBlobs']>> = [];
  const openStore = async () => {
    const s = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace, skipMigrations: migrated });
    migrated = true;
    stores.push(s);
    return s;
  };
  const chunkRows = async () => (await admin!.execute(`SELECT blob_id FROM ${keyspace}.media_chunks`)).rowLength;

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    admin = await cassandraClient(addr);
  });
  after(async () => {
    if (admin) {
      await dropKeyspace(admin, keyspace).catch(() => undefined);
      await admin.shutdown();
    }
  });

  const harness = {
    async open(): Promise<[ReturnType<CassandraStore['mediaBlobs']>, ReturnType<CassandraStore['mediaBlobs']>]> {
      const one = await openStore();
      const two = await openStore();
      for (const t of ['media_blobs', 'media_chunks', 'media_uploads']) await admin!.execute(`TRUNCATE ${keyspace}.${t}`, [], { readTimeout: 120_000 });
      // The smallest chunk the config allows, so the contract's bodies span many chunks and pages.
      const a = one.mediaBlobs(65536);
      const b = two.mediaBlobs(65536);
      handles.push(a, b);
      await a.open();
      await b.open();
      return [a, b];
    },
    async close() {
      for (const b of handles.splice(0)) b.close();
      for (const s of stores) await s.close();
      stores = [];
    },
  };
  mediaStoreContract(harness);

  describe('chunks', function () {
    let a: ReturnType<CassandraStore['mediaBlobs']>;
    const deadPut = async (hour: number, blobId: string, key: string) => {
      await admin!.execute(`INSERT INTO ${keyspace}.media_uploads (hour, blob_id, key) VALUES (?, ?, ?)`, [hour, blobId, key], { prepare: true });
      for (let i = 0; i < 3; i++) await admin!.execute(`INSERT INTO ${keyspace}.media_chunks (blob_id, idx, data) VALUES (?, ?, ?)`, [blobId, i, randomBytes(1000)], { prepare: true });
    };
    beforeEach(async () => {
      [a] = await harness.open();
    });
    afterEach(() => harness.close());

    it('a refused or broken-off put and a losing racer leave no chunk rows; a delete drops the chunks', async () => {
      await assert.rejects(a.put('content/big1', pieces(randomBytes(400_000)), 200_000));
      assert.equal(await chunkRows(), 0);
      await a.put('content/kept1', [randomBytes(200_000)], 1_000_000); // 4 chunks of 64 KiB
      assert.equal(await chunkRows(), 4);
      await a.put('content/kept1', [randomBytes(200_000)], 1_000_000); // loses: its chunks go
      assert.equal(await chunkRows(), 4);
      await a.delete('content/kept1');
      assert.equal(await chunkRows(), 0);
    });

    it('a blob deleted while it is streamed ends the stream with an error, never short data', async () => {
      await a.put('content/gone1', [randomBytes(5 * 1024 * 1024)], 10 * 1024 * 1024);
      const got = await a.get('content/gone1');
      assert.ok(got);
      const it = got.stream[Symbol.asyncIterator]();
      await it.next(); // the first page (1 MiB) is read
      await a.delete('content/gone1');
      await assert.rejects(
        (async () => {
          for (;;) if ((await it.next()).done) break;
        })(),
        /bytes found|missing/,
      );
    });

    it('the sweep drops the chunks of a put that died before committing, and nothing else', async () => {
      const hour = Math.floor(Date.now() / 3_600_000);
      // What a process killed mid-put leaves: its note and some chunks, no key. Two hours ago:
      // too recent for the sweep the handle started at open (it looks at hours a day old).
      await deadPut(hour - 2, 'deadbeef', 'content/dead1');
      const kept = randomBytes(150_000);
      await a.put('content/kept2', [kept], 1_000_000); // noted in this hour, committed
      assert.equal(await chunkRows(), 3 + 3);
      const blobs = a;
      await blobs.sweep([hour - 2, hour]);
      assert.equal(blobs.swept, 1);
      assert.equal(await chunkRows(), 3, "only the committed put's chunks are left");
      assert.ok((await readAll((await a.get('content/kept2'))!.stream)).equals(kept));
      assert.equal(await a.get('content/dead1'), null);
    });

    it('open() sweeps the hours more than a day old in the background', async () => {
      const hour = Math.floor(Date.now() / 3_600_000);
      await deadPut(hour - 30, 'feedface', 'content/dead2');
      await deadPut(hour - 3, 'cafebabe', 'content/dead3'); // too recent: a put may still be running
      const fresh = stores[0]!.mediaBlobs(65536);
      handles.push(fresh);
      await fresh.open();
      await until('the sweep', async () => (await admin!.execute(`SELECT idx FROM ${keyspace}.media_chunks WHERE blob_id = 'feedface'`)).rowLength === 0, 20_000);
      assert.equal((await admin!.execute(`SELECT idx FROM ${keyspace}.media_chunks WHERE blob_id = 'cafebabe'`)).rowLength, 3);
    });

    it('a commit that fails with an unknown outcome: a success with its chunks kept when it went through, a failure without chunks when not', async () => {
      const client = await cassandraClient(addr, keyspace);
      try {
        // The commit LWT applied but its answer lost (a write timeout), or not applied at all.
        let mode: 'applied' | 'lost' = 'applied';
        const ctx = {
          execute: async (q: string, p: unknown[] = [], o: cassandra.QueryOptions = {}) => {
            if (q.startsWith('INSERT INTO media_blobs')) {
              if (mode === 'applied') await client.execute(q, p, { prepare: true, serialConsistency: cassandra.types.consistencies.localSerial, ...o });
              throw new Error('Operation timed out (injected)');
            }
            return client.execute(q, p, { prepare: true, ...o });
          },
        };
        const blobs = new CassandraMediaBlobs(ctx, 65536);
        const body = randomBytes(200_000);
        // It went through: the put succeeds after all, and what it reports is what is stored.
        assert.equal((await blobs.put('content/timeout1', [body], 1_000_000)).size, body.length);
        const got = await a.get('content/timeout1');
        assert.ok(got, 'the key was committed');
        assert.ok((await readAll(got.stream)).equals(body), 'its chunks are all there');
        mode = 'lost';
        await assert.rejects(blobs.put('content/timeout2', [randomBytes(200_000)], 1_000_000), /injected/);
        assert.equal(await a.get('content/timeout2'), null);
        assert.equal(await chunkRows(), 4, 'only the committed blob has chunks');
      } finally {
        await client.shutdown();
      }
    });

    it('a reader gets the bytes back in order over many pages', async () => {
      const body = randomBytes(3 * 1024 * 1024 + 12345);
      await a.put('content/pages1', pieces(body), body.length);
      assert.ok((await readAll((await a.get('content/pages1'))!.stream)).equals(body));
    });
  });
});
