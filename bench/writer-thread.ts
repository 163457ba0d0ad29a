// Would a writer thread pay off? (not run by mocha). Runs the same persistEvent load twice:
// "inline" (today: SqliteStore on the main thread, grouped commits, WAL fsync on libuv's pool)
// and "worker" (a prototype of the issue-10 design: a worker_threads writer owns the connection
// and its write queue; the main thread only posts each tick's writes as one message and gets
// each batch's results back once durable). Reports, per event, the main thread's CPU (what a
// writer thread would take off the event loop), the whole process's CPU (what the machine pays)
// and the rate. Pin it with taskset to see the bench's one-CPU case:
//   node dist/bench/writer-thread.js [events=6000] [rooms=50] [runs=3]
//   taskset -c 0 node dist/bench/writer-thread.js
// Closed loop, one write in flight per room (as a room's queue without pipelining).

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { openSqliteStore } from '../src/store/sqlite/index.js';
import type { PersistEventInput, PersistEventResult, RoomRecord, Store } from '../src/store/types.js';
import { FakeRoom, userId } from '../spec/store/fixtures.js';

type Req = { id: number; op: 'createRoom'; arg: RoomRecord } | { id: number; op: 'persistEvent'; arg: PersistEventInput };
type Res = { id: number; ok: boolean; value?: unknown; error?: string };

/** CPU seconds of one thread of this process (schedstat: ns on CPU). */
function threadCpu(tid: number): number {
  return Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
}

if (!isMainThread) {
  // The writer: one store, fed by batches of requests, answering each batch once its writes settle.
  const store = await openSqliteStore({ path: (workerData as { path: string }).path, synchronous: 'full' });
  let replies: Res[] = [];
  let scheduled = false;
  const reply = (r: Res) => {
    replies.push(r);
    if (!scheduled) {
      scheduled = true;
      queueMicrotask(() => {
        scheduled = false;
        const out = replies;
        replies = [];
        parentPort!.postMessage(out);
      });
    }
  };
  parentPort!.on('message', (reqs: Req[] | 'close') => {
    if (reqs === 'close') {
      void store.close().then(() => parentPort!.postMessage('closed'));
      return;
    }
    for (const r of reqs) {
      const p: Promise<unknown> = r.op === 'createRoom' ? store.rooms.createRoom(r.arg) : store.rooms.persistEvent(r.arg);
      p.then(
        (value) => reply({ id: r.id, ok: true, value }),
        (err: unknown) => reply({ id: r.id, ok: false, error: String(err) }),
      );
    }
  });
  parentPort!.postMessage('ready');
} else {
  const [events, roomCount, runs] = process.argv.slice(2).map(Number);
  const EVENTS = events || 6000;
  const ROOMS = roomCount || 50;
  const RUNS = runs || 3;

  /** The main thread's side of the prototype: a store shim that posts each tick's writes as one message. */
  async function workerStore(path: string): Promise<{ store: Store; close: () => Promise<void> }> {
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { path } });
    const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
    let nextId = 0;
    let out: Req[] = [];
    let ready!: () => void;
    const readyP = new Promise<void>((r) => (ready = r));
    let closed!: () => void;
    const closedP = new Promise<void>((r) => (closed = r));
    worker.on('message', (msg: Res[] | 'ready' | 'closed') => {
      if (msg === 'ready') return ready();
      if (msg === 'closed') return closed();
      for (const r of msg) {
        const w = waiting.get(r.id)!;
        waiting.delete(r.id);
        if (r.ok) w.resolve(r.value);
        else w.reject(new Error(r.error));
      }
    });
    await readyP;
    const call = <T>(req: Omit<Req, 'id'>): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        const id = nextId++;
        waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
        if (out.length === 0) {
          setImmediate(() => {
            const batch = out;
            out = [];
            worker.postMessage(batch);
          });
        }
        out.push({ ...req, id } as Req);
      });
    const rooms = {
      createRoom: (arg: RoomRecord) => call<void>({ op: 'createRoom', arg }),
      persistEvent: (arg: PersistEventInput) => call<PersistEventResult>({ op: 'persistEvent', arg }),
    };
    return {
      store: { rooms } as unknown as Store,
      close: async () => {
        worker.postMessage('close');
        await closedP;
        await worker.terminate();
      },
    };
  }

  async function inlineStore(path: string): Promise<{ store: Store; close: () => Promise<void> }> {
    const store = await openSqliteStore({ path, synchronous: 'full' });
    return { store, close: () => store.close() };
  }

  async function runOnce(mode: 'inline' | 'worker'): Promise<{ rate: number; mainUs: number; processUs: number }> {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-wt-'));
    const { store, close } = await (mode === 'inline' ? inlineStore : workerStore)(join(dir, 'bench.sqlite'));
    const rooms = Array.from({ length: ROOMS }, () => new FakeRoom());
    await Promise.all(rooms.map((r) => r.create(store, userId('creator'))));
    const perRoom = Math.ceil(EVENTS / ROOMS);
    const main0 = threadCpu(process.pid);
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await Promise.all(
      rooms.map(async (room, r) => {
        for (let i = 0; i < perRoom; i++) await room.message(store, userId(`u${(r + i) % 97}`), `message ${i} `.padEnd(120, 'x'));
      }),
    );
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const mainSec = threadCpu(process.pid) - main0;
    await close();
    rmSync(dir, { recursive: true, force: true });
    const n = perRoom * ROOMS;
    return { rate: n / seconds, mainUs: (mainSec * 1e6) / n, processUs: (cpu.user + cpu.system) / n };
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rows: Record<string, { rate: number[]; mainUs: number[]; processUs: number[] }> = {};
  for (let run = 0; run < RUNS; run++) {
    // Alternated, so drift in the machine's load hits both modes alike.
    for (const mode of ['inline', 'worker'] as const) {
      const r = await runOnce(mode);
      const row = (rows[mode] ??= { rate: [], mainUs: [], processUs: [] });
      row.rate.push(r.rate);
      row.mainUs.push(r.mainUs);
      row.processUs.push(r.processUs);
      console.log(`${mode.padEnd(6)} run ${run + 1}: ${Math.round(r.rate)} events/s, main thread ${r.mainUs.toFixed(0)} µs/event, process ${r.processUs.toFixed(0)} µs/event`);
    }
  }
  for (const [mode, row] of Object.entries(rows)) {
    console.log(
      `${mode.padEnd(6)} median of ${RUNS}: ${Math.round(median(row.rate))} events/s, main thread ${median(row.mainUs).toFixed(0)} µs/event, ` +
        `process ${median(row.processUs).toFixed(0)} µs/event (${ROOMS} rooms, ${Math.ceil(EVENTS / ROOMS) * ROOMS} events, synchronous full)`,
    );
  }
}
