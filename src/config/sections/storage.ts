// The config's storage and scale-out sections: the store backend, the cluster (Redis, leases,
// worker roles) and media bytes (composed in src/config/schema.ts). Invariants: every object is
// strict and every section prefaults to `{}` (schema.ts's header); which role combinations and
// backends go together is checked across sections in schema.ts.

import { z } from 'zod';
import { filePath } from './primitives.js';

/**
 * What one worker does (cluster.roles; src/cluster/roles.ts composes them): client_api serves the
 * client routes, sync serves /sync, /events and the WebSocket stream, room_writer takes room
 * leases and writes rooms, federation_in serves the federation listener, federation_out sends
 * transactions, pusher runs the push-job loop. `all` is every one of them (a single node).
 */
export const WORKER_ROLES = ['client_api', 'room_writer', 'sync', 'federation_in', 'federation_out', 'pusher'] as const;

export const storageSection = z
  .strictObject({
    backend: z.enum(['sqlite', 'cassandra']).default('sqlite'),
    sqlite: z
      .strictObject({
        path: filePath.default('./data/hearth.sqlite'),
        synchronous: z.enum(['full', 'normal']).default('full'),
      })
      .prefault({}),
    // Used when backend is 'cassandra' (see docs/deploy.md); every durable record lives there.
    cassandra: z
      .strictObject({
        contact_points: z
          .array(z.string().regex(/^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9a-fA-F:.]+\](:\d{1,5})?$/, { error: 'must be host or host:port' }))
          .min(1)
          .default(['127.0.0.1:9042']),
        local_datacenter: z.string().min(1).default('datacenter1'),
        keyspace: z
          .string()
          .regex(/^[a-z][a-z0-9_]{0,47}$/, { error: 'must match [a-z][a-z0-9_]{0,47}' })
          .default('hearth'),
        // Only used when the keyspace is created by Hearth (SimpleStrategy).
        replication_factor: z.number().int().min(1).max(9).default(1),
        username: z.string().min(1).nullable().default(null),
        password: z.string().min(1).nullable().default(null),
      })
      .prefault({}),
  })
  .prefault({});

// Scale-out. With no redis.url (the default) everything that several processes would have to
// share lives in this process, exactly as a single node needs; with one, the pieces in
// src/cluster/ (UIA sessions, registration nonces, rate limits, socket revocation) live in
// Redis so any number of hearth processes can serve one server name.
export const clusterSection = z
  .strictObject({
    redis: z
      .strictObject({
        url: z.string().regex(/^rediss?:\/\//, { error: 'must be a redis:// or rediss:// URL' }).nullable().default(null),
        // Every key and channel starts with this, so several servers can share one Redis.
        key_prefix: z.string().min(1).max(100).default('hearth:'),
      })
      .prefault({}),
    // With storage.backend cassandra and Redis: each room's writer holds a lease this long, renewed
    // every third of it while busy; a dead owner's rooms are taken over once it expires.
    room_lease_ms: z.int().min(500).max(60000).default(5000),
    // Outbound federation in a cluster: a federation_out worker holds a destination's lease
    // this long (renewed every third of it while it has work for it); a dead sender's
    // destinations are taken over once it lapses. Every federation_scan_ms each federation_out
    // worker looks in the shared queue for destinations with work another worker queued (only
    // with a shared store and Redis: a single node looks once, at start).
    destination_lease_ms: z.int().min(500).max(300000).default(30000),
    federation_scan_ms: z.int().min(100).max(60000).default(2000),
    // What this worker does (WORKER_ROLES above): [all] (every role: a single node, as before)
    // or a list; any number of workers may run each role. A list needs the cluster: storage
    // backend cassandra and cluster.redis.url (docs/deploy.md, "Roles").
    roles: z.array(z.enum(['all', ...WORKER_ROLES])).default(['all']),
  })
  .prefault({});

// The media repository (src/media): uploads, downloads, thumbnails, URL previews.
export const mediaSection = z
  .strictObject({
    // Where media bytes live: `local`, files under media.path (one process, or workers sharing
    // that directory); `cassandra`, chunks in the keyspace (storage.backend cassandra), so every
    // worker of a cluster serves what any of them stored (src/store/cassandra/media-blobs.ts).
    store: z.enum(['local', 'cassandra']).default('local'),
    // Where the local MediaStore keeps the bytes (metadata is in the database).
    path: filePath.default('./data/media'),
    // media.store cassandra: bytes per stored chunk (a row of media_chunks; one write each).
    chunk_bytes: z.int().min(65536).max(1048576).default(262144),
    // Largest upload, in bytes (413 M_TOO_LARGE past it); advertised as m.upload.size.
    max_upload_bytes: z.int().min(1).default(52428800),
    // Per-user quota over all their uploads, in bytes (403 M_FORBIDDEN past it); null: none.
    max_user_bytes: z.int().min(1).nullable().default(null),
    // A media ID from POST /create with nothing uploaded expires after this long.
    unused_expiration_ms: z.int().min(1000).default(86400000),
    // Unexpired, not yet uploaded media IDs a user may hold (429 past it).
    max_pending_uploads: z.int().min(1).default(5),
    // The longest a download waits for an async upload to arrive (caps timeout_ms); never past
    // limits.http.idle_timeout_ms - 1000, as the connection would be cut first.
    max_download_wait_ms: z.int().min(0).default(30000),
    // Images with more pixels than this are not thumbnailed.
    max_image_pixels: z.int().min(1).default(32000000),
    // Thumbnail sizes kept per media item; beyond it thumbnails are made but not kept.
    max_thumbnails_per_media: z.int().min(0).default(50),
    // Fetch other servers' media over federation when a client asks for it (kept in the media
    // store, up to max_upload_bytes each); false: remote media is 404.
    fetch_remote: z.boolean().default(true),
    // Remote media nobody downloaded or thumbnailed for this long is evicted from the cache (a
    // later request fetches it again); its bytes go an hour after its record (reads under way
    // finish). null (the default, as Synapse's media_retention.remote_media_lifetime): kept for
    // ever. Local uploads are never evicted. Admins can also evict on demand:
    // POST /_synapse/admin/v1/purge_media_cache?before_ts=<ms>.
    remote_media_lifetime_ms: z.int().min(1000).nullable().default(null),
    // The total size of remote media kept, in bytes (the media, not their thumbnails); past it
    // the least recently accessed is evicted, judged every 10 minutes (on Cassandra a scan of
    // remote_media per worker). null (the default): no cap.
    max_remote_media_bytes: z.int().min(1).nullable().default(null),
    url_preview: z
      .strictObject({
        // Off by default: previews make the server fetch URLs that users post.
        enabled: z.boolean().default(false),
        // Largest page (and og:image) fetched, in bytes; longer ones are cut off there.
        max_page_bytes: z.int().min(1024).default(1048576),
        max_image_bytes: z.int().min(1024).default(5242880),
        timeout_ms: z.int().min(100).default(10000),
        // How long a preview is reused for the same URL.
        cache_ms: z.int().min(0).default(3600000),
      })
      .prefault({}),
  })
  .prefault({});
