// Media of other servers fetched over federation (src/media/media-service.ts), keyed by origin
// and media ID (one partition each, written by LWT: the first record is kept), and the
// thumbnails made here of it (one partition per media).

import type { CqlMigration } from './index.js';

export const m0018: CqlMigration = {
  version: 18,
  name: 'remote-media',
  statements: [
    `CREATE TABLE IF NOT EXISTS remote_media (
       origin text, media_id text, content_type text, upload_name text,
       size bigint, sha256 text, fetched_ts bigint,
       PRIMARY KEY ((origin, media_id)))`,
    `CREATE TABLE IF NOT EXISTS remote_media_thumbnails (
       origin text, media_id text, req_width int, req_height int, method text, animated boolean,
       width int, height int, content_type text, size bigint, created_ts bigint,
       PRIMARY KEY ((origin, media_id), req_width, req_height, method, animated))`,
  ],
};
