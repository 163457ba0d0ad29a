// createRoom latency and commits (not run by mocha): sequential RoomInput.createRoom calls with
// the usual five initial events on a real SQLite file (synchronous full, WAL fsync off the
// loop), reporting per-room latency, transactions, fsyncs and process CPU.
//   node dist/bench/create-room.js [rooms=200] [runs=3]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey } from '../src/protocol/crypto.js';
import { RoomInput } from '../src/room/room-input.js';
import { openSqliteStore } from '../src/store/sqlite/index.js';
import { LocalNotifier } from '../src/sync/notifier.js';

const SERVER = 'bench.test';
const alice = `@alice:${SERVER}`;
const [rooms, runs] = process.argv.slice(2).map(Number);
const ROOMS = rooms || 200;
const RUNS = runs || 3;

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

for (let run = 0; run < RUNS; run++) {
  const dir = mkdtempSync(join(tmpdir(), 'hearth-cr-'));
  const store = await openSqliteStore({ path: join(dir, 'h.sqlite'), synchronous: 'full' });
  const input = new RoomInput({ store, notifier: new LocalNotifier(), serverName: SERVER, signingKey: generateSigningKey('b') });
  const lat: number[] = [];
  const tx0 = store.writeStats().transactions;
  const syncs0 = store.writeStats().syncs;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < ROOMS; i++) {
    const t0 = performance.now();
    await input.createRoom(`!r${run}_${i}:${SERVER}`, '11', alice, [
      { type: 'm.room.create', stateKey: '', sender: alice, content: { room_version: '11' } },
      { type: 'm.room.member', stateKey: alice, sender: alice, content: { membership: 'join' } },
      { type: 'm.room.power_levels', stateKey: '', sender: alice, content: { users: { [alice]: 100 } } },
      { type: 'm.room.join_rules', stateKey: '', sender: alice, content: { join_rule: 'public' } },
      { type: 'm.room.history_visibility', stateKey: '', sender: alice, content: { history_visibility: 'shared' } },
    ]);
    lat.push(performance.now() - t0);
  }
  const cpu = process.cpuUsage(cpu0);
  const tx = (store.writeStats().transactions - tx0) / ROOMS;
  const syncs = (store.writeStats().syncs - syncs0) / ROOMS;
  await input.drain();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  console.log(`run ${run + 1}: ${ROOMS} createRooms, p50 ${pct(lat, 50).toFixed(2)} ms, p90 ${pct(lat, 90).toFixed(2)} ms, ${tx.toFixed(2)} transactions and ${syncs.toFixed(2)} WAL fsyncs each, process CPU ${((cpu.user + cpu.system) / ROOMS).toFixed(0)} µs each`);
}
