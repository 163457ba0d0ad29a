// E2EE (../e2ee*.ts) and media metadata (../media.ts) tables. Why each table looks the way it
// does is in the header of the module that owns it; in short:
// - one-time keys: a registry of every key ID ever uploaded (written only by LWT, so uploads
//   are all-or-nothing per device and conflicts are exact), an upload-ordered queue per
//   algorithm whose `claim` cell only LWTs write, and a per-algorithm "claimed below" cursor so
//   a claim never scans the device's history of claimed keys;
// - stream data (device-list changes, to-device messages) is bucketed by global position;
//   to-device partitions are per device and bucket, and acknowledgement moves a watermark
//   (`acked`, written with USING TIMESTAMP = the position so the highest ack wins without an
//   LWT) and drops whole fully-acknowledged buckets instead of deleting messages one by one;
// - backup keys are partitioned per room of a version, with a room index;
// - media rows are LWT-only (unique IDs, complete-once), a user's byte usage and pending IDs
//   live in one LWT-guarded row so quota and pending limits hold across instances.
import type { CqlMigration } from './index.js';

export const m0005: CqlMigration = {
  version: 5,
  name: 'e2ee-media',
  statements: [
    `CREATE TABLE IF NOT EXISTS e2ee_device_keys (
       user_id text, device_id text, keys_json text,
       PRIMARY KEY ((user_id), device_id))`,
    `CREATE TABLE IF NOT EXISTS e2ee_otk_ids (
       user_id text, device_id text, algorithm text, key_id text, key_json text, ord bigint,
       PRIMARY KEY ((user_id, device_id), algorithm, key_id))`,
    `CREATE TABLE IF NOT EXISTS e2ee_otk_queue (
       user_id text, device_id text, algorithm text, ord bigint, key_id text, key_json text, claim text,
       PRIMARY KEY ((user_id, device_id, algorithm), ord, key_id))`,
    `CREATE TABLE IF NOT EXISTS e2ee_otk_algs (
       user_id text, device_id text, algorithm text, claimed_below bigint,
       PRIMARY KEY ((user_id, device_id), algorithm))`,
    `CREATE TABLE IF NOT EXISTS e2ee_fallback_keys (
       user_id text, device_id text, algorithm text, key_id text, key_json text, used boolean,
       PRIMARY KEY ((user_id, device_id), algorithm))`,
    `CREATE TABLE IF NOT EXISTS e2ee_cross_signing_keys (
       user_id text, key_type text, key_json text,
       PRIMARY KEY ((user_id), key_type))`,
    `CREATE TABLE IF NOT EXISTS e2ee_signatures (
       target_user_id text, target_key_id text, signer_user_id text, signer_key_id text, signature text,
       PRIMARY KEY ((target_user_id), target_key_id, signer_user_id, signer_key_id))`,
    `CREATE TABLE IF NOT EXISTS e2ee_device_list_changes (
       bucket bigint, stream bigint, user_id text,
       PRIMARY KEY ((bucket), stream, user_id))`,
    // One row per bucket that holds changes: wide ranges (/keys/changes from an old token)
    // visit only those.
    `CREATE TABLE IF NOT EXISTS e2ee_device_list_buckets (
       shard int, bucket bigint,
       PRIMARY KEY ((shard), bucket))`,
    `CREATE TABLE IF NOT EXISTS e2ee_to_device (
       user_id text, device_id text, bucket bigint, stream bigint, seq int,
       type text, sender text, content_json text,
       PRIMARY KEY ((user_id, device_id, bucket), stream, seq))`,
    // A resurrected bucket row only costs one empty read, so its tombstones need not outlive
    // repair windows: short gc_grace keeps the partition free of them.
    `CREATE TABLE IF NOT EXISTS e2ee_to_device_index (
       user_id text, device_id text, bucket bigint, acked bigint STATIC,
       PRIMARY KEY ((user_id, device_id), bucket))
     WITH gc_grace_seconds = 3600`,
    `CREATE TABLE IF NOT EXISTS e2ee_backup_versions (
       user_id text, version int, algorithm text, auth_data_json text,
       etag bigint, key_count bigint, deleted boolean,
       PRIMARY KEY ((user_id), version))
     WITH CLUSTERING ORDER BY (version DESC)`,
    `CREATE TABLE IF NOT EXISTS e2ee_backup_rooms (
       user_id text, version int, room_id text,
       PRIMARY KEY ((user_id, version), room_id))`,
    `CREATE TABLE IF NOT EXISTS e2ee_backup_keys (
       user_id text, version int, room_id text, session_id text,
       first_message_index int, forwarded_count int, is_verified boolean, session_data_json text,
       PRIMARY KEY ((user_id, version, room_id), session_id))`,
    // uploaded_ts is -1 while pending and unused_expires_ts -1 once complete (no nulls bound).
    `CREATE TABLE IF NOT EXISTS media (
       media_id text PRIMARY KEY, user_id text, content_type text, upload_name text,
       size bigint, sha256 text, created_ts bigint, uploaded_ts bigint, unused_expires_ts bigint)`,
    // The expiry sweep is a global range query; an SAI index serves it without a queue table.
    `CREATE CUSTOM INDEX IF NOT EXISTS media_unused_expires_idx ON media (unused_expires_ts) USING 'StorageAttachedIndex'`,
    `CREATE TABLE IF NOT EXISTS media_by_user (
       user_id text, created_ts bigint, media_id text,
       PRIMARY KEY ((user_id), created_ts, media_id))`,
    `CREATE TABLE IF NOT EXISTS media_users (
       user_id text PRIMARY KEY, rev bigint, bytes bigint, pending map<text, bigint>)`,
    `CREATE TABLE IF NOT EXISTS media_thumbnails (
       media_id text, req_width int, req_height int, method text, animated boolean,
       width int, height int, content_type text, size bigint, created_ts bigint,
       PRIMARY KEY ((media_id), req_width, req_height, method, animated))`,
  ],
};
