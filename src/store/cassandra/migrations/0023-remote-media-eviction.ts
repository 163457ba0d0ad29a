// Eviction of remote media (src/media/remote-eviction.ts, ../media.ts). remote_media gains the
// fetch's generation (part of the bytes' keys; null for media fetched before, whose keys have
// none) and the last access (null until first touched or backfilled: ../media.ts fills it from
// fetched_ts once per process), with an SAI index for the sweep's "last access before" range.
// Thumbnail rows name their generation. remote_media_doomed holds evicted generations until
// their bytes are deleted, partitioned by the UTC day their grace period ends (the sweep reads
// the days it can still see), expiring after 14 days; `note` is random per eviction attempt, so
// an attempt that did not apply removes its own row and no other's.

import type { CqlMigration } from './index.js';

export const m0023: CqlMigration = {
  version: 23,
  name: 'remote-media-eviction',
  statements: [
    `ALTER TABLE remote_media ADD IF NOT EXISTS (generation text, last_access_ts bigint)`,
    `CREATE CUSTOM INDEX IF NOT EXISTS remote_media_last_access ON remote_media (last_access_ts) USING 'StorageAttachedIndex'`,
    `ALTER TABLE remote_media_thumbnails ADD IF NOT EXISTS generation text`,
    `CREATE TABLE IF NOT EXISTS remote_media_doomed (
       day bigint, origin text, media_id text, generation text, note text, due_ts bigint,
       PRIMARY KEY ((day), origin, media_id, generation, note))
     WITH default_time_to_live = 1209600 AND gc_grace_seconds = 10800`,
  ],
};
