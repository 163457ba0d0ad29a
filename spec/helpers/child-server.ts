// Runs the real server binary (`node dist/src/main.js --config FILE`) as a child process, for
// tests that kill it (SIGKILL, SIGTERM) and restart it on the same data directory.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root: this file runs from dist/spec/helpers/. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

import { freePort } from './ports.js';
export { freePort };

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class ChildServer {
  readonly dir: string;
  readonly configPath: string;
  private child: ChildProcess | null = null;
  private exited: Promise<ExitInfo> | null = null;
  private log: string[] = [];
  /** Output of every run so far, for failure reports. */
  readonly history: string[] = [];

  private constructor(readonly port: number, dir: string) {
    this.dir = dir;
    this.configPath = join(dir, 'hearth.yaml');
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * Writes a config in a fresh temp dir: durable SQLite (synchronous: full), no rate limits;
   * `extra`'s top-level keys replace the defaults' (e.g. storage, cluster, signing_key_path).
   */
  static async create(extra: Record<string, unknown> = {}): Promise<ChildServer> {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-crash-'));
    const srv = new ChildServer(await freePort(), dir);
    // JSON is valid YAML.
    const config = {
      server_name: 'localhost',
      listeners: { client: { host: '127.0.0.1', port: srv.port } },
      storage: { sqlite: { path: join(dir, 'data', 'hearth.sqlite'), synchronous: 'full' } },
      signing_key_path: join(dir, 'data', 'signing.key'),
      limits: { rate_limits: { enabled: false } },
      log: { level: 'warn' },
      metrics: { listen: { port: 0 } },
      ...extra,
    };
    writeFileSync(srv.configPath, JSON.stringify(config, null, 2));
    return srv;
  }

  /** Spawns the server and resolves once GET /health answers OK. */
  async start(timeoutMs = 15000): Promise<void> {
    if (this.child) throw new Error('already running');
    this.log = [];
    // HEARTH_CHILD_ROOT runs the server from another build (e.g. a patched copy of dist/).
    const child = spawn(process.execPath, ['dist/src/main.js', '--config', this.configPath], {
      cwd: process.env.HEARTH_CHILD_ROOT || REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const run = this.history.length;
    this.history.push('');
    const capture = (tag: string) => (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.log.push(`${tag}${text}`);
      this.history[run] += `${tag}${text}`;
    };
    child.stdout!.on('data', capture(''));
    child.stderr!.on('data', capture('[stderr] '));
    this.exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
    let exitedEarly: ExitInfo | null = null;
    void this.exited.then((e) => (exitedEarly = e));

    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exitedEarly) throw new Error(`server exited during start-up (${JSON.stringify(exitedEarly)}):\n${this.output()}`);
      try {
        const res = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200 && (await res.text()) === 'OK') return;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) throw new Error(`server did not become healthy in ${timeoutMs} ms:\n${this.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** Sends `signal` and waits for the process to exit. */
  async kill(signal: NodeJS.Signals): Promise<ExitInfo> {
    const child = this.child;
    if (!child || !this.exited) throw new Error('not running');
    child.kill(signal);
    const info = await this.exited;
    this.child = null;
    return info;
  }

  /** Resolves when the process exits on its own (or rejects after `timeoutMs`). */
  async waitForExit(timeoutMs: number): Promise<ExitInfo> {
    const exited = this.exited;
    if (!exited) throw new Error('not running');
    let timer: NodeJS.Timeout | undefined;
    try {
      const info = await Promise.race([
        exited,
        new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`server did not exit within ${timeoutMs} ms`)), timeoutMs))),
      ]);
      this.child = null;
      return info;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Output of the current (or last) run. */
  output(): string {
    return this.log.join('');
  }

  /** Kills the process if it still runs (SIGKILL), then removes the temp dir. */
  async dispose(): Promise<void> {
    if (this.child) await this.kill('SIGKILL').catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
