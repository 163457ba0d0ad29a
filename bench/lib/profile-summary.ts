// Summarises V8 .cpuprofile files (from `node --cpu-prof`): self time per function, and per
// source area (ours by folder, dependencies by package, node internals, GC, idle).
//
//   node dist/bench/lib/profile-summary.js bench/profiles/<scenario>[/<file>.cpuprofile] [top]

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: Node[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileRow {
  name: string;
  where: string;
  selfMs: number;
  pct: number;
}

function area(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return '(program: native, not attributed)';
  if (!url) return `native/${fn || 'anonymous'}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 13).split('/');
    return `dep:${rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const src = url.indexOf('/dist/src/');
  if (src >= 0) return `hearth:${url.slice(src + 10).split('/').slice(0, -1).join('/') || '.'}`;
  return url;
}

function shortWhere(url: string, line: number): string {
  const src = url.indexOf('/dist/src/');
  if (src >= 0) return `src/${url.slice(src + 10).replace(/\.js$/, '.ts')}:${line + 1}`;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return `${url.slice(nm + 13)}:${line + 1}`;
  return url ? `${url}:${line + 1}` : '';
}

/** Self time per function and per area for one or more profiles together. */
export function summarise(files: string[], top = 25): { top: ProfileRow[]; areas: ProfileRow[]; totalMs: number; text: string } {
  const byFn = new Map<string, ProfileRow>();
  const byArea = new Map<string, number>();
  let total = 0;
  for (const f of files) {
    const p = JSON.parse(readFileSync(f, 'utf8')) as Profile;
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    const self = new Map<number, number>();
    if (p.samples && p.timeDeltas) {
      // Sample i lasted until sample i+1: attribute timeDeltas[i+1] to samples[i].
      for (let i = 0; i < p.samples.length; i++) {
        const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
        self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + dt);
      }
    } else {
      const interval = (p.endTime - p.startTime) / 1000 / Math.max(1, p.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0));
      for (const n of p.nodes) self.set(n.id, (n.hitCount ?? 0) * interval);
    }
    for (const [id, ms] of self) {
      const n = nodes.get(id);
      if (!n) continue;
      const { functionName, url, lineNumber } = n.callFrame;
      const name = functionName || '(anonymous)';
      const key = `${name}|${url}|${lineNumber}`;
      const row = byFn.get(key) ?? { name, where: shortWhere(url, lineNumber), selfMs: 0, pct: 0 };
      row.selfMs += ms;
      byFn.set(key, row);
      const a = area(url, functionName);
      byArea.set(a, (byArea.get(a) ?? 0) + ms);
      total += ms;
    }
  }
  const busy = total - (byArea.get('idle') ?? 0);
  const rows = [...byFn.values()].filter((r) => r.name !== '(idle)').sort((a, b) => b.selfMs - a.selfMs).slice(0, top);
  for (const r of rows) r.pct = Math.round((r.selfMs / busy) * 1000) / 10;
  for (const r of rows) r.selfMs = Math.round(r.selfMs);
  const areas = [...byArea.entries()]
    .filter(([a]) => a !== 'idle')
    .map(([name, ms]) => ({ name, where: '', selfMs: Math.round(ms), pct: Math.round((ms / busy) * 1000) / 10 }))
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, 15);
  const lines = [
    `profile: ${files.length} file(s), ${(total / 1000).toFixed(1)} s sampled, ${(busy / 1000).toFixed(1)} s busy (not idle)`,
    '  self time by area:',
    ...areas.map((a) => `    ${a.pct.toFixed(1).padStart(5)}%  ${String(a.selfMs).padStart(7)} ms  ${a.name}`),
    '  top functions by self time:',
    ...rows.map((r) => `    ${r.pct.toFixed(1).padStart(5)}%  ${String(r.selfMs).padStart(7)} ms  ${r.name}  ${r.where}`),
  ];
  return { top: rows, areas, totalMs: Math.round(total), text: lines.join('\n') };
}

/** Every .cpuprofile in `dir` (newest run's files), or null if none. */
export function summariseProfiles(dir: string, top = 25): ReturnType<typeof summarise> | null {
  if (!existsSync(dir)) return null;
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f));
  return files.length ? summarise(files, top) : null;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const arg = process.argv[2];
  if (!arg) {
    console.error('usage: node dist/bench/lib/profile-summary.js <dir|file.cpuprofile> [top]');
    process.exit(2);
  }
  const top = Number(process.argv[3] ?? 25);
  const res = statSync(arg).isDirectory() ? summariseProfiles(arg, top) : summarise([arg], top);
  console.log(res ? res.text : 'no .cpuprofile files');
}
