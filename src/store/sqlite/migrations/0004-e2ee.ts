// End-to-end encryption support (src/store/e2ee-types.ts). Hearth stores and relays these JSON
// objects verbatim; it never sees plaintext.

import type { Migration } from './index.js';

export const e2ee: Migration = {
  version: 4,
  name: 'e2ee',
  up: `
    -- Immutable once written (a device's identity keys never change).
    CREATE TABLE e2ee_device_keys (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      keys_json TEXT NOT NULL,
      PRIMARY KEY (user_id, device_id)
    ) WITHOUT ROWID;

    -- Claimed keys stay (claimed = 1) until the device is deleted: a re-upload of a handed-out
    -- key ID with other content must be rejected, and with the same content must not make the
    -- key claimable again. The rowid gives upload order, so "oldest" is one partial-index seek.
    CREATE TABLE e2ee_one_time_keys (
      id INTEGER PRIMARY KEY,
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      algorithm TEXT NOT NULL,
      key_id TEXT NOT NULL,
      key_json TEXT NOT NULL,
      claimed INTEGER NOT NULL DEFAULT 0,
      UNIQUE (user_id, device_id, algorithm, key_id)
    );
    CREATE INDEX e2ee_one_time_keys_unclaimed ON e2ee_one_time_keys (user_id, device_id, algorithm, id) WHERE claimed = 0;

    CREATE TABLE e2ee_fallback_keys (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      algorithm TEXT NOT NULL,
      key_id TEXT NOT NULL,
      key_json TEXT NOT NULL,
      used INTEGER NOT NULL DEFAULT 0,
      PRIMARY KEY (user_id, device_id, algorithm)
    ) WITHOUT ROWID;

    CREATE TABLE e2ee_cross_signing_keys (
      user_id TEXT NOT NULL,
      key_type TEXT NOT NULL CHECK (key_type IN ('master', 'self_signing', 'user_signing')),
      key_json TEXT NOT NULL,
      PRIMARY KEY (user_id, key_type)
    ) WITHOUT ROWID;

    CREATE TABLE e2ee_signatures (
      target_user_id TEXT NOT NULL,
      target_key_id TEXT NOT NULL,
      signer_user_id TEXT NOT NULL,
      signer_key_id TEXT NOT NULL,
      signature TEXT NOT NULL,
      PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
    ) WITHOUT ROWID;

    -- An append-only log rather than "latest per user": /keys/changes asks about arbitrary past
    -- ranges, and a user who changed again later must still show up in the earlier range.
    CREATE TABLE e2ee_device_list_changes (
      stream INTEGER NOT NULL,
      user_id TEXT NOT NULL,
      PRIMARY KEY (stream, user_id)
    ) WITHOUT ROWID;

    -- Messages of one queueToDevice call share a stream position; seq keeps their order (and
    -- several messages for one device in one call apart).
    CREATE TABLE e2ee_to_device (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      stream INTEGER NOT NULL,
      seq INTEGER NOT NULL,
      type TEXT NOT NULL,
      sender TEXT NOT NULL,
      content_json TEXT NOT NULL,
      PRIMARY KEY (user_id, device_id, stream, seq)
    ) WITHOUT ROWID;

    -- Deleted versions are kept (deleted = 1) so a version number is never handed out twice: a
    -- client still holding an old version must not write into a newer backup by accident.
    -- etag is a per-version counter bumped whenever the keys change; key_count is maintained
    -- with it so reading the version (every client start) does not count the backup.
    CREATE TABLE e2ee_backup_versions (
      user_id TEXT NOT NULL,
      version INTEGER NOT NULL,
      algorithm TEXT NOT NULL,
      auth_data_json TEXT NOT NULL,
      etag INTEGER NOT NULL DEFAULT 0,
      key_count INTEGER NOT NULL DEFAULT 0,
      deleted INTEGER NOT NULL DEFAULT 0,
      PRIMARY KEY (user_id, version)
    ) WITHOUT ROWID;

    CREATE TABLE e2ee_backup_keys (
      user_id TEXT NOT NULL,
      version INTEGER NOT NULL,
      room_id TEXT NOT NULL,
      session_id TEXT NOT NULL,
      first_message_index INTEGER NOT NULL,
      forwarded_count INTEGER NOT NULL,
      is_verified INTEGER NOT NULL,
      session_data_json TEXT NOT NULL,
      PRIMARY KEY (user_id, version, room_id, session_id)
    ) WITHOUT ROWID;
  `,
};
