// Measures (does not assert) what the client listener's listen(2) backlog does to a burst of new
// connections that meets a busy event loop, which is what a send-ceiling step past the server's
// capacity does (the generator opens a connection whenever its kept-alive ones are all busy). A
// child process runs the client listener as Hearth builds it (createListener + listen from
// src/wiring/listeners.ts) with the given backlog, answering every request with a small JSON;
// the parent tells it to busy-wait B ms, opens C connections at once, and times each one's first
// answer. Connections beyond the accept queue have their SYN dropped by the kernel and retry it
// after 1 s (Linux's initial retransmission timeout), so the tail shows the backlog directly.
// The busy-wait is fixed work, so the figure hardly moves with the machine's load.
//
//   npm run build && node dist/bench/accept-burst.js [backlog=511] [connections=1500] [blockMs=300]
//   HEARTH_BENCH_SERVER_ROOT=/other/checkout node dist/bench/accept-burst.js   (that build's listener)

import { fork } from 'node:child_process';
import { request, Agent } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const args = process.argv.slice(2).filter((a) => a !== '--server');
const BACKLOG = Number(args[0] ?? 511);
const CONNECTIONS = Number(args[1] ?? 1500);
const BLOCK_MS = Number(args[2] ?? 300);

async function server(): Promise<void> {
  const root = process.env.HEARTH_BENCH_SERVER_ROOT;
  const mod = (p: string) => (root ? pathToFileURL(join(root, 'dist', p)).href : `../${p}`);
  const { createListener } = (await import(mod('src/net/listener.js'))) as typeof import('../src/net/listener.js');
  const { listen } = (await import(mod('src/wiring/listeners.js'))) as typeof import('../src/wiring/listeners.js');
  const body = JSON.stringify({ versions: ['v1.11'] });
  const listener = createListener(
    (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    },
    { headerTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000, idleTimeoutMs: 90_000, maxConnectionsPerAddress: 0, exemptAddresses: [] },
  );
  // Older builds' listen() takes no backlog argument; they listen with Node's 511 whatever is passed.
  const srv = await (listen as (s: typeof listener, port: number, host: string, backlog?: number) => Promise<typeof listener>)(listener, 0, '127.0.0.1', BACKLOG);
  const port = (srv.address() as { port: number }).port;
  process.on('message', (m: { type: string }) => {
    if (m.type === 'block') {
      // Answer first, then stall the loop: the parent starts connecting once it hears back.
      process.send!({ type: 'blocking' }, () => {
        const until = performance.now() + BLOCK_MS;
        while (performance.now() < until);
      });
    } else if (m.type === 'stop') {
      srv.closeAllConnections();
      srv.close(() => process.exit(0));
    }
  });
  process.send!({ type: 'ready', port });
}

function get(port: number, agent: Agent): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/_matrix/client/versions', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(performance.now() - start));
    });
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['--server', ...args], { stdio: 'inherit' });
  const port = await new Promise<number>((resolve) => child.once('message', (m: { port: number }) => resolve(m.port)));
  // One connection per request, all opened in the same turn.
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  await new Promise<void>((resolve) => {
    child.once('message', () => resolve());
    child.send({ type: 'block' });
  });
  const times = await Promise.all(Array.from({ length: CONNECTIONS }, () => get(port, agent)));
  child.send({ type: 'stop' });
  times.sort((a, b) => a - b);
  const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(0);
  const slow = times.filter((t) => t >= 1000).length;
  console.log(
    `accept-burst: backlog ${BACKLOG}, ${CONNECTIONS} connections opened while the server's loop is blocked ${BLOCK_MS} ms: ` +
      `first answer p50 ${q(0.5)} / p90 ${q(0.9)} / p99 ${q(0.99)} / max ${times[times.length - 1].toFixed(0)} ms; ${slow} took >= 1 s (a dropped SYN's retry)`,
  );
}

if (process.argv.includes('--server')) await server();
else await main();
