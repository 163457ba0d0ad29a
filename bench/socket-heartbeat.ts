// Measures (does not assert) what the socket heartbeat costs everyone else: N idle sockets on a
// server child whose heartbeat is every second, while a prober GETs /versions back to back; the
// prober's latency (max, p99.9) shows the longest turn a heartbeat holds the server's loop.
// Nothing else runs, so the probes that wait are the ones behind a heartbeat (pings going out,
// then the pongs coming back).
//
//   npm run build && node dist/bench/socket-heartbeat.js [sockets=1000] [seconds=10]
//   HEARTH_BENCH_SERVER_ROOT=/other/checkout node dist/bench/socket-heartbeat.js   (that build's server, for A/B)

import { fileURLToPath } from 'node:url';
import http from 'node:http';
import WebSocket from 'ws';
import { forkCpuChild } from './lib/cpu-child.js';
import { serveAccounts, type AccountsReady } from './lib/wake-bench.js';

const args = process.argv.slice(2).filter((a) => a !== '--server');
const SOCKETS = Number(args[0] ?? 1000);
const SECONDS = Number(args[1] ?? 10);
const HEARTBEAT_MS = 1000;
const FILTER = JSON.stringify({ room: { timeline: { limit: 1 } }, presence: { types: [] }, account_data: { types: [] } });
const PATH = '/_matrix/client/unstable/io.hearth.sync/ws';

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function probe(url: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    http
      .get(`${url}/_matrix/client/versions`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(performance.now() - t0));
      })
      .on('error', reject);
  });
}

async function main(): Promise<void> {
  const child = await forkCpuChild<AccountsReady>(fileURLToPath(import.meta.url), ['--server', String(SOCKETS)]);
  const ready = child.info;
  const sockets: WebSocket[] = [];
  let pings = 0;
  for (let i = 0; i < SOCKETS; i += 50) {
    await Promise.all(
      ready.tokens.slice(i, i + 50).map(
        (token) =>
          new Promise<void>((resolve, reject) => {
            const url = new URL(PATH, ready.url.replace(/^http/, 'ws'));
            url.searchParams.set('filter', FILTER);
            const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false });
            ws.on('ping', () => pings++);
            // The first frame (the catch-up sync) says the socket is streaming.
            ws.once('message', () => resolve());
            ws.once('error', reject);
            sockets.push(ws);
          }),
      ),
    );
  }
  await new Promise((r) => setTimeout(r, 1500));
  const lat: number[] = [];
  const p0 = pings;
  const end = performance.now() + SECONDS * 1000;
  while (performance.now() < end) lat.push(await probe(ready.url));
  lat.sort((a, b) => a - b);
  const at = (q: number): string => lat[Math.min(lat.length - 1, Math.ceil(q * lat.length) - 1)].toFixed(2);
  console.log(
    `heartbeat: ${SOCKETS} idle sockets, heartbeat every ${HEARTBEAT_MS} ms, ${pings - p0} pings in ${SECONDS} s; /versions back to back (${lat.length}): p50 ${at(0.5)} p99 ${at(0.99)} p99.9 ${at(0.999)} max ${at(1)} ms; ` +
      `the ${SECONDS} slowest (one per heartbeat if each held a turn): ${lat.slice(-SECONDS).map((x) => x.toFixed(1)).join(' ')}; over 5 ms: ${lat.filter((x) => x > 5).length}`,
  );
  for (const ws of sockets) ws.terminate();
  await child.stop();
}

if (process.argv.includes('--server')) void serveAccounts(SOCKETS, 'h', { websocket: { heartbeat_ms: HEARTBEAT_MS } });
else
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
