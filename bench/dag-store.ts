// Micro-benchmark of the DAG store (issue 11) on a real SQLite file: a room of `members` joins
// (each join is its own auth chain, the worst case for the chain cover index), then two forks
// that each change the power levels and 50 memberships. Reports the auth chain difference and
// room 12's conflicted subgraph of the two fork states, and the rows the state groups and the
// index take.
//
//   npx tsc -p tsconfig.json && node dist/bench/dag-store.js [members=10000] [runs=10]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { openSqliteStore } from '../src/store/sqlite/index.js';
import type { JsonObject, Pdu } from '../src/protocol/types.js';

const members = Number(process.argv[2] ?? 10_000);
const runs = Number(process.argv[3] ?? 10);
const dir = mkdtempSync(join(tmpdir(), 'hearth-dag-bench-'));
const path = join(dir, 'dag.sqlite');
const roomId = '!bench:example.com';
const admin = '@admin:example.com';

const store = await openSqliteStore({ path, synchronous: 'normal' });
let depth = 0;
let prev: string[] = [];
const newId = (): string => '$' + randomBytes(32).toString('base64url');

async function put(type: string, stateKey: string, content: JsonObject, auth: string[], sender = admin): Promise<string> {
  const eventId = newId();
  const pdu: Pdu = {
    room_id: roomId,
    sender,
    type,
    state_key: stateKey,
    content,
    origin_server_ts: 1_700_000_000_000 + ++depth,
    depth,
    prev_events: prev,
    auth_events: auth,
    hashes: { sha256: 'x' },
    signatures: {},
  };
  await store.rooms.persistEvent({ eventId, pdu, stateDelta: [{ type, stateKey, eventId }], forwardExtremities: [eventId] });
  prev = [eventId];
  return eventId;
}

const ms = (t0: number): string => (performance.now() - t0).toFixed(1);

try {
  await store.rooms.createRoom({ roomId, roomVersion: '11', creator: admin, createdTs: 1 });
  const create = await put('m.room.create', '', { room_version: '11' }, []);
  const adminJoin = await put('m.room.member', admin, { membership: 'join' }, [create], admin);
  const pl = await put('m.room.power_levels', '', { users: { [admin]: 100 } }, [create, adminJoin]);
  const rules = await put('m.room.join_rules', '', { join_rule: 'public' }, [create, pl, adminJoin]);
  const t0 = performance.now();
  const joins: Promise<string>[] = [];
  for (let i = 0; i < members; i++) {
    const u = `@u${i}:example.com`;
    joins.push(put('m.room.member', u, { membership: 'join' }, [create, pl, rules], u));
  }
  await Promise.all(joins);
  console.log(`persisted ${members} joins in ${ms(t0)} ms`);

  const base = new Map((await store.rooms.getCurrentState(roomId)).map((e) => [`${e.type}|${e.stateKey}`, e.eventId]));
  const forks: string[][] = [];
  const conflicted: string[] = [];
  for (let f = 0; f < 2; f++) {
    const state = new Map(base);
    const pl2 = await put('m.room.power_levels', '', { users: { [admin]: 100 }, fork: f }, [create, pl, adminJoin]);
    state.set('m.room.power_levels|', pl2);
    conflicted.push(pl2);
    for (let i = 0; i < 50; i++) {
      const u = `@u${f * 50 + i}:example.com`;
      const leave = await put('m.room.member', u, { membership: 'leave' }, [create, pl2, base.get(`m.room.member|${u}`) as string], u);
      state.set(`m.room.member|${u}`, leave);
      conflicted.push(leave);
    }
    forks.push([...state.values()]);
  }

  const time = async (label: string, f: () => Promise<Set<string>>): Promise<void> => {
    const samples: number[] = [];
    let size = 0;
    for (let r = 0; r < runs + 2; r++) {
      const t = performance.now();
      size = (await f()).size;
      if (r >= 2) samples.push(performance.now() - t);
    }
    samples.sort((a, b) => a - b);
    console.log(`${label}: ${size} events, median ${samples[Math.floor(samples.length / 2)].toFixed(1)} ms, max ${samples[samples.length - 1].toFixed(1)} ms (${runs} runs)`);
  };
  await time(`auth chain difference of two ${forks[0].length}-event states`, () => store.rooms.getAuthChainDifference(roomId, forks));
  await time(`conflicted subgraph of ${conflicted.length} events`, () => store.rooms.getConflictedSubgraph(roomId, conflicted));
  const t1 = performance.now();
  const full = await store.rooms.getStateAtEvent(prev[0], 'after');
  console.log(`state at the last event: ${full?.length} entries in ${ms(t1)} ms`);
} finally {
  await store.close();
}
const db = new Database(path, { readonly: true });
const count = (sql: string): number => (db.prepare(sql).get() as { n: number }).n;
console.log(
  `rows: events ${count('SELECT COUNT(*) AS n FROM events')}, state_groups ${count('SELECT COUNT(*) AS n FROM state_groups')}, ` +
    `state_group_entries ${count('SELECT COUNT(*) AS n FROM state_group_entries')}, auth chains ${count('SELECT COUNT(DISTINCT chain_id) AS n FROM events')}, ` +
    `chain links ${count('SELECT COUNT(*) AS n FROM auth_chain_links')}`,
);
db.close();
rmSync(dir, { recursive: true, force: true });
