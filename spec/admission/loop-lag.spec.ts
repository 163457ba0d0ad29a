// LoopLag (src/admission/loop-lag.ts) with fake wall and CPU clocks, the timer driven by hand:
// hysteresis of the smoothed lateness (late above max, on time again only under half), lateness
// counted only as far as the server was on the CPU (a busy machine is not a busy server), and a
// stall refusing only with a flood of requests in it and the turn's CPU past the budget. Read
// through `late(now)`, as admission reads it: right after a timer run there is no stall, so it
// answers the smoothed figure (with hysteresis).

import { assert } from '../helpers/assert.js';
import { LoopLag } from '../../src/admission/loop-lag.js';

const EVERY = 10;

/** A LoopLag on fake clocks; `run(wallMs, cpuShare)` advances both and runs the timer once. */
function rig(maxMs: number) {
  let wall = 0;
  let cpu = 0;
  const lag = new LoopLag(maxMs, EVERY, () => wall, () => cpu);
  return {
    lag,
    /** One timer run `wallMs` after the last, the server on the CPU for `share` of it. */
    run(wallMs: number, share = 1) {
      wall += wallMs;
      cpu += wallMs * share;
      lag.sample();
    },
    /** Time passes inside one loop turn (no timer run). */
    stall(wallMs: number, share = 1) {
      wall += wallMs;
      cpu += wallMs * share;
    },
    get wall() {
      return wall;
    },
  };
}

describe('LoopLag', function () {
  it('turns late when the smoothed lateness passes max and stays late until it is under half of it', function () {
    const r = rig(20);
    try {
      // Turns of 40 ms (30 late): the smoothed figure climbs past 20 after a few samples.
      let samples = 0;
      while (!r.lag.late(r.wall)) {
        r.run(40);
        samples++;
        assert.ok(samples < 20, 'never turned late');
      }
      assert.ok(samples >= 3, `one long turn alone does not shed (${samples} samples)`);
      // Turns of 25 ms (15 late: under max, over half of it): still late (hysteresis).
      for (let i = 0; i < 30; i++) r.run(25);
      assert.equal(r.lag.late(r.wall), true, 'stays late between half and max');
      // On time (10 ms turns): the smoothed figure decays under 10 and shedding stops.
      let decay = 0;
      while (r.lag.late(r.wall)) {
        r.run(EVERY);
        decay++;
        assert.ok(decay < 30, 'never recovered');
      }
      // Back at 25 ms turns: under max, so not late again (it takes more than max to turn late).
      for (let i = 0; i < 30; i++) r.run(25);
      assert.equal(r.lag.late(r.wall), false);
    } finally {
      r.lag.close();
    }
  });

  it('counts only the share of lateness the server spent on the CPU: a descheduled server is not late', function () {
    const r = rig(20);
    try {
      // 100 ms turns, but the server ran for 5 % of them (the machine was busy elsewhere).
      for (let i = 0; i < 50; i++) r.run(100, 0.05);
      assert.equal(r.lag.late(r.wall), false);
      // The same turns with the server on the CPU throughout: late.
      for (let i = 0; i < 10; i++) r.run(100, 1);
      assert.equal(r.lag.late(r.wall), true);
    } finally {
      r.lag.close();
    }
  });

  it('one long turn alone (a GC pause under a normal load) does not turn the loop late; long turns in a row do', function () {
    const r = rig(100);
    try {
      for (let i = 0; i < 20; i++) r.run(EVERY);
      // An 870 ms turn on the CPU (the lead's full sync-latency run: p99.9 ~870 ms at 200 sends/s).
      r.run(880);
      assert.equal(r.lag.lateReason(r.wall), null, 'one turn, however long, counts at most 3 × max');
      for (let i = 0; i < 20; i++) r.run(EVERY);
      // A second one right after the first: the loop is behind, not paused once.
      r.run(880);
      r.run(880);
      assert.equal(r.lag.lateReason(r.wall), 'lag');
    } finally {
      r.lag.close();
    }
  });

  it('a flood counts only requests read once the turn is past its budget, not those read before a pause', function () {
    const r = rig(20);
    try {
      r.run(EVERY);
      // A normal poll phase reads 100 requests in its first 30 ms (under the 40 ms budget)...
      for (let i = 0; i < 100; i++) {
        r.stall(0.3);
        assert.equal(r.lag.late(r.wall), false);
      }
      // ...then one long task (a major GC): the few requests left in the batch go on.
      r.stall(500);
      for (let i = 0; i < 10; i++) assert.equal(r.lag.late(r.wall), false, `request ${i} after the pause`);
      // A real flood past the budget: refused from the 65th read past it.
      const refused = Array.from({ length: 100 }, () => r.lag.lateReason(r.wall)).filter((x) => x === 'stall').length;
      assert.equal(refused, 100 - (64 - 10));
    } finally {
      r.lag.close();
    }
  });

  it('reads the CPU clock at most once per millisecond of a long turn, however many requests ask', function () {
    let wall = 0;
    let cpu = 0;
    let reads = 0;
    const lag = new LoopLag(20, EVERY, () => wall, () => (reads++, cpu));
    try {
      lag.sample();
      wall += 100;
      cpu += 100;
      const before = reads;
      // 1,000 requests read over 5 ms of a turn already past its budget.
      for (let i = 0; i < 1000; i++) {
        wall += 0.005;
        cpu += 0.005;
        lag.turnSpent(wall, 10);
        lag.late(wall);
      }
      assert.ok(reads - before <= 6, `${reads - before} reads of the CPU clock`);
      assert.equal(lag.turnSpent(wall, 10), true);
      assert.equal(lag.late(wall), true, 'a flood past the budget on the CPU');
    } finally {
      lag.close();
    }
  });

  it('a stall refuses after a flood of requests, and only when the turn spent its budget on the CPU', function () {
    const busy = rig(20);
    const idle = rig(20);
    try {
      busy.run(EVERY);
      idle.run(EVERY);
      // 60 ms into a turn (budget 2 × 20): the busy server worked it all, the other got 10 %.
      busy.stall(60, 1);
      idle.stall(60, 0.1);
      const count = (r: ReturnType<typeof rig>) => Array.from({ length: 200 }, () => r.lag.late(r.wall)).filter(Boolean).length;
      assert.equal(count(busy), 200 - 64, 'the first 64 requests of a stall are admitted, the rest refused');
      assert.equal(count(idle), 0, 'a descheduled turn refuses nothing');
      // The timer runs: a new turn, no stall, and one late sample (smoothed 12 < 20) sheds nothing.
      busy.run(EVERY);
      assert.equal(count(busy), 0, 'the stall and its flood count end with the turn');
    } finally {
      busy.lag.close();
      idle.lag.close();
    }
  });
});
