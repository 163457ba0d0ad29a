// Open-loop (constant arrival rate) schedules. Operation i is due at start + i / rate; the
// scheduler fires every due operation without waiting for earlier ones to finish, and hands each
// its INTENDED time, so latency is measured from when the request should have gone out. A stalled
// server or a busy generator therefore shows up as latency, not as a quietly lower rate
// (no coordinated omission).

import { performance } from 'node:perf_hooks';

export interface ScheduleResult {
  /** Operations fired. */
  fired: number;
  /** Worst lag between an operation's intended time and when the generator fired it (ms). */
  maxLagMs: number;
  /** Operations fired more than 5 ms late: the generator could not keep up. */
  lateOps: number;
  elapsedMs: number;
}

export interface ScheduleOptions {
  ratePerSec: number;
  durationMs: number;
  /** Called for every operation with its index and intended time (performance.now() clock). */
  fire: (i: number, intendedMs: number) => void;
  signal?: AbortSignal;
  onTick?: (fired: number, total: number) => void;
}

export async function runSchedule(o: ScheduleOptions): Promise<ScheduleResult> {
  const total = Math.max(0, Math.floor((o.ratePerSec * o.durationMs) / 1000));
  const interval = 1000 / o.ratePerSec;
  const start = performance.now();
  let i = 0;
  let maxLag = 0;
  let late = 0;
  // Bounded: at most total operations, and at most duration + 10 s of wall time.
  const hardStop = start + o.durationMs + 10_000;
  while (i < total && !o.signal?.aborted) {
    const now = performance.now();
    if (now > hardStop) break;
    while (i < total) {
      const due = start + i * interval;
      if (due > now) break;
      const lag = now - due;
      if (lag > maxLag) maxLag = lag;
      if (lag > 5) late++;
      o.fire(i, due);
      i++;
    }
    o.onTick?.(i, total);
    if (i >= total) break;
    const wait = start + i * interval - performance.now();
    await sleep(Math.max(0, Math.min(wait, 50)));
  }
  return { fired: i, maxLagMs: Math.round(maxLag * 100) / 100, lateOps: late, elapsedMs: performance.now() - start };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every `everyMs` until it holds or `timeoutMs` passes; returns whether it held. */
export async function waitFor(cond: () => boolean, timeoutMs: number, everyMs = 20): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    if (cond()) return true;
    await sleep(everyMs);
  }
  return cond();
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function pool<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
