// overload: the server past capacity must stay responsive and lose nothing it admitted.
// 1. capacity: closed-loop sends (many in flight, spread over rooms with one sender each) for
//    a few seconds; capacity = acknowledged sends per second.
// 2. overload: an open-loop offer of 3x that rate, while a prober GETs /versions every 10 ms.
//    Each send is admitted (200), shed (429/503 with retry_after_ms, never retried here) or an
//    error (anything else, or a shed answer without retry_after_ms).
// 3. delivery: every admitted event must be in its room's timeline (/messages), exactly once.
// Headline: capacity, offered and admitted rates, share shed, admitted ack p99, /versions p50/p99
// while overloaded (target p99 <= 50 ms), lost. Hearth with limits.admission at its defaults;
// OVERLOAD_LAG_MS=<ms> overrides limits.admission.max_event_loop_lag_ms to compare thresholds.

import { emptyResult, openTarget, type BenchContext, type Scenario, type TargetSpec } from '../lib/context.js';
import http from 'node:http';
import { CpuMeter, round } from '../lib/proc.js';
import { Progress } from '../lib/progress.js';
import type { TargetResult } from '../lib/report.js';
import { blockLayout, createRooms } from '../lib/rooms.js';
import { runSchedule, sleep } from '../lib/schedule.js';
import { Samples, fmtDist } from '../lib/stats.js';

const FACTOR = 3;
/**
 * Sends the generator keeps open at once; beyond it they queue here (latency still counts from
 * the intended time). Well under the server's listen backlog (511): past it, new connections
 * wait for SYN retransmits (1 s, 3 s, 7 s), which measures the kernel, not the server.
 */
const MAX_INFLIGHT = 1024;

function params(quick: boolean) {
  return quick ? { senders: 50, capacityMs: 2000, overloadMs: 4000, closedLoop: 1024 } : { senders: 100, capacityMs: 5000, overloadMs: 20000, closedLoop: 1024 };
}

