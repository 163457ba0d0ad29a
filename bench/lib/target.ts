// The homeservers under test: Hearth started by the bench as a child process (fresh temporary
// data directory, rate limits off, a shared secret, pinned to CPU 0 when taskset is there), the
// Synapse peer (bench/peers/synapse/ctl), or any URL given with --target.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { MatrixClient, register, request } from './matrix.js';
import { pool, sleep } from './schedule.js';
import { seedAccounts } from './provision.js';
import { inspectorUrl } from './inspector.js';

/** Repository root: this file runs from dist/bench/lib/. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const SYNAPSE_CTL = join(REPO_ROOT, 'bench/peers/synapse/ctl');

export type TargetKind = 'hearth' | 'synapse' | 'other';

export interface Target {
  kind: TargetKind;
  /** Label for results: "hearth", "synapse", or the URL. */
  label: string;
  url: string;
  /** Server process id when known (CPU and RSS are read from /proc). */
  pid(): number | undefined;
  /** Every server process (a cluster's workers), when there are several: CPU and RSS are summed over them. */
  pids?(): number[];
  /** Backing services whose CPU is reported apart from the server's (a cluster's Redis and Cassandra). */
  servicePids?(): Record<string, number | undefined>;
  sharedSecret?: string;
  /** Server settings worth recording (commit policy, version). */
  info: Record<string, unknown>;
  pinned: boolean;
  stop(): Promise<void>;
}

export interface HearthOptions {
  synchronous?: 'full' | 'normal';
  /** Accounts written through the Store before the server starts (no scrypt per account). */
  seedUsers?: number;
  userPrefix?: string;
  pin: boolean;
  /** Directory for `node --cpu-prof` output, when profiling. */
  profileDir?: string;
  /** Reuse an existing data directory (cold-start restarts). */
  dataDir?: string;
  extraConfig?: Record<string, unknown>;
  /** server_name (default `localhost`); seeded accounts are created under it. */
  serverName?: string;
  /** The CPU `pin` pins the server to (default 0). */
  cpu?: number;
  /**
   * Federation on this port (TLS, self-signed certificate generated at start), peers on loopback
   * allowed and their certificates not verified: a test federation, as spec/federation sets up.
   */
  federationPort?: number;
  /** Start with --inspect on a free loopback port (idle-cost collects garbage through it). */
  inspect?: boolean;
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

export class HearthChild implements Target {
  readonly kind = 'hearth' as const;
  readonly label = 'hearth';
  readonly sharedSecret = randomBytes(18).toString('hex');
  readonly info: Record<string, unknown>;
  private child: ChildProcess | null = null;
  private exited: Promise<void> | null = null;
  private tail: string[] = [];
  /** Seeded accounts (when seedUsers was given). */
  seeded: MatrixClient[] = [];
  /** ms from spawn to the first GET /health 200 of the last start. */
  readyMs = NaN;
  /** The inspector's ws:// URL when started with `inspect`. */
  inspectorUrl: string | undefined;
  url = '';
  pinned = false;

  private constructor(readonly dir: string, readonly configPath: string, readonly dbPath: string, private readonly opts: HearthOptions) {
    this.info = { synchronous: opts.synchronous ?? 'full', grouped_commits: true, rate_limits: false };
  }

