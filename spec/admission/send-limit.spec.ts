// The measured send limit (src/admission/send-limit.ts) on a fake clock: it starts after an
// interval whose fastest send was over target, but not on the first one after a stall (that is
// the stall's backlog draining),
// is Little's law of the measured rate, moves at most by half per interval, ignores intervals
// without completions (holding at the number in flight only while it limits), and lifts again
// step by step.

import { assert } from '../helpers/assert.js';
import { SendLimit } from '../../src/admission/send-limit.js';

const INTERVAL = 100;

/** Completes `n` sends of `tookMs` each, spread over one interval starting at `t`. */
function interval(l: SendLimit, t: number, n: number, tookMs: number, inflight: number): void {
  for (let i = 0; i < n; i++) l.completed(tookMs, t + (i * INTERVAL) / n, inflight, tookMs);
}

describe('SendLimit', function () {
  it('does not limit while sends are under target, even when many are in flight (a burst)', function () {
    const l = new SendLimit({ targetMs: 50, intervalMs: INTERVAL, max: 5000 });
    for (let k = 0; k < 5; k++) {
      // The first send of each interval is fast: the queue drains within the interval.
      l.completed(5, k * INTERVAL, 900, 400);
      interval(l, k * INTERVAL + 1, 99, 400, 900);
    }
    assert.equal(l.current(5 * INTERVAL, 900, 0), Infinity);
  });

  it('after an interval whose fastest send was over target: halved at most, then down to rate × target', function () {
    const l = new SendLimit({ targetMs: 50, intervalMs: INTERVAL, max: 5000 });
    l.current(0, 0, 0);
    // 100 sends completed in 100 ms (1,000/s), each after 300 ms, 800 in flight.
    interval(l, 0, 100, 300, 800);
    assert.equal(l.current(INTERVAL, 800, 0), Infinity, 'the first interval after a gap (the start): not yet');
    interval(l, INTERVAL, 100, 300, 800);
    assert.equal(l.current(2 * INTERVAL, 800, 0), 400, 'the second in a row: halved from the 800 in flight');
    interval(l, 2 * INTERVAL, 100, 300, 400);
    assert.equal(l.current(3 * INTERVAL, 400, 0), 200);
    interval(l, 3 * INTERVAL, 100, 300, 200);
    assert.equal(l.current(4 * INTERVAL, 200, 0), 100);
    interval(l, 4 * INTERVAL, 100, 120, 100);
    // Little's law: 1,000/s × 50 ms.
    assert.equal(l.current(5 * INTERVAL, 100, 0), 50);
    interval(l, 5 * INTERVAL, 100, 60, 50);
    assert.equal(l.current(6 * INTERVAL, 50, 0), 50, 'never below rate × target while standing');
  });

  it('without a stall before it, one interval over target starts the limit at once (an overload rising)', function () {
    const l = new SendLimit({ targetMs: 50, intervalMs: INTERVAL, max: 5000 });
    l.current(0, 0, 0);
    interval(l, 0, 20, 10, 2);
    assert.equal(l.current(INTERVAL, 2, 0), Infinity);
    interval(l, INTERVAL, 100, 300, 800);
    assert.equal(l.current(2 * INTERVAL, 800, 0), 400);
  });

  it('never below the floor, and an interval without completions (a stall) leaves it alone', function () {
    const l = new SendLimit({ targetMs: 50, intervalMs: INTERVAL, max: 5000, floor: 16 });
    l.current(0, 0, 0);
    interval(l, 0, 2, 500, 20);
    interval(l, INTERVAL, 2, 500, 20);
    assert.equal(l.current(2 * INTERVAL, 20, 0), 16);
    assert.equal(l.current(3 * INTERVAL, 20, 0), 16, 'no completions: unchanged');
  });

  it('an interval without completions while sends wait past target holds the limit at the number in flight (while limiting)', function () {
    const l = new SendLimit({ targetMs: 50, intervalMs: INTERVAL, max: 5000, floor: 16 });
    l.current(0, 0, 0);
    interval(l, 0, 100, 300, 800);
    interval(l, INTERVAL, 100, 300, 800);
    assert.equal(l.current(2 * INTERVAL, 800, 0), 400);
    assert.equal(l.current(3 * INTERVAL, 300, 120), 300, 'nothing completed, the oldest waits past target');
    assert.equal(l.current(4 * INTERVAL, 10, 0), 300, 'no completions, nothing waiting: unchanged');
  });

  it('a normal load through one long stall is not limited: no hold during it, one slow interval after it', function () {
    // 200 sends/s (20 per interval, 10 ms each), then the commits stall for 800 ms.
    const l = new SendLimit({ targetMs: 100, intervalMs: INTERVAL, max: 5000, floor: 16 });
    l.current(0, 0, 0);
    let t = 0;
    const arrive = (n: number) => {
      for (let i = 0; i < n; i++) l.admitted();
    };
    for (; t < 1000; t += INTERVAL) {
      arrive(20);
      interval(l, t, 20, 10, 2);
      assert.equal(l.current(t + INTERVAL, 2, 0), Infinity);
    }
    // The stall: sends keep arriving (the loop runs), none completes, the oldest waits longer.
    for (let k = 1; k <= 8; k++) {
      arrive(20);
      assert.equal(l.current(t + k * INTERVAL, 20 * k, k * INTERVAL), Infinity, `${k * INTERVAL} ms into the stall`);
    }
    t += 8 * INTERVAL;
    // The backlog completes over the next interval, every one of them over target.
    for (let i = 0; i < 160; i++) l.completed(800 - i * 5, t + (i * INTERVAL) / 160, 160 - i, 800 - i * 5);
    arrive(20);
    t += INTERVAL;
    assert.equal(l.current(t, 2, 0), Infinity, 'one interval over target after a stall');
    interval(l, t, 20, 10, 2);
    t += INTERVAL;
    assert.equal(l.current(t, 2, 0), Infinity);
  });

  it('not yet limiting, a stall while sends arrive at more than twice the last completion rate holds the limit at the number in flight', function () {
    const l = new SendLimit({ targetMs: 50, intervalMs: INTERVAL, max: 5000, floor: 16 });
    l.current(0, 0, 0);
    for (let i = 0; i < 40; i++) l.admitted();
    interval(l, 0, 40, 10, 5);
    assert.equal(l.current(INTERVAL, 5, 0), Infinity);
    for (let i = 0; i < 200; i++) l.admitted();
    assert.equal(l.current(2 * INTERVAL, 205, 120), 205, 'no completions, 200 admitted against 40 completed before');
  });

  it('lifts by a quarter per interval under target, and stops limiting at max', function () {
    const l = new SendLimit({ targetMs: 50, intervalMs: INTERVAL, max: 40, floor: 16 });
    l.current(0, 0, 0);
    interval(l, 0, 2, 500, 20);
    interval(l, INTERVAL, 2, 500, 20);
    assert.equal(l.current(2 * INTERVAL, 16, 0), 16);
    interval(l, 2 * INTERVAL, 10, 10, 16);
    assert.equal(l.current(3 * INTERVAL, 16, 0), 20);
    interval(l, 3 * INTERVAL, 10, 10, 16);
    assert.equal(l.current(4 * INTERVAL, 16, 0), 25);
    interval(l, 4 * INTERVAL, 10, 10, 16);
    assert.equal(l.current(5 * INTERVAL, 16, 0), 32);
    interval(l, 5 * INTERVAL, 10, 10, 16);
    assert.equal(l.current(6 * INTERVAL, 16, 0), Infinity);
  });

  it('after a quiet spell with nothing in flight it stops limiting', function () {
    const l = new SendLimit({ targetMs: 50, intervalMs: INTERVAL, max: 5000 });
    l.current(0, 0, 0);
    interval(l, 0, 100, 300, 800);
    interval(l, INTERVAL, 100, 300, 800);
    assert.equal(l.current(2 * INTERVAL, 800, 0), 400);
    assert.equal(l.current(11 * INTERVAL, 0, 0), Infinity);
  });
});
