// cold-start: time from process start to ready (GET /health 200) with a large history stored,
// and the time of an initial /sync for a user in 100 rooms. The history is written with the
// server stopped, through Hearth's own room writer and the Store interface (bench/lib/provision),
// which is far faster than driving that many sends over HTTP. Then the server is started three
// times (quick: twice); each start is timed from spawn, and the first initial sync after it is timed too.

import { statSync } from 'node:fs';
import { emptyResult, type BenchContext, type Scenario, type TargetSpec } from '../lib/context.js';
import { MiB, procRssBytes, round } from '../lib/proc.js';
import { Progress } from '../lib/progress.js';
import { prepopulateEvents } from '../lib/provision.js';
import type { TargetResult } from '../lib/report.js';
import { pool } from '../lib/schedule.js';
import { median } from '../lib/stats.js';
import { HearthChild } from '../lib/target.js';
import { profileDir } from '../lib/context.js';

const ROOMS = 100;

async function run(ctx: BenchContext): Promise<TargetResult[]> {
  const events = ctx.quick ? 50_000 : 1_000_000;
  const STARTS = ctx.quick ? 2 : 3;
  const h = await HearthChild.create({ pin: ctx.pin, seedUsers: 1, userPrefix: 'cold', synchronous: 'full', profileDir: ctx.profile ? profileDir('cold-start') : undefined });
  const result = emptyResult('hearth', h.info);
  try {
    await h.start();
    const user = h.seeded[0];
    const rooms = await pool(Array.from({ length: ROOMS }, (_, i) => i), 16, (i) => user.createRoom(`cold ${i}`));
    await h.stop();
    const bar = new Progress(`cold-start: writing ${events.toLocaleString('en-US')} events`, events);
    const t0 = performance.now();
    const rate = await prepopulateEvents(h.dir, 'localhost', rooms, user.userId, events, (d) => bar.update(d));
    bar.done();
    const dbBytes = ['', '-wal'].reduce((a, s) => a + (safeSize(h.dbPath + s) ?? 0), 0);
    ctx.log(`  wrote ${events.toLocaleString('en-US')} events into ${ROOMS} rooms in ${((performance.now() - t0) / 1000).toFixed(1)} s (${rate.toFixed(0)}/s); database ${(dbBytes / MiB).toFixed(0)} MiB`);
    const ready: number[] = [];
    const firstSync: number[] = [];
    const warmSync: number[] = [];
    let rss = NaN;
    let syncBytes = 0;
    for (let i = 0; i < STARTS; i++) {
      await h.start(120_000);
      ready.push(h.readyMs);
      rss = procRssBytes(h.pid()!);
      const s0 = performance.now();
      const res = await user.sync({ timeout: 0 });
      firstSync.push(res.at - s0);
      if (res.status !== 200) throw new Error(`initial sync: ${res.status}`);
      const joined = Object.keys(res.body?.rooms?.join ?? {}).length;
      if (joined !== ROOMS) throw new Error(`initial sync returned ${joined} joined rooms, expected ${ROOMS}`);
      syncBytes = JSON.stringify(res.body).length;
      const w0 = performance.now();
      const warm = await user.sync({ timeout: 0 });
      warmSync.push(warm.at - w0);
      await h.stop();
      ctx.log(`  start ${i + 1}: ready in ${h.readyMs.toFixed(0)} ms; initial sync (100 rooms) ${firstSync[i].toFixed(0)} ms cold, ${warmSync[i].toFixed(0)} ms warm; RSS ${(rss / MiB).toFixed(0)} MiB`);
    }
    result.headline = {
      'ready ms (median)': round(median(ready), 0),
      'ready ms (max)': round(Math.max(...ready), 0),
      'initial sync ms (cold)': round(median(firstSync), 0),
      'initial sync ms (warm)': round(median(warmSync), 0),
      events,
    };
    result.figures = { rooms: ROOMS, ready, firstSync, warmSync, rssAfterStartMiB: round(rss / MiB, 1), dbMiB: round(dbBytes / MiB, 1), prepopulateRate: round(rate, 0), initialSyncBytes: syncBytes };
  } finally {
    await h.stop();
    h.dispose();
  }
  return [result];
}

function safeSize(path: string): number | null {
  try {
    return statSync(path).size;
  } catch {
    return null;
  }
}

export const coldStart: Scenario = {
  name: 'cold-start',
  supports: (spec) => (spec.kind === 'hearth' ? null : 'needs a Hearth the bench starts itself (it restarts it on a pre-filled database)'),
  run: (ctx: BenchContext, _spec: TargetSpec) => run(ctx),
};

