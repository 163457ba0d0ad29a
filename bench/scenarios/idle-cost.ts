// idle-cost: server memory per idle connection. Phase 1 opens N WebSocket streams (each synced
// once, then idle); phase 2, on a fresh server, parks N /sync long-polls (each after an initial
// sync). Each phase: RSS (VmRSS of the server process) once the accounts exist and the server is
// idle, then again with every connection open and settled; the difference over N is the cost
// per connection (it includes the V8 heap growth of the initial syncs; RSS is not given back).
// A Hearth child runs with --inspect, and RSS and the V8 heap (heapUsed + external) are also
// read after a forced full garbage collection (live objects only: what a connection really
// holds) with none, half and all of the N open; the second half's cost alone (the marginal
// cost) leaves out what the first connections warm up once (caches allocated on first use).
// Then round two: every connection closes, and the same N users connect again; the cost
// between those two points (after a full GC) is the connection's alone, without the per-user
// read-model state the first round warmed (and keeps: it is per user, not per connection).
// IDLE_COST_SNAPSHOTS=<dir> also writes a heap snapshot at each of those points (compare the
// middle and the end with `node dist/bench/heap-diff.js MID END N/2`, round two with
// `node dist/bench/heap-diff.js CLOSED AGAIN N`).
// Loopback only. The generator needs N file descriptors per phase (ulimit -n).

import { clientStats, PollClient, SocketClient, socketStats } from '../lib/clients.js';
import { emptyResult, openTarget, type BenchContext, type Scenario, type Session, type TargetSpec } from '../lib/context.js';
import type { MatrixClient } from '../lib/matrix.js';
import { KiB, MiB, procCpuSeconds, procRssBytes, round } from '../lib/proc.js';
import { Progress } from '../lib/progress.js';
import type { TargetResult } from '../lib/report.js';
import { median } from '../lib/stats.js';
import { pool, sleep } from '../lib/schedule.js';
import { Tracker } from '../lib/tracker.js';
import { Inspector } from '../lib/inspector.js';
import { HearthChild } from '../lib/target.js';
import { join } from 'node:path';

/**
 * Waits until the server is idle (under 5 % of a core over 500 ms, at most 60 s): requests the
 * clients started are parked on the server only once it has handled them, which under load
 * takes seconds after the clients fired them.
 */
async function serverIdle(pid: number): Promise<void> {
  const until = performance.now() + 60_000;
  let last = procCpuSeconds(pid);
  while (performance.now() < until) {
    await sleep(500);
    const now = procCpuSeconds(pid);
    if (now - last < 0.025) return;
    last = now;
  }
}

async function settledRss(pid: number): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < 5; i++) {
    await sleep(300);
    xs.push(procRssBytes(pid));
  }
  return median(xs);
}

interface Phase {
  n: number;
  baselineMiB: number;
  loadedMiB: number;
  perConnKiB: number;
  connectSec: number;
  /** After a forced full GC at both points (Hearth children only). */
  gc?: { rssPerConnKiB: number; heapPerConnKiB: number; marginalRssKiB: number; marginalHeapKiB: number; baseHeapMiB: number; midHeapMiB: number; loadedHeapMiB: number };
  /**
   * The same N users again, after every connection of the first round closed (forced full GC
   * at both points): the cost of a connection alone, without the per-user read-model state
   * (rooms, positions, filters, caches) the first round warmed and keeps.
   */
  again?: { rssPerConnKiB: number; heapPerConnKiB: number; closedHeapMiB: number; reopenedHeapMiB: number; connectSec: number };
}

interface GcPoint {
  rss: number;
  heap: number;
}

/** RSS and live heap after a full collection; a snapshot too when IDLE_COST_SNAPSHOTS is set. */
async function gcPoint(insp: Inspector, pid: number, snapshot?: string): Promise<GcPoint> {
  await insp.gc();
  await sleep(300);
  const m = await insp.memory();
  const rss = await settledRss(pid);
  if (snapshot) await insp.snapshot(snapshot);
  return { rss, heap: m.heapUsed + m.external };
}

