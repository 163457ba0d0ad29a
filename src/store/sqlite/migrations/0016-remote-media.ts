// Media of other servers fetched over federation (src/media/media-service.ts), keyed by origin
// and media ID; the bytes live in the MediaStore. Thumbnails made here of it, likewise.

import type { Migration } from './index.js';

export const remoteMedia: Migration = {
  version: 16,
  name: 'remote-media',
  up: `
    CREATE TABLE remote_media (
      origin TEXT NOT NULL,
      media_id TEXT NOT NULL,
      content_type TEXT,
      upload_name TEXT,
      size INTEGER NOT NULL,
      sha256 TEXT NOT NULL,
      fetched_ts INTEGER NOT NULL,
      PRIMARY KEY (origin, media_id)
    ) WITHOUT ROWID;

    CREATE TABLE remote_media_thumbnails (
      origin TEXT NOT NULL,
      media_id TEXT NOT NULL,
      req_width INTEGER NOT NULL,
      req_height INTEGER NOT NULL,
      method TEXT NOT NULL,
      animated INTEGER NOT NULL,
      width INTEGER NOT NULL,
      height INTEGER NOT NULL,
      content_type TEXT NOT NULL,
      size INTEGER NOT NULL,
      created_ts INTEGER NOT NULL,
      PRIMARY KEY (origin, media_id, req_width, req_height, method, animated),
      FOREIGN KEY (origin, media_id) REFERENCES remote_media (origin, media_id) ON DELETE CASCADE
    ) WITHOUT ROWID;
  `,
};
