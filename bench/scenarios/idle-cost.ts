// idle-cost: server memory per idle connection. Phase 1 opens N WebSocket streams (each synced
// once, then idle); phase 2, on a fresh server, parks N /sync long-polls (each after an initial
// sync). Each phase: RSS (VmRSS of the server process) once the accounts exist and the server is
// idle, then again with every connection open and settled; the difference over N is the cost
// per connection (it includes the V8 heap growth of the initial syncs; RSS is not given back).
// Loopback only. The generator needs N file descriptors per phase (ulimit -n).

import { PollClient, SocketClient, socketStats } from '../lib/clients.js';
import { emptyResult, openTarget, type BenchContext, type Scenario, type Session, type TargetSpec } from '../lib/context.js';
import type { MatrixClient } from '../lib/matrix.js';
import { KiB, MiB, procRssBytes, round } from '../lib/proc.js';
import { Progress } from '../lib/progress.js';
import type { TargetResult } from '../lib/report.js';
import { median } from '../lib/stats.js';
import { pool, sleep } from '../lib/schedule.js';
import { Tracker } from '../lib/tracker.js';

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
}

async function phase(ctx: BenchContext, s: Session, kind: 'socket' | 'poll', n: number): Promise<Phase> {
  const pid = s.target.pid()!;
  await sleep(ctx.quick ? 300 : 1000);
  const base = await settledRss(pid);
  const tracker = new Tracker();
  const users: MatrixClient[] = s.users;
  const bar = new Progress(`idle-cost ${kind}`, n);
  let done = 0;
  const t0 = performance.now();
  let cleanup: () => Promise<void>;
  if (kind === 'socket') {
    const clients = users.map((u, i) => new SocketClient(u, i, tracker));
    await pool(clients, 100, async (c) => {
      await c.connect();
      bar.update(++done);
    });
    cleanup = async () => void (await pool(clients, 500, (c) => c.close()));
  } else {
    const clients = users.map((u, i) => new PollClient(u, i, tracker, undefined, 55_000));
    await pool(clients, 100, async (c) => {
      await c.initialSync();
      bar.update(++done);
    });
    clients.forEach((c) => c.start()); // each parks one /sync?timeout=55000
    cleanup = async () => void (await Promise.all(clients.map((c) => c.stop())));
  }
  bar.done();
  const connectSec = (performance.now() - t0) / 1000;
  await sleep(ctx.quick ? 1000 : 3000);
  const loaded = await settledRss(pid);
  await cleanup();
  const perConn = (loaded - base) / n;
  ctx.log(`  ${n} idle ${kind === 'socket' ? 'sockets' : 'parked long-polls'}: RSS ${(base / MiB).toFixed(1)} -> ${(loaded / MiB).toFixed(1)} MiB = ${(perConn / KiB).toFixed(1)} KiB each (connected in ${connectSec.toFixed(1)} s)`);
  return { n, baselineMiB: round(base / MiB, 1), loadedMiB: round(loaded / MiB, 1), perConnKiB: round(perConn / KiB, 2), connectSec: round(connectSec, 1) };
}

async function run(ctx: BenchContext, spec: TargetSpec): Promise<TargetResult[]> {
  const n = ctx.quick ? 1000 : 10_000;
  const phases: Record<string, Phase> = {};
  let result: TargetResult | undefined;
  const kinds: Array<'socket' | 'poll'> = spec.kind === 'hearth' ? ['socket', 'poll'] : ['poll'];
  for (const kind of kinds) {
    // A fresh server per phase, so one phase's heap does not absorb the other's.
    const s = await openTarget(ctx, spec, { users: n, scenario: 'idle-cost', prefix: kind === 'socket' ? 'i' : 'p' });
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
