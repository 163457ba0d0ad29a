// Per-user data of the Cassandra backend: accounts, devices and tokens, account data, filters,
// transaction responses, receipts, delivered markers, pushers and the push-job queue, the user
// directory and content reports. Read by other modules too (AdminStore lists `users`; unread
// counts read `receipts`), so every table's shape is spelled out here. The user directory has no
// tables of its own: it reads memberships and the public room list through the RoomStore.
//
// Nullable text columns hold the sentinel '' for "no value" (never a bound null, so no
// tombstones); the modules map '' back to null. A whole row that must vanish is deleted.

import type { CqlMigration } from './index.js';

/** Job rows expire a week after they were enqueued (see ../push-queue.ts). */
export const PUSH_JOB_TTL_S = 7 * 24 * 3600;

export const m0004: CqlMigration = {
  version: 4,
  name: 'users',
  statements: [
    // One row per account. password_hash / displayname / avatar_url: '' = null. Written with plain
    // writes only; uniqueness of user_id is decided by `user_ids` (below), never by this table.
    `CREATE TABLE IF NOT EXISTS users (
       user_id text PRIMARY KEY, password_hash text, admin boolean, deactivated boolean,
       created_ts bigint, displayname text, avatar_url text, is_guest boolean)`,
    // Claims of user IDs, written by LWT only (INSERT IF NOT EXISTS / UPDATE IF owner = x):
    // the one place that decides whether an ID is taken. `owner` is a random token per attempt.
    `CREATE TABLE IF NOT EXISTS user_ids (user_id text PRIMARY KEY, owner text, claimed_ts bigint)`,
    // OpenID tokens (rows TTL'd a day past expiry). `openid_meta` row 'high' holds the latest
    // expiry issued: tokens expiring more than a day before it count as pruned.
    `CREATE TABLE IF NOT EXISTS openid_tokens (token_hash text PRIMARY KEY, user_id text, expires_ts bigint)`,
    `CREATE TABLE IF NOT EXISTS openid_meta (name text PRIMARY KEY, max_expires bigint)`,

    // Devices: `live` is set by every upsert; a row without it is what a last-seen UPDATE left
    // behind after the device was deleted, and reads as absent. display_name '' = null.
    `CREATE TABLE IF NOT EXISTS devices (
       user_id text, device_id text, live boolean, display_name text, last_seen_ts bigint,
       last_seen_ip text, last_seen_user_agent text, PRIMARY KEY (user_id, device_id))`,
    // Access tokens by hash (the per-request lookup) and by owner (logout, device deletion).
    `CREATE TABLE IF NOT EXISTS access_tokens (token_hash text PRIMARY KEY, user_id text, device_id text, created_ts bigint)`,
    `CREATE TABLE IF NOT EXISTS access_tokens_by_user (
       user_id text, device_id text, token_hash text, PRIMARY KEY (user_id, device_id, token_hash))`,

    // Account data: latest value per key; `stream` is the position of its last write. room_id ''
    // = global. Change queries filter the user's partition by stream.
    `CREATE TABLE IF NOT EXISTS account_data (
       user_id text, room_id text, type text, content_json text, stream bigint,
       PRIMARY KEY (user_id, room_id, type))`,
    `CREATE TABLE IF NOT EXISTS filters (user_id text, filter_id text, filter_json text, PRIMARY KEY (user_id, filter_id))`,
    // First response wins (INSERT IF NOT EXISTS, never updated). A retry a month later is not a retry.
    `CREATE TABLE IF NOT EXISTS txn_responses (
       user_id text, device_id text, scope text, txn_id text, response_json text,
       PRIMARY KEY ((user_id, device_id), scope, txn_id)) WITH default_time_to_live = 2592000`,

    // Receipts: one row per (room, user, thread, type), the latest only; it only moves forwards
    // (event_stream grows). thread_id '' = unthreaded, 'main' = main timeline, else the thread
    // root's event ID. type: 'm.read' | 'm.read.private'. stream = position of the last write.
    // A room's receipts are one partition: `SELECT ... WHERE room_id = ?` (optionally AND user_id = ?).
    `CREATE TABLE IF NOT EXISTS receipts (
       room_id text, user_id text, thread_id text, type text, event_id text, event_stream bigint,
       ts bigint, stream bigint, PRIMARY KEY (room_id, user_id, thread_id, type))`,
    // Delivered markers: one row per (room, user), moving forwards like receipts.
    `CREATE TABLE IF NOT EXISTS delivered (
       room_id text, user_id text, event_id text, event_stream bigint, ts bigint, stream bigint,
       PRIMARY KEY (room_id, user_id))`,
    // "What changed in this room since position P" is asked by every syncing member after each
    // receipt or delivered marker: an index on stream answers it without reading the whole room
    // partition (thousands of rows in a big room), and without a change log to keep and prune.
    `CREATE CUSTOM INDEX IF NOT EXISTS receipts_stream ON receipts (stream) USING 'StorageAttachedIndex'`,
    `CREATE CUSTOM INDEX IF NOT EXISTS delivered_stream ON delivered (stream) USING 'StorageAttachedIndex'`,

    // Pushers by user, and the users holding each (app_id, pushkey). device_id/profile_tag '' = null.
    `CREATE TABLE IF NOT EXISTS pushers (
       user_id text, app_id text, pushkey text, device_id text, kind text, pushkey_ts bigint,
       app_display_name text, device_display_name text, profile_tag text, lang text, data_json text,
       PRIMARY KEY (user_id, app_id, pushkey))`,
    `CREATE TABLE IF NOT EXISTS pushers_by_key (app_id text, pushkey text, user_id text, PRIMARY KEY ((app_id, pushkey), user_id))`,
    // Push jobs, partitioned by the time they were enqueued (the id encodes it, see
    // ../push-queue.ts) and never deleted: a done job gets `done` (plain write), rows expire
    // by TTL. not_before/attempts/claim are written by LWT only (enqueue, claim, reschedule).
    `CREATE TABLE IF NOT EXISTS push_jobs (
       bucket bigint, id bigint, user_id text, app_id text, pushkey text, notification_json text,
       attempts int, not_before bigint, claim text, done boolean, PRIMARY KEY (bucket, id))
       WITH CLUSTERING ORDER BY (id ASC)
       AND default_time_to_live = ${PUSH_JOB_TTL_S}
       AND compaction = {'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}`,
    // Row 'low': the lowest job bucket that may still hold a job not done (scans start there).
    `CREATE TABLE IF NOT EXISTS push_queue_meta (name text PRIMARY KEY, low_bucket bigint)`,

    // Content reports, newest first within a month bucket; `report_buckets` lists the months.
    // reason and score may be null, '' is a reason: has_reason / has_score say which.
    `CREATE TABLE IF NOT EXISTS event_reports (
       bucket int, id timeuuid, room_id text, event_id text, reporter text, reason text, has_reason boolean,
       score double, has_score boolean, ts bigint, PRIMARY KEY (bucket, id)) WITH CLUSTERING ORDER BY (id DESC)`,
    `CREATE TABLE IF NOT EXISTS report_buckets (k text, bucket int, PRIMARY KEY (k, bucket)) WITH CLUSTERING ORDER BY (bucket DESC)`,
  ],
};