  static async create(opts: HearthOptions): Promise<HearthChild> {
    const dir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'hearth-bench-'));
    const h = new HearthChild(dir, join(dir, 'hearth.yaml'), join(dir, 'data', 'hearth.sqlite'), opts);
    const port = await freePort();
    h.url = `http://127.0.0.1:${port}`;
    const config = {
      server_name: opts.serverName ?? 'localhost',
      listeners: {
        client: { host: '127.0.0.1', port },
        ...(opts.federationPort ? { federation: { enabled: true, host: '127.0.0.1', port: opts.federationPort } } : {}),
      },
      ...(opts.federationPort ? { federation: { verify_tls: false, ip_range_whitelist: ['127.0.0.1/32'] } } : {}),
      storage: { sqlite: { path: h.dbPath, synchronous: opts.synchronous ?? 'full' } },
      signing_key_path: join(dir, 'data', 'signing.key'),
      registration: { enabled: true, shared_secret: h.sharedSecret },
      limits: { rate_limits: { enabled: false } },
      log: { level: 'warn' },
      // The bench reads no metrics; a fixed port would clash with other servers on the machine.
      metrics: { listen: { host: '127.0.0.1', port: 0 } },
      ...opts.extraConfig,
    };
    mkdirSync(join(dir, 'data'), { recursive: true });
    writeFileSync(h.configPath, JSON.stringify(config, null, 2)); // JSON is valid YAML
    if (opts.seedUsers) h.seeded = await seedAccounts(h.dbPath, opts.serverName ?? 'localhost', h.url, opts.seedUsers, opts.userPrefix ?? 'u');
    return h;
  }

  pid(): number | undefined {
    return this.child?.pid;
  }

  /** Spawns the server and resolves when /health answers 200 (records readyMs). */
  async start(timeoutMs = 60_000): Promise<void> {
    if (this.child) throw new Error('already running');
    const nodeArgs: string[] = [];
    if (this.opts.profileDir) {
      mkdirSync(this.opts.profileDir, { recursive: true });
      nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${this.opts.profileDir}`);
    }
    if (this.opts.inspect) nodeArgs.push('--inspect=127.0.0.1:0');
    // HEARTH_BENCH_SERVER_ROOT runs the server from another build (A/B against another commit).
    const root = process.env.HEARTH_BENCH_SERVER_ROOT || REPO_ROOT;
    const args = [...nodeArgs, join(root, 'dist/src/main.js'), '--config', this.configPath];
    this.pinned = this.opts.pin;
    const t0 = performance.now();
    const child = this.opts.pin
      ? spawn('taskset', ['-c', String(this.opts.cpu ?? 0), process.execPath, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.tail = [];
    this.inspectorUrl = undefined;
    // HEARTH_BENCH_LOG_DIR keeps each server's whole output (the tail below is only 50 chunks).
    const logDir = process.env.HEARTH_BENCH_LOG_DIR;
    const logFile = logDir ? join(logDir, `server-${new URL(this.url).port}-${Date.now()}.log`) : undefined;
    if (logDir) mkdirSync(logDir, { recursive: true });
    const keep = (c: Buffer) => {
      if (logFile) appendFileSync(logFile, c);
      this.inspectorUrl ??= inspectorUrl(c.toString('utf8'));
      this.tail.push(c.toString('utf8'));
      if (this.tail.length > 50) this.tail.shift();
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    let gone = false;
    this.exited = new Promise((r) => child.once('exit', () => ((gone = true), r())));
    const deadline = t0 + timeoutMs;
    for (;;) {
      if (gone) throw new Error(`hearth exited during start-up:\n${this.tail.join('')}`);
      try {
        const res = await request('GET', `${this.url}/health`, { timeoutMs: 1000 });
        if (res.status === 200) break;
      } catch {
        /* not listening yet */
      }
      if (performance.now() > deadline) throw new Error(`hearth not healthy within ${timeoutMs} ms:\n${this.tail.join('')}`);
      await sleep(5);
    }
    this.readyMs = performance.now() - t0;
  }

  /** SIGTERM and wait (SIGKILL after 20 s). With --cpu-prof the profile is written on exit. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.exited) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(t);
    this.child = null;
  }

  output(): string {
    return this.tail.join('');
  }

  dispose(): void {
    if (this.child) this.child.kill('SIGKILL');
    if (!this.opts.dataDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The Synapse peer, driven through bench/peers/synapse/ctl. */
export class SynapsePeer implements Target {
  readonly kind = 'synapse' as const;
  readonly label = 'synapse';
  readonly url = 'http://127.0.0.1:18008';
  sharedSecret?: string;
  info: Record<string, unknown> = {};
  pinned = false;
  private pidValue?: number;

  static installed(): boolean {
    return existsSync(join(REPO_ROOT, 'bench/peers/synapse/.venv/bin/python'));
  }

  /** Installs (if needed); returns an error message instead of throwing when it cannot. */
  static install(log: (s: string) => void): string | null {
    try {
      log('installing Synapse into bench/peers/synapse/.venv (pinned version; first time only) ...');
      execFileSync(SYNAPSE_CTL, ['install'], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 15 * 60_000 });
      return null;
    } catch (err) {
      const e = err as { stderr?: Buffer; message: string };
      return `Synapse could not be installed: ${(e.stderr?.toString() || e.message).trim().split('\n').slice(-3).join(' | ')}`;
    }
  }

  /** Fresh database every start; pinned to CPU 0 like Hearth when `pin`. */
  async start(pin: boolean): Promise<void> {
    execFileSync(SYNAPSE_CTL, ['stop'], { stdio: 'ignore' });
    execFileSync(SYNAPSE_CTL, ['start'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(pin ? { SYNAPSE_CPU: '0' } : {}) }, timeout: 120_000 });
    this.pinned = pin;
    this.sharedSecret = execFileSync(SYNAPSE_CTL, ['secret'], { encoding: 'utf8' }).trim();
    this.pidValue = Number(execFileSync(SYNAPSE_CTL, ['pid'], { encoding: 'utf8' }).trim()) || undefined;
    const version = execFileSync(SYNAPSE_CTL, ['version'], { encoding: 'utf8' }).trim();
    this.info = { version: `matrix-synapse ${version}`, database: 'sqlite3', rate_limits: 'all rc_* at 100000/s', presence: true };
  }

  pid(): number | undefined {
    return this.pidValue;
  }

  async stop(): Promise<void> {
    execFileSync(SYNAPSE_CTL, ['stop'], { stdio: 'ignore' });
  }
}

/** Any homeserver at a URL; the bench neither starts nor stops it. */
export class ExternalTarget implements Target {
  readonly kind: TargetKind;
  readonly label: string;
  info: Record<string, unknown> = {};
  readonly pinned = false;
  constructor(readonly url: string, readonly sharedSecret: string | undefined, private readonly pidValue: number | undefined) {
    this.url = url.replace(/\/$/, '');
    this.label = this.url;
    this.kind = 'other';
  }
  /** Asks the server what it is: Hearth advertises the io.hearth.sync.ws unstable feature. */
  async detect(): Promise<void> {
    const res = await request('GET', `${this.url}/_matrix/client/versions`, { timeoutMs: 5000 });
    if (res.status !== 200) throw new Error(`${this.url}/_matrix/client/versions answered ${res.status}`);
    if (res.body?.unstable_features?.['io.hearth.sync.ws']) (this as { kind: TargetKind }).kind = 'hearth';
    this.info = { detected: this.kind };
  }
  pid(): number | undefined {
    return this.pidValue;
  }
  async stop(): Promise<void> {}
}

/** Registers `n` users through the client API (dummy, else shared secret), a few at a time. */
export async function registerUsers(t: Target, n: number, prefix: string, log?: (s: string) => void): Promise<MatrixClient[]> {
  const tag = randomBytes(3).toString('hex');
  let done = 0;
  const started = performance.now();
  const users = await pool(
    Array.from({ length: n }, (_, i) => i),
    8,
    async (i) => {
      const c = await register(t.url, `${prefix}${tag}x${i}`, { sharedSecret: t.sharedSecret });
      if (++done % 500 === 0) log?.(`  registered ${done}/${n}`);
      return c;
    },
  );
  log?.(`  registered ${n} users on ${t.label} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return users;
}

export function readJson(path: string): any {
  return JSON.parse(readFileSync(path, 'utf8'));
}
