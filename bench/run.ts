// npm run bench -- [--target URL] [--scenario NAME[,NAME]] [--quick] [--vs synapse] [--profile]
//
// Drives a homeserver as Matrix clients would (HTTP /sync long-polls, Hearth's WebSocket stream)
// with an open-loop load generator in this process, and writes bench/results/<date>-<scenario>.json
// plus the generated tables in docs/benchmarks.md. Without --target it starts Hearth itself
// (node dist/src/main.js --config <tmp>), pinned to CPU 0 with the generator on CPU 1 when
// taskset is available. Exit code 1 if any scenario lost or duplicated a message, or failed.
// --cluster N runs the latency, fan-out and send-ceiling scenarios on one node (SQLite), one node
// on Cassandra and N workers on Cassandra + Redis, side by side (bench/lib/cluster.ts).

import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { BenchContext, Scenario, TargetSpec } from './lib/context.js';
import { buildHash, canPin, gitCommit, machineInfo, pinProcess } from './lib/proc.js';
import { loadResults, updateDocs, writeResult, type RunResult, type TargetResult } from './lib/report.js';
import { ExternalTarget, REPO_ROOT, SynapsePeer } from './lib/target.js';
import { summariseProfiles } from './lib/profile-summary.js';
import { socketLatency, syncLatency } from './scenarios/latency.js';
import { fanout } from './scenarios/fanout.js';
import { sendCeiling } from './scenarios/send-ceiling.js';
import { idleCost } from './scenarios/idle-cost.js';
import { storm } from './scenarios/storm.js';
import { coldStart } from './scenarios/cold-start.js';
import { overload } from './scenarios/overload.js';
import { federation } from './scenarios/federation.js';
import { clusterCleanup, clusterComparison, clusterLabel, clusterScenarios, launchCluster, parseClusterWorkers } from './lib/cluster.js';
import { registerClusterLauncher } from './lib/context.js';

const SCENARIOS: Scenario[] = [syncLatency, socketLatency, fanout, sendCeiling, idleCost, storm, coldStart, overload, federation];
/** What --vs synapse compares: the /sync scenarios. */
const VERSUS = ['sync-latency', 'fanout', 'send-ceiling'];

const USAGE = `usage: npm run bench -- [--target URL [--shared-secret S] [--target-pid PID]] [--scenario NAME[,NAME...]]
                          [--quick] [--vs synapse] [--profile] [--accounts seed|api] [--synchronous full|normal]
                          [--socket-send socket|http]
                          [--no-pin] [--no-docs] [--docs-only] [--label NAME] [--cluster WORKERS [--cluster-only]]
scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}`;

