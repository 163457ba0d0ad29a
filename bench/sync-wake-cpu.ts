// Measures (does not assert) the server CPU of the /sync read path per delivered message, with a
// fixed amount of work so that the figure does not depend on how loaded the machine is: M members
// of one room each park a long-poll (the bench filter), one member sends, every member's sync
// wakes and returns the message, and all re-park; R rounds. Server CPU comes from
// process.cpuUsage() of the server process (a forked child, so the clients' CPU is not counted),
// divided by the M × R deliveries (the R sends are included). On a shared machine the bench's
// open-loop figure moves with latency (a starved server batches several messages per response);
// this one does not. Also: server CPU per authenticated small GET (/account/whoami).
//
//   npm run build && node dist/bench/sync-wake-cpu.js [members=50] [rounds=60]
//   HEARTH_BENCH_SERVER_ROOT=/other/checkout node dist/bench/sync-wake-cpu.js   (that build's server, for A/B)
//   HEARTH_BENCH_WINDOW_PROFILE=/tmp/wake.cpuprofile node dist/bench/sync-wake-cpu.js   (profile the measured rounds only)

import { fileURLToPath } from 'node:url';
import { Api, enc } from '../spec/helpers/server.js';
import { forkCpuChild } from './lib/cpu-child.js';
import { serveAccounts, storeCalls, storeCallsPerDelivery, type AccountsReady } from './lib/wake-bench.js';

const args = process.argv.slice(2).filter((a) => a !== '--server');
const MEMBERS = Number(args[0] ?? 50);
const ROUNDS = Number(args[1] ?? 60);
const WARMUP_ROUNDS = 10;
const WHOAMI = 1000;
const FILTER = JSON.stringify({ room: { timeline: { limit: 20 }, state: { lazy_load_members: true } }, presence: { types: [] }, account_data: { types: [] } });

type Ready = AccountsReady;

async function server(): Promise<void> {
  await serveAccounts(MEMBERS, 'w');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Store calls per operation, from the server's /metrics (hearth_db_operation_duration_seconds). */
async function main(): Promise<void> {
  const child = await forkCpuChild<Ready>(fileURLToPath(import.meta.url), ['--server', String(MEMBERS)]);
  const ready = child.info;
  const apis = ready.tokens.map((t) => new Api(ready.url, t));
  const room = await apis[0].post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
  if (room.status !== 200) throw new Error(`createRoom: ${room.status} ${JSON.stringify(room.body)}`);
  const roomId = room.body.room_id as string;
  for (const a of apis.slice(1)) {
    const r = await a.post(`/_matrix/client/v3/rooms/${enc(roomId)}/join`, {});
    if (r.status !== 200) throw new Error(`join: ${r.status}`);
  }
  const syncPath = (since?: string) => `/_matrix/client/v3/sync?filter=${enc(FILTER)}&timeout=${since ? 30000 : 0}${since ? `&since=${enc(since)}` : ''}`;
  const tokens: string[] = [];
  for (const a of apis) tokens.push((await a.get(syncPath())).body.next_batch as string);

  const round = async (n: number): Promise<void> => {
    const body = `wake ${n}`;
    const polls = apis.map(async (a, i) => {
      // A response without the message (another change woke it) re-parks.
      for (;;) {
        const r = await a.get(syncPath(tokens[i]));
        if (r.status !== 200) throw new Error(`sync: ${r.status} ${JSON.stringify(r.body)}`);
        tokens[i] = r.body.next_batch as string;
        const tl = r.body.rooms?.join?.[roomId]?.timeline?.events as Array<{ content: { body?: string } }> | undefined;
        if (tl?.some((e) => e.content.body === body)) return;
      }
    });
    await sleep(30); // let the long-polls park
    const s = await apis[Math.abs(n) % apis.length].put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t${n}`, { msgtype: 'm.text', body });
    if (s.status !== 200) throw new Error(`send: ${s.status}`);
    await Promise.all(polls);
  };
  for (let n = 0; n < WARMUP_ROUNDS; n++) await round(-1 - n);
  const profile = process.env.HEARTH_BENCH_WINDOW_PROFILE;
  if (profile) child.profileStart();
  const s0 = await storeCalls(ready.metricsUrl);
  const c0 = await child.cpu();
  for (let n = 0; n < ROUNDS; n++) await round(n);
  const c1 = await child.cpu();
  const s1 = await storeCalls(ready.metricsUrl);
  if (profile) await child.profileStop(profile);
  const deliveries = ROUNDS * MEMBERS;
  console.log(`sync wake: ${MEMBERS} members × ${ROUNDS} messages = ${deliveries} deliveries; server CPU ${((c1 - c0) / deliveries).toFixed(1)} µs per delivery (sends included)`);
  console.log(`store calls per delivery (the sends' own included): ${storeCallsPerDelivery(s0, s1, deliveries)}`);

  for (let i = 0; i < 300; i++) await apis[0].get('/_matrix/client/v3/account/whoami');
  const w0 = await child.cpu();
  for (let i = 0; i < WHOAMI; i++) {
    const r = await apis[i % apis.length].get('/_matrix/client/v3/account/whoami');
    if (r.status !== 200) throw new Error(`whoami: ${r.status}`);
  }
  const w1 = await child.cpu();
  console.log(`GET /account/whoami: server CPU ${((w1 - w0) / WHOAMI).toFixed(1)} µs per request (N=${WHOAMI})`);

  await child.stop();
}

if (process.argv.includes('--server')) void server();
else
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
