// send-ceiling: the highest sustained rate of acknowledged sends. An open-loop ramp: each step
// offers a constant rate for a few seconds (sends spread round-robin over many rooms, each
// with its own sender, since a room has one writer), ack latency counted from the intended send
// time. A step passes while p99 ack latency stays <= 100 ms, no send fails and the server keeps
// up (acks >= 95 % of the offered rate); the knee is the last passing step. Hearth acknowledges a
// send only after its transaction committed (grouped commits), so every ack is durable per the
// commit policy; Hearth runs twice, storage.sqlite.synchronous full and normal.

import { emptyResult, openTarget, serverCpuMeter, type BenchContext, type Scenario, type TargetSpec } from '../lib/context.js';
import { cpuMicrosPer, fmtServices, round, serviceMicros, type CpuWindow } from '../lib/proc.js';
import { Progress } from '../lib/progress.js';
import type { TargetResult } from '../lib/report.js';
import { blockLayout, createRooms } from '../lib/rooms.js';
import { runSchedule, sleep } from '../lib/schedule.js';
import { Samples, fmtDist, type Distribution } from '../lib/stats.js';

const P99_LIMIT_MS = 100;
/** Requests the generator keeps open at once; beyond it sends queue here (latency still counts). */
const MAX_INFLIGHT = 2048;

function params(quick: boolean, kind: TargetSpec['kind']) {
  // Other servers start lower: Synapse on SQLite acknowledges far fewer sends per second, and
  // Hearth on Cassandra (--cluster) fewer still on this shared machine.
  const hearth = kind === 'hearth';
  const startRate = hearth ? (quick ? 200 : 100) : kind === 'cluster' ? 10 : 25;
  return quick
    ? { senders: 50, startRate, factor: 2, stepMs: 1000, maxSteps: hearth ? 7 : kind === 'cluster' ? 10 : 9 }
    : { senders: 100, startRate, factor: 1.4, stepMs: 5000, maxSteps: hearth ? 16 : 20 };
}

interface Step {
  offered: number;
  achieved: number;
  acked: number;
  errors: number;
  /** Failed sends by HTTP status and errcode ("transport" for no answer): what the failures were. */
  errorKinds: Record<string, number>;
  ack: Distribution;
  serverCpuPct: number;
  /** Server CPU per acknowledged send (a cluster's workers summed). */
  serverCpuUsPerSend: number;
  services?: CpuWindow['services'];
  generatorCpuPct: number;
  otherCpuPct: number;
  maxLagMs: number;
  pass: boolean;
}