async function phase(ctx: BenchContext, s: Session, kind: 'socket' | 'poll', n: number): Promise<Phase> {
  const pid = s.target.pid()!;
  await sleep(ctx.quick ? 300 : 1000);
  const base = await settledRss(pid);
  const url = s.target instanceof HearthChild ? s.target.inspectorUrl : undefined;
  const insp = url ? await Inspector.connect(url) : undefined;
  const snapDir = process.env.IDLE_COST_SNAPSHOTS;
  const snap = (at: string) => (snapDir ? join(snapDir, `${kind}-${at}.heapsnapshot`) : undefined);
  const gcBase = insp ? await gcPoint(insp, pid, snap('base')) : undefined;
  const tracker = new Tracker();
  const users: MatrixClient[] = s.users;
  const bar = new Progress(`idle-cost ${kind}`, n);
  let done = 0;
  const t0 = performance.now();
  let cleanup: () => Promise<void>;
  let openHalf: (half: 0 | 1) => Promise<void>;
  let reopen: () => Promise<void>;
  const halves = <T>(xs: T[], half: 0 | 1) => (half === 0 ? xs.slice(0, Math.floor(xs.length / 2)) : xs.slice(Math.floor(xs.length / 2)));
  if (kind === 'socket') {
    const clients = users.map((u, i) => new SocketClient(u, i, tracker));
    openHalf = async (half) =>
      void (await pool(halves(clients, half), 100, async (c) => {
        await c.connect();
        bar.update(++done);
      }));
    cleanup = async () => void (await pool(clients, 500, (c) => c.close()));
    // Resumed from each client's token: the server sends nothing until something changes.
    reopen = async () => void (await pool(clients, 100, (c) => c.connect()));
  } else {
    const clients = users.map((u, i) => new PollClient(u, i, tracker, undefined, 55_000));
    openHalf = async (half) => {
      const some = halves(clients, half);
      await pool(some, 100, async (c) => {
        await c.initialSync();
        bar.update(++done);
      });
      some.forEach((c) => c.start()); // each parks one /sync?timeout=55000
    };
    cleanup = async () => void (await Promise.all(clients.map((c) => c.stop())));
    reopen = async () => clients.forEach((c) => c.start());
  }
  // The second half's cost alone (from the middle point to the end) leaves out what the first
  // connections warm up once (caches allocated on first use, compiled code): the marginal cost.
  await openHalf(0);
  const firstSec = (performance.now() - t0) / 1000;
  let gcMid: GcPoint | undefined;
  if (insp) {
    await sleep(ctx.quick ? 1000 : 3000);
    await serverIdle(pid);
    gcMid = await gcPoint(insp, pid, snap('mid'));
  }
  const tMid = performance.now();
  await openHalf(1);
  bar.done();
  const connectSec = firstSec + (performance.now() - tMid) / 1000;
  await sleep(ctx.quick ? 1000 : 3000);
  await serverIdle(pid);
  const loaded = await settledRss(pid);
  const gcLoaded = insp ? await gcPoint(insp, pid, snap('loaded')) : undefined;
  // A parked long-poll that answered before the end was not idle (something woke it).
  const answered = clientStats.syncs;
  // Round two: every connection closes, then the same users connect again.
  await cleanup();
  let gcClosed: GcPoint | undefined;
  let gcAgain: GcPoint | undefined;
  let againSec = 0;
  if (insp) {
    await sleep(ctx.quick ? 1000 : 3000);
    await serverIdle(pid);
    gcClosed = await gcPoint(insp, pid, snap('closed'));
    const t1 = performance.now();
    await reopen();
    againSec = (performance.now() - t1) / 1000;
    await sleep(ctx.quick ? 1000 : 3000);
    await serverIdle(pid);
    gcAgain = await gcPoint(insp, pid, snap('again'));
    await cleanup();
  }
  insp?.close();
  const perConn = (loaded - base) / n;
  ctx.log(`  ${n} idle ${kind === 'socket' ? 'sockets' : `parked long-polls (${answered} answered early)`}: RSS ${(base / MiB).toFixed(1)} -> ${(loaded / MiB).toFixed(1)} MiB = ${(perConn / KiB).toFixed(1)} KiB each`);
  const out: Phase = { n, baselineMiB: round(base / MiB, 1), loadedMiB: round(loaded / MiB, 1), perConnKiB: round(perConn / KiB, 2), connectSec: round(connectSec, 1) };
  if (gcBase && gcMid && gcLoaded) {
    const second = n - Math.floor(n / 2);
    out.gc = {
      rssPerConnKiB: round((gcLoaded.rss - gcBase.rss) / n / KiB, 2),
      heapPerConnKiB: round((gcLoaded.heap - gcBase.heap) / n / KiB, 2),
      marginalRssKiB: round((gcLoaded.rss - gcMid.rss) / second / KiB, 2),
      marginalHeapKiB: round((gcLoaded.heap - gcMid.heap) / second / KiB, 2),
      baseHeapMiB: round(gcBase.heap / MiB, 1),
      midHeapMiB: round(gcMid.heap / MiB, 1),
      loadedHeapMiB: round(gcLoaded.heap / MiB, 1),
    };
    ctx.log(
      `    after a full GC: RSS ${(gcBase.rss / MiB).toFixed(1)} -> ${(gcMid.rss / MiB).toFixed(1)} -> ${(gcLoaded.rss / MiB).toFixed(1)} MiB, live heap ${out.gc.baseHeapMiB} -> ${out.gc.midHeapMiB} -> ${out.gc.loadedHeapMiB} MiB (0, ${n - second}, ${n} open): ` +
        `${out.gc.rssPerConnKiB} KiB RSS, ${out.gc.heapPerConnKiB} KiB heap each; the second half alone ${out.gc.marginalRssKiB} KiB RSS, ${out.gc.marginalHeapKiB} KiB heap each`,
    );
  }
  if (gcClosed && gcAgain) {
    out.again = {
      rssPerConnKiB: round((gcAgain.rss - gcClosed.rss) / n / KiB, 2),
      heapPerConnKiB: round((gcAgain.heap - gcClosed.heap) / n / KiB, 2),
      closedHeapMiB: round(gcClosed.heap / MiB, 1),
      reopenedHeapMiB: round(gcAgain.heap / MiB, 1),
      connectSec: round(againSec, 1),
    };
    ctx.log(
      `    round two (the same ${n} users again, all closed in between): live heap ${out.again.closedHeapMiB} -> ${out.again.reopenedHeapMiB} MiB: ` +
        `${out.again.heapPerConnKiB} KiB heap, ${out.again.rssPerConnKiB} KiB RSS each (the connection alone, the users' read-model state already warm)`,
    );
  }
  return out;
}

