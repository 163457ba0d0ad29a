// Admission (src/admission/admission.ts) on its own: in-flight limits for sends (429) and
// catch-ups (503, jittered), balanced releases, forcing, and the event-loop lag signal (its
// hysteresis and CPU share: spec/admission/loop-lag.spec.ts).

import { assert } from '../helpers/assert.js';
import { Admission } from '../../src/admission/admission.js';
import { MatrixError } from '../../src/errors.js';
import { until as waitUntil } from '../helpers/until.js';

const base = { maxCatchups: 2, maxInflightSends: 2, maxLagMs: 0, sendRetryMs: 300, catchupRetryMs: 1000 };

function refusal(fn: () => unknown): MatrixError {
  try {
    fn();
  } catch (err) {
    if (err instanceof MatrixError) return err;
    throw err;
  }
  assert.fail('expected a refusal');
}

describe('Admission', function () {
  it('admits sends up to the limit, then refuses with 429 and retry_after_ms; a release frees one slot once', function () {
    const a = new Admission(base);
    const r1 = a.enterSend();
    a.enterSend();
    const e = refusal(() => a.enterSend());
    assert.equal(e.status, 429);
    assert.equal(e.errcode, 'M_LIMIT_EXCEEDED');
    const retry = e.extra.retry_after_ms as number;
    assert.ok(retry >= 300 && retry < 450, `jittered over [base, 1.5 × base): ${retry}`);
    r1();
    r1();
    assert.equal(a.stats().sends, 1, 'a second release is ignored');
    a.enterSend();
    refusal(() => a.enterSend());
    assert.equal(a.stats().shedSends, 2);
  });

  it('admits catch-ups up to the limit, then refuses with 503 and a jittered retry_after_ms', function () {
    const rolls = [0, 0.5, 0.999];
    const a = new Admission({ ...base, random: () => rolls.shift() ?? 0.25 });
    const r = a.enterCatchup();
    a.admitCatchup();
    assert.equal(a.catchupAvailable(), false);
    const got = [0, 1, 2].map(() => refusal(() => a.enterCatchup()));
    for (const e of got) assert.equal(e.status, 503);
    // Sixteen steps over [base, 2 × base).
    assert.deepEqual(
      got.map((e) => e.extra.retry_after_ms),
      [1000, 1500, 1938],
    );
    r();
    assert.equal(a.catchupAvailable(), true);
  });

  it('refuses sends once the oldest in flight has waited longer than maxSendDelayMs', async function () {
    const a = new Admission({ ...base, maxInflightSends: 100, maxSendDelayMs: 30 });
    const oldest = a.enterSend();
    a.enterSend();
    await new Promise((r) => setTimeout(r, 50));
    const e = refusal(() => a.enterSend());
    assert.equal(e.status, 429);
    oldest();
    // The next oldest started at the same time: still backlogged until it finishes too.
    refusal(() => a.enterSend());
    assert.equal(a.stats().sends, 1);
  });

  it('force(true) refuses everything new; force(false) admits again', function () {
    const a = new Admission(base);
    a.force(true);
    assert.equal(refusal(() => a.enterSend()).status, 429);
    assert.equal(refusal(() => a.enterCatchup()).status, 503);
    a.force(false);
    a.enterSend();
    a.enterCatchup();
  });

  it('refuses in a long stall only once a flood of requests has been read in it', function () {
    let t = 0;
    // The server was on the CPU the whole time (a busy server, not a busy machine).
    const a = new Admission({ ...base, maxInflightSends: 10_000, maxCatchups: 10_000, maxLagMs: 20, lagSampleMs: 10, now: () => t, cpuMs: () => t });
    try {
      // The loop has not reached its timers for 200 ms (> 2 × 20): one request after a pause is admitted...
      t = 200;
      a.enterSend();
      a.enterCatchup();
      // ...but in a poll phase of many requests, those read after the first 64 checks are refused.
      let admitted = 2;
      let refused = 0;
      for (let i = 0; i < 200; i++) {
        try {
          a.enterSend();
          admitted++;
        } catch (err) {
          assert.equal((err as MatrixError).status, 429);
          refused++;
        }
      }
      assert.equal(admitted, 64);
      assert.equal(refused, 138);
      assert.ok(a.stats().lagMs >= 190);
    } finally {
      a.close();
    }
  });

  it('refuses while the event loop lags (long turns in a row, not one) and admits again once it recovers', async function () {
    // Wall time counted as the server's CPU time: on a shared machine the busy loop below may
    // get a fraction of a core, and that share is discounted (loop-lag.spec.ts covers it).
    const a = new Admission({ ...base, maxInflightSends: 1000, maxCatchups: 1000, maxLagMs: 20, lagSampleMs: 10, cpuMs: () => performance.now() });
    const block = (ms: number) => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        /* block the loop */
      }
    };
    try {
      a.enterSend()();
      // One long turn (a GC pause under a normal load): nothing is refused after it.
      block(300);
      await new Promise((r) => setTimeout(r, 1));
      a.enterSend()();
      a.enterCatchup()();
      assert.equal(a.stats().shedSends + a.stats().shedCatchups, 0);
      // Long turns one after another: late, refused, counted as 'lag'.
      let turns = 1;
      while (a.catchupAvailable()) {
        block(300);
        await new Promise((r) => setTimeout(r, 1));
        assert.ok(++turns <= 8, 'never turned late');
      }
      assert.ok(a.stats().lagMs > 20, `lag ${a.stats().lagMs}`);
      assert.equal(refusal(() => a.enterSend()).status, 429);
      assert.equal(refusal(() => a.enterCatchup()).status, 503);
      assert.equal(a.shedCount('send', 'lag'), 1);
      assert.equal(a.shedCount('catchup', 'lag'), 1);
      // Recovered once the smoothed lateness is under half of max (the hysteresis): waited for,
      // not assumed after a fixed 400 ms, which a loaded machine's late timers (counted in full
      // here) can overrun. Nothing runs between the check and the send.
      await waitUntil('the lag to fall under half of max', () => a.stats().lagMs < 10, { timeoutMs: 10_000, everyMs: 5 });
      a.enterSend()();
    } finally {
      a.close();
    }
  });
  describe('pacing: once a loop turn has spent its budget, shed-class requests wait for later turns', function () {
    /** An Admission on fake clocks (the server on the CPU throughout); tick() moves both. */
    function paced(maxLagMs = 20) {
      const clock = { t: 0 };
      const a = new Admission({ ...base, maxInflightSends: 10_000, maxCatchups: 10_000, maxLagMs, lagSampleMs: 10, now: () => clock.t, cpuMs: () => clock.t });
      return { a, clock };
    }
    /** One timers phase later (the drain is a setTimeout(0) made before this one). */
    const nextTimers = () => new Promise((r) => setTimeout(r, 0));

    it('goes on at once while the turn is under budget', function () {
      const { a } = paced();
      try {
        assert.equal(a.precheck('send'), undefined);
        assert.equal(a.precheck('catchup'), undefined);
        assert.equal(a.stats().paced, 0);
      } finally {
        a.close();
      }
    });

    it('defers past the budget, resumes oldest first, and later requests queue behind (no overtaking)', async function () {
      const { a, clock } = paced();
      try {
        clock.t = 50; // 50 ms into a turn, over the 20 ms budget
        const order: string[] = [];
        const waits = ['s1', 'c1', 's2'].map((name) => {
          const p = a.precheck(name.startsWith('s') ? 'send' : 'catchup');
          assert.ok(p instanceof Promise, `${name} deferred`);
          return p.then(() => order.push(name));
        });
        assert.deepEqual(a.stats().pacing, 3);
        await Promise.all(waits);
        assert.deepEqual(order, ['s1', 'c1', 's2']);
        assert.equal(a.stats().paced, 3);
        assert.equal(a.stats().pacing, 0);
      } finally {
        a.close();
      }
    });

    it('resumes about half the budget of work per turn, the rest in the turns after', async function () {
      const { a, clock } = paced(20);
      try {
        clock.t = 50;
        const resumed: number[] = [];
        const waits = Array.from({ length: 6 }, (_, i) =>
          a.precheck('send')!.then(() => {
            resumed.push(i);
            clock.t += 5; // each resumed request works 5 ms before its first wait
          }),
        );
        await nextTimers();
        // Budget 10 ms: resumed at +0, +5, +10 (not over yet), then +15 is over.
        assert.deepEqual(resumed, [0, 1, 2]);
        assert.equal(a.stats().pacing, 3);
        await Promise.all(waits);
        assert.deepEqual(resumed, [0, 1, 2, 3, 4, 5]);
      } finally {
        a.close();
      }
    });

    /** Queues `n` sends that each work `ms` once resumed; returns their promises. */
    function queueWork(a: Admission, clock: { t: number }, n: number, ms: number): Promise<void>[] {
      return Array.from({ length: n }, () =>
        a.precheck('send')!.then(() => {
          clock.t += ms;
        }),
      );
    }

    it('refuses new requests once the oldest deferred has waited 4 × the budget behind paced work; close resumes what waits', async function () {
      const { a, clock } = paced(20);
      try {
        clock.t = 50;
        // More work queued than one drain pass resumes (10 ms of 5 ms requests: 3 of 6).
        const work = queueWork(a, clock, 6, 5);
        let resumed = false;
        void a.precheck('send')!.then(() => (resumed = true));
        await nextTimers();
        assert.equal(a.stats().pacing, 4, 'the pass stopped on its budget');
        clock.t += 81;
        assert.equal(refusal(() => a.precheck('send')).status, 429);
        assert.equal(refusal(() => a.precheck('catchup')).status, 503);
        assert.equal(a.stats().shedSends, 1);
        assert.equal(a.shedCount('send', 'queue'), 1);
        assert.equal(a.shedCount('catchup', 'queue'), 1);
        a.close();
        await Promise.all(work);
        assert.equal(resumed, true);
        assert.equal(a.stats().pacing, 0);
      } finally {
        a.close();
      }
    });

    it('a short queue that waited out one long turn is not a queue: new requests queue behind it, nothing refused', async function () {
      const { a, clock } = paced(20);
      try {
        clock.t = 50;
        const first = a.precheck('send')!;
        clock.t += 500; // one long turn (a GC pause) before the drain's timer could run
        const second = a.precheck('send');
        const third = a.precheck('catchup');
        assert.ok(second instanceof Promise && third instanceof Promise, 'deferred, not refused');
        await Promise.all([first, second, third]);
        assert.equal(a.stats().shedSends + a.stats().shedCatchups, 0);
      } finally {
        a.close();
      }
    });

    it('resumes what waited 8 × the budget for one long turn alone (a normal load is not shed by a GC pause)', async function () {
      const { a, clock } = paced(20);
      try {
        clock.t = 50;
        const send = a.precheck('send')!;
        const catchup = a.precheck('catchup')!;
        clock.t += 900; // one long turn before the drain's timer could run
        const [s, c] = await Promise.allSettled([send, catchup]);
        assert.equal(s.status, 'fulfilled');
        assert.equal(c.status, 'fulfilled');
        assert.equal(a.stats().shedSends + a.stats().shedCatchups, 0);
      } finally {
        a.close();
      }
    });

    it('refuses what waited 8 × the budget behind paced work by the time the drain reaches it (429 / 503, counted as shed)', async function () {
      const { a, clock } = paced(20);
      try {
        clock.t = 50;
        const work = queueWork(a, clock, 3, 5);
        const send = a.precheck('send')!;
        const catchup = a.precheck('catchup')!;
        await nextTimers(); // resumes the three (15 ms of work), then stops on its 10 ms budget
        assert.equal(a.stats().pacing, 2);
        await Promise.all(work);
        clock.t += 161; // a starved process: the next drain comes late
        const [s, c] = await Promise.allSettled([send, catchup]);
        assert.equal(s.status, 'rejected');
        assert.equal(c.status, 'rejected');
        assert.equal(((s as PromiseRejectedResult).reason as MatrixError).status, 429);
        assert.equal(((c as PromiseRejectedResult).reason as MatrixError).status, 503);
        assert.equal(a.stats().shedSends, 1);
        assert.equal(a.stats().shedCatchups, 1);
        assert.equal(a.shedCount('send', 'stale'), 1);
        assert.equal(a.shedCount('catchup', 'stale'), 1);
        assert.equal(a.stats().pacing, 0);
        // One that waited less goes on.
        const fresh = a.precheck('send');
        if (fresh) await fresh;
      } finally {
        a.close();
      }
    });

    it('a queue that never runs empty keeps no slot per request it ever held', async function () {
      // Lag samples off (a fake clock running far ahead of the real one would read as lag).
      const clock = { t: 0 };
      const a = new Admission({ ...base, maxInflightSends: 10_000, maxCatchups: 10_000, maxLagMs: 20, lagSampleMs: 1e9, now: () => clock.t, cpuMs: () => clock.t });
      clock.t = 50; // 50 ms into a turn, over the 20 ms budget
      const slots = () => (a as unknown as { paced: unknown[] }).paced.length;
      try {
        // Each resumed request works 4 ms: a turn's 10 ms resume three, and three more arrive
        // each turn, so one always waits (the queue is never empty) and none waits long.
        const work = () => {
          clock.t += 4;
        };
        const all: Promise<void>[] = [];
        for (let i = 0; i < 4; i++) all.push(a.precheck('send')!.then(work));
        let most = 0;
        for (let turn = 0; turn < 400; turn++) {
          for (let i = 0; i < 3; i++) all.push(a.precheck('send')!.then(work));
          await nextTimers();
          assert.ok(a.stats().pacing > 0, `turn ${turn}: still waiting`);
          most = Math.max(most, slots());
        }
        assert.equal(a.stats().shedSends, 0, 'none waited long enough to be refused');
        assert.ok(most <= 32, `the queue's array stays short (${most} slots at most for ${a.stats().paced} paced)`);
        a.close();
        await Promise.all(all);
      } finally {
        a.close();
      }
    });

    it('never paces with the lag signal off', function () {
      const a = new Admission({ ...base, now: () => 1e6, cpuMs: () => 1e6 });
      assert.equal(a.precheck('send'), undefined);
    });
  });
});
