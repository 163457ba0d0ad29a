// Contract: MediaMetaStore (src/store/media-types.ts).

import { assert } from '../helpers/assert.js';
import type { CompleteUpload, DoomedRemoteMedia, MediaRecord, RemoteMediaRecord, ThumbnailRecord } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';
import { assertConflict, randomId, userId } from './fixtures.js';

export function describeMediaContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');
  const complete = (user: string, size: number, id = randomId()): MediaRecord & CompleteUpload => ({
    mediaId: id,
    userId: user,
    contentType: 'image/png',
    uploadName: 'a.png',
    size,
    sha256: 'ab'.repeat(32),
    createdTs: 1000,
    uploadedTs: 1000,
    unusedExpiresTs: null,
  });
  const upload = (size: number, ts = 5000): CompleteUpload => ({ contentType: 'text/plain', uploadName: null, size, sha256: 'cd'.repeat(32), uploadedTs: ts });
  const thumb = (mediaId: string, w: number, extra: Partial<ThumbnailRecord> = {}): ThumbnailRecord => ({
    mediaId, reqWidth: w, reqHeight: w, method: 'crop', animated: false, width: w, height: w, contentType: 'image/png', size: 10, createdTs: 1, ...extra,
  });

  describe('media metadata', function () {
    it('stores a complete upload and reads it back; a taken ID conflicts', async function () {
      const rec = complete(alice, 300);
      assert.equal(await ctx.store.media.insertMedia(rec, null), 'ok');
      assert.deepEqual(await ctx.store.media.getMedia(rec.mediaId), rec);
      assert.equal(await ctx.store.media.getMedia('nope'), null);
      await assertConflict(ctx.store.media.insertMedia(rec, null));
      assert.equal(await ctx.store.media.usage(alice), 300);
    });

    it('enforces the quota inside the write, also under concurrent inserts', async function () {
      assert.equal(await ctx.store.media.insertMedia(complete(alice, 600), 1000), 'ok');
      const results = await Promise.all([complete(alice, 300), complete(alice, 300), complete(bob, 900)].map((r) => ctx.store.media.insertMedia(r, 1000)));
      assert.deepEqual(results.slice(0, 2).sort(), ['ok', 'quota']);
      assert.equal(results[2], 'ok');
      assert.equal(await ctx.store.media.usage(alice), 900);
      assert.equal(await ctx.store.media.usage(bob), 900);
    });

    it('pending IDs: created, counted, completed once, by their creator only, before expiry', async function () {
      const id = randomId();
      assert.equal(await ctx.store.media.createPending({ mediaId: id, userId: alice, createdTs: 100, unusedExpiresTs: 10_000 }, 2, 100), true);
      const pending = await ctx.store.media.getMedia(id);
      assert.deepEqual(pending, { mediaId: id, userId: alice, contentType: null, uploadName: null, size: null, sha256: null, createdTs: 100, uploadedTs: null, unusedExpiresTs: 10_000 });
      assert.equal(await ctx.store.media.usage(alice), 0);
      assert.equal(await ctx.store.media.createPending({ mediaId: randomId(), userId: alice, createdTs: 100, unusedExpiresTs: 10_000 }, 2, 100), true);
      assert.equal(await ctx.store.media.createPending({ mediaId: randomId(), userId: alice, createdTs: 100, unusedExpiresTs: 10_000 }, 2, 100), false, 'third pending over the limit of 2');
      // Expired ones do not count.
      assert.equal(await ctx.store.media.createPending({ mediaId: randomId(), userId: alice, createdTs: 100, unusedExpiresTs: 20_000 }, 2, 10_000), true);

      assert.equal(await ctx.store.media.completePending('missing', alice, upload(5), null), 'not_found');
      assert.equal(await ctx.store.media.completePending(id, bob, upload(5), null), 'forbidden');
      assert.equal(await ctx.store.media.completePending(id, alice, upload(50), 10), 'quota');
      assert.equal(await ctx.store.media.completePending(id, alice, upload(5), null), 'ok');
      assert.equal(await ctx.store.media.completePending(id, alice, upload(5), null), 'exists');
      const done = await ctx.store.media.getMedia(id);
      assert.equal(done?.size, 5);
      assert.equal(done?.uploadedTs, 5000);
      assert.equal(done?.unusedExpiresTs, null);
      assert.equal(await ctx.store.media.usage(alice), 5);

      const late = randomId();
      await ctx.store.media.createPending({ mediaId: late, userId: alice, createdTs: 100, unusedExpiresTs: 4000 }, 10, 100);
      assert.equal(await ctx.store.media.completePending(late, alice, upload(5, 4000), null), 'expired');
      assert.ok((await ctx.store.media.listExpiredPending(4000, 100)).includes(late));
      assert.ok(!(await ctx.store.media.listExpiredPending(3999, 100)).includes(late));
    });

    it('thumbnails: kept per request key up to a cap; deleting the media takes them along', async function () {
      const rec = complete(alice, 10);
      await ctx.store.media.insertMedia(rec, null);
      assert.equal(await ctx.store.media.putThumbnail(thumb(rec.mediaId, 32), 2), true);
      assert.equal(await ctx.store.media.putThumbnail(thumb(rec.mediaId, 32, { method: 'scale', height: 20 }), 2), true);
      assert.equal(await ctx.store.media.putThumbnail(thumb(rec.mediaId, 96), 2), false, 'over the cap');
      assert.equal(await ctx.store.media.putThumbnail(thumb('gone', 32), 2), false, 'no such media');
      assert.deepEqual(await ctx.store.media.getThumbnail(rec.mediaId, 32, 32, 'crop', false), thumb(rec.mediaId, 32));
      assert.equal(await ctx.store.media.getThumbnail(rec.mediaId, 32, 32, 'crop', true), null);
      assert.equal((await ctx.store.media.getThumbnail(rec.mediaId, 32, 32, 'scale', false))?.height, 20);
      const gone = await ctx.store.media.deleteMedia(rec.mediaId);
      assert.equal(gone?.media.mediaId, rec.mediaId);
      assert.equal(gone?.thumbnails.length, 2);
      assert.equal(await ctx.store.media.getMedia(rec.mediaId), null);
      assert.deepEqual(await ctx.store.media.listThumbnails(rec.mediaId), []);
      assert.equal(await ctx.store.media.deleteMedia(rec.mediaId), null);
    });

    it("lists a user's media, oldest first, and keeps it across a reopen", async function () {
      const a = complete(alice, 1, 'aaa');
      const b = { ...complete(alice, 2, 'bbb'), createdTs: 500 };
      await ctx.store.media.insertMedia(a, null);
      await ctx.store.media.insertMedia(b, null);
      await ctx.store.media.insertMedia(complete(bob, 3), null);
      assert.deepEqual(await ctx.store.media.listUserMedia(alice), ['bbb', 'aaa']);
      if (!ctx.canReopen) return;
      const store = await ctx.closeAndReopen();
      assert.deepEqual(await store.media.getMedia('aaa'), a);
      assert.equal(await store.media.usage(alice), 3);
    });

    it('remote media: keyed by origin and ID, the first record kept; thumbnails only of recorded media, up to the cap', async function () {
      const id = randomId();
      const rec: RemoteMediaRecord = { origin: 'remote.example:8448', mediaId: id, contentType: 'image/png', uploadName: null, size: 42, sha256: 'ef'.repeat(32), fetchedTs: 7, generation: 'g1', lastAccessTs: 7 };
      assert.equal(await ctx.store.media.getRemoteMedia(rec.origin, id), null);
      assert.deepEqual(await ctx.store.media.putRemoteMedia(rec), rec);
      // A second fetch (another worker) does not replace the first.
      assert.deepEqual(await ctx.store.media.putRemoteMedia({ ...rec, contentType: 'text/html', uploadName: 'x', size: 1, fetchedTs: 9, generation: 'g2', lastAccessTs: 9 }), rec);
      assert.deepEqual(await ctx.store.media.getRemoteMedia(rec.origin, id), rec);
      assert.equal(await ctx.store.media.getRemoteMedia('other.example', id), null, 'another origin, same ID');
      assert.equal(await ctx.store.media.getMedia(id), null, 'not local media');
      const named = { ...rec, mediaId: randomId(), contentType: null, uploadName: 'ünï.txt' };
      assert.deepEqual(await ctx.store.media.putRemoteMedia(named), named);
      assert.deepEqual(await ctx.store.media.getRemoteMedia(rec.origin, named.mediaId), named);

      const t = { ...thumb(id, 32), origin: rec.origin, generation: 'g1' };
      assert.equal(await ctx.store.media.putRemoteThumbnail(t, 2), true);
      assert.equal(await ctx.store.media.putRemoteThumbnail({ ...t, method: 'scale', height: 20 }, 2), true);
      assert.equal(await ctx.store.media.putRemoteThumbnail({ ...t, reqWidth: 96 }, 2), false, 'over the cap');
      assert.equal(await ctx.store.media.putRemoteThumbnail({ ...t, origin: 'other.example' }, 2), false, 'no such remote media');
      assert.equal(await ctx.store.media.putRemoteThumbnail({ ...t, reqWidth: 64, generation: 'g2' }, 3), false, 'not the recorded generation');
      assert.deepEqual(await ctx.store.media.getRemoteThumbnail(rec.origin, id, 'g1', 32, 32, 'crop', false), t);
      assert.equal(await ctx.store.media.getRemoteThumbnail(rec.origin, id, 'g2', 32, 32, 'crop', false), null, 'another generation');
      assert.equal((await ctx.store.media.getRemoteThumbnail(rec.origin, id, 'g1', 32, 32, 'scale', false))?.height, 20);
      assert.equal(await ctx.store.media.getRemoteThumbnail(rec.origin, id, 'g1', 32, 32, 'crop', true), null);
      assert.equal(await ctx.store.media.getRemoteThumbnail('other.example', id, 'g1', 32, 32, 'crop', false), null);
      if (!ctx.canReopen) return;
      const store = await ctx.closeAndReopen();
      assert.deepEqual(await store.media.getRemoteMedia(rec.origin, id), rec);
    });

    // Eviction (src/media/remote-eviction.ts). Listings are global: each test has its own origin
    // and filters on it.
    const remote = (origin: string, generation: string, lastAccessTs: number, mediaId = randomId()): RemoteMediaRecord => ({
      origin, mediaId, contentType: 'image/png', uploadName: null, size: 5, sha256: 'aa'.repeat(32), fetchedTs: lastAccessTs, generation, lastAccessTs,
    });
    const mine = <T extends { origin: string }>(origin: string, rows: T[]): T[] => rows.filter((r) => r.origin === origin);
    const doomedOf = async (origin: string, now: number): Promise<DoomedRemoteMedia[]> => mine(origin, await ctx.store.media.listDoomedRemoteMedia(now, 1000));

    it('remote media access: a touch moves the last access forward only, never creates a record; listed by last access', async function () {
      const origin = `touch-${randomId().toLowerCase()}.example`;
      const a = remote(origin, 'ga', 1000);
      const b = remote(origin, 'gb', 2000);
      await ctx.store.media.putRemoteMedia(a);
      await ctx.store.media.putRemoteMedia(b);
      await ctx.store.media.touchRemoteMedia(origin, a.mediaId, 5000);
      await ctx.store.media.touchRemoteMedia(origin, a.mediaId, 3000);
      assert.equal((await ctx.store.media.getRemoteMedia(origin, a.mediaId))?.lastAccessTs, 5000, 'never moved back');
      await ctx.store.media.touchRemoteMedia(origin, 'nothere', 5000);
      assert.equal(await ctx.store.media.getRemoteMedia(origin, 'nothere'), null);
      const before = async (ts: number) => mine(origin, await ctx.store.media.listRemoteMediaBefore(ts, 1000)).map((r) => r.mediaId).sort();
      assert.deepEqual(await before(2000), []);
      assert.deepEqual(await before(2001), [b.mediaId]);
      assert.deepEqual(await before(5001), [a.mediaId, b.mediaId].sort());
      const listed = mine(origin, await ctx.store.media.listRemoteMediaBefore(2001, 1000));
      assert.deepEqual(listed, [b]);
      assert.deepEqual(await ctx.store.media.listRemoteMediaBefore(9e12, 0), []);
    });

    it('remote media over a size cap: the least recently accessed, just enough of them to get under it; thumbnails not counted', async function () {
      const origin = `cap-${randomId().toLowerCase()}.example`;
      const mk = (size: number, access: number) => ({ ...remote(origin, `g${access}`, access), size });
      const [r1, r2, r3] = [mk(100, 1000), mk(200, 2000), mk(300, 3000)];
      for (const r of [r3, r1, r2]) await ctx.store.media.putRemoteMedia(r);
      assert.equal(await ctx.store.media.putRemoteThumbnail({ ...thumb(r3.mediaId, 32), size: 5000, origin, generation: r3.generation }, 3), true);
      const over = async (cap: number, limit = 100) => (await ctx.store.media.listRemoteMediaOverCap(cap, limit)).map((r) => r.mediaId);
      assert.deepEqual(await over(600), []);
      assert.deepEqual(await over(599), [r1.mediaId]);
      assert.deepEqual(await over(500), [r1.mediaId]);
      assert.deepEqual(await over(400), [r1.mediaId, r2.mediaId]);
      assert.deepEqual(await over(0), [r1.mediaId, r2.mediaId, r3.mediaId]);
      assert.deepEqual(await over(0, 1), [r1.mediaId]);
      assert.deepEqual(await over(0, 0), []);
      assert.deepEqual((await ctx.store.media.listRemoteMediaOverCap(599, 100))[0], r1, 'whole records');
      await ctx.store.media.touchRemoteMedia(origin, r1.mediaId, 4000);
      assert.deepEqual(await over(500), [r2.mediaId]);
      assert.equal(await ctx.store.media.evictRemoteMedia(origin, r2.mediaId, r2.generation, 9000), true);
      assert.deepEqual(await over(400), [], 'evicted media no longer counts');
    });

    it('remote media eviction: conditional on the generation; doomed until due with its thumbnails; a re-fetch is untouched; forgotten after', async function () {
      const origin = `evict-${randomId().toLowerCase()}.example`;
      const rec = remote(origin, 'g1', 1000);
      await ctx.store.media.putRemoteMedia(rec);
      const t = { ...thumb(rec.mediaId, 32), origin, generation: 'g1' };
      assert.equal(await ctx.store.media.putRemoteThumbnail(t, 3), true);
      assert.equal(await ctx.store.media.evictRemoteMedia(origin, rec.mediaId, 'g0', 10_000), false, 'another generation');
      assert.deepEqual(await ctx.store.media.getRemoteMedia(origin, rec.mediaId), rec);
      assert.deepEqual(await doomedOf(origin, 1e7), [], 'a refused eviction dooms nothing');

      assert.equal(await ctx.store.media.evictRemoteMedia(origin, rec.mediaId, 'g1', 10_000), true);
      assert.equal(await ctx.store.media.getRemoteMedia(origin, rec.mediaId), null);
      assert.equal(await ctx.store.media.evictRemoteMedia(origin, rec.mediaId, 'g1', 11_000), false, 'once');
      assert.deepEqual(mine(origin, await ctx.store.media.listRemoteMediaBefore(9e12, 1000)), []);
      assert.deepEqual(await doomedOf(origin, 9_999), [], 'not due yet');
      const { origin: _o, generation: _g, ...thumbRec } = t;
      const due = await doomedOf(origin, 10_000);
      assert.deepEqual(due, [{ origin, mediaId: rec.mediaId, generation: 'g1', dueTs: 10_000, thumbnails: [thumbRec] }]);

      // Fetched again meanwhile (a new generation): its record and thumbnails are its own.
      const again = { ...rec, generation: 'g2', fetchedTs: 12_000, lastAccessTs: 12_000 };
      assert.deepEqual(await ctx.store.media.putRemoteMedia(again), again);
      const t2 = { ...thumb(rec.mediaId, 64), origin, generation: 'g2' };
      assert.equal(await ctx.store.media.putRemoteThumbnail(t2, 3), true);
      assert.deepEqual(await doomedOf(origin, 20_000), due, 'the re-fetch leaves the doomed generation as it was');

      await ctx.store.media.forgetDoomedRemoteMedia(due[0]!);
      assert.deepEqual(await doomedOf(origin, 20_000), []);
      assert.deepEqual(await ctx.store.media.getRemoteMedia(origin, rec.mediaId), again);
      assert.deepEqual(await ctx.store.media.getRemoteThumbnail(origin, rec.mediaId, 'g2', 64, 64, 'crop', false), t2);
      assert.equal(await ctx.store.media.getRemoteThumbnail(origin, rec.mediaId, 'g1', 32, 32, 'crop', false), null, 'the doomed thumbnail is gone');
      assert.equal(await ctx.store.media.putRemoteThumbnail({ ...t, generation: 'g2' }, 3), true, 'its size is free again');

      // Media fetched before generations existed ('') is evicted like any other.
      const old = remote(origin, '', 500);
      await ctx.store.media.putRemoteMedia(old);
      assert.deepEqual(await ctx.store.media.getRemoteMedia(origin, old.mediaId), old);
      assert.equal(await ctx.store.media.evictRemoteMedia(origin, old.mediaId, 'g1', 30_000), false);
      assert.equal(await ctx.store.media.evictRemoteMedia(origin, old.mediaId, '', 30_000), true);
      assert.deepEqual(await doomedOf(origin, 30_000), [{ origin, mediaId: old.mediaId, generation: '', dueTs: 30_000, thumbnails: [] }]);
      if (!ctx.canReopen) return;
      const store = await ctx.closeAndReopen();
      assert.deepEqual(mine(origin, await store.media.listDoomedRemoteMedia(30_000, 1000)).map((d) => d.mediaId), [old.mediaId]);
    });
  });
}
