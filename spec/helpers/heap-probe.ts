// A mocha root-hook plugin that measures the suite's heap: every HEAP_PROBE_EVERY tests (default
// 25) it forces a full GC and records heapUsed, so the samples show what stays reachable (not
// garbage not yet collected); at the end it prints the samples' growth per test (least squares)
// and the largest total heap V8 reached. Not a spec: nothing loads it unless asked, e.g.
//   node --expose-gc node_modules/mocha/bin/mocha.js --no-config --timeout 20000 --exit \
//     --require dist/spec/helpers/heap-probe.js dist/spec/api/*.spec.js
// Without --expose-gc it still samples, but without forcing a GC (the figures then say so).
// HEAP_PROBE_SNAPSHOT=file also writes a heap snapshot at the end.

import { appendFileSync } from 'node:fs';
import { getHeapStatistics, writeHeapSnapshot } from 'node:v8';

const every = Math.max(1, Number(process.env.HEAP_PROBE_EVERY ?? 25));
const out = process.env.HEAP_PROBE_OUT;
const gc = (globalThis as { gc?: () => void }).gc;
const samples: Array<{ tests: number; mb: number }> = [];
let tests = 0;
let peakTotal = 0;

const mb = (bytes: number) => bytes / (1024 * 1024);

function report(line: string): void {
  process.stderr.write(`${line}\n`);
  if (out) appendFileSync(out, `${line}\n`);
}

function sample(): void {
  if (gc) {
    gc();
    gc();
  }
  const used = mb(process.memoryUsage().heapUsed);
  samples.push({ tests, mb: used });
  report(`[heap] tests=${tests} heapUsed=${used.toFixed(1)}MB${gc ? '' : ' (no forced GC)'}`);
}

/** Growth in MB per test over the samples (least squares), or NaN with fewer than two. */
function slope(): number {
  const n = samples.length;
  if (n < 2) return NaN;
  const mx = samples.reduce((s, p) => s + p.tests, 0) / n;
  const my = samples.reduce((s, p) => s + p.mb, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of samples) {
    num += (p.tests - mx) * (p.mb - my);
    den += (p.tests - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

export const mochaHooks = {
  beforeAll(): void {
    if (samples.length === 0) sample();
  },
  afterEach(): void {
    tests++;
    peakTotal = Math.max(peakTotal, getHeapStatistics().total_heap_size);
    if (tests % every === 0) sample();
  },
  afterAll(): void {
    sample();
    const first = samples[0]!;
    const last = samples[samples.length - 1]!;
    const max = Math.max(...samples.map((s) => s.mb));
    report(
      `[heap] summary: ${tests} tests, heapUsed after GC ${first.mb.toFixed(1)} -> ${last.mb.toFixed(1)}MB (max ${max.toFixed(1)}MB), ` +
        `growth ${(slope() * 1024).toFixed(0)}KB/test, peak total heap ${mb(peakTotal).toFixed(0)}MB${gc ? '' : ' (no forced GC)'}`,
    );
    // HEAP_PROBE_SNAPSHOT=file: a heap snapshot after the last forced GC, to find what retains what.
    if (process.env.HEAP_PROBE_SNAPSHOT) report(`[heap] snapshot ${writeHeapSnapshot(process.env.HEAP_PROBE_SNAPSHOT)}`);
  },
};
