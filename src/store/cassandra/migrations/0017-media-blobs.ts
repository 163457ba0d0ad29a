// Media bytes in the keyspace (../media-blobs.ts), so every worker of a cluster reads what any
// of them stored. media_blobs maps a key (content/<id>, thumbnails/<id>/...) to the blob that
// holds it, written by LWT only (a key is written once: the first committed put wins);
// media_chunks holds one blob per partition, its bytes in numbered chunks (64 KiB–1 MiB, the
// media.chunk_bytes setting), so a partition is as large as one upload (media.max_upload_bytes)
// and a read pages through it a few chunks at a time. media_uploads notes each put (its key and
// blob) by hour before its first chunk, expiring after 3 days and never deleted, so the sweep
// finds the blobs of puts that died half-way (time-window compaction drops expired hours whole).

import type { CqlMigration } from './index.js';

export const m0017: CqlMigration = {
  version: 17,
  name: 'media-blobs',
  statements: [
    `CREATE TABLE IF NOT EXISTS media_blobs (key text PRIMARY KEY, blob_id text, size bigint, sha256 text, chunks int, created_ts bigint)`,
    `CREATE TABLE IF NOT EXISTS media_chunks (blob_id text, idx int, data blob, PRIMARY KEY ((blob_id), idx))`,
    `CREATE TABLE IF NOT EXISTS media_uploads (hour bigint, blob_id text, key text, PRIMARY KEY ((hour), blob_id))
     WITH default_time_to_live = 259200 AND gc_grace_seconds = 10800
     AND compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'HOURS', 'compaction_window_size': '6'}`,
  ],
};
