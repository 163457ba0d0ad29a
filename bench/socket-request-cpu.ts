// Measures (does not assert) the server CPU one socket request frame costs: N sequential frames
// over one socket, server CPU from process.cpuUsage() of the server process (a forked child, so
// the client's own CPU is not counted), divided by N. Three socket workloads: a small GET
// (/account/whoami), a `send` frame (a message into a room of one) and a GET of a state event;
// then, for comparison, the small GET over HTTP.
//
//   npm run build && node dist/bench/socket-request-cpu.js [N=5000]
//   HEARTH_BENCH_PROFILE=/tmp/prof node dist/bench/socket-request-cpu.js   (server --cpu-prof there)
//
// The socket's filter excludes every room and presence, so the sync frames a send would push to
// the sender are not part of the figure; what is left is the request path (frame parse, auth,
// rate limit, intake, handler, response frame) plus the room's write for sends.

import { fileURLToPath } from 'node:url';
import { HearthSocket } from '../src/client/hearth-socket.js';
import { Api, enc, startTestServer } from '../spec/helpers/server.js';
import { forkCpuChild, serveCpuChild, type CpuChild } from './lib/cpu-child.js';

const N = Number(process.argv[2] ?? 5000);
const WARMUP = 500;

type Ready = { url: string; token: string };

async function server(): Promise<void> {
  await serveCpuChild<Ready>(async () => {
    const srv = await startTestServer();
    const { accounts } = srv.hearth.services;
    const userId = await accounts.createAccount('bench', null);
    const login = await accounts.login(userId, undefined, null, null);
    return { info: { url: srv.url, token: login.access_token }, stop: () => srv.stop() };
  });
}

async function measure(child: CpuChild<Ready>, name: string, one: (i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < WARMUP; i++) await one(-1 - i);
  const c0 = await child.cpu();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await one(i);
  const wall = performance.now() - t0;
  const c1 = await child.cpu();
  console.log(`${name.padEnd(36)} N=${N}  server CPU ${((c1 - c0) / N).toFixed(1).padStart(6)} µs/request  wall ${((wall * 1000) / N).toFixed(1).padStart(6)} µs/request`);
}

async function main(): Promise<void> {
  const child = await forkCpuChild<Ready>(fileURLToPath(import.meta.url), ['--server']);
  const ready = child.info;
  const api = new Api(ready.url, ready.token);
  const room = await api.post('/_matrix/client/v3/createRoom', {});
  if (room.status !== 200) throw new Error(`createRoom: ${room.status} ${JSON.stringify(room.body)}`);
  const roomId = room.body.room_id as string;
  const sock = new HearthSocket({
    baseUrl: ready.url,
    accessToken: ready.token,
    filter: JSON.stringify({ room: { rooms: [] }, presence: { types: [] }, account_data: { types: [] } }),
  });
  await sock.connect();
  await measure(child, 'GET /account/whoami', async () => {
    const r = await sock.request('GET', '/_matrix/client/v3/account/whoami');
    if (r.status !== 200) throw new Error(`whoami: ${r.status} ${JSON.stringify(r.body)}`);
  });
  await measure(child, 'send m.room.message', async (i) => {
    const r = await sock.send(roomId, 'm.room.message', `t${i}`, { msgtype: 'm.text', body: `m${i}` });
    if (r.status !== 200) throw new Error(`send: ${r.status} ${JSON.stringify(r.body)}`);
  });
  await measure(child, 'GET /rooms/{id}/state/m.room.create', async () => {
    const r = await sock.request('GET', `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.create`);
    if (r.status !== 200) throw new Error(`state: ${r.status} ${JSON.stringify(r.body)}`);
  });
  // For comparison: the same small GET over HTTP (keep-alive), which never went through inject.
  await measure(child, 'HTTP GET /account/whoami', async () => {
    const r = await api.get('/_matrix/client/v3/account/whoami');
    if (r.status !== 200) throw new Error(`whoami: ${r.status} ${JSON.stringify(r.body)}`);
  });
  await sock.close();
  await child.stop();
}

if (process.argv.includes('--server')) void server();
else
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
