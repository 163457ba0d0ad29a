// Part of the composition root (src/app.ts): the media service (local uploads, thumbnails, remote
// media over federation) and URL previews. Invariants: media bytes live under media.path, or
// (media.store: cassandra) in chunks in the keyspace every worker shares, and the cassandra store
// without the Cassandra backend is refused; a waiting download ends before the idle timeout
// would cut it; URL previews fetch through the outbound guard only; remote media evicted by this
// process is counted on /metrics (read from the evictor at scrape time).

import type { Logger } from 'pino';
import type { HearthConfig } from '../config/load.js';
import type { FederationCore } from '../federation/index.js';
import { FederationMediaFetcher } from '../federation/media-fetch.js';
import { LocalMediaStore } from '../media/local-store.js';
import { MediaService } from '../media/media-service.js';
import { UrlPreviewer } from '../media/url-preview.js';
import type { OutboundHttp } from '../net/outbound-guard.js';
import type { Metrics } from '../observability/metrics.js';
import { isSharedBackend, type Store, type StoreBackend } from '../store/types.js';

export function createMedia(
  config: HearthConfig,
  deps: {
    backend: StoreBackend;
    store: Store;
    /** A cluster (several workers share the store). */
    clustered: boolean;
    fedCore: FederationCore | undefined;
    http: OutboundHttp;
    metrics: Metrics | undefined;
    logger: Logger;
    now: () => number;
  },
): { media: MediaService; urlPreviews: UrlPreviewer | null } {
  const { backend, store, fedCore, logger, now } = deps;
  const mc = config.media;
  const sharedBlobs = mc.store === 'cassandra' && isSharedBackend(backend) ? backend.mediaBlobs?.(mc.chunk_bytes, logger) : undefined;
  if (mc.store === 'cassandra' && !sharedBlobs) throw new Error('media.store cassandra: the storage backend keeps no media bytes');
  if (!sharedBlobs && deps.clustered) logger.warn({ path: mc.path }, 'media on local disk in a cluster: every worker needs this directory (or set media.store: cassandra)');
  const media = new MediaService({
    meta: store.media,
    blobs: sharedBlobs ?? new LocalMediaStore(mc.path),
    serverName: config.server_name,
    config: {
      maxUploadBytes: mc.max_upload_bytes,
      maxUserBytes: mc.max_user_bytes,
      unusedExpirationMs: mc.unused_expiration_ms,
      maxPendingUploads: mc.max_pending_uploads,
      // A waiting download sends nothing: the idle timeout would cut it first.
      maxWaitMs: Math.max(0, Math.min(mc.max_download_wait_ms, config.limits.http.idle_timeout_ms - 1000)),
      maxImagePixels: mc.max_image_pixels,
      maxThumbnailsPerMedia: mc.max_thumbnails_per_media,
      fetchRemote: mc.fetch_remote,
      remoteMediaLifetimeMs: mc.remote_media_lifetime_ms,
      maxRemoteMediaBytes: mc.max_remote_media_bytes,
    },
    logger,
    now,
    ...(fedCore ? { remote: new FederationMediaFetcher(fedCore.client, logger) } : {}),
  });
  deps.metrics?.registerCounter('hearth_remote_media_evicted_files_total', 'Remote media evicted from the cache by this process (lifetime, size cap, admin purge).', () => media.evictionStats().files);
  deps.metrics?.registerCounter('hearth_remote_media_evicted_bytes_total', 'Recorded size of the remote media evicted by this process (originals; freed after the grace period).', () => media.evictionStats().bytes);
  const up = mc.url_preview;
  const urlPreviews = up.enabled
    ? new UrlPreviewer({
        http: deps.http,
        media,
        config: { maxPageBytes: up.max_page_bytes, maxImageBytes: up.max_image_bytes, maxImagePixels: mc.max_image_pixels, timeoutMs: up.timeout_ms, cacheMs: up.cache_ms },
        logger,
        now,
      })
    : null;
  return { media, urlPreviews };
}
