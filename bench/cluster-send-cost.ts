// Counts (does not assert) what one durable client send costs a Cassandra-backed Hearth in
// Cassandra requests (plain statements, LWTs, serial reads, logged batches and their statements)
// and Redis commands, at fixed work: R rooms of two members, each member on its own worker
// (user i on worker i mod W), both members sending, 2 sends in flight per member. With several
// workers a send of a member whose worker does not own the room is forwarded to the owner.
//
//   npm run build && node dist/bench/cluster-send-cost.js [mode=cluster-3] [rooms=20] [perRoom=40]
//     mode: cassandra (one worker, no Redis: no fence), cluster-1 (one worker with Redis: fenced
//     writes), cluster-3 (three workers on one keyspace and one Redis prefix)
//   HEARTH_BENCH_SERVER_ROOT=/other/checkout node dist/bench/cluster-send-cost.js ...  (that build's server)
//
// The workers run in this process (the counters wrap the driver's and ioredis's prototypes), on
// the shared Cassandra node (a fresh keyspace, dropped at the end) and the spec Redis (a fresh
// key prefix). Redis commands are counted net of an idle window as long as the measured one
// (heartbeats, lease renewals, blocking reads), so what is left is the sends' share. Presence is
// off unless HEARTH_BENCH_PRESENCE=1 (see the config below). The sends/s figure is a closed
// loop at fixed concurrency (4 sends in flight per room): an A/B ceiling, loaded.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MatrixClient } from './lib/matrix.js';

const MODE = process.argv[2] ?? 'cluster-3';
const ROOMS = Number(process.argv[3] ?? 20);
const PER_ROOM = Number(process.argv[4] ?? 40);
const WARMUP_PER_ROOM = 4;
if (!['cassandra', 'cluster-1', 'cluster-3'].includes(MODE)) throw new Error(`mode: cassandra, cluster-1 or cluster-3, not ${MODE}`);
const WORKERS = MODE === 'cluster-3' ? 3 : 1;

const root = process.env.HEARTH_BENCH_SERVER_ROOT;
// The server's own copies of the driver and ioredis (another checkout may resolve other ones).
const require = createRequire(root ? join(root, 'package.json') : import.meta.url);
const cassandra = require('cassandra-driver') as typeof import('cassandra-driver');
const { Redis } = require('ioredis') as typeof import('ioredis');

const counts = new Map<string, number>();
const bump = (k: string, n = 1): void => void counts.set(k, (counts.get(k) ?? 0) + n);
const SERIAL = new Set([cassandra.types.consistencies.serial, cassandra.types.consistencies.localSerial]);
const isLwt = (q: string): boolean => /\bIF\s+(NOT\s+EXISTS|EXISTS|[a-z_]+\s*(=|<|>|!|IN\b))/i.test(q);
const table = (q: string): string => /\b(?:FROM|INTO|UPDATE)\s+([a-z_.]+)/i.exec(q)?.[1] ?? '?';

// Time spent waiting per kind of request (summed, ms): where a send's latency goes.
const waited = new Map<string, number>();
const timed = <T>(kind: string, p: T): T => {
  if (!(p instanceof Promise)) return p;
  const t0 = performance.now();
  const done = () => void waited.set(kind, (waited.get(kind) ?? 0) + performance.now() - t0);
  p.then(done, done);
  return p;
};
const clientProto = cassandra.Client.prototype as unknown as Record<'execute' | 'batch', (...a: unknown[]) => unknown>;
const execute = clientProto.execute;
clientProto.execute = function (this: unknown, ...args: unknown[]) {
  const q = String(args[0]);
  const opts = args[2] as { consistency?: number } | undefined;
  const kind = isLwt(q) ? 'LWT' : /^\s*SELECT/i.test(q) ? 'read' : 'write';
  if (isLwt(q)) {
    bump('cql LWT');
    bump(`  LWT ${table(q)}`);
  } else if (opts?.consistency !== undefined && SERIAL.has(opts.consistency)) bump('cql serial read');
  else if (/^\s*SELECT/i.test(q)) {
    bump('cql read');
    bump(`  read ${table(q)}`);
    // HEARTH_COUNT_STACKS=table: where that table's reads come from (the callers, counted).
    if (process.env.HEARTH_COUNT_STACKS === table(q)) bump(`stack ${new Error().stack?.split('\n').slice(2, 14).map((l) => l.trim().replace(/^at /, '').replace(/\(.*\/(dist\/)?/, '(')).join(' < ')}`);
  }
  else bump('cql write (single)');
  return timed(kind, execute.apply(this, args));
};
const batch = clientProto.batch;
clientProto.batch = function (this: unknown, ...args: unknown[]) {
  bump('cql logged batch');
  bump('  batch statements', Array.isArray(args[0]) ? args[0].length : 0);
  return timed('batch', batch.apply(this, args));
};
const redisProto = Redis.prototype as unknown as { sendCommand: (cmd: { name: string }, ...a: unknown[]) => unknown };
const sendCommand = redisProto.sendCommand;
redisProto.sendCommand = function (this: unknown, cmd: { name: string }, ...rest: unknown[]) {
  bump(`redis ${cmd.name.toLowerCase()}`);
  return sendCommand.call(this, cmd, ...rest);
};

