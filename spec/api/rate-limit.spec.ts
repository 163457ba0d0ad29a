import { assert } from '../helpers/assert.js';
import { MatrixError } from '../../src/errors.js';
import { createRateLimiters, RateLimiter, type RateLimitBackend } from '../../src/admission/rate-limit.js';

const rules = {
  enabled: true,
  login: { per_second: 0.5, burst: 3 },
  registration: { per_second: 0.2, burst: 5 },
  message: { per_second: 20, burst: 100 },
  login_failures_per_address: { per_second: 0.1, burst: 20 },
  login_failures_per_account_address: { per_second: 0.01, burst: 5 },
  write: { per_second: 10, burst: 100 },
  to_device: { per_second: 200, burst: 3000 },
  threepid_request_token: { per_second: 0.05, burst: 5 },
};

describe('rate limits', () => {
  it('allows a burst, then throws M_LIMIT_EXCEEDED with retry_after_ms', async () => {
    const { login } = createRateLimiters(rules);
    for (let i = 0; i < 3; i++) await login.consume('1.2.3.4');
    const err = await login.consume('1.2.3.4').then(
      () => assert.fail('expected the fourth attempt to be limited'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof MatrixError);
    assert.equal(err.errcode, 'M_LIMIT_EXCEEDED');
    assert.equal(err.status, 429);
    const retry = err.extra.retry_after_ms;
    assert.ok(typeof retry === 'number' && retry > 0 && retry <= 6000, `retry_after_ms ${String(retry)}`);
    assert.deepEqual(Object.keys(err.toJSON()).sort(), ['errcode', 'error', 'retry_after_ms']);
  });

  it('counts keys and limits separately', async () => {
    const limiters = createRateLimiters(rules);
    for (let i = 0; i < 3; i++) await limiters.login.consume('a');
    await limiters.login.consume('b');
    await limiters.registration.consume('a');
    await assert.rejects(limiters.login.consume('a'), MatrixError);
  });

  it('a refused action spends nothing: what was left stays usable', async () => {
    const { message } = createRateLimiters(rules); // burst 100
    await message.consume('c', 95);
    // 10 does not fit in the 5 left: refused, and the 5 must still be there afterwards.
    await assert.rejects(message.consume('c', 10), MatrixError);
    await assert.rejects(message.consume('c', 10), MatrixError);
    for (let i = 0; i < 5; i++) await message.consume('c');
    await assert.rejects(message.consume('c'), MatrixError);
  });

  it('lets everything through when disabled', async () => {
    const { login } = createRateLimiters({ ...rules, enabled: false });
    for (let i = 0; i < 20; i++) await login.consume('a');
  });

  it('works with any backend', async () => {
    const seen: string[] = [];
    const backend: RateLimitBackend = { consume: async (key) => (seen.push(key), key === 'slow' ? 1500 : 0) };
    const limiter = new RateLimiter('custom', backend);
    await limiter.consume('fast');
    await assert.rejects(limiter.consume('slow'), (e: MatrixError) => e.extra.retry_after_ms === 1500);
    assert.deepEqual(seen, ['fast', 'slow']);
  });

  it('consumeRest charges the rest of an action, the whole capped at the bucket', async () => {
    const charged: number[] = [];
    const backend: RateLimitBackend = { consume: async (_key, points = 1) => (charged.push(points), 0) };
    const limiter = new RateLimiter('custom', backend, 5);
    await limiter.consumeRest('a', 2, 1); // 1 + 2 fits: 2 more
    await limiter.consumeRest('a', 100, 1); // capped at 5 in all: 4 more
    await limiter.consumeRest('a', 3, 5); // the bucket's worth was spent already: nothing more
    assert.deepEqual(charged, [2, 4]);
    const { message } = createRateLimiters(rules); // burst 100
    await message.consume('b');
    await message.consumeRest('b', 500, 1);
    await assert.rejects(message.consume('b'), MatrixError);
  });
});