function openFileLimit(): number {
  try {
    const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? (m[1] === 'unlimited' ? Infinity : Number(m[1])) : NaN;
  } catch {
    return NaN;
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' },
      'shared-secret': { type: 'string' },
      'target-pid': { type: 'string' },
      scenario: { type: 'string', multiple: true },
      quick: { type: 'boolean', default: false },
      vs: { type: 'string' },
      profile: { type: 'boolean', default: false },
      accounts: { type: 'string', default: 'seed' },
      synchronous: { type: 'string', default: 'full' },
      'socket-send': { type: 'string', default: 'socket' },
      'no-pin': { type: 'boolean', default: false },
      'no-docs': { type: 'boolean', default: false },
      'docs-only': { type: 'boolean', default: false },
      label: { type: 'string' },
      cluster: { type: 'string' },
      'cluster-only': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const resultsDir = join(REPO_ROOT, 'bench/results');
  if (values['docs-only']) {
    updateDocs(join(REPO_ROOT, 'docs/benchmarks.md'), loadResults(resultsDir));
    console.log('docs/benchmarks.md tables regenerated from bench/results/*.json');
    return 0;
  }
  if (values.vs !== undefined && values.vs !== 'synapse') throw new Error(`--vs takes "synapse" only\n${USAGE}`);
  if (values.accounts !== 'seed' && values.accounts !== 'api') throw new Error(`--accounts is seed or api\n${USAGE}`);
  if (values.synchronous !== 'full' && values.synchronous !== 'normal') throw new Error(`--synchronous is full or normal\n${USAGE}`);
  if (values['socket-send'] !== 'socket' && values['socket-send'] !== 'http') throw new Error(`--socket-send is socket or http\n${USAGE}`);
  const versus = values.vs === 'synapse';
  const requested = (values.scenario ?? []).flatMap((s) => s.split(',')).filter(Boolean);
  for (const r of requested) if (!SCENARIOS.some((s) => s.name === r)) throw new Error(`unknown scenario ${r}\n${USAGE}`);
  let clusterWorkers: number | undefined;
  try {
    clusterWorkers = parseClusterWorkers(values.cluster, values.target);
    if (clusterWorkers !== undefined && versus) throw new Error('--cluster and --vs are exclusive');
    if (values['cluster-only'] && clusterWorkers === undefined) throw new Error('--cluster-only needs --cluster WORKERS');
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${USAGE}`);
  }
  const wanted = clusterWorkers !== undefined ? clusterScenarios(requested) : requested;
  let selected = wanted.length ? SCENARIOS.filter((s) => wanted.includes(s.name)) : SCENARIOS;
  if (versus) selected = selected.filter((s) => VERSUS.includes(s.name));

  const started = performance.now();
  const log = (m: string) => console.log(m);
  const pin = !values['no-pin'] && !values.target && canPin() && pinProcess(process.pid, 1);
  const pinning = pin ? 'taskset: server CPU 0, generator CPU 1' : values.target ? 'not pinned (external target)' : 'not pinned';
  const machine = machineInfo();
  const commit = gitCommit(REPO_ROOT);
  const mode = values.quick ? 'quick' : 'full';
  const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();
  log(`hearth bench: ${mode} mode, ${selected.map((s) => s.name).join(', ')}`);
  log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.ramGiB} GiB, node ${machine.node}; commit ${commit}; ${pinning}`);
  const nofile = openFileLimit();
  if (nofile < 22_000 && selected.some((s) => s.name === 'idle-cost') && !values.quick) {
    log(`note: open-file limit is ${nofile}; idle-cost opens 10,000 connections per phase (raise with ulimit -n 65536 if it fails)`);
  }

  // Other developers rebuild dist/ in this checkout; run the server from a private snapshot of
  // the build taken now, so one run measures one build (and the Store helpers match its schema).
  let snapshot: string | undefined;
  if (!values.target && !process.env.HEARTH_BENCH_SERVER_ROOT) {
    snapshot = mkdtempSync(join(tmpdir(), 'hearth-bench-build-'));
    cpSync(join(REPO_ROOT, 'dist/src'), join(snapshot, 'dist/src'), { recursive: true });
    cpSync(join(REPO_ROOT, 'package.json'), join(snapshot, 'package.json'));
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(snapshot, 'node_modules'));
    process.env.HEARTH_BENCH_SERVER_ROOT = snapshot;
  }
  const cleanup = () => snapshot && rmSync(snapshot, { recursive: true, force: true });
  // A dirty tree's commit says little: name the exact server build too.
  const build = values.target ? undefined : buildHash(join(process.env.HEARTH_BENCH_SERVER_ROOT!, 'dist/src'));
  const commitLabel = build ? `${commit} (build ${build})` : commit;
  if (build) log(`server build ${build} (sha256 of dist/src)`);
  process.once('exit', cleanup);

  const ctx: BenchContext = { quick: values.quick, pin, profile: values.profile, accounts: values.accounts as 'seed' | 'api', synchronous: values.synchronous as 'full' | 'normal', socketSend: values['socket-send'] as 'socket' | 'http', versus, log };
  let primary: TargetSpec = { kind: 'hearth' };
  let primaryKind = 'hearth';
  // --cluster N: each scenario runs on one node (SQLite), one node on Cassandra and the cluster.
  const comparison = clusterWorkers !== undefined ? clusterComparison(clusterWorkers, values['cluster-only']) : [];
  if (clusterWorkers !== undefined) {
    registerClusterLauncher(launchCluster);
    log(`cluster: ${comparison.map((c) => (c.kind === 'cluster' ? clusterLabel(c) : 'hearth (SQLite)')).join(', ')}; users round-robin over the workers`);
  } else if (values.target) {
    primary = { kind: 'url', url: values.target, sharedSecret: values['shared-secret'], pid: values['target-pid'] ? Number(values['target-pid']) : undefined };
    const probe = new ExternalTarget(values.target, undefined, undefined);
    await probe.detect();
    primaryKind = probe.kind;
    log(`target ${values.target} (${primaryKind === 'hearth' ? 'Hearth' : 'not Hearth'}), pid ${values['target-pid'] ?? 'unknown: no server CPU/RSS figures'}`);
  }
  let synapseProblem: string | null = null;
  if (versus) {
    synapseProblem = SynapsePeer.installed() ? null : SynapsePeer.install(log);
    if (synapseProblem) log(`*** ${synapseProblem}\n*** reporting Hearth alone`);
  }

  let failed = false;
  let passedCount = 0;
  let failedCount = 0;
  for (const sc of selected) {
    log(`\n== ${sc.name} ==`);
    if (ctx.profile) rmSync(join(REPO_ROOT, 'bench/profiles', sc.name), { recursive: true, force: true });
    const targets: Record<string, TargetResult> = {};
    const runOne = async (spec: TargetSpec, kind: string, label: string) => {
      const why = sc.supports(spec, kind);
      if (why) {
        log(`  skipped on ${label}: ${why}`);
        targets[label] = { label, info: {}, headline: {}, figures: {}, lost: 0, duplicated: 0, notes: [], skipped: why };
        return;
      }
      try {
        for (const r of await sc.run(ctx, spec)) targets[r.info.synchronous ? `${r.label}-${r.info.synchronous}` : r.label] = r;
      } catch (err) {
        failed = true;
        log(`  FAILED on ${label}: ${(err as Error).stack ?? err}`);
        targets[label] = { label, info: {}, headline: {}, figures: {}, lost: 0, duplicated: 0, notes: [`failed: ${(err as Error).message}`], skipped: `failed: ${(err as Error).message.slice(0, 200)}` };
      }
    };
    if (comparison.length) for (const spec of comparison) await runOne(spec, 'hearth', spec.kind === 'cluster' ? clusterLabel(spec) : 'hearth');
    else await runOne(primary, primaryKind, values.target ?? 'hearth');
    if (versus) {
      if (synapseProblem) targets.synapse = { label: 'synapse', info: {}, headline: {}, figures: {}, lost: 0, duplicated: 0, notes: [], skipped: synapseProblem };
      else await runOne({ kind: 'synapse' }, 'synapse', 'synapse');
    }
    const lostOrDup = Object.values(targets).some((t) => t.lost > 0 || t.duplicated > 0);
    if (lostOrDup) failed = true;
    const result: RunResult = {
      scenario: sc.name,
      mode,
      date: new Date().toISOString(),
      command,
      commit: commitLabel,
      machine,
      pinning,
      targets,
      tag: values.label ?? (clusterWorkers !== undefined ? `cluster${clusterWorkers}` : undefined),
      ok: !lostOrDup && !Object.values(targets).some((t) => t.skipped?.startsWith('failed')),
    };
    if (versus && targets.synapse && !targets.synapse.skipped) result.ratios = ratios(targets);
    if (ctx.profile) {
      const summary = summariseProfiles(join(REPO_ROOT, 'bench/profiles', sc.name), 25);
      if (summary) {
        log(summary.text);
        for (const t of Object.values(targets)) if (t.label === 'hearth') t.figures.profileTop = summary.top;
      }
    }
    if (values.label) for (const t of Object.values(targets)) if (t.label === 'hearth') t.label = `hearth (${values.label})`;
    if (result.ok) passedCount++;
    else failedCount++;
    const path = writeResult(resultsDir, result);
    log(`  -> ${path.slice(REPO_ROOT.length + 1)}${lostOrDup ? '  *** LOST OR DUPLICATED MESSAGES ***' : ''}`);
  }
  await clusterCleanup();
  if (!values['no-docs']) {
    updateDocs(join(REPO_ROOT, 'docs/benchmarks.md'), loadResults(resultsDir));
    log('\ndocs/benchmarks.md tables regenerated');
  }
  log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s${failed ? ' — FAILED (loss, duplicates or errors above)' : ''}`);
  // Scenarios with zero lost, zero duplicated and no error pass; timings are never asserted.
  log(`bench: ${passedCount} passed, ${failedCount} failed`);
  return failed ? 1 : 0;
}

/** Hearth / Synapse for each numeric headline figure (the Hearth row with synchronous=full when there are two). */
function ratios(targets: Record<string, TargetResult>): Record<string, number> {
  const h = targets.hearth ?? targets['hearth-full'] ?? Object.values(targets).find((t) => t.label.startsWith('hearth'));
  const s = targets.synapse;
  const out: Record<string, number> = {};
  if (!h || !s) return out;
  for (const [k, v] of Object.entries(h.headline)) {
    const o = s.headline[k];
    if (typeof v === 'number' && typeof o === 'number' && o !== 0 && Number.isFinite(v) && Number.isFinite(o)) out[k] = Math.round((v / o) * 1000) / 1000;
  }
  return out;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
