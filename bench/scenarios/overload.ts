// overload: the server past capacity must stay responsive and lose nothing it admitted.
// 0. unloaded: sends at 50/s, the ack time an admitted send should stay near when overloaded.
// 1. capacity: closed-loop sends (many in flight, spread over rooms with one sender each) for
//    a few seconds; capacity = acknowledged sends per second.
// 2. overload: an open-loop offer of 3x that rate, while a prober GETs /versions every 10 ms
//    and a catch-up prober starts an initial /sync (timeout 0) every 50 ms. Each send is
//    admitted (200), shed (429/503 with retry_after_ms, never retried here) or an error
//    (anything else, or a shed answer without retry_after_ms); each catch-up answered (200) or
//    shed (503 with retry_after_ms; the spread of those shows the jitter).
//    The offer reaches the server: connections are opened before the overload (a pool of
//    kept-alive sockets as large as the sends expected in flight), so no send waits in the
//    generator or in the kernel's accept queue; the generator only queues past MAX_INFLIGHT
//    (counted as `queuedInGenerator`, which should be 0).
// 3. delivery: every admitted event must be in its room's timeline (/messages), exactly once.
// Headline: capacity, offered and admitted rates, share shed, admitted ack p99, /versions p50/p99
// while overloaded (target p99 <= 50 ms), the server's event-loop delay over the overload
// (perf_hooks monitorEventLoopDelay, installed through the inspector of a Hearth child), lost.
// Hearth with limits.admission at its defaults; OVERLOAD_LAG_MS=<ms> overrides
// limits.admission.max_event_loop_lag_ms, OVERLOAD_SEND_DELAY_MS=<ms> max_send_delay_ms and
// OVERLOAD_SEND_TARGET_MS=<ms> send_target_delay_ms, OVERLOAD_PACE_MS=<ms> pacing_turn_ms, to compare thresholds; OVERLOAD_RATE=<sends/s> fixes the offered rate (A/B of two builds).
// The server's own admission counters over the overload (requests paced to a later loop turn,
// sends and catch-ups shed) are read from /metrics on the client port (figures.serverAdmission).

import { emptyResult, openTarget, type BenchContext, type Scenario, type TargetSpec } from '../lib/context.js';
import http from 'node:http';
import { Inspector } from '../lib/inspector.js';
import type { MatrixClient } from '../lib/matrix.js';
import { HearthChild } from '../lib/target.js';
import { CpuMeter, round } from '../lib/proc.js';
import { Progress } from '../lib/progress.js';
import type { TargetResult } from '../lib/report.js';
import { blockLayout, createRooms } from '../lib/rooms.js';
import { runSchedule, sleep } from '../lib/schedule.js';
import { METRICS_CONFIG, admissionCounters, counterDelta, fmtShedReasons } from '../lib/admission-counters.js';
import { Samples, fmtDist } from '../lib/stats.js';

const FACTOR = 3;
/** Sends per second of the unloaded phase (the ack time to compare the overloaded one with). */
const UNLOADED_RATE = 50;
/**
 * Sends the generator keeps open at once; beyond it they queue here (latency still counts from
 * the intended time). Bounded by file descriptors (each is a connection, on both sides), not by
 * the server's limits: the server must see the whole offer to show its admission control.
 * (Until 2026-12-07 this was 1,024, under the 511 listen backlog, and the server never held
 * enough sends to shed: the excess waited here.) New connections past the listen backlog wait
 * for SYN retransmits (1 s, 3 s, 7 s), which would measure the kernel: hence the warm pool.
 */
const MAX_INFLIGHT = 8192;
/** Sockets opened at once while warming the pool (under the listen backlog). */
const WARM_WAVE = 250;

function params(quick: boolean) {
  return quick
    ? { senders: 50, unloadedMs: 2000, capacityMs: 2000, overloadMs: 4000, closedLoop: 1024 }
    : { senders: 100, unloadedMs: 5000, capacityMs: 5000, overloadMs: 20000, closedLoop: 1024 };
}

