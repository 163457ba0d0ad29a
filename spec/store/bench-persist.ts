// Throughput of SqliteStore.persistEvent on a real temp file (not run by mocha).
//   node dist/spec/store/bench-persist.js [events=5000] [rooms=50] [runs=3]
// Two shapes: "burst" issues every send at once; "per-room writers" keeps one send in flight
// per room (what the room-input queue does), so at most `rooms` writes share a batch.
// Closed loop, so this is a capacity figure, not a latency-at-rate figure.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';
import { FakeRoom, userId } from './fixtures.js';

const [events, roomCount, runs] = process.argv.slice(2).map(Number);
const EVENTS = events || 5000;
const ROOMS = roomCount || 50;
const RUNS = runs || 3;

async function setup(sync: 'full' | 'normal'): Promise<{ store: SqliteStore; rooms: FakeRoom[]; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'hearth-bench-'));
  const store = await openSqliteStore({ path: join(dir, 'bench.sqlite'), synchronous: sync });
  const rooms = Array.from({ length: ROOMS }, () => new FakeRoom());
  await Promise.all(rooms.map((r) => r.create(store, userId('creator'))));
  return { store, rooms, dir };
}

async function burst(store: SqliteStore, rooms: FakeRoom[]): Promise<void> {
  await Promise.all(Array.from({ length: EVENTS }, (_, i) => rooms[i % rooms.length].message(store, userId(`u${i % 97}`), `message ${i} `.padEnd(120, 'x'))));
}

async function perRoomWriters(store: SqliteStore, rooms: FakeRoom[]): Promise<void> {
  const perRoom = Math.ceil(EVENTS / rooms.length);
  await Promise.all(
    rooms.map(async (room, r) => {
      for (let i = 0; i < perRoom; i++) await room.message(store, userId(`u${(r + i) % 97}`), `message ${i} `.padEnd(120, 'x'));
    }),
  );
}

async function measure(name: string, sync: 'full' | 'normal', fn: (s: SqliteStore, r: FakeRoom[]) => Promise<void>): Promise<void> {
  const rates: number[] = [];
  let batches = '';
  for (let run = 0; run < RUNS; run++) {
    const { store, rooms, dir } = await setup(sync);
    const before = store.writeStats();
    const t0 = process.hrtime.bigint();
    await fn(store, rooms);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const after = store.writeStats();
    rates.push(EVENTS / seconds);
    const tx = after.transactions - before.transactions;
    batches = `${tx} transactions, avg batch ${((after.writes - before.writes) / tx).toFixed(1)}`;
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  rates.sort((a, b) => a - b);
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  console.log(
    `${name.padEnd(18)} synchronous=${sync.padEnd(6)} ${EVENTS} events / ${ROOMS} rooms: median ${fmt(rates[Math.floor(rates.length / 2)])}/s ` +
      `(min ${fmt(rates[0])}, max ${fmt(rates[rates.length - 1])}; last run ${batches})`,
  );
}

for (const sync of ['full', 'normal'] as const) {
  await measure('burst', sync, burst);
  await measure('per-room writers', sync, perRoomWriters);
}
