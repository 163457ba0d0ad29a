// What every scenario gets: the run options, how to open a target (a fresh Hearth child with
// accounts, the Synapse peer, or a URL) and the shape of what it returns.

import { join } from 'node:path';
import type { MatrixClient } from './matrix.js';
import { ExternalTarget, HearthChild, REPO_ROOT, registerUsers, SynapsePeer, type Target } from './target.js';
import { CpuMeter, RssPeak } from './proc.js';
import type { TargetResult } from './report.js';

export type TargetSpec =
  | { kind: 'hearth' }
  | { kind: 'synapse' }
  | { kind: 'url'; url: string; sharedSecret?: string; pid?: number }
  /**
   * `--cluster N`: N Hearth workers on one Cassandra keyspace and one Redis, opened by the
   * registered launcher (bench/lib/cluster.ts). `redis: false` with one worker is a single node
   * on Cassandra: the cost of the store without the cost of clustering.
   */
  | ClusterSpec;

export interface ClusterSpec {
  kind: 'cluster';
  workers: number;
  /** Default true; false only with one worker (no replication stream, no room leases). */
  redis?: boolean;
}

/**
 * The --cluster hook: bench/lib/cluster.ts registers (from run.ts) a launcher that starts the
 * spec's workers and returns a Session like a single target's: `target` stands for the whole
 * cluster (its pids() are every worker, summed for CPU/RSS), `workers` the individual
 * processes, and each user's client is already pointed at its own worker. Until one is
 * registered, --cluster fails clearly instead of silently measuring one process.
 */
export type ClusterLauncher = (ctx: BenchContext, spec: ClusterSpec, o: OpenOptions) => Promise<Session>;
let clusterLauncher: ClusterLauncher | null = null;
export function registerClusterLauncher(launch: ClusterLauncher): void {
  clusterLauncher = launch;
}

export interface BenchContext {
  quick: boolean;
  pin: boolean;
  /** Run Hearth children under `node --cpu-prof`; profiles land in bench/profiles/<scenario>/. */
  profile: boolean;
  /** 'seed' writes accounts through the Store before a Hearth child starts; 'api' registers them over HTTP. */
  accounts: 'seed' | 'api';
  /** storage.sqlite.synchronous for Hearth children (send-ceiling always runs both). */
  synchronous: 'full' | 'normal';
  /** The --vs synapse run: scenarios only do their /sync parts. */
  versus: boolean;
  /**
   * How socket clients send (socket-latency, fan-out's socket half): 'socket' (default) with a
   * `send` frame over their own socket, as a client of the stream does; 'http' with PUT /send.
   */
  socketSend?: 'socket' | 'http';
  log(msg: string): void;
}

export interface Session {
  target: Target;
  /** With --cluster: every worker (target is the entry point). */
  workers?: Target[];
  users: MatrixClient[];
  close(): Promise<void>;
}

export interface OpenOptions {
  users: number;
  synchronous?: 'full' | 'normal';
  prefix?: string;
  scenario: string;
  extraConfig?: Record<string, unknown>;
  /** Hearth children only: start with --inspect (see bench/lib/inspector.ts). */
  inspect?: boolean;
}

export function profileDir(scenario: string): string {
  return join(REPO_ROOT, 'bench/profiles', scenario);
}

export async function openTarget(ctx: BenchContext, spec: TargetSpec, o: OpenOptions): Promise<Session> {
  const prefix = o.prefix ?? 'b';
  if (spec.kind === 'hearth') {
    const seed = ctx.accounts === 'seed';
    const t0 = performance.now();
    const h = await HearthChild.create({
      synchronous: o.synchronous ?? ctx.synchronous,
      pin: ctx.pin,
      seedUsers: seed ? o.users : 0,
      userPrefix: prefix,
      profileDir: ctx.profile ? profileDir(o.scenario) : undefined,
      extraConfig: o.extraConfig,
      inspect: o.inspect,
    });
    await h.start();
    const users = seed ? h.seeded : await registerUsers(h, o.users, prefix, ctx.log);
    ctx.log(`  hearth (synchronous ${h.info.synchronous}) at ${h.url}, pid ${h.pid()}${h.pinned ? ' on CPU 0' : ''}; ${o.users} accounts ${seed ? 'seeded through the Store' : 'registered'} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    return {
      target: h,
      users,
      async close() {
        await h.stop();
        h.dispose();
      },
    };
  }
  if (spec.kind === 'synapse') {
    const s = new SynapsePeer();
    await s.start(ctx.pin);
    ctx.log(`  synapse at ${s.url}, pid ${s.pid()}${s.pinned ? ' on CPU 0' : ''}`);
    const users = await registerUsers(s, o.users, prefix, ctx.log);
    return { target: s, users, close: () => s.stop() };
  }
  if (spec.kind === 'cluster') {
    if (!clusterLauncher) throw new Error(`--cluster ${spec.workers}: no cluster launcher is registered (see registerClusterLauncher in bench/lib/context.ts)`);
    return clusterLauncher(ctx, spec, o);
  }
  const t = new ExternalTarget(spec.url, spec.sharedSecret, spec.pid);
  await t.detect();
  const users = await registerUsers(t, o.users, prefix, ctx.log);
  return { target: t, users, close: async () => undefined };
}

/** A CPU meter over the target's server process(es), with its backing services measured apart. */
export function serverCpuMeter(t: Target): CpuMeter {
  return new CpuMeter(() => t.pids?.() ?? t.pid(), t.servicePids ? () => t.servicePids!() : undefined);
}

/** Peak RSS of the target's server process(es). */
export function serverRssPeak(t: Target, everyMs?: number): RssPeak {
  return new RssPeak(() => t.pids?.() ?? t.pid(), everyMs);
}

export function emptyResult(label: string, info: Record<string, unknown> = {}): TargetResult {
  return { label, info, headline: {}, figures: {}, lost: 0, duplicated: 0, notes: [] };
}

export interface Scenario {
  name: string;
  /** Which target kinds it applies to (others are reported as skipped with a reason). */
  supports(spec: TargetSpec, targetKind?: string): string | null;
  run(ctx: BenchContext, spec: TargetSpec): Promise<TargetResult[]>;
}