async function run(ctx: BenchContext, spec: TargetSpec): Promise<TargetResult[]> {
  const p = params(ctx.quick);
  const lag = process.env.OVERLOAD_LAG_MS;
  const delay = process.env.OVERLOAD_SEND_DELAY_MS;
  const sendTarget = process.env.OVERLOAD_SEND_TARGET_MS;
  const pace = process.env.OVERLOAD_PACE_MS;
  const admissionConfig = {
    ...(pace ? { pacing_turn_ms: Number(pace) } : {}),
    ...(lag ? { max_event_loop_lag_ms: Number(lag) } : {}),
    ...(delay ? { max_send_delay_ms: Number(delay) } : {}),
    ...(sendTarget ? { send_target_delay_ms: Number(sendTarget) } : {}),
  };
  const extraConfig = {
    // The admission's own counters (paced, shed) come from /metrics on the client port.
    ...METRICS_CONFIG,
    ...(lag || delay || sendTarget || pace ? { limits: { rate_limits: { enabled: false }, admission: admissionConfig } } : {}),
  };
  const session = await openTarget(ctx, spec, { users: p.senders, scenario: 'overload', prefix: 'o', extraConfig, inspect: true });
  const { target, users } = session;
  const result = emptyResult(target.label, target.info);
  try {
    const rooms = await createRooms(users, blockLayout(p.senders, 1), 'overload', 16, ctx.log);
    let seq = 0;
    const admitted: Array<{ room: number; eventId: string }> = [];

    // 0. Unloaded: a light open-loop offer, for the ack time admitted sends should stay near.
    const unloaded = new Samples();
    let unloadedRefused = 0;
    const light: Promise<void>[] = [];
    await runSchedule({
      ratePerSec: UNLOADED_RATE,
      durationMs: p.unloadedMs,
      fire: (i, intended) => {
        const sender = i % p.senders;
        light.push(
          users[sender].send(rooms[sender], `u${seq++}`, 'unloaded').then(
            (res) => {
              if (res.status !== 200) unloadedRefused++;
              else {
                unloaded.add(res.at - intended);
                admitted.push({ room: sender, eventId: res.body.event_id });
              }
            },
            () => void unloadedRefused++,
          ),
        );
      },
    });
    await Promise.all(light);
    const idle = unloaded.summary();
    ctx.log(`  unloaded (${UNLOADED_RATE}/s): ack ${fmtDist(idle)}; ${unloadedRefused} not admitted`);
    if (unloadedRefused > 0) result.notes.push(`${unloadedRefused} sends refused or failed at ${UNLOADED_RATE}/s (unloaded)`);

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

    // 2. Overload at FACTOR x capacity, with the /versions and catch-up probers.
    // OVERLOAD_RATE=<sends/s> offers a fixed rate instead (A/B of two builds on a busy machine,
    // where the capacity measured in each run moves with the machine's load).
    const rate = Number(process.env.OVERLOAD_RATE) || Math.max(50, capacity * FACTOR);
    const warmed = await warmPool(users, Math.min(MAX_INFLIGHT, Math.ceil(rate)));
    ctx.log(`  ${warmed} kept-alive connections opened before the overload`);
    const acks = new Samples();
    const versions = new Samples();
    let shed = 0;
    let errors = 0;
    let inflight = 0;
    let queuedInGenerator = 0;
    const errorKinds: Record<string, number> = {};
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
              else {
                errors++;
                errorKinds[`send ${res.status}`] = (errorKinds[`send ${res.status}`] ?? 0) + 1;
              }
            },
            (err: Error) => {
              errors++;
              const k = `send: ${err.message.replace(/\d+/g, 'N').slice(0, 60)}`;
              errorKinds[k] = (errorKinds[k] ?? 0) + 1;
            },
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
        const ms = await probe().catch((err: Error) => {
          const k = `/versions: ${err.message.slice(0, 60)}`;
          errorKinds[k] = (errorKinds[k] ?? 0) + 1;
          return null;
        });
        if (ms !== null) versions.add(ms);
        else errors++;
        await sleep(10);
      }
    })();
    // New catch-ups (initial syncs) while overloaded: answered, or 503 with a jittered retry_after_ms.
    const catchups = { answered: 0, shed: 0, errors: 0, retryAfterMs: [] as number[] };
    const catchupProber = (async () => {
      for (let k = 0; probing; k++) {
        const res = await users[k % p.senders].sync({ timeout: 0, filter: CATCHUP_FILTER }).catch(() => null);
        if (res?.status === 200) catchups.answered++;
        else if (res?.status === 503 && typeof res.body?.retry_after_ms === 'number') {
          catchups.shed++;
          catchups.retryAfterMs.push(res.body.retry_after_ms);
        } else catchups.errors++;
        await sleep(50);
      }
    })();
    const eld = target instanceof HearthChild && target.inspectorUrl ? await LoopDelay.start(target.inspectorUrl) : undefined;
    const counters0 = await admissionCounters(target.url);
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
        else {
          queuedInGenerator++;
          queue.push(() => launch(sender, intended));
        }
      },
    });
    bar.done();
    probing = false;
    const loopDelay = await eld?.stop();
    // Sends queued here launch later than any snapshot of `settled`: wait for all of them.
    const drainUntil = performance.now() + 120_000;
    while ((inflight > 0 || queue.length > 0) && performance.now() < drainUntil) await sleep(20);
    await Promise.all(settled);
    await prober;
    await catchupProber;
    probeAgent.destroy();
    // Once every send of the overload is answered (some are refused after the schedule ends);
    // a build without the counters reports none.
    const counters1 = await admissionCounters(target.url);
    const server = counterDelta(counters0, counters1);
    const c = cpu.stop();
    const overloadAdmitted = acks.count;
    const ack = acks.summary();
    const v = versions.summary();
    ctx.log(
      `  ${Math.round(rate)}/s offered (${FACTOR}x): ${overloadAdmitted} admitted, ${shed} shed, ${errors} errors ${JSON.stringify(errorKinds)}, ${queuedInGenerator} queued in the generator; admitted ack ${fmtDist(ack)}; /versions ${fmtDist(v)}; server CPU ${c.serverCpuPct}%`,
    );
    const retries = catchups.retryAfterMs;
    ctx.log(
      `  catch-ups while overloaded: ${catchups.answered} answered, ${catchups.shed} shed${retries.length ? ` (retry_after_ms ${Math.min(...retries)}-${Math.max(...retries)}, ${new Set(retries).size} distinct)` : ''}, ${catchups.errors} errors` +
        (loopDelay ? `; server event-loop delay p50 ${loopDelay.p50} ms, p99 ${loopDelay.p99} ms, max ${loopDelay.max} ms` : ''),
    );
    if (server) ctx.log(`  server admission over the overload: ${server.paced ?? 0} paced (deferred to a later loop turn), ${server.shed_sends ?? 0} sends and ${server.shed_catchups ?? 0} catch-ups shed (by reason: ${fmtShedReasons(server)})`);

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
      'unloaded ack p99 ms': idle.p99,
      'admitted ack p99 ms': ack.p99,
      '/versions p50 ms': v.p50,
      '/versions p99 ms': v.p99,
      'event-loop delay p99 ms': loopDelay?.p99 ?? NaN,
      'catch-ups shed %': round((100 * catchups.shed) / Math.max(1, catchups.answered + catchups.shed + catchups.errors), 1),
      errors,
      lost,
    };
    result.serverCpuPct = c.serverCpuPct;
    result.generatorCpuPct = c.generatorCpuPct;
    result.otherCpuPct = c.otherCpuPct;
    result.figures = {
      params: { ...p, factor: FACTOR, maxInflight: MAX_INFLIGHT, admission: admissionConfig },
      unloadedAck: idle,
      ack,
      versions: v,
      fired: sched.fired,
      shed,
      queuedInGenerator,
      errorKinds,
      warmedConnections: warmed,
      maxLagMs: sched.maxLagMs,
      admittedTotal: admitted.length,
      catchups: { answered: catchups.answered, shed: catchups.shed, errors: catchups.errors, retryAfterMin: retries.length ? Math.min(...retries) : null, retryAfterMax: retries.length ? Math.max(...retries) : null, retryAfterDistinct: new Set(retries).size },
      serverLoopDelayMs: loopDelay ?? null,
      serverAdmission: server,
    };
    if (queuedInGenerator > 0) result.notes.push(`${queuedInGenerator} sends waited in the generator (over ${MAX_INFLIGHT} in flight): the server did not see all of the offer on time`);
    if (v.p99 > 50) result.notes.push(`/versions p99 ${v.p99} ms while overloaded (target <= 50 ms)`);
    if (errors > 0) result.notes.push(`${errors} requests failed without a shed answer: ${JSON.stringify(errorKinds)}`);
  } finally {
    await session.close();
  }
  return [result];
}

