// Remote media records on Cassandra (src/store/cassandra/remote-media.ts) when an eviction on
// another worker lands between two statements of one call. The race is placed exactly: the
// store runs on the real keyspace through its own context, and a hook deletes the row (as
// evictRemoteMedia's conditional delete would) right after the statement that read or tested it.
// Checked: no call brings back a row of just its last access (a record without bytes), a
// second eviction of a record from before generations is no eviction, and a fetch whose rival
// record vanished before it could be read is recorded, not handed back unstored.

import type cassandra from 'cassandra-driver';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { openCassandraStore, type CassandraStore } from '../../src/store/cassandra/index.js';
import type { CassandraContext } from '../../src/store/cassandra/context.js';
import { CassandraRemoteMedia } from '../../src/store/cassandra/remote-media.js';
import type { RemoteMediaRecord } from '../../src/store/media-types.js';

const ORIGIN = 'origin.example';

describe('Cassandra remote media: evictions landing between two statements of one call', function () {
  this.timeout(300_000);
  const keyspace = freshKeyspace('remotemediarace');
  let admin: cassandra.Client;
  let store: CassandraStore;
  let ctx: CassandraContext;

  before(async function () {
    this.timeout(600_000);
    const addr = await startCassandra();
    admin = await cassandraClient(addr);
    store = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace });
    ctx = (store.media as unknown as { ctx: CassandraContext }).ctx;
  });

  after(async () => {
    await store?.close();
    if (admin) {
      await dropKeyspace(admin, keyspace).catch(() => undefined);
      await admin.shutdown();
    }
  });

  /** The remote media module on the store's context, deleting `id`'s row after the first statement matching `after`. */
  const racedBy = (after: RegExp, id: string): CassandraRemoteMedia => {
    let fired = false;
    const raced: CassandraContext = Object.create(ctx) as CassandraContext;
    raced.execute = async (query, params, opts) => {
      const rs = await ctx.execute(query, params, opts);
      if (!fired && after.test(query)) {
        fired = true;
        await admin.execute(`DELETE FROM ${keyspace}.remote_media WHERE origin = ? AND media_id = ?`, [ORIGIN, id], { prepare: true });
      }
      return rs;
    };
    return new CassandraRemoteMedia(raced);
  };

  /** A row as before migration 0023: no generation, no last access. */
  const legacyRow = (id: string) =>
    admin.execute(
      `INSERT INTO ${keyspace}.remote_media (origin, media_id, content_type, size, sha256, fetched_ts) VALUES (?, ?, ?, ?, ?, ?)`,
      [ORIGIN, id, 'image/png', 10, 'ab'.repeat(32), 5000],
      { prepare: true },
    );

  const rowOf = async (id: string) =>
    (await admin.execute(`SELECT * FROM ${keyspace}.remote_media WHERE origin = ? AND media_id = ?`, [ORIGIN, id], { prepare: true })).first();

  it('a touch of a row without a last access, evicted between its two updates, writes no row', async function () {
    const id = 'touchRaced';
    await legacyRow(id);
    await racedBy(/IF last_access_ts < \?/, id).touchRemoteMedia(ORIGIN, id, 90_000);
    assert.equal(await rowOf(id), null, 'no partial row (last access only) is brought back');
    assert.equal(await store.media.getRemoteMedia(ORIGIN, id), null);
  });

  it('the backfill of last accesses, racing an eviction of a row it listed, writes no row', async function () {
    const id = 'backfillRaced';
    await legacyRow(id);
    await racedBy(/^SELECT origin, media_id, fetched_ts, last_access_ts FROM remote_media/, id).listRemoteMediaBefore(6000, 100);
    assert.equal(await rowOf(id), null, 'no partial row (last access only) is brought back');
  });

  it('evicting a record from before generations that another worker evicted first evicts nothing and keeps no note', async function () {
    const id = 'evictedTwice';
    await legacyRow(id);
    const due = Date.now() + 60_000;
    assert.equal(await store.media.evictRemoteMedia(ORIGIN, id, '', due), true);
    assert.equal(await store.media.evictRemoteMedia(ORIGIN, id, '', due), false, 'the second attempt finds no record');
    assert.equal(await rowOf(id), null);
    const notes = await admin.execute(`SELECT note FROM ${keyspace}.remote_media_doomed WHERE day = ? AND origin = ? AND media_id = ?`, [Math.floor(due / 86_400_000), ORIGIN, id], {
      prepare: true,
    });
    assert.equal(notes.rowLength, 1, 'one note for one eviction');
  });

  it('a fetch whose rival record is evicted before it is read records its own', async function () {
    const id = 'putRaced';
    const rec = (generation: string): RemoteMediaRecord => ({
      origin: ORIGIN,
      mediaId: id,
      contentType: 'image/png',
      uploadName: null,
      size: 10,
      sha256: 'cd'.repeat(32),
      fetchedTs: 7000,
      generation,
      lastAccessTs: 7000,
    });
    assert.equal((await store.media.putRemoteMedia(rec('rival'))).generation, 'rival');
    const kept = await racedBy(/^INSERT INTO remote_media .* IF NOT EXISTS/, id).putRemoteMedia(rec('ours'));
    assert.equal(kept.generation, 'ours');
    const stored = await store.media.getRemoteMedia(ORIGIN, id);
    assert.equal(stored?.generation, 'ours', 'the record handed back is the one stored');
  });
});