async function run(ctx: BenchContext, spec: TargetSpec): Promise<TargetResult[]> {
  const n = ctx.quick ? 1000 : 10_000;
  const phases: Record<string, Phase> = {};
  let result: TargetResult | undefined;
  const kinds: Array<'socket' | 'poll'> = spec.kind === 'hearth' ? ['socket', 'poll'] : ['poll'];
  for (const kind of kinds) {
    // A fresh server per phase, so one phase's heap does not absorb the other's.
    const s = await openTarget(ctx, spec, { users: n, scenario: 'idle-cost', prefix: kind === 'socket' ? 'i' : 'p', inspect: true });
    result ??= emptyResult(s.target.label, s.target.info);
    try {
      if (!s.target.pid()) throw new Error('idle-cost needs the server pid (--target-pid) to read its RSS');
      phases[kind] = await phase(ctx, s, kind, n);
    } finally {
      await s.close();
    }
  }
  result!.headline = {
    'KiB per idle socket': phases.socket?.perConnKiB ?? NaN,
    'KiB per parked long-poll': phases.poll?.perConnKiB ?? NaN,
    'live heap KiB per idle socket (marginal)': phases.socket?.gc?.marginalHeapKiB ?? NaN,
    'live heap KiB per parked long-poll (marginal)': phases.poll?.gc?.marginalHeapKiB ?? NaN,
    'live heap KiB per idle socket (round two)': phases.socket?.again?.heapPerConnKiB ?? NaN,
    'live heap KiB per parked long-poll (round two)': phases.poll?.again?.heapPerConnKiB ?? NaN,
    'RSS KiB per idle socket (round two)': phases.socket?.again?.rssPerConnKiB ?? NaN,
    'RSS KiB per parked long-poll (round two)': phases.poll?.again?.rssPerConnKiB ?? NaN,
    connections: n,
  };
  result!.figures = { phases, socketsShed: socketStats.shed, socketConnectErrors: socketStats.connectErrors };
  return [result!];
}

export const idleCost: Scenario = {
  name: 'idle-cost',
  supports: (spec) => (spec.kind === 'url' && !spec.pid ? 'needs --target-pid to read the server RSS' : null),
  run,
};