async function run(ctx: BenchContext, spec: TargetSpec): Promise<TargetResult[]> {
  const p = params(ctx.quick);
  const lag = process.env.OVERLOAD_LAG_MS;
  const extraConfig = lag ? { limits: { rate_limits: { enabled: false }, admission: { max_event_loop_lag_ms: Number(lag) } } } : undefined;
  const session = await openTarget(ctx, spec, { users: p.senders, scenario: 'overload', prefix: 'o', extraConfig });
  const { target, users } = session;
  const result = emptyResult(target.label, target.info);
  try {
    const rooms = await createRooms(users, blockLayout(p.senders, 1), 'overload', 16, ctx.log);
    let seq = 0;
    const admitted: Array<{ room: number; eventId: string }> = [];

    // 1. Capacity, closed loop.
    let capAcks = 0;
    let capShed = 0;
    const capEnd = performance.now() + p.capacityMs;
    const capStart = performance.now();
    await Promise.all(
      Array.from({ length: p.closedLoop }, async (_, k) => {
        while (performance.now() < capEnd) {
          const sender = k % p.senders;
          const res = await users[sender].send(rooms[sender], `k${seq++}`, 'capacity');
          if (res.status === 200) {
            capAcks++;
            admitted.push({ room: sender, eventId: res.body.event_id });
          } else {
            capShed++;
            await sleep(Number(res.body?.retry_after_ms) || 100);
          }
        }
      }),
    );
    const capacity = capAcks / ((performance.now() - capStart) / 1000);
    ctx.log(`  capacity: ${capacity.toFixed(0)} sends/s closed-loop (${p.closedLoop} in flight, ${capShed} shed)`);
    await sleep(500);

    // 2. Overload at FACTOR x capacity, with the /versions prober.
    const rate = Math.max(50, capacity * FACTOR);
    const acks = new Samples();
    const versions = new Samples();
    let shed = 0;
    let errors = 0;
    let inflight = 0;
    const queue: Array<() => void> = [];
    const settled: Promise<void>[] = [];
    const launch = (sender: number, intended: number) => {
      inflight++;
      settled.push(
        users[sender]
          .send(rooms[sender], `o${seq++}`, 'overload')
          .then(
            (res) => {
              if (res.status === 200) {
                acks.add(res.at - intended);
                admitted.push({ room: sender, eventId: res.body.event_id });
              } else if ((res.status === 429 || res.status === 503) && typeof res.body?.retry_after_ms === 'number') shed++;
              else errors++;
            },
            () => void errors++,
          )
          .finally(() => {
            inflight--;
            queue.shift()?.();
          }),
      );
    };
    let probing = true;
    // Its own kept-alive connection, opened before the overload: a client already connected.
    const probeAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const probe = () =>
      new Promise<number>((resolve, reject) => {
        const t0 = performance.now();
        const req = http.get(target.url + '/_matrix/client/versions', { agent: probeAgent, timeout: 30_000 }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`status ${res.statusCode}`))));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
      });
    await probe();
    const prober = (async () => {
      while (probing) {
        const ms = await probe().catch(() => null);
        if (ms !== null) versions.add(ms);
        else errors++;
        await sleep(10);
      }
    })();
    const cpu = new CpuMeter(() => target.pid());
    const bar = new Progress(`overload ${target.label} ${Math.round(rate)}/s`, p.overloadMs);
    cpu.start();
    const t0 = performance.now();
    const sched = await runSchedule({
      ratePerSec: rate,
      durationMs: p.overloadMs,
      onTick: () => bar.update(performance.now() - t0),
      fire: (i, intended) => {
        const sender = i % p.senders;
        if (inflight < MAX_INFLIGHT) launch(sender, intended);
        else queue.push(() => launch(sender, intended));
      },
    });
    bar.done();
    probing = false;
    // Sends queued here launch later than any snapshot of `settled`: wait for all of them.
    const drainUntil = performance.now() + 120_000;
    while ((inflight > 0 || queue.length > 0) && performance.now() < drainUntil) await sleep(20);
    await Promise.all(settled);
    await prober;
    probeAgent.destroy();
    const c = cpu.stop();
    const overloadAdmitted = acks.count;
    const ack = acks.summary();
    const v = versions.summary();
    ctx.log(
      `  ${Math.round(rate)}/s offered (${FACTOR}x): ${overloadAdmitted} admitted, ${shed} shed, ${errors} errors; admitted ack ${fmtDist(ack)}; /versions ${fmtDist(v)}; server CPU ${c.serverCpuPct}%`,
    );

    // 3. Delivery: every admitted event in its room's timeline, once.
    const byRoom = new Map<number, Set<string>>();
    for (const a of admitted) {
      let s = byRoom.get(a.room);
      if (!s) byRoom.set(a.room, (s = new Set()));
      s.add(a.eventId);
    }
    let lost = 0;
    let duplicated = 0;
    for (const [room, want] of byRoom) {
      const seen = new Map<string, number>();
      let from: string | undefined;
      for (let page = 0; page < 1000; page++) {
        const q = new URLSearchParams({ dir: 'b', limit: '1000' });
        if (from) q.set('from', from);
        const body = await users[room].call('GET', `/_matrix/client/v3/rooms/${encodeURIComponent(rooms[room])}/messages?${q}`);
        for (const e of body.chunk as Array<{ event_id: string }>) seen.set(e.event_id, (seen.get(e.event_id) ?? 0) + 1);
        if (!body.end || body.chunk.length === 0) break;
        from = body.end;
      }
      for (const id of want) {
        const n = seen.get(id) ?? 0;
        if (n === 0) lost++;
        else if (n > 1) duplicated++;
      }
    }
    result.lost = lost;
    result.duplicated = duplicated;
    result.headline = {
      'capacity sends/s': round(capacity, 0),
      'offered/s': Math.round(rate),
      'admitted/s': round(overloadAdmitted / (sched.elapsedMs / 1000), 0),
      'shed %': round((100 * shed) / Math.max(1, sched.fired), 1),
      'admitted ack p99 ms': ack.p99,
      '/versions p50 ms': v.p50,
      '/versions p99 ms': v.p99,
      errors,
      lost,
    };
    result.serverCpuPct = c.serverCpuPct;
    result.generatorCpuPct = c.generatorCpuPct;
    result.otherCpuPct = c.otherCpuPct;
    result.figures = { params: { ...p, factor: FACTOR, maxInflight: MAX_INFLIGHT }, ack, versions: v, fired: sched.fired, maxLagMs: sched.maxLagMs, admittedTotal: admitted.length };
    if (v.p99 > 50) result.notes.push(`/versions p99 ${v.p99} ms while overloaded (target <= 50 ms)`);
    if (errors > 0) result.notes.push(`${errors} requests failed without a shed answer`);
  } finally {
    await session.close();
  }
  return [result];
}

export const overload: Scenario = {
  name: 'overload',
  supports: (spec) => (spec.kind === 'synapse' ? 'measures Hearth load shedding' : null),
  run,
};
