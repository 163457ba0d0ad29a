// Event-loop stall and GC recorder, preloaded into the bench's processes to find what a latency
// tail is made of (issue 10). Off unless HEARTH_LOOP_PROBE names a directory:
//   HEARTH_LOOP_PROBE=/tmp/probe HEARTH_BENCH_SAMPLES=/tmp/probe/samples.csv \
//   NODE_OPTIONS="--import $PWD/dist/bench/lib/loop-probe.js" npm run bench -- --quick --scenario fanout --no-docs
//   node dist/bench/tail-report.js /tmp/probe
// It records, with wall-clock times, every turn of the loop longer than 8 ms (a 2 ms interval
// timer that fired late), split with the main thread's /proc schedstat into on-CPU time (our own
// synchronous work: what a quiet machine would see as the stall) and run-queue wait (the thread
// was preempted: machine load); every GC pause over 1 ms; and the monotonic-clock offset that
// lines the records up with a --cpu-prof profile. Only the server (dist/src/main.js, or a
// fixed-work bench's server child) and the generator (dist/bench/run.js) record; each writes <dir>/<server|gen>-<pid>.jsonl on exit.
// Cost: one timer every 2 ms and a 100-byte /proc read per tick (~1 % of a core).

import { closeSync, openSync, readSync, writeFileSync } from 'node:fs';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

export type ProbeRecord =
  | { k: 'stall'; t: number; d: number; cpu: number; wait: number }
  | { k: 'gc'; t: number; d: number; kind: number | undefined }
  | { k: 'clock'; hrus: number; t: number };

const dir = process.env.HEARTH_LOOP_PROBE;
const main = process.argv[1] ?? '';
// A fixed-work bench's server child (bench/lib/cpu-child.ts) runs the bench's script with --server.
const role = main.endsWith('dist/src/main.js') || process.argv.includes('--server') ? 'server' : main.endsWith('dist/bench/run.js') ? 'gen' : null;

// Not in worker threads (the store's WAL checkpointer): the loop under test is the main one.
if (dir && role && isMainThread) {
  const out: ProbeRecord[] = [];
  const t0 = performance.timeOrigin;
  let fd: number | null = null;
  try {
    fd = openSync(`/proc/self/task/${process.pid}/schedstat`, 'r');
  } catch {
    /* not Linux: stalls are recorded without the CPU / wait split */
  }
  const buf = Buffer.alloc(128);
  const sched = (): [number, number] => {
    if (fd === null) return [0, 0];
    const n = readSync(fd, buf, 0, buf.length, 0);
    const [onCpu, waited] = buf.toString('latin1', 0, n).split(' ');
    return [Number(onCpu) / 1e6, Number(waited) / 1e6];
  };
  const TICK = 2;
  let last = performance.now();
  let [lastCpu, lastWait] = sched();
  setInterval(() => {
    const now = performance.now();
    const [c, w] = sched();
    const late = now - last - TICK;
    if (late > 8) out.push({ k: 'stall', t: t0 + last, d: late, cpu: c - lastCpu, wait: w - lastWait });
    last = now;
    lastCpu = c;
    lastWait = w;
  }, TICK).unref();
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration > 1) out.push({ k: 'gc', t: t0 + e.startTime, d: e.duration, kind: (e as { detail?: { kind?: number } }).detail?.kind });
    }
  }).observe({ entryTypes: ['gc'] });
  out.push({ k: 'clock', hrus: Number(process.hrtime.bigint() / 1000n), t: t0 + performance.now() });
  process.on('exit', () => {
    if (fd !== null) closeSync(fd);
    writeFileSync(`${dir}/${role}-${process.pid}.jsonl`, out.map((o) => JSON.stringify(o)).join('\n') + '\n');
  });
}
