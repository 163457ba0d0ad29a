// Rooms as a DAG (issue 11): prev_events edges (bare IDs, or v1/v2 [id, hashes] pairs), the auth
// chain index, state groups, event status flags and topological order. Existing rooms were linear,
// so their data converts exactly: edges and depth come from the stored PDUs; each event's state
// before/after and the room's current-state group at each event are rebuilt from state_history
// (which stays as the stream-keyed log of current-state changes that sync reads).

import type { Db } from '../db.js';
import { indexAuthChain } from '../dag.js';
import { createStateGroup, type Stmt } from '../state-groups.js';
import type { Migration } from './index.js';

export const dag: Migration = {
  version: 7,
  name: 'dag',
  up: `
    ALTER TABLE events ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE events ADD COLUMN outlier INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE events ADD COLUMN soft_failed INTEGER NOT NULL DEFAULT 0;
    -- Rejection reason; NULL for events that were not rejected.
    ALTER TABLE events ADD COLUMN rejected TEXT;
    -- State groups of the state right before and right after the event (NULL for outliers).
    ALTER TABLE events ADD COLUMN state_before INTEGER;
    ALTER TABLE events ADD COLUMN state_after INTEGER;
    -- The room's resolved current state right after this event was accepted (NULL for events
    -- that did not change it: outliers, soft-failed, rejected, backfilled).
    ALTER TABLE events ADD COLUMN room_state INTEGER;
    -- Auth chain index position (state events only); see src/store/sqlite/dag.ts.
    ALTER TABLE events ADD COLUMN chain_id INTEGER;
    ALTER TABLE events ADD COLUMN chain_seq INTEGER;
    UPDATE events SET depth = COALESCE(json_extract(pdu_json, '$.depth'), 0);

    -- Timeline reads see accepted events only; the partial indexes keep them index-only.
    CREATE INDEX events_room_timeline ON events (room_id, stream)
      WHERE outlier = 0 AND soft_failed = 0 AND rejected IS NULL;
    CREATE INDEX events_room_topo ON events (room_id, depth, stream)
      WHERE outlier = 0 AND soft_failed = 0 AND rejected IS NULL;
    CREATE INDEX events_room_state ON events (room_id, stream) WHERE room_state IS NOT NULL;
    CREATE INDEX events_chain ON events (chain_id, chain_seq) WHERE chain_id IS NOT NULL;

    CREATE TABLE event_edges (
      event_id TEXT NOT NULL,
      prev_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      PRIMARY KEY (event_id, prev_id)
    ) WITHOUT ROWID;
    CREATE INDEX event_edges_prev ON event_edges (prev_id);

    CREATE TABLE auth_chain_links (
      origin_chain INTEGER NOT NULL,
      origin_seq INTEGER NOT NULL,
      target_chain INTEGER NOT NULL,
      target_seq INTEGER NOT NULL,
      PRIMARY KEY (origin_chain, origin_seq, target_chain, target_seq)
    ) WITHOUT ROWID;
    -- Walking links backwards: which chains reach a given event (room 12's conflicted subgraph).
    CREATE INDEX auth_chain_links_target ON auth_chain_links (target_chain, target_seq);

    CREATE TABLE state_groups (
      id INTEGER PRIMARY KEY,
      room_id TEXT NOT NULL,
      prev_group INTEGER,
      -- 0: a snapshot holding every entry; otherwise prev_group's chain_len + 1.
      chain_len INTEGER NOT NULL,
      -- Entries of the last snapshot on the chain, and delta rows stacked on it since.
      snapshot_size INTEGER NOT NULL,
      delta_rows INTEGER NOT NULL
    );
    CREATE TABLE state_group_entries (
      group_id INTEGER NOT NULL,
      type TEXT NOT NULL,
      state_key TEXT NOT NULL,
      event_id TEXT,
      PRIMARY KEY (group_id, type, state_key)
    ) WITHOUT ROWID;

    CREATE TABLE room_current_group (
      room_id TEXT PRIMARY KEY,
      group_id INTEGER NOT NULL
    ) WITHOUT ROWID;

    INSERT INTO event_edges (event_id, prev_id, room_id)
      SELECT e.event_id, CASE p.type WHEN 'array' THEN json_extract(p.value, '$[0]') ELSE p.value END, e.room_id
      FROM events e, json_each(e.pdu_json, '$.prev_events') p
      WHERE p.type = 'text' OR (p.type = 'array' AND json_type(p.value, '$[0]') = 'text') ON CONFLICT DO NOTHING;
  `,
  run: (db: Db) => {
    const cache = new Map<string, ReturnType<Db['prepare']>>();
    const stmt: Stmt = (sql) => {
      let s = cache.get(sql);
      if (!s) cache.set(sql, (s = db.prepare(sql)));
      return s;
    };
    const events = db
      .prepare(
        `SELECT stream, event_id, room_id, type, state_key,
           CASE WHEN state_key IS NULL THEN NULL ELSE json_extract(pdu_json, '$.auth_events') END AS auth_json
         FROM events ORDER BY stream`,
      )
      .iterate() as Iterable<{
      stream: number;
      event_id: string;
      room_id: string;
      type: string;
      state_key: string | null;
      auth_json: string | null;
    }>;
    const authOf = (json: string | null): string[] => {
      const refs: unknown = json === null ? [] : JSON.parse(json);
      if (!Array.isArray(refs)) return [];
      return refs.map((r: unknown) => (Array.isArray(r) ? r[0] : r)).filter((id): id is string => typeof id === 'string');
    };
    const changesAt = stmt('SELECT type, state_key, event_id FROM state_history WHERE room_id = ? AND stream = ?');
    const current = new Map<string, number>();
    const rows = [...events];
    for (const ev of rows) {
      if (ev.state_key !== null) {
        indexAuthChain(stmt, ev.event_id, authOf(ev.auth_json));
      }
      const before = current.get(ev.room_id) ?? createStateGroup(stmt, ev.room_id, null, []);
      const after =
        ev.state_key !== null ? createStateGroup(stmt, ev.room_id, before, [{ type: ev.type, stateKey: ev.state_key, eventId: ev.event_id }]) : before;
      const changes = (changesAt.all(ev.room_id, ev.stream) as { type: string; state_key: string; event_id: string }[]).map((r) => ({
        type: r.type,
        stateKey: r.state_key,
        eventId: r.event_id,
      }));
      const own = changes.length === 1 && changes[0].eventId === ev.event_id && ev.state_key !== null;
      const roomState = own ? after : createStateGroup(stmt, ev.room_id, before, changes);
      current.set(ev.room_id, roomState);
      stmt('UPDATE events SET state_before = ?, state_after = ?, room_state = ? WHERE event_id = ?').run(before, after, roomState, ev.event_id);
    }
    const setCurrent = stmt('INSERT INTO room_current_group (room_id, group_id) VALUES (?, ?)');
    for (const [roomId, group] of current) setCurrent.run(roomId, group);
  },
};
