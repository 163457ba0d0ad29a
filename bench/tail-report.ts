// node dist/bench/tail-report.js <dir>: what a bench run's latency tail is made of, from the
// records of bench/lib/loop-probe.ts (<dir>/server-*.jsonl, gen-*.jsonl) and the deliveries the
// tracker dumped (HEARTH_BENCH_SAMPLES=<dir>/samples.csv). Per server process (one per scenario),
// over the window its deliveries span: latency by room size (messages grouped by their number of
// deliveries), the loop turns longer than 20 ms split into on-CPU and run-queue wait, the turns
// with more than 10 / 20 / 40 ms on-CPU (the stalls a quiet machine would see), GC pauses, and
// for the slowest 1 % of deliveries the share of their latency spent inside server stalls,
// generator stalls and GC, and (from the sample file's send/ack/poll times) what each waited on:
// the generator, the recipient's re-poll, the send itself, or the wake.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProbeRecord } from './lib/loop-probe.js';

type Stall = Extract<ProbeRecord, { k: 'stall' }>;
type Gc = Extract<ProbeRecord, { k: 'gc' }>;
interface Delivery {
  intended: number;
  latency: number;
  msg: number;
  /** ms after intended: the send fired, its 200 back, the carrying poll sent (NaN if unknown). */
  fired: number;
  acked: number;
  polled: number;
}

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node dist/bench/tail-report.js <probe dir>');
  process.exit(2);
}

const load = (f: string): ProbeRecord[] =>
  readFileSync(join(dir, f), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ProbeRecord);
