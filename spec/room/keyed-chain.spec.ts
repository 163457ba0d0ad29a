// KeyedChain (src/keyed-chain.ts), the one per-key task chain (room input's queue and the
// Cassandra modules' sections in front of their LWTs): call order per key, keys independent, a
// failure never stops the next task, idle() waits for everything queued, and a key is forgotten
// once its last task settled.

import { assert } from '../helpers/assert.js';
import { KeyedChain } from '../../src/keyed-chain.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('KeyedChain', function () {
  it('runs one key in call order, one at a time; other keys meanwhile; a failure does not stop the next', async function () {
    const chain = new KeyedChain();
    const log: string[] = [];
    let running = 0;
    let most = 0;
    const task = (name: string, fail = false) => async () => {
      running++;
      most = Math.max(most, running);
      log.push(`${name}+`);
      await tick();
      log.push(`${name}-`);
      running--;
      if (fail) throw new Error(name);
      return name;
    };
    let gate!: () => void;
    const blocked = chain.run('a', () => new Promise<string>((r) => (gate = () => r('a0'))));
    const a1 = chain.run('a', task('a1', true));
    const a2 = chain.run('a', task('a2'));
    const b1 = await chain.run('b', task('b1'));
    assert.equal(b1, 'b1');
    assert.deepEqual(log, ['b1+', 'b1-'], 'key b ran while key a waited');
    gate();
    assert.equal(await blocked, 'a0');
    await assert.rejects(a1, /a1/);
    assert.equal(await a2, 'a2');
    assert.deepEqual(log, ['b1+', 'b1-', 'a1+', 'a1-', 'a2+', 'a2-']);
    assert.equal(most, 1);
  });

  it('idle() settles once every task queued so far has, and a key with nothing queued is forgotten', async function () {
    const chain = new KeyedChain();
    const tails = () => (chain as unknown as { tails: Map<string, unknown> }).tails;
    let done = 0;
    for (let i = 0; i < 5; i++) {
      void chain
        .run(`k${i % 2}`, async () => {
          await tick();
          done++;
          if (i === 2) throw new Error('one fails');
        })
        .catch(() => undefined);
    }
    assert.equal(tails().size, 2);
    await chain.idle();
    assert.equal(done, 5);
    await tick();
    assert.equal(tails().size, 0, 'no key kept once its work settled');
  });
});
