// Process and machine statistics from /proc: CPU time (utime + stime) and resident memory of the
// server process (or a cluster's workers, summed), of backing services (Redis, Cassandra) kept
// apart, the generator's own CPU time, and a description of the machine and commit for every result.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';
import { performance } from 'node:perf_hooks';

const CLK_TCK = 100; // USER_HZ: 100 on every Linux target we run on (getconf CLK_TCK)

/** CPU seconds (user + system) used by `pid` so far, or NaN if it cannot be read. */
export function procCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may contain spaces; everything after the last ')' is space-separated.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return (utime + stime) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** Resident set size of `pid` in bytes (VmRSS), or NaN. */
export function procRssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Busy CPU seconds of the whole machine (all cores) so far, from /proc/stat. */
export function machineBusySeconds(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK_TCK;
  } catch {
    return NaN;
  }
}

export interface CpuWindow {
  /** Server CPU in % of one core over the window (NaN when the server pid is unknown); a cluster's workers summed. */
  serverCpuPct: number;
  serverCpuSec: number;
  generatorCpuPct: number;
  generatorCpuSec: number;
  /** CPU used by everything else on the machine (other processes sharing it), % of one core. */
  otherCpuPct: number;
  wallSec: number;
  /** Server processes measured (a cluster's workers); absent for one. */
  serverProcesses?: number;
  /** Backing services (Redis, Cassandra) measured apart from the server; not in `otherCpuPct`. */
  services?: Record<string, { cpuSec: number; cpuPct: number }>;
}

/** One server process, or each worker of a cluster (their CPU is summed). */
export type ServerPids = () => number | readonly number[] | undefined;
/** Backing services by name (e.g. redis, cassandra), measured and reported separately. */
export type ServicePids = () => Record<string, number | undefined>;

function pidList(p: ServerPids): number[] {
  const v = p();
  return v === undefined ? [] : typeof v === 'number' ? [v] : [...v];
}

/** Summed CPU seconds of `pids`; NaN when there are none or one cannot be read. */
function cpuOf(pids: readonly number[]): number {
  return pids.length ? pids.reduce((sum, pid) => sum + procCpuSeconds(pid), 0) : NaN;
}

/** Measures server (and service) CPU and the generator's between start() and stop(). */
export class CpuMeter {
  private t0 = 0;
  private s0 = NaN;
  private g0: NodeJS.CpuUsage = { user: 0, system: 0 };
  private m0 = NaN;
  private pids: number[] = [];
  private svc0: Record<string, number> = {};

  constructor(private readonly serverPid: ServerPids, private readonly servicePids?: ServicePids) {}

  start(): void {
    this.t0 = performance.now();
    // The same processes are read at stop(): a worker started in between would count its whole life.
    this.pids = pidList(this.serverPid);
    this.s0 = cpuOf(this.pids);
    this.svc0 = {};
    for (const [name, pid] of Object.entries(this.servicePids?.() ?? {})) this.svc0[name] = pid ? procCpuSeconds(pid) : NaN;
    this.g0 = process.cpuUsage();
    this.m0 = machineBusySeconds();
  }

  stop(): CpuWindow {
    const wall = (performance.now() - this.t0) / 1000;
    const s1 = cpuOf(this.pids);
    const g = process.cpuUsage(this.g0);
    const gen = (g.user + g.system) / 1e6;
    const srv = s1 - this.s0;
    const pct = (v: number) => Math.round((v / wall) * 1000) / 10;
    let services: CpuWindow['services'];
    let svcSec = 0;
    const now = this.servicePids?.() ?? {};
    for (const [name, before] of Object.entries(this.svc0)) {
      const pid = now[name];
      const sec = pid ? procCpuSeconds(pid) - before : NaN;
      (services ??= {})[name] = { cpuSec: round(sec), cpuPct: pct(sec) };
      if (Number.isFinite(sec)) svcSec += sec;
    }
    const other = machineBusySeconds() - this.m0 - (Number.isFinite(srv) ? srv : 0) - gen - svcSec;
    return {
      serverCpuSec: round(srv),
      serverCpuPct: pct(srv),
      generatorCpuSec: round(gen),
      generatorCpuPct: pct(gen),
      otherCpuPct: Math.max(0, pct(other)),
      wallSec: round(wall),
      ...(this.pids.length > 1 ? { serverProcesses: this.pids.length } : {}),
      ...(services ? { services } : {}),
    };
  }
}

/** CPU microseconds per unit of work (a delivered message, an acknowledged send); NaN without work or CPU figures. */
export function cpuMicrosPer(cpuSec: number, units: number): number {
  return units > 0 && Number.isFinite(cpuSec) ? round((cpuSec * 1e6) / units, 1) : NaN;
}

const SERVICE_NAMES: Record<string, string> = { redis: 'Redis', cassandra: 'Cassandra' };

/** Headline figures: CPU µs per unit for each backing service, e.g. "Cassandra CPU µs/delivery". */
export function serviceMicros(services: CpuWindow['services'], units: number, unit = 'delivery', tag = ''): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, v] of Object.entries(services ?? {})) out[`${tag}${SERVICE_NAMES[name] ?? name} CPU µs/${unit}`] = cpuMicrosPer(v.cpuSec, units);
  return out;
}

/** " redis CPU 12.3% cassandra CPU 45.6%" for progress lines ("" without services). */
export function fmtServices(services: CpuWindow['services']): string {
  return Object.entries(services ?? {})
    .map(([name, v]) => ` ${name} CPU ${v.cpuPct}%`)
    .join('');
}

/** Samples the server's RSS (a cluster's workers summed) every `everyMs` and remembers the peak. */
export class RssPeak {
  peak = 0;
  private timer?: NodeJS.Timeout;
  constructor(private readonly pid: ServerPids, everyMs = 200) {
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }
  sample(): void {
    const pids = pidList(this.pid);
    if (pids.length) this.peak = Math.max(this.peak, pids.reduce((sum, p) => sum + (procRssBytes(p) || 0), 0));
  }
  stop(): number {
    this.sample();
    clearInterval(this.timer);
    return this.peak;
  }
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  ramGiB: number;
  kernel: string;
  node: string;
}

export function machineInfo(): MachineInfo {
  let cpu = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1].trim();
  } catch {
    /* not Linux */
  }
  return { cpu, cores: os.cpus().length, ramGiB: round(os.totalmem() / 2 ** 30, 1), kernel: os.release(), node: process.version };
}

export function machineLabel(m: MachineInfo): string {
  return `${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB`;
}

/** `git rev-parse --short HEAD`, with "-dirty" when the work tree has changes. */
export function gitCommit(cwd: string): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head}-dirty` : head;
  } catch {
    return 'unknown';
  }
}

/** Whether `taskset` exists and the machine has at least two CPUs to split. */
export function canPin(): boolean {
  if (os.cpus().length < 2) return false;
  try {
    execFileSync('taskset', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Pins every thread of `pid` to `cpu`. */
export function pinProcess(pid: number, cpu: number): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function round(v: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** Short SHA-256 over every file of a build directory (names and contents): identifies a dirty tree's build. */
export function buildHash(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) h.update(p.slice(dir.length)).update(readFileSync(p));
    }
  };
  try {
    walk(dir);
    return h.digest('hex').slice(0, 8);
  } catch {
    return 'unknown';
  }
}
