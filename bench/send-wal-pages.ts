// Counts (does not assert) what one durable client send costs the SQLite store in pages and
// statements, under send-cpu's concurrency (R rooms, one sender each, 2 sends in flight): WAL
// bytes appended per send (automatic checkpoints off, so the WAL only grows), split by the table
// or index each frame's page belongs to (dbstat), and better-sqlite3 statements run per send.
// Each dirtied B-tree page is a WAL frame at COMMIT and later a page copied by a checkpoint, so
// fewer pages per send is less work in both (docs/benchmarks.md, "session 7: send path").
//
//   npm run build && node dist/bench/send-wal-pages.js [rooms=50] [perRoom=100]
//   HEARTH_BENCH_SERVER_ROOT=/other/checkout node dist/bench/send-wal-pages.js   (that build's server)
//
// The server runs in this process (the counters patch better-sqlite3's prototypes).

import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type BetterSqlite3 from 'better-sqlite3';
import { MatrixClient } from './lib/matrix.js';

const ROOMS = Number(process.argv[2] ?? 50);
const PER_ROOM = Number(process.argv[3] ?? 100);
const WARMUP_PER_ROOM = 10;

const root = process.env.HEARTH_BENCH_SERVER_ROOT;
// The server's own copy of better-sqlite3 (another checkout may resolve another one).
const require = createRequire(root ? join(root, 'package.json') : import.meta.url);
const Database = require('better-sqlite3') as typeof BetterSqlite3;

// Checkpoints off: every frame a commit writes stays in the WAL to be counted.
const pragma = Database.prototype.pragma;
Database.prototype.pragma = function (this: BetterSqlite3.Database, source: string, opts?: BetterSqlite3.PragmaOptions) {
  return pragma.call(this, /wal_autocheckpoint/i.test(source) ? 'wal_autocheckpoint = 0' : source, opts);
} as typeof pragma;
let statements = 0;
const probe = new Database(':memory:');
const statementProto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as Record<'run' | 'get' | 'all', (...a: unknown[]) => unknown>;
probe.close();
for (const m of ['run', 'get', 'all'] as const) {
  const original = statementProto[m];
  statementProto[m] = function (this: unknown, ...args: unknown[]) {
    statements++;
    return original.apply(this, args);
  };
}

const helpers = root ? pathToFileURL(join(root, 'dist/spec/helpers/server.js')).href : '../spec/helpers/server.js';
const { startTestServer } = (await import(helpers)) as typeof import('../spec/helpers/server.js');
const dir = mkdtempSync(join(process.env.HEARTH_BENCH_DATA_DIR ?? tmpdir(), 'hearth-send-wal-'));
const dbPath = join(dir, 'hearth.sqlite');
const srv = await startTestServer({ log: { level: 'error' }, storage: { sqlite: { path: dbPath, synchronous: 'full' } } }, dir);
try {
  const { accounts } = srv.hearth.services;
  const clients: MatrixClient[] = [];
  for (let i = 0; i < ROOMS; i++) {
    const userId = await accounts.createAccount(`w${i}`, null);
    clients.push(new MatrixClient(srv.url, userId, (await accounts.login(userId, undefined, null, null)).access_token, ''));
  }
  const rooms = await Promise.all(clients.map(async (c) => (await c.call('POST', '/_matrix/client/v3/createRoom', {})).room_id as string));
  let txn = 0;
  const run = (perRoom: number) =>
    Promise.all(
      clients.map(async (c, i) => {
        let left = perRoom;
        const lane = async () => {
          while (left-- > 0) {
            const r = await c.send(rooms[i], `t${txn++}`, `send-wal ${txn}`);
            if (r.status !== 200) throw new Error(`send: ${r.status} ${JSON.stringify(r.body)}`);
          }
        };
        await Promise.all([lane(), lane()]);
      }),
    );
  await run(WARMUP_PER_ROOM);
  const wal0 = statSync(`${dbPath}-wal`).size;
  const statements0 = statements;
  await run(PER_ROOM);
  const n = ROOMS * PER_ROOM;
  const wal = readFileSync(`${dbPath}-wal`);
  const pageSize = wal.readUInt32BE(8);
  const frame = 24 + pageSize;
  // Which B-tree each page belongs to, as of now (pages are not moved: no VACUUM).
  const owners = new Map<number, string>();
  const reader = new Database(dbPath, { readonly: true });
  try {
    for (const r of reader.prepare('SELECT name, pageno FROM dbstat').all() as { name: string; pageno: number }[]) owners.set(r.pageno, r.name);
  } finally {
    reader.close();
  }
  const byOwner = new Map<string, number>();
  let frames = 0;
  // The WAL header is 32 bytes; frames appended during the run start at the old end of the file.
  for (let at = Math.max(32, wal0); at + frame <= wal.length; at += frame) {
    const name = owners.get(wal.readUInt32BE(at)) ?? '(freed)';
    byOwner.set(name, (byOwner.get(name) ?? 0) + 1);
    frames++;
  }
  console.log(
    `send-wal-pages: ${ROOMS} rooms × ${PER_ROOM} sends, 2 in flight per room: ${(frames / n).toFixed(2)} WAL frames ` +
      `(${Math.round((frames * frame) / n)} bytes) and ${((statements - statements0) / n).toFixed(2)} statements per send`,
  );
  for (const [name, count] of [...byOwner].sort((a, b) => b[1] - a[1])) console.log(`  ${(count / n).toFixed(3).padStart(6)}  ${name}`);
} finally {
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
}
