// sync-latency and socket-latency: send -> receive latency per (message, recipient), with
// power-law room sizes (2..200 members), a constant total send rate (each send: a room chosen
// uniformly, then a random member of it as the sender), every user online either
// in a /sync long-poll loop (timeout=30000, small timeline filter) or on the WebSocket stream.

import { PollClient, SocketClient, clientStats, socketStats } from '../lib/clients.js';
import { emptyResult, openTarget, serverCpuMeter, serverRssPeak, type BenchContext, type Scenario, type TargetSpec } from '../lib/context.js';
import { cpuMicrosPer, fmtServices, MiB, round, serviceMicros } from '../lib/proc.js';
import { windowProfiler } from '../lib/inspector.js';
import type { HttpResult } from '../lib/matrix.js';
import { HearthChild } from '../lib/target.js';
import { Progress } from '../lib/progress.js';
import type { TargetResult } from '../lib/report.js';
import { createRooms, powerLawLayout, rng, sizeHistogram } from '../lib/rooms.js';
import { pool, runSchedule, sleep } from '../lib/schedule.js';
import { Samples, fmtDist } from '../lib/stats.js';
import { METRICS_CONFIG, admissionCounters, counterDelta, fmtShedReasons } from '../lib/admission-counters.js';
import { Tracker } from '../lib/tracker.js';

export interface LatencyParams {
  users: number;
  ratePerSec: number;
  durationMs: number;
}

export function latencyParams(quick: boolean, transport: 'sync' | 'socket'): LatencyParams {
  // Quick socket runs are shorter to keep the whole quick set near two minutes.
  if (quick) return { users: 100, ratePerSec: 50, durationMs: transport === 'sync' ? 20_000 : 10_000 };
  return { users: 1000, ratePerSec: 200, durationMs: 60_000 };
}

