// Measures (does not assert) the server CPU one durable client send costs, with fixed work so the
// figure does not move with the machine's load: R rooms with one sender each (as send-ceiling),
// each sender keeps D sends in flight over HTTP (`PUT /rooms/{id}/send`, keep-alive) until K per
// room are acknowledged; server CPU from process.cpuUsage() of the server (a forked child), divided
// by R × K. Nobody syncs, so this is the send path alone: HTTP + auth + intake, building, signing,
// checks, the grouped commit and its fsync, and the completion hook feeding the sync read model.
//
//   npm run build && node dist/bench/send-cpu.js [rooms=50] [perRoom=60] [depth=2] [full|normal]
//   HEARTH_BENCH_SERVER_ROOT=/other/checkout node dist/bench/send-cpu.js   (that build's server, for A/B)
//   HEARTH_BENCH_WINDOW_PROFILE=/tmp/send.cpuprofile node dist/bench/send-cpu.js   (profile the measured window only)
//   HEARTH_BENCH_DATA_DIR=/dev/shm ...   (the database elsewhere than the OS temp dir)

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MatrixClient } from './lib/matrix.js';
import { forkCpuChild, serveCpuChild } from './lib/cpu-child.js';

const args = process.argv.slice(2).filter((a) => a !== '--server');
const ROOMS = Number(args[0] ?? 50);
const PER_ROOM = Number(args[1] ?? 60);
const DEPTH = Number(args[2] ?? 2);
const SYNCHRONOUS = (args[3] ?? 'full') as 'full' | 'normal';
const WARMUP_PER_ROOM = 10;

type Ready = { url: string; users: Array<{ userId: string; token: string }> };

async function server(): Promise<void> {
  const root = process.env.HEARTH_BENCH_SERVER_ROOT;
  const helpers = root ? pathToFileURL(join(root, 'dist/spec/helpers/server.js')).href : '../spec/helpers/server.js';
  const { startTestServer } = (await import(helpers)) as typeof import('../spec/helpers/server.js');
  await serveCpuChild<Ready>(async () => {
    const dir = mkdtempSync(join(process.env.HEARTH_BENCH_DATA_DIR ?? tmpdir(), 'hearth-send-cpu-'));
    const srv = await startTestServer({ log: { level: 'error' }, storage: { sqlite: { path: join(dir, 'hearth.sqlite'), synchronous: SYNCHRONOUS } } }, dir);
    const { accounts } = srv.hearth.services;
    const users: Ready['users'] = [];
    for (let i = 0; i < ROOMS; i++) {
      const userId = await accounts.createAccount(`s${i}`, null);
      users.push({ userId, token: (await accounts.login(userId, undefined, null, null)).access_token });
    }
    return {
      info: { url: srv.url, users },
      stop: async () => {
        await srv.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  });
}

async function main(): Promise<void> {
  const child = await forkCpuChild<Ready>(fileURLToPath(import.meta.url), ['--server', ...args]);
  const { url, users } = child.info;
  const clients = users.map((u) => new MatrixClient(url, u.userId, u.token, ''));
  const rooms = await Promise.all(clients.map(async (c) => (await c.call('POST', '/_matrix/client/v3/createRoom', {})).room_id as string));

  let txn = 0;
  const run = async (perRoom: number): Promise<void> => {
    await Promise.all(
      clients.map(async (c, i) => {
        let left = perRoom;
        const lane = async () => {
          while (left > 0) {
            left--;
            const r = await c.send(rooms[i], `t${txn++}`, `send-cpu ${txn}`);
            if (r.status !== 200) throw new Error(`send: ${r.status} ${JSON.stringify(r.body)}`);
          }
        };
        await Promise.all(Array.from({ length: DEPTH }, lane));
      }),
    );
  };
  await run(WARMUP_PER_ROOM);
  const profile = process.env.HEARTH_BENCH_WINDOW_PROFILE;
  if (profile) child.profileStart();
  const c0 = await child.cpu();
  const t0 = performance.now();
  await run(PER_ROOM);
  const wall = performance.now() - t0;
  const c1 = await child.cpu();
  if (profile) await child.profileStop(profile);
  const n = ROOMS * PER_ROOM;
  console.log(
    `send-cpu: ${ROOMS} rooms × ${PER_ROOM} sends, ${DEPTH} in flight per room, synchronous ${SYNCHRONOUS}: ` +
      `server CPU ${((c1 - c0) / n).toFixed(1)} µs per send; ${Math.round((n * 1000) / wall)} sends/s closed-loop (generator on the same machine)`,
  );
  await child.stop();
}

if (process.argv.includes('--server')) void server();
else
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
