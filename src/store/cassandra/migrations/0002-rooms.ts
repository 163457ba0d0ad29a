// RoomStore tables (../rooms.ts and the modules it uses). Conventions:
// - Per-room event data is bucketed: timeline and state-change rows by stream position
//   (positionBucket: the hour of the position's clock; backfill's negative positions in blocks),
//   topological rows by depth. room_buckets lists each room's non-empty buckets so a page never probes empty ones.
// - Cells written with an LWT (rooms, event_claims, event_txns, room_aliases, backfill_seq) are
//   only ever written with LWTs; every other table takes plain writes only.
// - '' stands for "no value" where a column must say so (removed state keys); optional columns
//   are left unset rather than bound to null.

import type { CqlMigration } from './index.js';

export const m0002: CqlMigration = {
  version: 2,
  name: 'rooms',
  statements: [
    `CREATE TABLE IF NOT EXISTS rooms (room_id text PRIMARY KEY, room_version text, creator text, created_ts bigint)`,
    // Backfill positions (negative, below every stream position): how many were handed out, in
    // blocks claimed with LWTs (../events.ts).
    `CREATE TABLE IF NOT EXISTS backfill_seq (name text PRIMARY KEY, high bigint)`,
    // Uniqueness claims, taken with IF NOT EXISTS before an event's batch is written.
    `CREATE TABLE IF NOT EXISTS event_claims (event_id text PRIMARY KEY, room_id text)`,
    `CREATE TABLE IF NOT EXISTS event_txns (
       room_id text, user_id text, device_id text, scope text, txn_id text, event_id text,
       PRIMARY KEY ((room_id, user_id, device_id, scope, txn_id)))`,
    // Every stored event by ID. (chain_id, chain_seq): the auth chain index position of a stored,
    // non-rejected state event (see ../dag.ts); unset for every other event.
    `CREATE TABLE IF NOT EXISTS events (
       event_id text PRIMARY KEY, room_id text, stream bigint, type text, state_key text, sender text,
       pdu_json text, redacted_by text, txn_device text, txn_id text, depth bigint,
       outlier boolean, soft_failed boolean, rejected text, state_before bigint, state_after bigint,
       prev_events frozen<list<text>>, chain_id bigint, chain_seq bigint)`,
    // The auth chain index (chain cover): chain members by seq, and links both ways.
    `CREATE TABLE IF NOT EXISTS auth_chains (chain_id bigint, seq bigint, event_id text, room_id text, PRIMARY KEY ((chain_id), seq))`,
    `CREATE TABLE IF NOT EXISTS auth_chain_links (origin_chain bigint, origin_seq bigint, target_chain bigint, target_seq bigint,
       PRIMARY KEY ((origin_chain), origin_seq, target_chain, target_seq))`,
    `CREATE TABLE IF NOT EXISTS auth_chain_links_in (target_chain bigint, target_seq bigint, origin_chain bigint, origin_seq bigint,
       PRIMARY KEY ((target_chain), target_seq, origin_chain, origin_seq))`,
    `CREATE TABLE IF NOT EXISTS event_children (prev_id text, event_id text, room_id text, PRIMARY KEY ((prev_id), event_id))`,
    // Timeline indexes (accepted events only, backfill included): stream order and (depth, stream).
    `CREATE TABLE IF NOT EXISTS room_timeline (
       room_id text, bucket bigint, stream bigint, event_id text, type text, sender text,
       PRIMARY KEY ((room_id, bucket), stream))`,
    `CREATE TABLE IF NOT EXISTS room_topo (
       room_id text, bucket bigint, depth bigint, stream bigint, event_id text, type text, sender text,
       PRIMARY KEY ((room_id, bucket), depth, stream))`,
    // kind: 't' room_timeline, 'o' room_topo (depth buckets), 's' state_changes/state_log.
    `CREATE TABLE IF NOT EXISTS room_buckets (room_id text, kind text, bucket bigint, PRIMARY KEY ((room_id), kind, bucket))`,
    // The room's DAG head: one row, overwritten by the room's writer (frozen: no tombstones).
    `CREATE TABLE IF NOT EXISTS room_heads (room_id text PRIMARY KEY, extremities frozen<set<text>>, current_group bigint)`,
    `CREATE TABLE IF NOT EXISTS current_state (room_id text, type text, state_key text, event_id text, stream bigint,
       PRIMARY KEY ((room_id), type, state_key))`,
    `CREATE TABLE IF NOT EXISTS state_history (room_id text, type text, state_key text, stream bigint, event_id text,
       PRIMARY KEY ((room_id, type, state_key), stream))`,
    `CREATE TABLE IF NOT EXISTS state_changes (room_id text, bucket bigint, stream bigint, type text, state_key text, event_id text,
       PRIMARY KEY ((room_id, bucket), stream, type, state_key))`,
    // The room's current-state group from `stream` on (a row only where it changed).
    `CREATE TABLE IF NOT EXISTS state_log (room_id text, bucket bigint, stream bigint, group_id bigint,
       PRIMARY KEY ((room_id, bucket), stream))`,
    // chain: group IDs from the snapshot up to this group; reading a group reads each of them.
    `CREATE TABLE IF NOT EXISTS state_groups (group_id bigint PRIMARY KEY, room_id text, chain frozen<list<bigint>>,
       snapshot_size int, delta_rows int)`,
    `CREATE TABLE IF NOT EXISTS state_group_entries (group_id bigint, type text, state_key text, event_id text,
       PRIMARY KEY ((group_id), type, state_key))`,
    `CREATE TABLE IF NOT EXISTS memberships (room_id text, user_id text, membership text, event_id text, stream bigint,
       PRIMARY KEY ((room_id), user_id))`,
    `CREATE TABLE IF NOT EXISTS user_memberships (user_id text, room_id text, membership text, event_id text, stream bigint,
       PRIMARY KEY ((user_id), room_id))`,
    `CREATE TABLE IF NOT EXISTS membership_history (user_id text, stream bigint, room_id text, membership text, event_id text,
       PRIMARY KEY ((user_id), stream, room_id))`,
    `CREATE TABLE IF NOT EXISTS forgotten_rooms (user_id text, room_id text, forgotten boolean, PRIMARY KEY ((user_id), room_id))`,
    `CREATE TABLE IF NOT EXISTS room_aliases (alias text PRIMARY KEY, room_id text, creator text)`,
    `CREATE TABLE IF NOT EXISTS room_alias_index (room_id text, alias text, PRIMARY KEY ((room_id), alias))`,
    `CREATE TABLE IF NOT EXISTS room_visibility (room_id text PRIMARY KEY, visibility text)`,
    // One partition: the public directory is small and read whole.
    `CREATE TABLE IF NOT EXISTS public_rooms (shard int, room_id text, PRIMARY KEY ((shard), room_id))`,
  ],
};
