// Tables derived from accepted events (push actions, relations, search) plus the admin block
// list. The derived rows are written in the event's own logged batch by the EventWriteHooks of
// ../notifications.ts, ../relations.ts and ../search.ts, so they exist exactly when the event does.
//
// Buckets: `bucket` = floor(stream / size) with the sizes in those modules; each *_buckets
// table lists the non-empty buckets of its partition owner, so readers never probe empty ones.
// Tables written `USING TIMESTAMP <stream position>` (notif_own_latest, threads) keep the row
// of the highest position whatever order the writes arrive in; nothing else writes them.

import type { CqlMigration } from './index.js';

export const m0003: CqlMigration = {
  version: 3,
  name: 'derived',
  statements: [
    // --- push actions (notifications.ts) ---
    // Newest first per user (the /notifications list). thread_id '' = main timeline.
    `CREATE TABLE IF NOT EXISTS push_actions (
       user_id text, bucket bigint, stream bigint, room_id text, event_id text,
       notify boolean, highlight boolean, thread_id text, actions_json text, ts bigint,
       PRIMARY KEY ((user_id, bucket), stream)) WITH CLUSTERING ORDER BY (stream DESC)`,
    // Per user and room, for unread counts (a range above the read position).
    `CREATE TABLE IF NOT EXISTS push_actions_by_room (
       user_id text, bucket bigint, room_id text, stream bigint,
       notify boolean, highlight boolean, thread_id text,
       PRIMARY KEY ((user_id, bucket), room_id, stream))`,
    `CREATE TABLE IF NOT EXISTS push_user_buckets (
       user_id text, bucket bigint, PRIMARY KEY ((user_id), bucket)) WITH CLUSTERING ORDER BY (bucket DESC)`,
    // One shared result per event (PushBulkInput); except_json is a JSON array of user IDs.
    `CREATE TABLE IF NOT EXISTS push_bulk (
       room_id text, bucket bigint, stream bigint, event_id text, sender text, thread_id text,
       notify boolean, highlight boolean, actions_json text, except_json text, ts bigint,
       PRIMARY KEY ((room_id, bucket), stream)) WITH CLUSTERING ORDER BY (stream DESC)`,
    `CREATE TABLE IF NOT EXISTS push_bulk_buckets (
       room_id text, bucket bigint, PRIMARY KEY ((room_id), bucket)) WITH CLUSTERING ORDER BY (bucket DESC)`,
    // Each user's membership changes ("joined just before S?" for bulk results).
    `CREATE TABLE IF NOT EXISTS notif_memberships (
       user_id text, room_id text, stream bigint, membership text,
       PRIMARY KEY ((user_id), room_id, stream))`,
    // The user's latest own accepted event per room (written USING TIMESTAMP stream).
    `CREATE TABLE IF NOT EXISTS notif_own_latest (
       user_id text, room_id text, stream bigint, PRIMARY KEY ((user_id), room_id))`,

    // --- relations (relations.ts) ---
    `CREATE TABLE IF NOT EXISTS relations (
       room_id text, relates_to text, stream bigint, event_id text, rel_type text, event_type text, sender text,
       PRIMARY KEY ((room_id, relates_to), stream))`,
    `CREATE TABLE IF NOT EXISTS relations_by_type (
       room_id text, relates_to text, rel_type text, stream bigint, event_id text, event_type text, sender text,
       PRIMARY KEY ((room_id, relates_to), rel_type, stream))`,
    // Where a relating event's rows are, for its redaction.
    `CREATE TABLE IF NOT EXISTS relation_of_event (
       event_id text PRIMARY KEY, room_id text, relates_to text, rel_type text, stream bigint)`,
    // A room's threads with their latest reply (written USING TIMESTAMP position).
    `CREATE TABLE IF NOT EXISTS threads (
       room_id text, root_event_id text, latest_stream bigint, latest_event_id text,
       PRIMARY KEY ((room_id), root_event_id))`,
    // Every thread reply by position, newest first: getThreads walks it and keeps the rows that
    // are still their thread's latest (per threads), so it never reads all of a room's threads.
    `CREATE TABLE IF NOT EXISTS thread_activity (
       room_id text, bucket bigint, stream bigint, root_event_id text,
       PRIMARY KEY ((room_id, bucket), stream)) WITH CLUSTERING ORDER BY (stream DESC)`,
    `CREATE TABLE IF NOT EXISTS thread_buckets (
       room_id text, bucket bigint, PRIMARY KEY ((room_id), bucket)) WITH CLUSTERING ORDER BY (bucket DESC)`,

    // --- search (search.ts) ---
    `CREATE TABLE IF NOT EXISTS search_docs (
       room_id text, bucket bigint, stream bigint, event_id text, key text, event_type text, sender text, body text,
       PRIMARY KEY ((room_id, bucket), stream))`,
    `CREATE TABLE IF NOT EXISTS search_terms (
       room_id text, bucket bigint, term text, stream bigint,
       PRIMARY KEY ((room_id, bucket), term, stream))`,
    `CREATE TABLE IF NOT EXISTS search_buckets (
       room_id text, bucket bigint, PRIMARY KEY ((room_id), bucket)) WITH CLUSTERING ORDER BY (bucket DESC)`,
    `CREATE TABLE IF NOT EXISTS search_of_event (
       event_id text PRIMARY KEY, room_id text, stream bigint)`,

    // --- admin (admin.ts): named blocked_room, not room_id, so deleting a room keeps it ---
    `CREATE TABLE IF NOT EXISTS blocked_rooms (blocked_room text PRIMARY KEY, blocked_ts bigint)`,
  ],
};
