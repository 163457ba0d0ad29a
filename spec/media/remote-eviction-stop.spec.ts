// Stopping the media service while a remote-media eviction pass runs (src/media/remote-eviction.ts):
// stop() resolves only once the pass has ended, so the store can be closed right after it without
// the pass failing on a closed database; nothing is logged; a sweep asked for after stop does
// nothing; and the eviction counts (for /metrics) grow by what was evicted. On a real SQLite
// store (a file) and a media directory; the pass is held inside its store call by a wrapper.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import { until } from '../helpers/until.js';
import { LocalMediaStore } from '../../src/media/local-store.js';
import { MediaService, type RemoteDownload, type RemoteMedia } from '../../src/media/media-service.js';
import type { MediaMetaStore } from '../../src/store/media-types.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';
import { remoteMediaConfig, warnLogger } from './media-helpers.js';

const ORIGIN = 'origin.example';
const LIFETIME = 60_000;

class Origin implements RemoteMedia {
  async fetch(_origin: string, id: string): Promise<RemoteDownload> {
    const body = Buffer.from(`bytes of ${id}`);
    const chunks = (async function* () {
      yield body;
    })();
    return { contentType: 'application/octet-stream', filename: null, length: body.length, body: chunks, cancel: () => undefined };
  }
}

describe('remote media eviction: stop() waits for a running pass (SQLite)', function () {
  this.timeout(30_000);
  let dir = '';
  let store: SqliteStore | undefined;
  let media: MediaService | undefined;
  const logged: string[] = [];
  const logger = warnLogger(logged);

  beforeEach(async function () {
    dir = mkdtempSync(join(tmpdir(), 'hearth-evict-stop-'));
    logged.length = 0;
    store = await openSqliteStore({ path: join(dir, 'hearth.db'), logger });
  });
  afterEach(async function () {
    await media?.stop();
    await store?.close().catch(() => undefined);
    media = undefined;
    store = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  /** A media service over `meta`, with `n` remote items fetched into it. */
  async function withRemote(meta: MediaMetaStore, n: number): Promise<MediaService> {
    const m = new MediaService({
      meta,
      blobs: new LocalMediaStore(join(dir, 'media')),
      serverName: 'here.example',
      config: remoteMediaConfig(LIFETIME),
      logger,
      now: Date.now,
      remote: new Origin(),
    });
    await m.start();
    for (let i = 0; i < n; i++) {
      const got = await m.download(ORIGIN, `item${i}`, 0, new AbortController().signal);
      for await (const _ of got.stream) void _;
    }
    return m;
  }

  it('stop during a sweep resolves only after the pass ends; the store then closes with no error logged', async function () {
    const real = store!.media;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let evictCalls = 0;
    // The second eviction of the pass waits at the gate: the pass is mid-batch when stop() is called.
    const evict = async (...args: Parameters<MediaMetaStore['evictRemoteMedia']>) => {
      if (++evictCalls === 2) await gate;
      return real.evictRemoteMedia(...args);
    };
    const meta = new Proxy(real, {
      get(target, key) {
        if (key === 'evictRemoteMedia') return evict;
        const v: unknown = Reflect.get(target, key, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    media = await withRemote(meta, 5);
    const sweep = media.sweepRemoteMedia(Date.now() + LIFETIME + 1000);
    await until('the pass is inside its second eviction', () => evictCalls === 2);

    let stopped = false;
    const stopping = media.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(stopped, false, 'stop() waits while the pass is in the store');
    release();
    await stopping;
    await sweep;
    assert.equal(evictCalls, 2, 'the pass ended at its next step instead of evicting the rest');
    await store!.close();
    store = undefined;
    media = undefined;
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(logged, [], 'nothing logged: no store call after stop');
  });

  it('counts what it evicts (files and recorded bytes); a sweep after stop does nothing', async function () {
    media = await withRemote(store!.media, 3);
    assert.deepEqual(media.evictionStats(), { files: 0, bytes: 0 });
    await media.sweepRemoteMedia(Date.now() + LIFETIME + 1000);
    const size = (id: string) => Buffer.byteLength(`bytes of ${id}`);
    assert.deepEqual(media.evictionStats(), { files: 3, bytes: size('item0') + size('item1') + size('item2') });
    // Nothing left to evict: a second sweep counts nothing more.
    await media.sweepRemoteMedia(Date.now() + LIFETIME + 1000);
    assert.equal(media.evictionStats().files, 3);

    const got = await media.download(ORIGIN, 'late', 0, new AbortController().signal);
    for await (const _ of got.stream) void _;
    await media.stop();
    await media.sweepRemoteMedia(Date.now() + LIFETIME + 1000);
    assert.ok(await store!.media.getRemoteMedia(ORIGIN, 'late'), 'not evicted after stop');
    assert.equal(media.evictionStats().files, 3);
    media = undefined;
    assert.deepEqual(logged, []);
  });
});