async function runLatency(ctx: BenchContext, spec: TargetSpec, transport: 'sync' | 'socket', name: string): Promise<TargetResult> {
  const p = latencyParams(ctx.quick, transport);
  // /metrics on the client port: the admission's counters say which rule refused a send, if any.
  const session = await openTarget(ctx, spec, { users: p.users, scenario: name, prefix: transport === 'sync' ? 'l' : 'w', inspect: !!process.env.HEARTH_BENCH_WINDOW_PROFILE, extraConfig: METRICS_CONFIG });
  const { target, users } = session;
  const result = emptyResult(target.label, target.info);
  try {
    const layout = powerLawLayout(p.users, 2, 200, 2, 2, 7);
    ctx.log(`  room sizes: ${JSON.stringify(sizeHistogram(layout))}, ${layout.members.length} rooms`);
    const roomIds = await createRooms(users, layout, name, 16, ctx.log);
    const tracker = new Tracker();
    const stats0 = { ...clientStats };
    let stop: () => Promise<void>;
    // Who sends: a socket client over its own socket unless --socket-send http; a long-poll client over HTTP.
    const sendOver = transport === 'socket' ? (ctx.socketSend ?? 'socket') : 'http';
    let senders: Array<{ send(roomId: string, txnId: string, body: string): Promise<HttpResult> }> = users;
    if (transport === 'sync') {
      const clients = users.map((u, i) => new PollClient(u, i, tracker));
      await pool(clients, 32, (c) => c.initialSync());
      clients.forEach((c) => c.start());
      stop = async () => void (await Promise.all(clients.map((c) => c.stop())));
    } else {
      const clients = users.map((u, i) => new SocketClient(u, i, tracker));
      await pool(clients, 50, (c) => c.connect());
      stop = async () => void (await Promise.all(clients.map((c) => c.close())));
      if (sendOver === 'socket') senders = clients;
    }
    ctx.log(`  sends over ${sendOver === 'socket' ? 'the sender\'s socket (send frames)' : 'HTTP (PUT /send)'}`);
    await sleep(ctx.quick ? 1000 : 2000); // every client parked
    const rand = rng(99);
    const acks = new Samples();
    let sendErrors = 0;
    // Status and errcode of each failed send: shedding (429/503 with retry_after_ms) is the
    // server protecting itself; anything else (500, 504, transport) is a defect to look at.
    const errorKinds = new Map<string, number>();
    const countError = (kind: string): void => void errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
    const fmtErrorKinds = (): string => [...errorKinds].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join(', ');
    const inflight = new Set<Promise<void>>();
    const counters0 = await admissionCounters(target.url);
    const cpu = serverCpuMeter(target);
    const rss = serverRssPeak(target);
    const profiler = await windowProfiler(target instanceof HearthChild ? target.inspectorUrl : undefined, name);
    await profiler.start();
    cpu.start();
    const bar = new Progress(`${name} ${target.label}`, p.durationMs);
    const t0 = performance.now();
    const sched = await runSchedule({
      ratePerSec: p.ratePerSec,
      durationMs: p.durationMs,
      onTick: () => bar.update(performance.now() - t0, `${tracker.delivered} deliveries`),
      fire: (i, intended) => {
        // A room uniformly at random, then one of its members: big rooms are busier in total,
        // each member of a big room is quieter (as in real deployments).
        const r = Math.floor(rand() * layout.members.length);
        const sender = layout.members[r][Math.floor(rand() * layout.members[r].length)];
        const recipients = new Set(layout.members[r].filter((u) => u !== sender));
        const { id, body } = tracker.add(intended, sender, recipients);
        const job = senders[sender]
          .send(roomIds[r], `t${tracker.run}-${i}`, body)
          .then(
            (res) => {
              if (res.status === 200) {
                tracker.acked(id, res.at);
                acks.add(res.at - intended);
              } else {
                sendErrors++;
                countError(`${res.status} ${(res.body as { errcode?: string } | null)?.errcode ?? '-'}`);
                tracker.failed(id);
              }
            },
            (err: Error) => {
              sendErrors++;
              countError(`transport ${err.message.slice(0, 40)}`);
              tracker.failed(id);
            },
          )
          .finally(() => inflight.delete(job));
        inflight.add(job);
      },
    });
    bar.done();
    await Promise.race([Promise.all(inflight), sleep(30_000)]);
    const drained = await tracker.drain();
    const server = counterDelta(counters0, await admissionCounters(target.url));
    const cpuWin = cpu.stop();
    await profiler.stop();
    const peak = rss.stop();
    await stop();
    const rep = tracker.report();
    if (server) ctx.log(`  server admission: ${server.paced ?? 0} paced, ${server.shed_sends ?? 0} sends and ${server.shed_catchups ?? 0} catch-ups shed (by reason: ${fmtShedReasons(server)})`);
    ctx.log(`  ${target.label}: latency ${fmtDist(rep.latency)}`);
    ctx.log(`  ${rep.messages} messages, ${rep.delivered}/${rep.expectedDeliveries} deliveries, lost ${rep.lost}, duplicated ${rep.duplicated}, send errors ${sendErrors}${sendErrors ? ` (${fmtErrorKinds()})` : ''}; server CPU ${cpuWin.serverCpuPct}% (${cpuMicrosPer(cpuWin.serverCpuSec, rep.delivered)} µs/delivery)${fmtServices(cpuWin.services)} generator CPU ${cpuWin.generatorCpuPct}% other processes ${cpuWin.otherCpuPct}%`);
    result.headline = {
      'p50 ms': rep.latency.p50,
      'p90 ms': rep.latency.p90,
      'p99 ms': rep.latency.p99,
      'p99.9 ms': rep.latency.p999,
      'max ms': rep.latency.max,
      'sends/s': round(sched.fired / (sched.elapsedMs / 1000), 1),
      'deliveries/s': round(rep.delivered / (sched.elapsedMs / 1000), 0),
      'send ack p99 ms': acks.summary().p99,
      // Refused (429 when shedding load) or failed: their messages are not expected anywhere.
      'send errors': sendErrors,
      'server CPU µs/delivery': cpuMicrosPer(cpuWin.serverCpuSec, rep.delivered),
      ...serviceMicros(cpuWin.services, rep.delivered),
    };
    result.figures = {
      params: p,
      transport,
      sendOver,
      rooms: layout.members.length,
      roomSizes: sizeHistogram(layout),
      latency: rep.latency,
      sendAck: acks.summary(),
      schedule: sched,
      delivery: { ...rep, latency: undefined, lastRecipient: undefined },
      drainedAll: drained,
      sendErrors,
      sendErrorKinds: Object.fromEntries(errorKinds),
      syncsCompleted: clientStats.syncs - stats0.syncs,
      gapFills: clientStats.gapFills - stats0.gapFills,
      clientErrors: clientStats.errors - stats0.errors,
      socketsShed: socketStats.shed,
      cpu: cpuWin,
      peakRssMiB: round(peak / MiB, 1),
      serverAdmission: server,
    };
    result.lost = rep.lost;
    result.duplicated = rep.duplicated;
    result.serverCpuPct = cpuWin.serverCpuPct;
    result.generatorCpuPct = cpuWin.generatorCpuPct;
    result.otherCpuPct = cpuWin.otherCpuPct;
    if (cpuWin.generatorCpuPct > 85) result.notes.push(`generator CPU ${cpuWin.generatorCpuPct}%: the generator may be the bottleneck`);
    if (sched.lateOps) result.notes.push(`${sched.lateOps} sends fired >5 ms late (max lag ${sched.maxLagMs} ms); counted from intended time`);
    if (sendErrors) result.notes.push(`${sendErrors} sends failed (${fmtErrorKinds()})`);
  } finally {
    await session.close();
  }
  return result;
}

export const syncLatency: Scenario = {
  name: 'sync-latency',
  supports: () => null,
  run: async (ctx, spec) => [await runLatency(ctx, spec, 'sync', 'sync-latency')],
};

export const socketLatency: Scenario = {
  name: 'socket-latency',
  supports: (_spec, kind) => (kind === 'hearth' ? null : 'the WebSocket stream is a Hearth extension (io.hearth.sync.ws)'),
  run: async (ctx, spec) => [await runLatency(ctx, spec, 'socket', 'socket-latency')],
};
