// Contract: MediaMetaStore (src/store/media-types.ts).

import { assert } from '../helpers/assert.js';
import type { CompleteUpload, MediaRecord, RemoteMediaRecord, ThumbnailRecord } from '../../src/store/types.js';
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
      const rec: RemoteMediaRecord = { origin: 'remote.example:8448', mediaId: id, contentType: 'image/png', uploadName: null, size: 42, sha256: 'ef'.repeat(32), fetchedTs: 7 };
      assert.equal(await ctx.store.media.getRemoteMedia(rec.origin, id), null);
      assert.deepEqual(await ctx.store.media.putRemoteMedia(rec), rec);
      // A second fetch (another worker) does not replace the first.
      assert.deepEqual(await ctx.store.media.putRemoteMedia({ ...rec, contentType: 'text/html', uploadName: 'x', size: 1, fetchedTs: 9 }), rec);
      assert.deepEqual(await ctx.store.media.getRemoteMedia(rec.origin, id), rec);
      assert.equal(await ctx.store.media.getRemoteMedia('other.example', id), null, 'another origin, same ID');
      assert.equal(await ctx.store.media.getMedia(id), null, 'not local media');
      const named = { ...rec, mediaId: randomId(), contentType: null, uploadName: 'ünï.txt' };
      assert.deepEqual(await ctx.store.media.putRemoteMedia(named), named);
      assert.deepEqual(await ctx.store.media.getRemoteMedia(rec.origin, named.mediaId), named);

      const t = { ...thumb(id, 32), origin: rec.origin };
      assert.equal(await ctx.store.media.putRemoteThumbnail(t, 2), true);
      assert.equal(await ctx.store.media.putRemoteThumbnail({ ...t, method: 'scale', height: 20 }, 2), true);
      assert.equal(await ctx.store.media.putRemoteThumbnail({ ...t, reqWidth: 96 }, 2), false, 'over the cap');
      assert.equal(await ctx.store.media.putRemoteThumbnail({ ...t, origin: 'other.example' }, 2), false, 'no such remote media');
      assert.deepEqual(await ctx.store.media.getRemoteThumbnail(rec.origin, id, 32, 32, 'crop', false), t);
      assert.equal((await ctx.store.media.getRemoteThumbnail(rec.origin, id, 32, 32, 'scale', false))?.height, 20);
      assert.equal(await ctx.store.media.getRemoteThumbnail(rec.origin, id, 32, 32, 'crop', true), null);
      assert.equal(await ctx.store.media.getRemoteThumbnail('other.example', id, 32, 32, 'crop', false), null);
      if (!ctx.canReopen) return;
      const store = await ctx.closeAndReopen();
      assert.deepEqual(await store.media.getRemoteMedia(rec.origin, id), rec);
    });
  });
}
