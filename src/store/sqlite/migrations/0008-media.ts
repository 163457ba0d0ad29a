// The media repository's metadata (src/store/media-types.ts). The bytes live in the MediaStore.

import type { Migration } from './index.js';

export const media: Migration = {
  version: 8,
  name: 'media',
  up: `
    CREATE TABLE media (
      media_id TEXT PRIMARY KEY,
      user_id TEXT NOT NULL,
      content_type TEXT,
      upload_name TEXT,
      size INTEGER,
      sha256 TEXT,
      created_ts INTEGER NOT NULL,
      -- NULL while pending (POST /create, nothing uploaded yet).
      uploaded_ts INTEGER,
      unused_expires_ts INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX media_user ON media (user_id, created_ts);
    CREATE INDEX media_pending ON media (unused_expires_ts) WHERE uploaded_ts IS NULL;

    CREATE TABLE media_thumbnails (
      media_id TEXT NOT NULL REFERENCES media (media_id) ON DELETE CASCADE,
      req_width INTEGER NOT NULL,
      req_height INTEGER NOT NULL,
      method TEXT NOT NULL,
      animated INTEGER NOT NULL,
      width INTEGER NOT NULL,
      height INTEGER NOT NULL,
      content_type TEXT NOT NULL,
      size INTEGER NOT NULL,
      created_ts INTEGER NOT NULL,
      PRIMARY KEY (media_id, req_width, req_height, method, animated)
    ) WITHOUT ROWID;
  `,
};
