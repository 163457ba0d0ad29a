// Measures (does not assert) the server CPU one small HTTP request costs: N requests spread over
// C keep-alive connections (each connection sequential), the server's CPU (user + system of the
// forked server process, read before and after the window) divided by N. A bare node:http server
// answering a small JSON body is measured the same way first: the floor, what Node itself costs.
//
//   npm run build && node dist/bench/request-cpu.js [N=10000] [connections=4] [rounds=2] [gapMs=0]
//   HEARTH_BENCH_SERVER_ROOT=/other/checkout node dist/bench/request-cpu.js   (that build's server, for A/B)
//   HEARTH_BENCH_ONLY=whoami,sync0 node dist/bench/request-cpu.js                (those workloads and the floor only)
//   HEARTH_BENCH_WINDOW_PROFILE=/tmp/req node dist/bench/request-cpu.js        (profiles each workload's last
//                                                        round to /tmp/req-<name>.cpuprofile; sampled every 100 µs)
//
// Workloads (every Hearth one is checked for status 200 on each request):
// - floor: a bare node:http server (the same response headers a Hearth answer has) in its own child
// - versions: GET /_matrix/client/versions (no access token)
// - whoami: GET /account/whoami (authenticated: the token, the route table, a small JSON answer)
// - sync0: GET /sync?since=<head>&timeout=0&filter=<inline>: the long-poll's re-poll when it
//   must answer at once (query, filter, token decoding, an empty build); each request's since is
//   the previous answer's next_batch, as a client's
// - sync-park: the same with timeout=1: parks at the head without a build (deferred answer,
//   waiter, its own timer), times out after ~1 ms and answers the empty response built then, as
//   a re-poll that finds nothing does
//
// The server CPU includes the IPC read of the CPU itself (twice per window) and nothing of the
// client, which runs in this process.

import { Agent, createServer, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { forkCpuChild, serveCpuChild, type CpuChild } from './lib/cpu-child.js';
import { serveAccounts, type AccountsReady } from './lib/wake-bench.js';
import { BENCH_FILTER } from './lib/clients.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const N = Number(args[0] ?? 10_000);
const CONNECTIONS = Number(args[1] ?? 4);
const ROUNDS = Number(args[2] ?? 2);
/** Milliseconds each connection waits after each answer (0: back to back); paced, the server idles between requests. */
const GAP_MS = Number(args[3] ?? 0);
const WARMUP = 2000;

interface Workload {
  name: string;
  /** Path and query for connection `c`. */
  path: (c: number) => string;
  token?: (c: number) => string;
  /** Reads each answer (a /sync's next_batch: the next request's since, as a client does). */
  answered?: (c: number, body: string) => void;
}

/** Keep-alive GETs on `agent`: resolves with the status, after reading the body. */
function get(agent: Agent, base: URL, path: string, token: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: base.hostname, port: base.port, path, method: 'GET', agent, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** `n` requests over `agents` (one connection each), each connection sequential. */
async function drive(agents: Agent[], base: URL, w: Workload, n: number): Promise<void> {
  let next = 0;
  await Promise.all(
    agents.map(async (agent, c) => {
      const token = w.token?.(c);
      while (next < n) {
        next++;
        const r = await get(agent, base, w.path(c), token);
        if (r.status !== 200) throw new Error(`${w.name}: ${r.status} ${r.body.slice(0, 200)}`);
        w.answered?.(c, r.body);
        if (GAP_MS > 0) await new Promise((res) => setTimeout(res, GAP_MS));
      }
    }),
  );
}

/** HEARTH_BENCH_ONLY=whoami,sync0 runs those workloads only (and the floor, always: the load's gauge). */
const ONLY = process.env.HEARTH_BENCH_ONLY?.split(',');

async function measure(child: CpuChild<unknown>, url: string, w: Workload): Promise<number[]> {
  if (ONLY && w.name !== 'floor' && !ONLY.includes(w.name)) return [];
  const base = new URL(url);
  const agents = Array.from({ length: CONNECTIONS }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
  const out: number[] = [];
  const wall: number[] = [];
  try {
    await drive(agents, base, w, WARMUP);
    const profile = process.env.HEARTH_BENCH_WINDOW_PROFILE;
    for (let r = 0; r < ROUNDS; r++) {
      const profiled = profile && r === ROUNDS - 1;
      if (profiled) child.profileStart();
      const c0 = await child.cpu();
      const t0 = performance.now();
      await drive(agents, base, w, N);
      wall.push(((performance.now() - t0) * 1000) / N);
      const c1 = await child.cpu();
      if (profiled) await child.profileStop(`${profile}-${w.name}.cpuprofile`);
      out.push((c1 - c0) / N);
    }
  } finally {
    for (const a of agents) a.destroy();
  }
  console.log(`${w.name.padEnd(10)} N=${N} C=${CONNECTIONS} gap=${GAP_MS}ms  server CPU µs/request: ${out.map((x) => x.toFixed(1)).join(', ')}  (wall µs/request ${wall.map((x) => x.toFixed(0)).join(', ')})`);
  return out;
}

/** The floor: node:http answering what whoami answers, with the headers a Hearth answer has. */
async function bare(): Promise<void> {
  await serveCpuChild<{ url: string }>(async () => {
    const body = JSON.stringify({ user_id: '@bench0:localhost', is_guest: false, device_id: 'ABCDEFGHIJ' });
    const server = createServer((_req, res) => {
      res.setHeader('Access-Control-Allow-Origin', '*');
      res.setHeader('Access-Control-Allow-Methods', 'GET, POST, PUT, DELETE, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'X-Requested-With, Content-Type, Authorization');
      res.setHeader('Content-Type', 'application/json');
      res.setHeader('Content-Length', Buffer.byteLength(body));
      res.end(body);
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    return { info: { url: `http://127.0.0.1:${port}` }, stop: () => new Promise<void>((r) => server.close(() => r())) };
  });
}

async function main(): Promise<void> {
  const script = fileURLToPath(import.meta.url);
  const floor = await forkCpuChild<{ url: string }>(script, ['--bare']);
  await measure(floor as CpuChild<unknown>, floor.info.url, { name: 'floor', path: () => '/' });
  await floor.stop();

  const child = await forkCpuChild<AccountsReady>(script, [...args, '--server']);
  const { url, tokens } = child.info;
  const base = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const filter = encodeURIComponent(BENCH_FILTER);
  const heads: string[] = [];
  for (const token of tokens) {
    const r = await get(agent, base, `/_matrix/client/v3/sync?timeout=0&filter=${filter}`, token);
    if (r.status !== 200) throw new Error(`initial sync: ${r.status} ${r.body}`);
    heads.push((JSON.parse(r.body) as { next_batch: string }).next_batch);
  }
  agent.destroy();
  const token = (c: number): string => tokens[c];
  const syncPath = (timeout: number) => (c: number) => `/_matrix/client/v3/sync?since=${encodeURIComponent(heads[c])}&timeout=${timeout}&filter=${filter}`;
  await measure(child, url, { name: 'versions', path: () => '/_matrix/client/versions' });
  await measure(child, url, { name: 'whoami', path: () => '/_matrix/client/v3/account/whoami', token });
  const answered = (c: number, body: string): void => void (heads[c] = (JSON.parse(body) as { next_batch: string }).next_batch);
  await measure(child, url, { name: 'sync0', path: syncPath(0), token, answered });
  await measure(child, url, { name: 'sync-park', path: syncPath(1), token, answered });
  await child.stop();
}

if (process.argv.includes('--bare')) void bare();
else if (process.argv.includes('--server')) void serveAccounts(CONNECTIONS, 'req');
else
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
