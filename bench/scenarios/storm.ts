// storm: N WebSocket clients connected and synced; messages flow into their rooms at a constant
// rate; every client's connection is dropped at once (terminate, no close handshake) while the
// messages keep coming; one second later (when the sends stop, so catching up has a fixed finish
// line) all reconnect within one second (uniform jitter), resuming from their last token and
// honouring 503 + retry_after_ms from the server's load shedding. Measured: time from the start
// of the reconnect wave until every client has every message (and until 99 % have), first-sync
// latency after reconnecting, shed count, peak RSS; lost and duplicated messages.

import { SocketClient, socketStats } from '../lib/clients.js';
import { emptyResult, openTarget, type BenchContext, type Scenario, type TargetSpec } from '../lib/context.js';
import { CpuMeter, MiB, RssPeak, round } from '../lib/proc.js';
import { Progress } from '../lib/progress.js';
import type { TargetResult } from '../lib/report.js';
import { blockLayout, createRooms, rng } from '../lib/rooms.js';
import { pool, runSchedule, sleep } from '../lib/schedule.js';
import { Samples, fmtDist, percentile } from '../lib/stats.js';
import { Tracker } from '../lib/tracker.js';

function params(quick: boolean) {
  return quick
    ? { clients: 500, roomSize: 50, ratePerSec: 20, beforeKillMs: 2000, outageMs: 1000, reconnectWindowMs: 1000 }
    : { clients: 5000, roomSize: 50, ratePerSec: 100, beforeKillMs: 3000, outageMs: 1000, reconnectWindowMs: 1000 };
}

