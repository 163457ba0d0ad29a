// `npm run bench -- --cluster N`: the launcher behind the --cluster hook of context.ts, and the
// comparison it runs. Each scenario session gets:
//  - Cassandra from scripts/cassandra.sh (the shared node if it runs; never stopped here) with a
//    keyspace of its own, created and dropped by the session;
//  - the bench's own Redis from scripts/redis.sh on a port and directory no test uses, started
//    once per bench run and stopped when the run exits; each session has its own key prefix;
//  - N workers (`node dist/src/main.js --config`, HearthChild) on that keyspace and Redis, one
//    signing key written before any starts, each with its own port and data directory (worker
//    IDs are leases each claims in the keyspace: nothing to configure), pinned with the server
//    to CPU 0 when pinning;
//  - accounts seeded into the keyspace before the workers start, user i's client pointed at
//    worker i mod N: its sends and syncs go to that worker, so messages between users of two
//    workers cross the replication stream (and a room's sends are forwarded to its owner).
// CPU: the workers' utime+stime is summed as the server's; Redis and Cassandra are measured
// apart (CpuMeter services). The shared Cassandra also serves other users' tests: its figure is
// an upper bound, and says so in the notes.

import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import cassandra from 'cassandra-driver';
import type { BenchContext, ClusterSpec, OpenOptions, Session, TargetSpec } from './context.js';
import { profileDir, serverCpuMeter } from './context.js';
import { register, type MatrixClient } from './matrix.js';
import { createSigningKey, seedCassandraAccounts } from './provision.js';
import { fmtServices } from './proc.js';
import { pool, sleep } from './schedule.js';
import { freePort, HearthChild, REPO_ROOT, type Target } from './target.js';

/** What `--cluster N` runs when no --scenario is given (fanout has a socket half too). */
export const CLUSTER_SCENARIOS = ['sync-latency', 'fanout', 'send-ceiling'];
/** Accepted with --scenario besides the default set. */
export const CLUSTER_OPTIONAL = ['socket-latency'];

/** Parses `--cluster WORKERS` (undefined when absent). */
export function parseClusterWorkers(value: string | undefined, target: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value.trim())) throw new Error(`--cluster takes a number of workers, not "${value}"`);
  const workers = Number(value);
  if (workers < 1 || workers > 16) throw new Error(`--cluster takes 1 to 16 workers, not ${workers}`);
  if (target !== undefined) throw new Error('--cluster and --target are exclusive');
  return workers;
}

/** The scenarios a --cluster run measures: CLUSTER_SCENARIOS, or the requested ones if each is one it supports. */
export function clusterScenarios(requested: string[]): string[] {
  if (!requested.length) return [...CLUSTER_SCENARIOS];
  const other = requested.filter((r) => !CLUSTER_SCENARIOS.includes(r) && !CLUSTER_OPTIONAL.includes(r));
  if (other.length) throw new Error(`--cluster runs ${[...CLUSTER_SCENARIOS, ...CLUSTER_OPTIONAL].join(', ')}; not ${other.join(', ')}`);
  return requested;
}

/**
 * Side by side in one run: one node on SQLite (today's default), one node on Cassandra without
 * Redis (the store's cost alone), and the cluster (the cost of clustering on top); with
 * --cluster-only the cluster alone (reproducing a cluster problem without the baselines).
 */
export function clusterComparison(workers: number, clusterOnly = false): TargetSpec[] {
  const cluster: TargetSpec = { kind: 'cluster', workers, redis: true };
  return clusterOnly ? [cluster] : [{ kind: 'hearth' }, { kind: 'cluster', workers: 1, redis: false }, cluster];
}

export function clusterLabel(spec: ClusterSpec): string {
  return spec.redis === false ? 'hearth-cassandra' : `hearth-cluster-${spec.workers}`;
}

/** The user's worker: round-robin, so every room of more than one member spans workers. */
export function workerOf(user: number, workers: number): number {
  return user % workers;
}

/** A keyspace name Hearth's config accepts ([a-z][a-z0-9_]{0,47}) that no other run uses. */
export function benchKeyspace(scenario: string): string {
  return `bench_${scenario.toLowerCase().replace(/[^a-z0-9]/g, '').slice(0, 20)}_${randomBytes(5).toString('hex')}`;
}

export interface WorkerConfigInput {
  cassandra: string;
  keyspace: string;
  /** null: no cluster section (a single node on Cassandra). */
  redisUrl: string | null;
  keyPrefix: string;
  /** One key for every worker: they sign as one server. */
  signingKeyPath: string;
  mediaPath: string;
  sharedSecret: string;
  /** This worker's own directory (its SQLite path is never opened, but stays out of the others'). */
  dir: string;
  roomLeaseMs?: number;
}

