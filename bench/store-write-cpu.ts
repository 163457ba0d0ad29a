// Measures (does not assert) the SQLite store's main-thread CPU per persisted message as a room
// history grows: 50 rooms, one persistEvent in flight per room (grouped commits, synchronous
// full, the WAL fsync off the event loop), P phases of N messages per room; per phase the main
// thread's on-CPU time (/proc/self/task/<pid>/schedstat: not the fsync thread, not other
// processes) divided by the phase's events. The cost per event climbs with the history (more
// distinct index pages per commit and per checkpoint), so one figure per phase.
//
//   npm run build && node dist/bench/store-write-cpu.js [phases=8] [perRoomPerPhase=30]
//   HEARTH_BENCH_SERVER_ROOT=/other/checkout node dist/bench/store-write-cpu.js   (that build's store, for A/B)

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const PHASES = Number(process.argv[2] ?? 8);
const PER = Number(process.argv[3] ?? 30);
const ROOMS = 50;

const root = process.env.HEARTH_BENCH_SERVER_ROOT;
const mod = (p: string) => (root ? pathToFileURL(join(root, 'dist', p)).href : `../${p}`);
const { openSqliteStore } = (await import(mod('src/store/sqlite/index.js'))) as typeof import('../src/store/sqlite/index.js');
const { FakeRoom, userId } = (await import(mod('spec/store/fixtures.js'))) as typeof import('../spec/store/fixtures.js');

/** On-CPU µs of this process's main thread. */
const mainThreadCpu = () => Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e3;

const dir = mkdtempSync(join(tmpdir(), 'hearth-store-write-'));
try {
  const store = await openSqliteStore({ path: join(dir, 'bench.sqlite'), synchronous: 'full' });
  const rooms = Array.from({ length: ROOMS }, () => new FakeRoom());
  await Promise.all(rooms.map((r) => r.create(store, userId('creator'))));
  const phase = (n: number) =>
    Promise.all(
      rooms.map(async (room, r) => {
        for (let i = 0; i < n; i++) await room.message(store, userId(`u${(r + i) % 97}`), `message ${i} `.padEnd(120, 'x'));
      }),
    );
  await phase(10);
  const perPhase: string[] = [];
  for (let p = 0; p < PHASES; p++) {
    const c0 = mainThreadCpu();
    await phase(PER);
    perPhase.push(((mainThreadCpu() - c0) / (PER * ROOMS)).toFixed(0));
  }
  await store.close();
  console.log(`store-write-cpu: ${ROOMS} rooms, ${PHASES} phases × ${PER * ROOMS} messages; main-thread µs per message by phase: ${perPhase.join(' ')}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
