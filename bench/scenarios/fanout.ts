// fanout: one room whose members are all on WebSocket streams, and one whose members are all in
// /sync long-polls; one member sends at a modest constant rate and each message's figure is the
// time until the LAST member had it (max over members), from the intended send time. The two
// halves run one after the other on the same server so each gets the CPU to itself; against
// other servers (and in --vs synapse) only the long-poll half runs.

import { PollClient, SocketClient, clientStats, socketStats } from '../lib/clients.js';
import { emptyResult, openTarget, serverCpuMeter, type BenchContext, type Scenario, type TargetSpec } from '../lib/context.js';
import type { HttpResult, MatrixClient } from '../lib/matrix.js';
import { cpuMicrosPer, fmtServices, round, serviceMicros, type CpuWindow } from '../lib/proc.js';
import { HearthChild, type Target } from '../lib/target.js';
import { windowProfiler } from '../lib/inspector.js';
import { Progress } from '../lib/progress.js';
import type { TargetResult } from '../lib/report.js';
import { pool, runSchedule, sleep } from '../lib/schedule.js';
import { fmtDist } from '../lib/stats.js';
import { METRICS_CONFIG, admissionCounters, counterDelta, fmtShedReasons } from '../lib/admission-counters.js';
import { Tracker, type DeliveryReport } from '../lib/tracker.js';

function params(quick: boolean) {
  return quick ? { members: 200, ratePerSec: 5, durationMs: 10_000 } : { members: 1000, ratePerSec: 5, durationMs: 30_000 };
}

interface Half {
  report: DeliveryReport;
  cpu: CpuWindow;
  sendErrors: number;
  /** How member 0 sent: PUT /send, or send frames over its socket. */
  sendOver: 'http' | 'socket';
}