/** The top-level config keys a worker gets over HearthChild's defaults (which replace them whole). */
export function workerConfig(w: WorkerConfigInput): Record<string, unknown> {
  return {
    storage: {
      backend: 'cassandra',
      sqlite: { path: join(w.dir, 'data', 'unused.sqlite') },
      cassandra: { contact_points: [w.cassandra], local_datacenter: 'datacenter1', keyspace: w.keyspace, replication_factor: 1 },
    },
    ...(w.redisUrl ? { cluster: { redis: { url: w.redisUrl, key_prefix: w.keyPrefix }, room_lease_ms: w.roomLeaseMs ?? 5000 } } : {}),
    signing_key_path: w.signingKeyPath,
    media: { path: w.mediaPath },
    registration: { enabled: true, shared_secret: w.sharedSecret },
  };
}

const REDIS_SCRIPT = join(REPO_ROOT, 'scripts/redis.sh');
const CASSANDRA_SCRIPT = join(REPO_ROOT, 'scripts/cassandra.sh');

/** The bench's own Redis: a free port, a directory under the run's temp dir, stopped at exit. */
let redis: { url: string; pidFile: string } | null = null;
async function benchRedis(): Promise<{ url: string; pid: () => number | undefined }> {
  if (!redis) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'hearth-bench-redis-'));
    const env = { ...process.env, HEARTH_REDIS_PORT: String(port), HEARTH_REDIS_DIR: dir };
    const out = execFileSync(REDIS_SCRIPT, ['start'], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
    const url = out.trim().split('\n').pop() ?? '';
    if (!url.startsWith('redis://')) throw new Error(`scripts/redis.sh start printed no URL: ${out}`);
    redis = { url, pidFile: join(dir, 'redis.pid') };
    process.once('exit', () => {
      try {
        execFileSync(REDIS_SCRIPT, ['stop'], { env, stdio: 'ignore', timeout: 20_000 });
      } catch {
        /* best effort at exit */
      }
    });
  }
  const pidFile = redis.pidFile;
  return { url: redis.url, pid: () => readPid(pidFile) };
}

