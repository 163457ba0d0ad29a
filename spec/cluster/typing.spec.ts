// Typing across processes: the same assertions for a single node (one TypingService, nothing
// published) and for two TypingServices replicating through a real Redis, as two hearth
// processes do. A change made on A is seen, and wakes readers, on B; a stop on B ends it on A;
// every replica expires it on time.

import assert from 'node:assert/strict';
import { pino } from 'pino';
import { TypingService } from '../../src/ephemeral/typing.js';
import { EphemeralStream } from '../../src/ephemeral/stream.js';
import { LocalNotifier, type ChangeNotice } from '../../src/sync/notifier.js';
import { openRedisSharedState, type RedisSharedState } from '../../src/cluster/redis.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';
import { until } from '../helpers/until.js';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Node {
  typing: TypingService;
  stream: EphemeralStream;
  woken: ChangeNotice[];
}

function node(cluster?: RedisSharedState): Node {
  const notifier = new LocalNotifier();
  const woken: ChangeNotice[] = [];
  notifier.subscribe((n) => woken.push(n));
  const stream = new EphemeralStream(1000);
  return { typing: new TypingService(stream, notifier, cluster ? { broadcast: cluster.broadcast, logger: silent } : undefined), stream, woken };
}

function contract(label: string, make: () => Promise<{ a: Node; b: Node; close(): Promise<void> }>): void {
  describe(`cluster typing: ${label}`, function () {
    let p: { a: Node; b: Node; close(): Promise<void> };
    beforeEach(async () => {
      p = await make();
    });
    afterEach(async () => {
      p.a.typing.close();
      p.b.typing.close();
      await p.close();
    });

    it('typing set on A is seen on B, wakes B, and a stop on B ends it on A', async () => {
      const since = p.b.stream.current();
      await p.a.typing.setTyping('!r:x', '@u:x', true, 30_000);
      await until('B sees @u typing', () => p.b.typing.typingUsers('!r:x').includes('@u:x'));
      assert.ok(p.b.typing.changedSince('!r:x', since));
      assert.ok(p.b.woken.some((n) => n.roomId === '!r:x' && n.kind === 'typing'));
      assert.deepEqual(p.b.typing.typingUsers('!other:x'), []);
      await p.b.typing.setTyping('!r:x', '@u:x', false);
      await until('A sees the stop', () => p.a.typing.typingUsers('!r:x').length === 0);
      assert.deepEqual(p.b.typing.typingUsers('!r:x'), []);
    });

    it('a renewal wakes nobody; the notification expires on every replica', async () => {
      // The renewal must land before the first notification expires: 2 s leaves room for the
      // waits and Redis round trips in between on a loaded machine (300 ms did not always).
      await p.a.typing.setTyping('!r:x', '@v:x', true, 2_000);
      await until('B sees @v typing', () => p.b.typing.typingUsers('!r:x').includes('@v:x'));
      await until('A sees @v typing', () => p.a.typing.typingUsers('!r:x').includes('@v:x'));
      const wakes = p.b.woken.length;
      await p.a.typing.setTyping('!r:x', '@v:x', true, 2_000);
      await sleep(50);
      assert.equal(p.b.woken.length, wakes, 'renewal is not a change');
      await until('expiry on B', () => p.b.typing.typingUsers('!r:x').length === 0, 15_000);
      await until('expiry on A', () => p.a.typing.typingUsers('!r:x').length === 0, 15_000);
      assert.ok(p.b.woken.length > wakes, 'the expiry woke B');
    });
  });
}

contract('single node (nothing published)', async () => {
  const n = node();
  return { a: n, b: n, close: async () => undefined };
});

contract('two processes on Redis', async () => {
  const url = startRedis();
  const keyPrefix = freshPrefix('typing');
  const sa = await openRedisSharedState({ url, keyPrefix, logger: silent });
  const sb = await openRedisSharedState({ url, keyPrefix, logger: silent });
  const a = node(sa);
  const b = node(sb);
  await a.typing.listen();
  await b.typing.listen();
  return {
    a,
    b,
    async close() {
      await sa.close();
      await sb.close();
    },
  };
});
