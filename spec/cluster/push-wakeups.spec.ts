// Pushers on other workers hear of new push jobs (src/cluster/roles.ts PushWakeups) through the
// Redis broadcast: two shared-state connections on one prefix stand for two workers.

import { assert } from '../helpers/assert.js';
import { pino } from 'pino';
import { openRedisSharedState, type RedisSharedState } from '../../src/cluster/redis.js';
import { PushWakeups } from '../../src/cluster/roles.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';

const logger = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('cluster: push wake-ups across workers', function () {
  this.timeout(20_000);
  const opened: RedisSharedState[] = [];
  after(async () => {
    for (const s of opened) await s.close();
  });

  it('a burst of enqueues on one worker wakes the pusher on another, coalesced into few messages', async () => {
    const keyPrefix = freshPrefix('push-wake');
    const writer = await openRedisSharedState({ url: startRedis(), keyPrefix, logger });
    const pusher = await openRedisSharedState({ url: startRedis(), keyPrefix, logger });
    opened.push(writer, pusher);
    const fromWriter = new PushWakeups(writer.broadcast, logger);
    const onPusher = new PushWakeups(pusher.broadcast, logger);
    let wakes = 0;
    await onPusher.listen(() => wakes++);
    for (let i = 0; i < 200; i++) fromWriter.enqueued();
    const deadline = Date.now() + 5_000;
    while (wakes === 0) {
      assert.ok(Date.now() < deadline, 'the pusher was woken');
      await sleep(10);
    }
    await sleep(200);
    assert.equal(wakes, 1, '200 enqueues within the coalescing window: one wake-up');
    fromWriter.enqueued();
    while (wakes === 1) {
      assert.ok(Date.now() < deadline, 'woken again for a later enqueue');
      await sleep(10);
    }
    fromWriter.close();
    onPusher.close();
  });
});