/** Cassandra via scripts/cassandra.sh start: the running node's address, or a node started now. */
async function benchCassandra(): Promise<{ addr: string; pid: () => number | undefined }> {
  const { stdout } = await promisify(execFile)(CASSANDRA_SCRIPT, ['start'], { encoding: 'utf8', timeout: 600_000 });
  const addr = stdout.trim().split('\n').pop() ?? '';
  if (!/^[\d.]+:\d+$/.test(addr)) throw new Error(`scripts/cassandra.sh start printed no address: ${stdout}`);
  // The script's run directory (same rule as the script: HEARTH_CASSANDRA_DIR, else by port).
  const runDir = process.env.HEARTH_CASSANDRA_DIR || join(process.env.TMPDIR || '/tmp', `hearth-cassandra-${addr.split(':')[1]}`);
  return { addr, pid: () => readPid(join(runDir, 'cassandra.pid')) };
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

const drops: Promise<void>[] = [];

/** Lines of a worker's (pino JSON) output at level error or fatal, trimmed. */
export function workerErrors(output: string): string[] {
  return output
    .split('\n')
    .filter((l) => /"level":(50|60)\b/.test(l))
    .map((l) => l.slice(0, 600));
}

/** Waits for the keyspace drops of every closed session (call before the run exits). */
export async function clusterCleanup(): Promise<void> {
  await Promise.all(drops.splice(0));
}

async function dropKeyspace(addr: string, keyspace: string): Promise<void> {
  const c = new cassandra.Client({ contactPoints: [addr], localDataCenter: 'datacenter1' });
  try {
    await c.connect();
    // A busy node takes a while to flush on schema changes.
    await c.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`, [], { readTimeout: 120_000 });
  } finally {
    await c.shutdown();
  }
}

/** The whole cluster as one target: its workers' CPU and RSS summed, Redis and Cassandra apart. */
class ClusterTarget implements Target {
  readonly kind = 'hearth' as const;
  readonly pinned: boolean;
  constructor(
    readonly label: string,
    readonly workers: HearthChild[],
    readonly sharedSecret: string,
    readonly info: Record<string, unknown>,
    private readonly services: Record<string, () => number | undefined>,
  ) {
    this.pinned = workers.every((w) => w.pinned);
  }
  get url(): string {
    return this.workers[0].url;
  }
  pid(): number | undefined {
    return this.workers[0].pid();
  }
  pids(): number[] {
    return this.workers.map((w) => w.pid()).filter((p): p is number => p !== undefined);
  }
  servicePids(): Record<string, number | undefined> {
    return Object.fromEntries(Object.entries(this.services).map(([k, f]) => [k, f()]));
  }
  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}

/**
 * Opens the spec's cluster for one scenario; a setup that fails (the shared Cassandra node can
 * time out under other users' load) is torn down and tried once more from scratch.
 */
export async function launchCluster(ctx: BenchContext, spec: ClusterSpec, o: OpenOptions): Promise<Session> {
  try {
    return await launchOnce(ctx, spec, o);
  } catch (err) {
    ctx.log(`  ${clusterLabel(spec)}: setup failed, retrying once: ${(err as Error).message.split('\n')[0]}`);
    return launchOnce(ctx, spec, o);
  }
}

async function launchOnce(ctx: BenchContext, spec: ClusterSpec, o: OpenOptions): Promise<Session> {
  const useRedis = spec.redis !== false;
  if (!useRedis && spec.workers !== 1) throw new Error('a cluster of several workers needs Redis');
  const t0 = performance.now();
  const label = clusterLabel(spec);
  const cas = await benchCassandra();
  const red = useRedis ? await benchRedis() : null;
  const dir = mkdtempSync(join(tmpdir(), 'hearth-bench-cluster-'));
  const keyspace = benchKeyspace(o.scenario);
  const keyPrefix = `hearth-bench:${randomBytes(5).toString('hex')}:`;
  const sharedSecret = randomBytes(18).toString('hex');
  const signingKeyPath = join(dir, 'signing.key');
  mkdirSync(join(dir, 'media'), { recursive: true });
  const workers: HearthChild[] = [];
  let keyspaceMade = false;
  const teardown = async () => {
    await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
    // A worker's 500 is logged there (pino, level warn and up), not in the scenario's error: show it.
    workers.forEach((w, i) => {
      const errors = workerErrors(w.output());
      if (errors.length) ctx.log(`  ${label} worker ${i} logged ${errors.length} error(s); last: ${errors.slice(-3).join('\n    ')}`);
    });
    for (const w of workers) w.dispose();
    rmSync(dir, { recursive: true, force: true });
    // Dropped in the background (a busy node takes tens of seconds); the run waits for every
    // drop before it exits (clusterCleanup).
    if (keyspaceMade) drops.push(dropKeyspace(cas.addr, keyspace).catch((err) => ctx.log(`  could not drop keyspace ${keyspace}: ${(err as Error).message}`)));
  };
  try {
    await createSigningKey(signingKeyPath);
    for (let i = 0; i < spec.workers; i++) {
      const wdir = join(dir, `worker${i}`);
      mkdirSync(wdir, { recursive: true });
      const extraConfig = {
        ...workerConfig({ cassandra: cas.addr, keyspace, redisUrl: red?.url ?? null, keyPrefix, signingKeyPath, mediaPath: join(dir, 'media'), sharedSecret, dir: wdir }),
        ...o.extraConfig,
      };
      workers.push(await HearthChild.create({ pin: ctx.pin, dataDir: wdir, profileDir: ctx.profile ? profileDir(o.scenario) : undefined, extraConfig }));
    }
    const urls = workers.map((w) => w.url);
    const prefix = `${o.prefix ?? 'b'}${randomBytes(2).toString('hex')}x`;
    // The keyspace is created and migrated here, before any worker starts.
    keyspaceMade = true;
    const seeded = ctx.accounts === 'seed' ? await seedCassandraAccounts({ contactPoint: cas.addr, keyspace }, 'localhost', (i) => urls[workerOf(i, urls.length)], o.users, prefix) : null;
    const tSeed = performance.now();
    // Together: the keyspace is migrated already, and worker IDs are claimed with an LWT each.
    await Promise.all(workers.map((w) => w.start(120_000)));
    const users: MatrixClient[] =
      seeded ??
      (await pool(
        Array.from({ length: o.users }, (_, i) => i),
        8,
        (i) => register(urls[workerOf(i, urls.length)], `${prefix}${i}`, { sharedSecret }),
      ));
    ctx.log(
      `  ${label}: ${spec.workers} worker${spec.workers > 1 ? 's' : ''} at ${urls.join(' ')} (pids ${workers.map((w) => w.pid()).join(' ')}${ctx.pin ? ', all on CPU 0' : ''}), Cassandra ${cas.addr} keyspace ${keyspace}${red ? `, Redis ${red.url}` : ''}; ${o.users} accounts ${seeded ? 'seeded' : 'registered'} round-robin over the workers (${((tSeed - t0) / 1000).toFixed(1)} s setup, ${((performance.now() - tSeed) / 1000).toFixed(1)} s worker start)`,
    );
    const target = new ClusterTarget(label, workers, sharedSecret, { storage: 'cassandra', workers: spec.workers, redis: useRedis, cassandraShared: true }, { ...(red ? { redis: red.pid } : {}), cassandra: cas.pid });
    // What the workers burn with no client traffic (lease renewals, the replication stream's
    // blocking reads, timers): part of every per-delivery figure at low rates, so recorded.
    const idle = serverCpuMeter(target);
    idle.start();
    await sleep(ctx.quick ? 2000 : 5000);
    const w = idle.stop();
    target.info.idleCpuPct = w.serverCpuPct;
    if (w.services) target.info.idleServiceCpuPct = Object.fromEntries(Object.entries(w.services).map(([k, v]) => [k, v.cpuPct]));
    ctx.log(`  ${label} idle (no clients): workers ${w.serverCpuPct}% of a core${fmtServices(w.services)}, other processes ${w.otherCpuPct}%`);
    return { target, workers, users, close: teardown };
  } catch (err) {
    const tails = workers.map((w, i) => `--- worker ${i} ---\n${w.output()}`).join('\n');
    await teardown();
    throw new Error(`${label}: ${(err as Error).message}\n${tails}`);
  }
}