async function run(ctx: BenchContext, spec: TargetSpec): Promise<TargetResult[]> {
  const p = params(ctx.quick);
  const session = await openTarget(ctx, spec, { users: p.clients, scenario: 'storm', prefix: 'st' });
  const { target, users } = session;
  const result = emptyResult(target.label, target.info);
  try {
    const layout = blockLayout(p.clients, p.roomSize);
    const roomIds = await createRooms(users, layout, 'storm', 16, ctx.log);
    const tracker = new Tracker();
    const clients = users.map((u, i) => new SocketClient(u, i, tracker));
    const shed0 = socketStats.shed;
    let t0 = performance.now();
    const bar = new Progress('storm connect', p.clients);
    let n = 0;
    await pool(clients, 200, async (c) => {
      await c.connect();
      bar.update(++n);
    });
    bar.done();
    const initialConnectSec = (performance.now() - t0) / 1000;
    const initialShed = socketStats.shed - shed0;
    ctx.log(`  ${p.clients} sockets connected and synced in ${initialConnectSec.toFixed(1)} s (${initialShed} shed with 503/retry)`);
    await sleep(ctx.quick ? 300 : 1000);

    const rand = rng(5);
    const rss = new RssPeak(() => target.pid(), 100);
    const cpu = new CpuMeter(() => target.pid());
    cpu.start();
    const inflight = new Set<Promise<void>>();
    let sendErrors = 0;
    // Messages flow until the reconnect wave begins, so "caught up" has a fixed finish line.
    const total = p.beforeKillMs + p.outageMs;
    let reconnectStart = 0;
    const reconnects: Promise<void>[] = [];
    const firstSync = new Samples();
    const shedBefore = socketStats.shed;
    // The storm itself runs on timers beside the open-loop message schedule.
    const killTimer = setTimeout(() => {
      for (const c of clients) c.kill();
      ctx.log(`  killed ${clients.length} connections`);
    }, p.beforeKillMs);
    let waveStarted!: () => void;
    const wave = new Promise<void>((r) => (waveStarted = r));
    setTimeout(() => {
      reconnectStart = performance.now();
      for (const c of clients) {
        const delay = rand() * p.reconnectWindowMs;
        reconnects.push(
          sleep(delay).then(async () => {
            c.resetTiming();
            await c.connect();
          }),
        );
      }
      waveStarted();
    }, p.beforeKillMs + p.outageMs);
    t0 = performance.now();
    const sbar = new Progress('storm', total);
    await runSchedule({
      ratePerSec: p.ratePerSec,
      durationMs: total,
      onTick: () => sbar.update(performance.now() - t0),
      fire: (i, intended) => {
        const r = i % roomIds.length;
        const members = layout.members[r];
        const sender = members[0];
        const { id, body } = tracker.add(intended, sender, new Set(members.slice(1)));
        const job = users[sender]
          .send(roomIds[r], `s${tracker.run}-${i}`, body)
          .then(
            (res) => (res.status === 200 ? tracker.acked(id) : (sendErrors++, tracker.failed(id))),
            () => (sendErrors++, tracker.failed(id)),
          )
          .finally(() => inflight.delete(job));
        inflight.add(job);
      },
    });
    sbar.done();
    clearTimeout(killTimer);
    await wave;
    await Promise.race([Promise.all(inflight), sleep(30_000)]);
    const reconnected = await Promise.race([Promise.allSettled(reconnects).then(() => true), sleep(120_000).then(() => false)]);
    const complete = await tracker.drain(15_000, 120_000);
    const cpuWin = cpu.stop();
    const peak = rss.stop();
    // Per client: when it last received a message it was owed, relative to the reconnect wave.
    // A client is caught up once it is reconnected and has every message it is owed.
    const catchUp: number[] = [];
    let behind = 0;
    for (const c of clients) {
      if (tracker.owedTo(c.id) > 0) behind++;
      const last = Math.max(tracker.lastReceipt.get(c.id) ?? 0, c.connectedAt);
      catchUp.push(Math.max(0, last - reconnectStart));
      if (c.firstFrameAt) firstSync.add(c.firstFrameAt - c.connectStartedAt);
    }
    catchUp.sort((a, b) => a - b);
    const rep = tracker.report();
    const allMs = complete ? catchUp[catchUp.length - 1] : NaN;
    const p99Ms = percentile(catchUp, 0.99);
    const shedDuringStorm = socketStats.shed - shedBefore;
    await pool(clients, 500, (c) => c.close());
    ctx.log(`  caught up: all ${complete ? `${(allMs / 1000).toFixed(2)} s` : `NOT within the 60 s bound (${behind} clients behind)`}, 99% ${(p99Ms / 1000).toFixed(2)} s after the reconnect wave began; ${shedDuringStorm} shed; first sync ${fmtDist(firstSync.summary())}`);
    ctx.log(`  ${rep.messages} messages, ${rep.delivered}/${rep.expectedDeliveries} deliveries, lost ${rep.lost}, duplicated ${rep.duplicated}, send errors ${sendErrors}; peak RSS ${(peak / MiB).toFixed(0)} MiB`);
    result.headline = {
      'all caught up s': round(allMs / 1000, 2),
      '99% caught up s': round(p99Ms / 1000, 2),
      'first sync p99 ms': firstSync.summary().p99,
      'shed (503)': shedDuringStorm,
      'peak RSS MiB': round(peak / MiB, 0),
      clients: p.clients,
    };
    result.figures = {
      params: p,
      initialConnectSec: round(initialConnectSec, 2),
      initialShed,
      reconnectedAll: reconnected,
      firstSyncAfterReconnect: firstSync.summary(),
      delivery: { ...rep, latency: undefined, lastRecipient: undefined },
      latency: rep.latency,
      clientsBehind: behind,
      sendErrors,
      cpu: cpuWin,
    };
    result.lost = rep.lost;
    result.duplicated = rep.duplicated;
    result.serverCpuPct = cpuWin.serverCpuPct;
    result.generatorCpuPct = cpuWin.generatorCpuPct;
    result.otherCpuPct = cpuWin.otherCpuPct;
    if (sendErrors) result.notes.push(`${sendErrors} sends failed`);
  } finally {
    await session.close();
  }
  return [result];
}

export const storm: Scenario = {
  name: 'storm',
  supports: (_spec, kind) => (kind === 'hearth' ? null : 'the WebSocket stream is a Hearth extension (io.hearth.sync.ws)'),
  run,
};
