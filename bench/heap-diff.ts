// node dist/bench/heap-diff.js BASE.heapsnapshot LOADED.heapsnapshot [N]
//
// What grew between two V8 heap snapshots (as idle-cost writes with IDLE_COST_SNAPSHOTS=<dir>):
// objects grouped by node type and constructor/name, with the count and self size added, and per
// connection when N (the connections opened between the two) is given. Self sizes only: an
// object's share of what it keeps alive is in the rows of the objects it keeps.

import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

type Groups = Map<string, { count: number; bytes: number }>;

function groups(path: string): Groups {
  const s = JSON.parse(readFileSync(path, 'utf8')) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = f.length;
  const iType = f.indexOf('type');
  const iName = f.indexOf('name');
  const iSize = f.indexOf('self_size');
  const out: Groups = new Map();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]];
    let name = s.strings[s.nodes[i + iName]];
    // Strings and numbers are grouped by type alone; their values are not constructors.
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string' || type === 'number' || type === 'heap number') name = '';
    else if (name.length > 60) name = name.slice(0, 57) + '...';
    const key = `${type}\t${name}`;
    const g = out.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += s.nodes[i + iSize];
    out.set(key, g);
  }
  return out;
}

function main(): void {
  const [a, b, nArg] = process.argv.slice(2);
  if (!a || !b) {
    console.error('usage: node dist/bench/heap-diff.js BASE.heapsnapshot LOADED.heapsnapshot [N]');
    process.exit(2);
  }
  const n = Number(nArg) || 0;
  const base = groups(a);
  const loaded = groups(b);
  const rows: Array<{ key: string; count: number; bytes: number }> = [];
  for (const [key, g] of loaded) {
    const o = base.get(key) ?? { count: 0, bytes: 0 };
    rows.push({ key, count: g.count - o.count, bytes: g.bytes - o.bytes });
  }
  for (const [key, o] of base) if (!loaded.has(key)) rows.push({ key, count: -o.count, bytes: -o.bytes });
  rows.sort((x, y) => y.bytes - x.bytes);
  const total = rows.reduce((t, r) => t + r.bytes, 0);
  console.log(`total self size ${(total / 1024).toFixed(0)} KiB${n ? `, ${(total / n).toFixed(0)} B per connection (N=${n})` : ''}`);
  console.log(['bytes', 'count', n ? 'B/conn' : '', n ? 'count/conn' : '', 'type', 'name'].filter(Boolean).join('\t'));
  for (const r of rows.slice(0, 60)) {
    if (Math.abs(r.bytes) < 1024) continue;
    const cols = [String(r.bytes), String(r.count)];
    if (n) cols.push((r.bytes / n).toFixed(0), (r.count / n).toFixed(2));
    console.log([...cols, r.key].join('\t'));
  }
}

main();
