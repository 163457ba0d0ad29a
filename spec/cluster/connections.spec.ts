// Push-when-offline across processes: two ConnectionTrackers, each announced to a real Redis by
// its RedisConnectionRegistry, as two hearth processes do. A user connected to A counts as
// connected when B asks; a closed connection, an ended recent-poll window, a withdrawn process
// and a process that died without a word all stop counting.

import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { ConnectionTracker } from '../../src/sync/connections.js';
import { RedisConnectionRegistry } from '../../src/cluster/connections.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';
import { until } from '../helpers/until.js';

const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('cluster: connections announced through Redis', function () {
  let clients: Redis[] = [];
  let registries: RedisConnectionRegistry[] = [];
  let prefix: string;

  beforeEach(() => {
    prefix = freshPrefix('conn');
  });
  afterEach(async () => {
    for (const r of registries) await r.stop();
    for (const c of clients) c.disconnect();
    clients = [];
    registries = [];
  });

  function proc(nodeId: string, opts: { recentMs?: number; refreshMs?: number } = {}) {
    const client = new Redis(startRedis(), { maxRetriesPerRequest: 3 });
    clients.push(client);
    const tracker = new ConnectionTracker(opts.recentMs ?? 30_000);
    const registry = new RedisConnectionRegistry({ client, prefix, nodeId, tracker, recentMs: opts.recentMs ?? 30_000, refreshMs: opts.refreshMs, logger: silent });
    registries.push(registry);
    return { tracker, registry };
  }

  it('a socket open on A counts on B until it closes', async () => {
    const a = proc('A');
    const b = proc('B');
    assert.equal(await b.registry.isConnected('@u:x'), false);
    a.tracker.socketOpened('@u:x');
    await until('B sees @u', () => b.registry.isConnected('@u:x'));
    assert.equal(b.tracker.isConnected('@u:x'), false, 'B itself holds nothing');
    assert.equal(await b.registry.isConnected('@other:x'), false);
    a.tracker.socketClosed('@u:x');
    await until('B sees @u gone', async () => !(await b.registry.isConnected('@u:x')));
  });

  it('a finished poll on A counts on B for the recent window only', async () => {
    // A window long enough that the check inside it cannot be overrun on a loaded machine (it
    // was 300 ms against a 50 ms sleep and a Redis round trip), short enough to wait out.
    const a = proc('A', { recentMs: 2_000 });
    const b = proc('B', { recentMs: 2_000 });
    a.tracker.pollStarted('@p:x');
    await until('B sees the poll', () => b.registry.isConnected('@p:x'));
    a.tracker.pollEnded('@p:x');
    await sleep(50);
    assert.equal(await b.registry.isConnected('@p:x'), true, 'within the window');
    await until('the window ends', async () => !(await b.registry.isConnected('@p:x')), 15_000);
  });

  it('an open socket stays announced past the lease while its process refreshes; a dead process stops counting', async () => {
    const alive = proc('alive', { refreshMs: 50 });
    const dead = proc('dead', { refreshMs: 50 });
    const b = proc('B');
    alive.registry.start();
    // `dead` announces once and never refreshes, as a process killed with -9 would.
    alive.tracker.socketOpened('@live:x');
    dead.tracker.socketOpened('@ghost:x');
    await until('both announced', async () => (await b.registry.isConnected('@live:x')) && (await b.registry.isConnected('@ghost:x')));
    await sleep(400); // well past the 150 ms lease
    assert.equal(await b.registry.isConnected('@live:x'), true, 'refreshed');
    assert.equal(await b.registry.isConnected('@ghost:x'), false, 'lease ran out');
  });

  it('stop withdraws the process\'s announcements', async () => {
    const a = proc('A');
    const b = proc('B');
    a.tracker.socketOpened('@w:x');
    await until('B sees @w', () => b.registry.isConnected('@w:x'));
    await a.registry.stop();
    assert.equal(await b.registry.isConnected('@w:x'), false);
  });
});
