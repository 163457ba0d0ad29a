// Results: one JSON file per run and scenario in bench/results/, and the generated tables in
// docs/benchmarks.md (rebuilt from every JSON file, between the GENERATED markers; the text
// around them is written by hand and kept).

import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MachineInfo } from './proc.js';
import { machineLabel } from './proc.js';

export interface TargetResult {
  label: string;
  info: Record<string, unknown>;
  /** Key figures: these go into the docs table and the Synapse ratios. */
  headline: Record<string, number | string>;
  /** Everything else measured (full distributions, steps, counts). */
  figures: Record<string, unknown>;
  lost: number;
  duplicated: number;
  serverCpuPct?: number;
  generatorCpuPct?: number;
  /** CPU of other processes on the machine during the measurement (a shared machine is noisy). */
  otherCpuPct?: number;
  notes: string[];
  skipped?: string;
}

export interface RunResult {
  scenario: string;
  mode: 'full' | 'quick';
  date: string;
  command: string;
  commit: string;
  machine: MachineInfo;
  pinning: string;
  targets: Record<string, TargetResult>;
  /** Hearth / Synapse for every numeric headline figure both have. */
  ratios?: Record<string, number>;
  /** --label: names a variant run (another build, a setting); part of the file name. */
  tag?: string;
  ok: boolean;
}

export const BEGIN = '<!-- BEGIN GENERATED: npm run bench rewrites this part from bench/results/*.json -->';
export const END = '<!-- END GENERATED -->';

export function resultPath(dir: string, r: RunResult): string {
  const day = r.date.slice(0, 10);
  const target = Object.keys(r.targets).includes('synapse') && Object.keys(r.targets).length > 1 ? '-vs-synapse' : '';
  const other = Object.values(r.targets).some((t) => t.label.startsWith('http')) ? `-${Object.values(r.targets)[0].label.replace(/^https?:\/\//, '').replace(/[^A-Za-z0-9]+/g, '_')}` : '';
  const tag = r.tag ? `-${r.tag.replace(/[^A-Za-z0-9.-]+/g, '_')}` : '';
  return join(dir, `${day}-${r.scenario}${r.mode === 'quick' ? '-quick' : ''}${target}${other}${tag}.json`);
}

export function writeResult(dir: string, r: RunResult): string {
  mkdirSync(dir, { recursive: true });
  const path = resultPath(dir, r);
  writeFileSync(path, `${JSON.stringify(r, null, 2)}\n`);
  return path;
}

export function loadResults(dir: string): RunResult[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as RunResult);
}

const ORDER = ['sync-latency', 'socket-latency', 'fanout', 'send-ceiling', 'idle-cost', 'storm', 'cold-start', 'federation'];

function fmt(v: unknown): string {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return '–';
    const a = Math.abs(v);
    return a >= 1000 ? Math.round(v).toLocaleString('en-US') : a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  }
  return v === undefined || v === null ? '–' : String(v);
}

/** Markdown tables, one per scenario, newest run first. */
export function renderTables(results: RunResult[]): string {
  const out: string[] = [];
  const byScenario = new Map<string, RunResult[]>();
  for (const r of results) byScenario.set(r.scenario, [...(byScenario.get(r.scenario) ?? []), r]);
  const names = [...byScenario.keys()].sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b));
  for (const name of names) {
    const runs = byScenario.get(name)!.sort((a, b) => (a.date < b.date ? 1 : -1));
    const keys: string[] = [];
    for (const r of runs) for (const t of Object.values(r.targets)) for (const k of Object.keys(t.headline)) if (!keys.includes(k)) keys.push(k);
    out.push(`### ${name}`, '');
    out.push(`| date | mode | target | ${keys.join(' | ')} | lost | dup | server CPU % | generator CPU % | other CPU % | commit | machine | command |`);
    out.push(`|${' --- |'.repeat(keys.length + 12)}`);
    for (const r of runs) {
      const machine = `${machineLabel(r.machine)}; ${r.pinning}`;
      for (const t of Object.values(r.targets)) {
        if (t.skipped) {
          out.push(`| ${r.date.slice(0, 16).replace('T', ' ')} | ${r.mode} | ${t.label} | ${keys.map(() => '–').join(' | ')} | – | – | – | – | – | ${r.commit} | ${machine} | skipped: ${t.skipped} |`);
          continue;
        }
        const cells = keys.map((k) => fmt(t.headline[k]));
        out.push(
          `| ${r.date.slice(0, 16).replace('T', ' ')} | ${r.mode} | ${t.label}${t.info.synchronous ? ` (${t.info.synchronous})` : typeof t.info.version === 'string' ? ` (${t.info.version.replace('matrix-synapse ', '')})` : ''} | ${cells.join(' | ')} | ${t.lost} | ${t.duplicated} | ${fmt(t.serverCpuPct)} | ${fmt(t.generatorCpuPct)} | ${fmt(t.otherCpuPct)} | ${r.commit} | ${machine} | \`${r.command}\` |`,
        );
      }
      if (r.ratios && Object.keys(r.ratios).length) {
        const cells = keys.map((k) => (r.ratios![k] !== undefined ? `${fmt(r.ratios![k])}×` : '–'));
        out.push(`| ${r.date.slice(0, 16).replace('T', ' ')} | ${r.mode} | **Hearth ÷ Synapse** | ${cells.join(' | ')} | | | | | | | | |`);
      }
    }
    out.push('');
  }
  return out.join('\n');
}

/** Rewrites the generated part of docs/benchmarks.md (creates the file with a stub intro if missing). */
export function updateDocs(docPath: string, results: RunResult[]): void {
  const generated = `${BEGIN}\n\n${renderTables(results)}\n${END}`;
  let text = existsSync(docPath) ? readFileSync(docPath, 'utf8') : `# Benchmarks\n\n${BEGIN}\n${END}\n`;
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  text = a >= 0 && b > a ? text.slice(0, a) + generated + text.slice(b + END.length) : `${text.trimEnd()}\n\n${generated}\n`;
  writeFileSync(docPath, text);
}