async function runOne(ctx: BenchContext, spec: TargetSpec, synchronous?: 'full' | 'normal'): Promise<TargetResult> {
  const p = params(ctx.quick, spec.kind);
  const session = await openTarget(ctx, spec, { users: p.senders, synchronous, scenario: 'send-ceiling', prefix: 's' });
  const { target, users } = session;
  const result = emptyResult(target.label, target.info);
  try {
    const rooms = await createRooms(users, blockLayout(p.senders, 1), 'ceiling', 16, ctx.log);
    let seq = 0;
    const steps: Step[] = [];
    let rate = p.startRate;
    for (let s = 0; s < p.maxSteps; s++) {
      const acks = new Samples();
      let errors = 0;
      const errorKinds: Record<string, number> = {};
      const failed = (kind: string) => {
        errors++;
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      };
      let inflight = 0;
      let lastAckAt = 0;
      const queue: Array<() => void> = [];
      const settled: Promise<void>[] = [];
      const launch = (sender: number, intended: number) => {
        inflight++;
        const txn = `c${seq++}`;
        settled.push(
          users[sender]
            .send(rooms[sender], txn, `ceiling ${txn}`)
            .then(
              (res) => {
                if (res.status === 200) {
                  acks.add(res.at - intended);
                  lastAckAt = res.at;
                } else failed(`${res.status} ${res.body?.errcode ?? ''}`.trim());
              },
              () => failed('transport'),
            )
            .finally(() => {
              inflight--;
              queue.shift()?.();
            }),
        );
      };
      const cpu = serverCpuMeter(target);
      const bar = new Progress(`send-ceiling ${target.label}${synchronous ? ` ${synchronous}` : ''} ${Math.round(rate)}/s`, p.stepMs);
      cpu.start();
      const t0 = performance.now();
      const sched = await runSchedule({
        ratePerSec: rate,
        durationMs: p.stepMs,
        onTick: () => bar.update(performance.now() - t0),
        fire: (i, intended) => {
          const sender = i % p.senders;
          if (inflight < MAX_INFLIGHT) launch(sender, intended);
          else queue.push(() => launch(sender, intended));
        },
      });
      bar.done();
      await Promise.race([Promise.all(settled), sleep(60_000)]);
      const c = cpu.stop();
      const ack = acks.summary();
      const achieved = acks.count / (Math.max(lastAckAt - t0, sched.elapsedMs) / 1000);
      const pass = errors === 0 && ack.p99 <= P99_LIMIT_MS && achieved >= 0.95 * rate && acks.count === sched.fired;
      steps.push({ offered: Math.round(rate), achieved: round(achieved, 0), acked: acks.count, errors, errorKinds, ack, serverCpuPct: c.serverCpuPct, serverCpuUsPerSend: cpuMicrosPer(c.serverCpuSec, acks.count), services: c.services, generatorCpuPct: c.generatorCpuPct, otherCpuPct: c.otherCpuPct, maxLagMs: sched.maxLagMs, pass });
      ctx.log(`  ${Math.round(rate)}/s offered -> ${achieved.toFixed(0)}/s acked, errors ${errors}${errors ? ` ${JSON.stringify(errorKinds)}` : ''}, ack ${fmtDist(ack)}, server CPU ${c.serverCpuPct}% (${cpuMicrosPer(c.serverCpuSec, acks.count)} µs/send)${fmtServices(c.services)} generator ${c.generatorCpuPct}% other ${c.otherCpuPct}% ${pass ? 'ok' : 'KNEE PASSED'}`);
      if (!pass) break;
      rate *= p.factor;
      await sleep(ctx.quick ? 200 : 500);
    }
    const passing = steps.filter((st) => st.pass);
    const knee = passing[passing.length - 1];
    const over = steps.find((st) => !st.pass);
    result.headline = {
      'sends/s at knee': knee ? knee.achieved : 0,
      'p50 ms at knee': knee ? knee.ack.p50 : NaN,
      'p99 ms at knee': knee ? knee.ack.p99 : NaN,
      'first failing offered/s': over ? over.offered : NaN,
      'server CPU µs/send at knee': knee ? knee.serverCpuUsPerSend : NaN,
      ...(knee ? serviceMicros(knee.services, knee.acked, 'send at knee') : {}),
    };
    result.serverCpuPct = knee?.serverCpuPct;
    result.generatorCpuPct = knee?.generatorCpuPct;
    result.otherCpuPct = knee?.otherCpuPct;
    result.figures = { params: { ...p, p99LimitMs: P99_LIMIT_MS, maxInflight: MAX_INFLIGHT }, steps, commitPolicy: target.info };
    if (!over) result.notes.push('ramp ended before the knee (maxSteps reached)');
    if (knee && knee.generatorCpuPct > 85) result.notes.push('generator CPU > 85% at the knee: the generator may be the limit');
  } finally {
    await session.close();
  }
  return result;
}

async function run(ctx: BenchContext, spec: TargetSpec): Promise<TargetResult[]> {
  if (spec.kind === 'hearth') return [await runOne(ctx, spec, 'full'), await runOne(ctx, spec, 'normal')];
  return [await runOne(ctx, spec)];
}

export const sendCeiling: Scenario = { name: 'send-ceiling', supports: () => null, run };
