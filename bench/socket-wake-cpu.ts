// Measures (does not assert) the server CPU of the WebSocket sync stream per delivered message,
// with a fixed amount of work, as sync-wake-cpu.ts does for the long-poll: M members of one room
// each hold a socket (the bench filter), one member sends over HTTP, every socket receives the
// message as a sync frame and acknowledges it; R rounds. Server CPU comes from process.cpuUsage()
// of the server process (a forked child, so the clients' CPU is not counted), divided by the
// M × R deliveries (the R sends and the M × R ack frames are included).
//
//   npm run build && node dist/bench/socket-wake-cpu.js [members=50] [rounds=60]
//   HEARTH_BENCH_SERVER_ROOT=/other/checkout node dist/bench/socket-wake-cpu.js   (that build's server, for A/B)
//   HEARTH_BENCH_WINDOW_PROFILE=/tmp/swake.cpuprofile node dist/bench/socket-wake-cpu.js   (profile the measured rounds only)

import { fileURLToPath } from 'node:url';
import { HearthSocket } from '../src/client/hearth-socket.js';
import { Api, enc } from '../spec/helpers/server.js';
import { forkCpuChild } from './lib/cpu-child.js';
import { serveAccounts, storeCalls, storeCallsPerDelivery, type AccountsReady } from './lib/wake-bench.js';

const args = process.argv.slice(2).filter((a) => a !== '--server');
const MEMBERS = Number(args[0] ?? 50);
const ROUNDS = Number(args[1] ?? 60);
const WARMUP_ROUNDS = 10;
const IDLE_MS = 2000;
const FILTER = JSON.stringify({ room: { timeline: { limit: 20 }, state: { lazy_load_members: true } }, presence: { types: [] }, account_data: { types: [] } });

type Ready = AccountsReady;

async function server(): Promise<void> {
  await serveAccounts(MEMBERS, 's');
}

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
  // Each socket starts from an initial /sync's token, so its stream carries only what follows.
  const waiting = new Map<number, { body: string; resolve: () => void }>();
  const sockets: HearthSocket[] = [];
  for (let i = 0; i < apis.length; i++) {
    const since = (await apis[i].get(`/_matrix/client/v3/sync?filter=${enc(FILTER)}&timeout=0`)).body.next_batch as string;
    const sock = new HearthSocket({
      baseUrl: ready.url,
      accessToken: ready.tokens[i],
      since,
      filter: FILTER,
      onSync: (body) => {
        const w = waiting.get(i);
        const tl = (body.rooms as { join?: Record<string, { timeline?: { events?: Array<{ content: { body?: string } }> } }> } | undefined)?.join?.[roomId]?.timeline?.events;
        if (w && tl?.some((e) => e.content.body === w.body)) {
          waiting.delete(i);
          w.resolve();
        }
      },
    });
    await sock.connect();
    sockets.push(sock);
  }

  const round = async (n: number): Promise<void> => {
    const body = `wake ${n}`;
    const got = sockets.map((_, i) => new Promise<void>((resolve) => waiting.set(i, { body, resolve })));
    const s = await apis[Math.abs(n) % apis.length].put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t${n}`, { msgtype: 'm.text', body });
    if (s.status !== 200) throw new Error(`send: ${s.status}`);
    await Promise.all(got);
    // Let the acks land and every socket loop re-park before the next round.
    await new Promise((r) => setTimeout(r, 20));
  };
  for (let n = 0; n < WARMUP_ROUNDS; n++) await round(-1 - n);
  // The server's CPU while every socket is parked and nothing is sent, per second: the rounds'
  // idle gaps cost this much too, and it is not delivery work.
  const i0 = await child.cpu();
  const idleStart = performance.now();
  await new Promise((r) => setTimeout(r, IDLE_MS));
  const idlePerMs = ((await child.cpu()) - i0) / (performance.now() - idleStart);
  const profile = process.env.HEARTH_BENCH_WINDOW_PROFILE;
  if (profile) child.profileStart();
  const s0 = await storeCalls(ready.metricsUrl);
  const c0 = await child.cpuSplit();
  const w0 = performance.now();
  for (let n = 0; n < ROUNDS; n++) await round(n);
  const c1 = await child.cpuSplit();
  const windowMs = performance.now() - w0;
  const s1 = await storeCalls(ready.metricsUrl);
  if (profile) await child.profileStop(profile);
  const deliveries = ROUNDS * MEMBERS;
  console.log(`socket wake: ${MEMBERS} members × ${ROUNDS} messages = ${deliveries} deliveries; server CPU ${((c1.micros - c0.micros) / deliveries).toFixed(1)} µs per delivery (sends and acks included), of which system ${((c1.system - c0.system) / deliveries).toFixed(1)}`);
  console.log(`  idle server: ${(idlePerMs * 1000).toFixed(0)} µs of CPU per second (${((idlePerMs * windowMs) / deliveries).toFixed(1)} µs per delivery of this window's ${(windowMs / 1000).toFixed(1)} s)`);
  console.log(`store calls per delivery (the sends' own included): ${storeCallsPerDelivery(s0, s1, deliveries)}`);

  for (const s of sockets) await s.close();
  await child.stop();
}

if (process.argv.includes('--server')) void server();
else
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
