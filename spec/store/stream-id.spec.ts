import { assert } from '../helpers/assert.js';
import { StreamIdGenerator } from '../../src/store/stream-id.js';

describe('StreamIdGenerator', function () {
  it('reserves strictly increasing positions after the initial value', function () {
    const gen = new StreamIdGenerator(41);
    assert.equal(gen.current(), 41);
    assert.deepEqual([gen.reserve(), gen.reserve(), gen.reserve()], [42, 43, 44]);
    assert.equal(gen.maxReserved(), 44);
    assert.equal(gen.current(), 41, 'reserving alone does not advance the watermark');
  });

  it('advances on in-order completion', function () {
    const gen = new StreamIdGenerator(0);
    const a = gen.reserve();
    const b = gen.reserve();
    gen.complete(a);
    assert.equal(gen.current(), 1);
    gen.complete(b);
    assert.equal(gen.current(), 2);
    assert.equal(gen.inFlightCount(), 0);
  });

  it('does not advance past an incomplete position when later ones finish first', function () {
    const gen = new StreamIdGenerator(10);
    const [p11, p12, p13, p14] = [gen.reserve(), gen.reserve(), gen.reserve(), gen.reserve()];
    gen.complete(p13);
    gen.complete(p12);
    gen.complete(p14);
    assert.equal(gen.current(), 10, 'position 11 is still being written');
    gen.complete(p11);
    assert.equal(gen.current(), 14, 'closing the gap releases everything finished above it');
  });

  it('treats abandoned positions as finished (nothing was written there)', function () {
    const gen = new StreamIdGenerator(0);
    const [a, b, c] = [gen.reserve(), gen.reserve(), gen.reserve()];
    gen.complete(c);
    gen.abandon(a);
    assert.equal(gen.current(), 1);
    gen.abandon(b);
    assert.equal(gen.current(), 3);
  });

  it('refuses to finish a position twice or one never reserved', function () {
    const gen = new StreamIdGenerator(0);
    const a = gen.reserve();
    gen.complete(a);
    assert.throws(() => gen.complete(a));
    assert.throws(() => gen.abandon(a));
    assert.throws(() => gen.complete(99));
    assert.equal(gen.current(), 1);
  });

  it('rejects an invalid initial position', function () {
    assert.throws(() => new StreamIdGenerator(-1));
    assert.throws(() => new StreamIdGenerator(1.5));
  });

  it('notifies listeners once per advance with the new watermark', function () {
    const gen = new StreamIdGenerator(0);
    const seen: number[] = [];
    const unsubscribe = gen.onAdvance((p) => seen.push(p));
    const [a, b, c] = [gen.reserve(), gen.reserve(), gen.reserve()];
    gen.complete(b);
    gen.complete(a);
    gen.complete(c);
    unsubscribe();
    gen.complete(gen.reserve());
    assert.deepEqual(seen, [2, 3]);
  });

  it('keeps notifying and advancing when a listener throws', function () {
    const errors: unknown[] = [];
    const gen = new StreamIdGenerator(0, { onListenerError: (e) => errors.push(e) });
    const seen: number[] = [];
    gen.onAdvance(() => {
      throw new Error('boom');
    });
    gen.onAdvance((p) => seen.push(p));
    gen.complete(gen.reserve());
    assert.equal(gen.current(), 1);
    assert.deepEqual(seen, [1]);
    assert.equal(errors.length, 1);
  });

  it('waitFor resolves only once the watermark covers the position', async function () {
    const gen = new StreamIdGenerator(0);
    const [a, b] = [gen.reserve(), gen.reserve()];
    let resolved = false;
    const waiting = gen.waitFor(b).then(() => {
      resolved = true;
    });
    gen.complete(b);
    await new Promise((r) => setImmediate(r));
    assert.equal(resolved, false);
    gen.complete(a);
    await waiting;
    assert.equal(resolved, true);
    await gen.waitFor(1);
  });

  it('stays gap-free under a random completion order', function () {
    const gen = new StreamIdGenerator(0);
    const reserved = Array.from({ length: 500 }, () => gen.reserve());
    // Deterministic shuffle (LCG) so failures reproduce.
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const order = [...reserved].sort(() => rand() - 0.5);
    const finished = new Set<number>();
    for (const p of order) {
      if (rand() < 0.1) gen.abandon(p);
      else gen.complete(p);
      finished.add(p);
      const cur = gen.current();
      for (let q = 1; q <= cur; q++) assert.ok(finished.has(q), `watermark ${cur} passed unfinished ${q}`);
      assert.ok(cur === 500 || !finished.has(cur + 1));
    }
    assert.equal(gen.current(), 500);
  });

  describe('finishAll (a committed batch)', function () {
    const change = (stream: number) => ({ kind: 'reset', stream }) as const;

    it('finishes every position, then runs each listener once with the batch\'s records in order', function () {
      const gen = new StreamIdGenerator(0);
      const seen: Array<{ streams: number[]; current: number }> = [];
      const advanced: number[] = [];
      gen.onChanges((changes, current) => seen.push({ streams: changes.map((c) => c.stream), current }));
      gen.onAdvance((current) => advanced.push(current));
      const [a, b, c, d] = [gen.reserve(), gen.reserve(), gen.reserve(), gen.reserve()];
      gen.finishAll([
        { pos: a, change: change(a), ok: true },
        { pos: b, change: null, ok: false },
        { pos: c, change: change(c), ok: true },
      ]);
      assert.deepEqual(seen, [{ streams: [1, 3], current: 3 }], 'one call; the abandoned position has no record');
      assert.deepEqual(advanced, [3]);
      assert.equal(gen.inFlightCount(), 1);
      gen.complete(d, change(d));
      assert.deepEqual(seen[1], { streams: [4], current: 4 });
    });

    it('holds the records of a batch above an unfinished position until the gap closes', function () {
      const gen = new StreamIdGenerator(0);
      const seen: number[][] = [];
      gen.onChanges((changes) => seen.push(changes.map((c) => c.stream)));
      const [a, b, c] = [gen.reserve(), gen.reserve(), gen.reserve()];
      gen.finishAll([
        { pos: b, change: change(b), ok: true },
        { pos: c, change: change(c), ok: true },
      ]);
      assert.equal(gen.current(), 0);
      assert.deepEqual(seen, []);
      gen.finishAll([{ pos: a, change: change(a), ok: true }]);
      assert.equal(gen.current(), 3);
      assert.deepEqual(seen, [[1, 2, 3]]);
    });

    it('changes nothing when one of the positions is not in flight or repeated', function () {
      const gen = new StreamIdGenerator(0);
      const [a, b] = [gen.reserve(), gen.reserve()];
      assert.throws(() => gen.finishAll([{ pos: a, change: null, ok: true }, { pos: 7, change: null, ok: true }]), /not in flight/);
      assert.throws(() => gen.finishAll([{ pos: a, change: null, ok: true }, { pos: a, change: null, ok: true }]), /twice/);
      assert.equal(gen.current(), 0);
      assert.equal(gen.inFlightCount(), 2);
      gen.finishAll([{ pos: a, change: null, ok: true }, { pos: b, change: null, ok: true }]);
      assert.equal(gen.current(), 2);
      assert.throws(() => gen.finishAll([{ pos: b, change: null, ok: true }]), /not in flight/);
    });
  });

  describe('sparse positions (a clock-driven next function)', function () {
    it('hands out what next() returns and refuses a position that does not increase', function () {
      let step = 10;
      const gen = new StreamIdGenerator(100, { next: (last) => last + step });
      assert.deepEqual([gen.reserve(), gen.reserve()], [110, 120]);
      step = 0;
      assert.throws(() => gen.reserve(), RangeError);
    });

    it('stops just below the lowest unfinished position and delivers change records in order', function () {
      const gen = new StreamIdGenerator(0, { next: (last) => last + 64 + 3 });
      const seen: number[][] = [];
      gen.onChanges((changes, current) => seen.push([...changes.map((c) => c.stream), current]));
      const [a, b, c] = [gen.reserve(), gen.reserve(), gen.reserve()];
      gen.complete(c, { kind: 'reset', stream: c });
      gen.complete(b, { kind: 'reset', stream: b });
      assert.equal(gen.current(), 0, `${a} is still in flight`);
      assert.deepEqual(seen, []);
      gen.complete(a, { kind: 'reset', stream: a });
      assert.equal(gen.current(), c);
      assert.deepEqual(seen, [[a, b, c, c]]);
    });

    it('an abandoned position counts as finished', async function () {
      const gen = new StreamIdGenerator(5, { next: (last) => last * 2 });
      const a = gen.reserve();
      const b = gen.reserve();
      const waited = gen.waitFor(b);
      gen.complete(b);
      gen.abandon(a);
      await waited;
      assert.equal(gen.current(), b);
    });
  });
});