const CATCHUP_FILTER = JSON.stringify({ room: { timeline: { limit: 20 } }, presence: { types: [] } });

/**
 * Opens `n` kept-alive connections in the shared agent's pool: short parked /syncs, a wave of
 * WARM_WAVE at a time (each wave holds its sockets until they all come back together), so the
 * overload that follows needs no new connection. Returns how many answered.
 */
async function warmPool(users: MatrixClient[], n: number): Promise<number> {
  const tokens = await Promise.all(users.map(async (u) => (await u.sync({ timeout: 0, filter: CATCHUP_FILTER })).body.next_batch as string));
  const holdMs = 1000 + Math.ceil(n / WARM_WAVE) * 40;
  const all: Promise<boolean>[] = [];
  for (let i = 0; i < n; i += WARM_WAVE) {
    for (let k = i; k < Math.min(n, i + WARM_WAVE); k++) {
      const u = k % users.length;
      all.push(users[u].sync({ since: tokens[u], timeout: holdMs, filter: CATCHUP_FILTER }).then((r) => r.status === 200, () => false));
    }
    await sleep(40);
  }
  // The shared agent keeps them (keepAlive, LIFO) for the sends that follow.
  return (await Promise.all(all)).filter(Boolean).length;
}

/** The server's event-loop delay (perf_hooks monitorEventLoopDelay) over a window, through its inspector. */
class LoopDelay {
  private constructor(private readonly insp: Inspector) {}

  static async start(url: string): Promise<LoopDelay> {
    const insp = await Inspector.connect(url);
    await insp.evaluate(
      "(() => { const h = globalThis.__benchLoopDelay ??= process.getBuiltinModule('node:perf_hooks').monitorEventLoopDelay({ resolution: 5 }); h.reset(); h.enable(); return true; })()",
    );
    return new LoopDelay(insp);
  }

  async stop(): Promise<{ p50: number; p90: number; p99: number; max: number; mean: number }> {
    const r = await this.insp.evaluate(
      '(() => { const h = globalThis.__benchLoopDelay; h.disable(); const ms = (ns) => Math.round(ns / 1e5) / 10; return JSON.stringify({ p50: ms(h.percentile(50)), p90: ms(h.percentile(90)), p99: ms(h.percentile(99)), max: ms(h.max), mean: ms(h.mean) }); })()',
    );
    this.insp.close();
    return JSON.parse(String(r));
  }
}

export const overload: Scenario = {
  name: 'overload',
  supports: (spec) => (spec.kind === 'synapse' ? 'measures Hearth load shedding' : null),
  run,
};