const helpers = (p: string) => (root ? pathToFileURL(join(root, `dist/spec/helpers/${p}.js`)).href : `../spec/helpers/${p}.js`);
const { startTestServer } = (await import(helpers('server'))) as typeof import('../spec/helpers/server.js');
const { startCassandra, freshKeyspace, cassandraClient, dropKeyspace } = (await import(helpers('cassandra'))) as typeof import('../spec/helpers/cassandra.js');
const { startRedis, freshPrefix } = (await import(helpers('redis'))) as typeof import('../spec/helpers/redis.js');

const addr = await startCassandra();
// The node's CPU (utime+stime, µs) from /proc: scripts/cassandra.sh's pid file for that port.
const casPid = (() => {
  try {
    const dir = process.env.HEARTH_CASSANDRA_DIR || join(process.env.TMPDIR || '/tmp', `hearth-cassandra-${addr.split(':')[1]}`);
    return Number(readFileSync(join(dir, 'cassandra.pid'), 'utf8').trim()) || undefined;
  } catch {
    return undefined;
  }
})();
const TICK_US = 1e6 / 100; // USER_HZ
const casCpu = (): number => {
  if (!casPid) return NaN;
  const f = readFileSync(`/proc/${casPid}/stat`, 'utf8').slice(readFileSync(`/proc/${casPid}/stat`, 'utf8').lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_US;
};
const ownCpu = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const keyspace = freshKeyspace('sendcost');
const dir = mkdtempSync(join(tmpdir(), 'hearth-send-cost-'));
const prefix = freshPrefix('sendcost');
type Srv = Awaited<ReturnType<typeof startTestServer>>;
const workers: Srv[] = [];
try {
  for (let w = 0; w < WORKERS; w++) {
    workers.push(
      await startTestServer(
        {
          log: { level: 'error' },
          storage: { backend: 'cassandra', cassandra: { contact_points: [addr], keyspace } },
          ...(MODE === 'cassandra' ? {} : { cluster: { redis: { url: startRedis(), key_prefix: prefix }, room_lease_ms: 5_000 } }),
          signing_key_path: join(dir, 'signing.key'),
          // These users never sync, so presence would flip each sender offline at every sweep and
          // online at its next send (a roomsOf read per worker and a publish each time): not the
          // send path's cost. HEARTH_BENCH_PRESENCE=1 keeps it on.
          ...(process.env.HEARTH_BENCH_PRESENCE === '1' ? {} : { presence: { enabled: false } }),
        },
        join(dir, `w${w}`),
      ),
    );
  }
  const users: MatrixClient[] = [];
  for (let i = 0; i < 2 * ROOMS; i++) {
    const srv = workers[i % WORKERS];
    const { accounts } = srv.hearth.services;
    const userId = await accounts.createAccount(`c${i}`, null);
    users.push(new MatrixClient(srv.url, userId, (await accounts.login(userId, undefined, null, null)).access_token, ''));
  }
  const rooms: string[] = [];
  for (let r = 0; r < ROOMS; r++) {
    const [a, b] = [users[2 * r], users[2 * r + 1]];
    const roomId = (await a.call('POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat' })).room_id as string;
    await b.call('POST', `/_matrix/client/v3/join/${encodeURIComponent(roomId)}`, {});
    rooms.push(roomId);
  }
  let txn = 0;
  let retries = 0;
  const run = (perMember: number) =>
    Promise.all(
      users.map(async (c, i) => {
        let left = perMember;
        const lane = async () => {
          while (left-- > 0) {
            const id = `t${txn++}`;
            for (let attempt = 0; ; attempt++) {
              const r = await c.send(rooms[i >> 1], id, `send-cost ${id}`);
              if (r.status === 200) break;
              // A room changing owners answers a retryable 503: retried with the same txn ID.
              if ((r.status === 503 || r.status === 429) && attempt < 20) {
                retries++;
                await new Promise((res) => setTimeout(res, Number(r.body?.retry_after_ms ?? 100)));
                continue;
              }
              throw new Error(`send: ${r.status} ${JSON.stringify(r.body)}`);
            }
          }
        };
        await Promise.all([lane(), lane()]);
      }),
    );
  await run(WARMUP_PER_ROOM / 2);
  // The idle window first: what the workers send Redis with nobody sending.
  const t0 = performance.now();
  counts.clear();
  retries = 0;
  const [cas0, own0] = [casCpu(), ownCpu()];
  waited.clear();
  await run(PER_ROOM / 2);
  const ms = performance.now() - t0;
  const [cas1, own1] = [casCpu(), ownCpu()];
  const busy = new Map(counts);
  counts.clear();
  await new Promise((r) => setTimeout(r, ms));
  const [cas2, own2] = [casCpu(), ownCpu()];
  const idle = new Map(counts);
  const n = ROOMS * PER_ROOM;
  console.log(
    `cluster-send-cost ${MODE}: ${ROOMS} rooms × ${PER_ROOM} sends (2 members on ${WORKERS === 1 ? 'one worker' : 'their own workers'}, 2 in flight each), ` +
      `${Math.round(ms)} ms (${Math.round(n / (ms / 1000))} sends/s, loaded), ${retries} retried answers; per send:`,
  );
  for (const [k, v] of busy) if (k.startsWith('stack ')) console.log(`${(v / n).toFixed(3).padStart(7)}  ${k}`);
  // CPU net of the idle window's (the shared node also serves other users: an estimate, loaded).
  const per = (busyUs: number, idleUs: number) => `${Math.round(busyUs / n)} µs/send (${Math.round((busyUs - idleUs) / n)} net of idle)`;
  console.log(`  CPU: workers + client (this process) ${per(own1 - own0, own2 - own1)}; Cassandra ${per(cas1 - cas0, cas2 - cas1)}`);
  const avg = (k: string, c: string) => `${((waited.get(k) ?? 0) / Math.max(1, busy.get(c) ?? 0)).toFixed(1)} ms`;
  console.log(`  mean wait: LWT ${avg('LWT', 'cql LWT')}, read ${avg('read', 'cql read')}, batch ${avg('batch', 'cql logged batch')}; send ack ${(ms / (n / (4 * ROOMS))).toFixed(0)} ms (closed loop)`);
  const keys = [...busy.keys()].filter((k) => !k.startsWith('stack ')).sort();
  for (const k of keys) {
    const net = (busy.get(k) ?? 0) - (k.startsWith('redis') ? (idle.get(k) ?? 0) : 0);
    console.log(`  ${(net / n).toFixed(3).padStart(7)}  ${k}${k.startsWith('redis') && idle.get(k) ? ` (net of ${idle.get(k)} idle)` : ''}`);
  }
  const total = (p: string) => keys.filter((k) => k.startsWith(p)).reduce((s, k) => s + (busy.get(k) ?? 0) - (p === 'redis' ? (idle.get(k) ?? 0) : 0), 0);
  console.log(`  ${(total('cql') / n).toFixed(3).padStart(7)}  = Cassandra requests\n  ${(total('redis') / n).toFixed(3).padStart(7)}  = Redis commands (net of idle)`);
} finally {
  for (const w of workers) await w.stop().catch(() => undefined);
  const admin = await cassandraClient(addr);
  await dropKeyspace(admin, keyspace).catch(() => undefined);
  await admin.shutdown();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