const files = readdirSync(dir);
const deliveries: Delivery[] = readFileSync(join(dir, 'samples.csv'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => {
    const [intended, latency, msg, , fired = NaN, acked = NaN, polled = NaN] = l.split(',').map((x) => (x === '' ? NaN : Number(x)));
    return { intended, latency, msg, fired, acked, polled };
  });
const gen = files.filter((f) => f.startsWith('gen-')).flatMap(load);

const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const f0 = (x: number): string => x.toFixed(0);
const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const overlap = (evs: Array<{ t: number; d: number }>, a: number, b: number): number =>
  sum(evs.map((e) => Math.max(0, Math.min(b, e.t + e.d) - Math.max(a, e.t))));

for (const f of files.filter((x) => x.startsWith('server-')).sort()) {
  const recs = load(f);
  const times = recs.filter((r): r is Stall | Gc => r.k !== 'clock').map((r) => r.t);
  if (times.length === 0) continue;
  const alive = [Math.min(...times), Math.max(...times)];
  const ds = deliveries.filter((d) => d.intended >= alive[0] && d.intended <= alive[1]);
  if (ds.length === 0) continue;
  const lo = Math.min(...ds.map((d) => d.intended));
  const hi = Math.max(...ds.map((d) => d.intended + d.latency));
  const inWindow = <T extends { t: number }>(r: T): boolean => r.t >= lo && r.t <= hi;
  const stalls = recs.filter((r): r is Stall => r.k === 'stall').filter(inWindow);
  const gcs = recs.filter((r): r is Gc => r.k === 'gc').filter(inWindow);
  const genStalls = gen.filter((r): r is Stall => r.k === 'stall').filter(inWindow).filter((s) => s.d > 20);
  const lat = ds.map((d) => d.latency);
  const p99 = pct(lat, 99);
  console.log(`== ${f}: ${ds.length} deliveries over ${((hi - lo) / 1000).toFixed(1)} s; latency p50 ${pct(lat, 50).toFixed(1)} p90 ${pct(lat, 90).toFixed(1)} p99 ${p99.toFixed(1)} max ${f0(Math.max(...lat))} ms`);
  const perMsg = new Map<number, number>();
  for (const d of ds) perMsg.set(d.msg, (perMsg.get(d.msg) ?? 0) + 1);
  const groups: Array<[string, (n: number) => boolean]> = [
    ['rooms of <= 10', (n) => n <= 10],
    ['11-50', (n) => n > 10 && n <= 50],
    ['> 50', (n) => n > 50],
  ];
  const parts = groups
    .map(([name, inGroup]) => [name, ds.filter((d) => inGroup(perMsg.get(d.msg)!)).map((d) => d.latency)] as const)
    .filter(([, xs]) => xs.length > 0)
    .map(([name, xs]) => `${name}: n=${xs.length} p50 ${f0(pct(xs, 50))} p99 ${f0(pct(xs, 99))}`);
  console.log(`  by room size (deliveries per message): ${parts.join(' | ')}`);
  const big = stalls.filter((s) => s.d > 20);
  console.log(`  loop turns > 20 ms: ${big.length}, ${f0(sum(big.map((s) => s.d)))} ms wall = on-CPU ${f0(sum(big.map((s) => s.cpu)))} + run-queue wait ${f0(sum(big.map((s) => s.wait)))} (+ blocked)`);
  const cpu = stalls.map((s) => s.cpu).sort((a, b) => a - b);
  const over = (x: number): number => cpu.filter((c) => c > x).length;
  console.log(`  turns with on-CPU > 10 ms: ${over(10)}, > 20 ms: ${over(20)}, > 40 ms: ${over(40)}; longest ${cpu.slice(-5).map(f0).join(', ')} ms`);
  // The window above also holds set-up between a scenario's halves (fanout's second room: its
  // joins and initial syncs); only a turn that overlaps a pending delivery can delay one.
  const pending = mergeSpans(ds.map((d) => [d.intended, d.intended + d.latency] as const));
  const during = stalls.filter((s) => overlapsAny(pending, s.t, s.t + s.d)).map((s) => s.cpu);
  const overD = (x: number): number => during.filter((c) => c > x).length;
  console.log(`  of those, while a delivery was pending: > 10 ms: ${overD(10)}, > 20 ms: ${overD(20)}, > 40 ms: ${overD(40)}; longest ${[...during].sort((a, b) => a - b).slice(-5).map(f0).join(', ')} ms`);
  const byKind = new Map<string, number[]>();
  for (const g of gcs) byKind.set(String(g.kind), [...(byKind.get(String(g.kind)) ?? []), g.d]);
  const kinds = [...byKind].map(([k, xs]) => `kind ${k}: ${xs.length}, ${f0(sum(xs))} ms, max ${f0(Math.max(...xs))}`).join('; ');
  console.log(`  GC pauses > 1 ms: ${gcs.length}, ${f0(sum(gcs.map((g) => g.d)))} ms (${((100 * sum(gcs.map((g) => g.d))) / (hi - lo)).toFixed(1)} % of the window); ${kinds}`);
  const slow = ds.filter((d) => d.latency >= p99);
  const share = (evs: Array<{ t: number; d: number }>): string =>
    (sum(slow.map((d) => overlap(evs, d.intended, d.intended + d.latency) / Math.max(d.latency, 1))) / slow.length).toFixed(2);
  console.log(`  slowest 1 % (${slow.length}): share of their latency inside server turns > 20 ms ${share(big)}, generator turns > 20 ms ${share(genStalls)}, server GC ${share(gcs)}`);
  if (slow.some((d) => !Number.isNaN(d.fired))) waitedOn(slow, stalls);
}

/**
 * What each of the slowest deliveries waited on, from the generator's timestamps (older sample
 * files lack them): the generator firing late; the recipient not parked when the send went out
 * (its poll was sent after the send fired: it was between polls, its previous response in
 * flight); parked but the send's own commit was slow (delivered within 5 ms of the send's 200, or
 * before it); parked and woken late (delivered well after the ack: the paced-wake queue, loop
 * turns). Plus the longest on-CPU server turn inside each delivery's span.
 */
function waitedOn(slow: Delivery[], stalls: Stall[]): void {
  const med = (xs: number[]): string => f0(pct(xs.filter((x) => !Number.isNaN(x)), 50));
  const late = slow.filter((d) => d.fired > 5);
  const repoll = slow.filter((d) => d.fired <= 5 && d.polled > d.fired);
  const parked = slow.filter((d) => d.fired <= 5 && !(d.polled > d.fired));
  const bySend = parked.filter((d) => !(d.latency > d.acked + 5));
  const woken = parked.filter((d) => d.latency > d.acked + 5);
  console.log(`  slowest 1 %: fired ms after intended p50 ${med(slow.map((d) => d.fired))}, acked p50 ${med(slow.map((d) => d.acked))}, latency p50 ${med(slow.map((d) => d.latency))}`);
  console.log(
    `    generator fired > 5 ms late: ${late.length}; recipient re-polling when sent: ${repoll.length} (poll sent p50 ${med(repoll.map((d) => d.polled - d.fired))} ms after the send)` +
      `; parked, delivered by the send's ack + 5 ms: ${bySend.length} (ack p50 ${med(bySend.map((d) => d.acked))} ms)` +
      `; parked, delivered later than that: ${woken.length} (p50 ${med(woken.map((d) => d.latency - d.acked))} ms after the ack)`,
  );
  const longest = slow.map((d) => Math.max(0, ...stalls.filter((s) => s.t < d.intended + d.latency && s.t + s.d > d.intended).map((s) => s.cpu)));
  console.log(`    longest server on-CPU turn inside each: p50 ${med(longest)} ms, > 20 ms for ${longest.filter((x) => x > 20).length} of ${slow.length}`);
}

/** Sorted, merged [start, end] spans. */
function mergeSpans(spans: ReadonlyArray<readonly [number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [a, b] of [...spans].sort((x, y) => x[0] - y[0])) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Whether [a, b] overlaps any of the merged spans (binary search). */
function overlapsAny(spans: Array<[number, number]>, a: number, b: number): boolean {
  let lo = 0;
  let hi = spans.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (spans[mid][1] < a) lo = mid + 1;
    else if (spans[mid][0] > b) hi = mid - 1;
    else return true;
  }
  return false;
}