async function runHalf(ctx: BenchContext, target: Target, users: MatrixClient[], transport: 'socket' | 'sync'): Promise<Half> {
  const label = target.label;
  const p = params(ctx.quick);
  const t0 = performance.now();
  const roomId = await users[0].createRoom(`fanout ${transport}`);
  await pool(users.slice(1), 16, (u) => u.join(roomId));
  ctx.log(`  ${transport}: room with ${users.length} members ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const tracker = new Tracker();
  let stop: () => Promise<void>;
  // The sender: member 0, over its own socket in the socket half unless --socket-send http.
  let sender: { send(roomId: string, txnId: string, body: string): Promise<HttpResult> } = users[0];
  if (transport === 'sync') {
    const clients = users.map((u, i) => new PollClient(u, i, tracker));
    await pool(clients, 32, (c) => c.initialSync());
    clients.forEach((c) => c.start());
    stop = async () => void (await Promise.all(clients.map((c) => c.stop())));
  } else {
    const clients = users.map((u, i) => new SocketClient(u, i, tracker));
    await pool(clients, 50, (c) => c.connect());
    stop = async () => void (await Promise.all(clients.map((c) => c.close())));
    if ((ctx.socketSend ?? 'socket') === 'socket') sender = clients[0];
  }
  await sleep(ctx.quick ? 1000 : 2000);
  const recipients = new Set(users.map((_, i) => i).slice(1));
  let sendErrors = 0;
  const inflight = new Set<Promise<void>>();
  const cpu = serverCpuMeter(target);
  const profiler = await windowProfiler(target instanceof HearthChild ? target.inspectorUrl : undefined, `fanout-${transport}`);
  await profiler.start();
  cpu.start();
  const bar = new Progress(`fanout ${transport} ${label}`, p.durationMs);
  const s0 = performance.now();
  await runSchedule({
    ratePerSec: p.ratePerSec,
    durationMs: p.durationMs,
    onTick: () => bar.update(performance.now() - s0),
    fire: (i, intended) => {
      const { id, body } = tracker.add(intended, 0, recipients);
      const job = sender
        .send(roomId, `f${tracker.run}-${i}`, body)
        .then(
          (res) => (res.status === 200 ? tracker.acked(id) : (sendErrors++, tracker.failed(id))),
          () => (sendErrors++, tracker.failed(id)),
        )
        .finally(() => inflight.delete(job));
      inflight.add(job);
    },
  });
  bar.done();
  await Promise.race([Promise.all(inflight), sleep(30_000)]);
  await tracker.drain();
  const cpuWin = cpu.stop();
  await profiler.stop();
  await stop();
  const report = tracker.report();
  ctx.log(`  ${transport} ${label}: last member ${fmtDist(report.lastRecipient)}; lost ${report.lost} dup ${report.duplicated}; server CPU ${cpuWin.serverCpuPct}% (${cpuMicrosPer(cpuWin.serverCpuSec, report.delivered)} µs/delivery)${fmtServices(cpuWin.services)} generator ${cpuWin.generatorCpuPct}%`);
  return { report, cpu: cpuWin, sendErrors, sendOver: sender === users[0] ? 'http' : 'socket' };
}

async function run(ctx: BenchContext, spec: TargetSpec): Promise<TargetResult[]> {
  const p = params(ctx.quick);
  const socketsToo = (spec.kind === 'hearth' || spec.kind === 'cluster') && !ctx.versus;
  // /metrics on the client port: the admission's counters show whether anything was shed.
  const session = await openTarget(ctx, spec, { users: p.members * (socketsToo ? 2 : 1), scenario: 'fanout', prefix: 'f', inspect: !!process.env.HEARTH_BENCH_WINDOW_PROFILE, extraConfig: METRICS_CONFIG });
  const { target, users } = session;
  const result = emptyResult(target.label, target.info);
  try {
    const counters0 = await admissionCounters(target.url);
    const halves: Record<string, Half> = {};
    if (socketsToo) halves.socket = await runHalf(ctx, target, users.slice(0, p.members), 'socket');
    halves.sync = await runHalf(ctx, target, users.slice(socketsToo ? p.members : 0), 'sync');
    for (const [name, h] of Object.entries(halves)) {
      const tag = name === 'sync' ? '/sync' : 'socket';
      result.headline[`${tag} last-member p50 ms`] = h.report.lastRecipient.p50;
      result.headline[`${tag} last-member p99 ms`] = h.report.lastRecipient.p99;
      result.headline[`${tag} last-member max ms`] = h.report.lastRecipient.max;
      result.headline[`${tag} send errors`] = h.sendErrors;
      result.headline[`${tag} server CPU µs/delivery`] = cpuMicrosPer(h.cpu.serverCpuSec, h.report.delivered);
      Object.assign(result.headline, serviceMicros(h.cpu.services, h.report.delivered, 'delivery', `${tag} `));
      result.figures[name] = { lastMember: h.report.lastRecipient, perDelivery: h.report.latency, delivery: { ...h.report, latency: undefined, lastRecipient: undefined }, cpu: h.cpu, sendErrors: h.sendErrors, sendOver: h.sendOver };
      result.lost += h.report.lost;
      result.duplicated += h.report.duplicated;
      if (h.sendErrors) result.notes.push(`${name}: ${h.sendErrors} sends failed`);
    }
    const cpus = Object.values(halves).map((h) => h.cpu);
    result.serverCpuPct = round(Math.max(...cpus.map((c) => c.serverCpuPct)), 1);
    result.generatorCpuPct = round(Math.max(...cpus.map((c) => c.generatorCpuPct)), 1);
    result.otherCpuPct = round(Math.max(...cpus.map((c) => c.otherCpuPct)), 1);
    result.figures.params = { ...p, halves: Object.keys(halves) };
    result.figures.clientErrors = clientStats.errors;
    result.figures.socketsShed = socketStats.shed;
    const server = counterDelta(counters0, await admissionCounters(target.url));
    result.figures.serverAdmission = server;
    if (server) ctx.log(`  server admission: ${server.paced ?? 0} paced, ${server.shed_sends ?? 0} sends and ${server.shed_catchups ?? 0} catch-ups shed (by reason: ${fmtShedReasons(server)})`);
  } finally {
    await session.close();
  }
  return [result];
}

export const fanout: Scenario = { name: 'fanout', supports: () => null, run };
