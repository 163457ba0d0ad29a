// Measures (does not assert) the CPU of building one woken reader's /sync delta, in process and
// without a transport: M members of one room, one member sends, then every member's delta from
// its last token is built with SyncService.sync (timeout 0) and serialized with JSON.stringify,
// as both transports do; R rounds. Only the builds and serializations are timed (the send and
// its commit are not), with process.cpuUsage(), so the figure is steady on a loaded machine and
// small changes to the sync builder show up in an A/B. The transports' own costs (HTTP request
// parsing, socket frames, the write syscall) are in sync-wake-cpu.ts and socket-wake-cpu.ts.
// Also timed: the empty build a reader's next request made from its new token before parking.
//
//   npm run build && node dist/bench/sync-build-cpu.js [members=50] [rounds=100]
//   HEARTH_BENCH_SERVER_ROOT=/other/checkout node dist/bench/sync-build-cpu.js   (that build's sync builder, for A/B)
//   HEARTH_BENCH_WINDOW_PROFILE=/tmp/build.cpuprofile node dist/bench/sync-build-cpu.js   (profile the timed builds only)

import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const MEMBERS = Number(process.argv[2] ?? 50);
const ROUNDS = Number(process.argv[3] ?? 100);
const WARMUP_ROUNDS = 20;
const FILTER = JSON.stringify({ room: { timeline: { limit: 20 }, state: { lazy_load_members: true } }, presence: { types: [] }, account_data: { types: [] } });

async function main(): Promise<void> {
  const root = process.env.HEARTH_BENCH_SERVER_ROOT;
  const helpers = root ? pathToFileURL(join(root, 'dist/spec/helpers/server.js')).href : '../spec/helpers/server.js';
  const { startTestServer, Api, enc } = (await import(helpers)) as typeof import('../spec/helpers/server.js');
  const srv = await startTestServer({ log: { level: 'error' } });
  const { accounts, sync, syncFilters } = srv.hearth.services;
  const members: Array<{ userId: string; deviceId: string; api: InstanceType<typeof Api> }> = [];
  for (let i = 0; i < MEMBERS; i++) {
    const userId = await accounts.createAccount(`b${i}`, null);
    const login = await accounts.login(userId, undefined, null, null);
    members.push({ userId, deviceId: login.device_id, api: new Api(srv.url, login.access_token) });
  }
  const room = await members[0].api.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
  if (room.status !== 200) throw new Error(`createRoom: ${room.status} ${JSON.stringify(room.body)}`);
  const roomId = room.body.room_id as string;
  for (const m of members.slice(1)) {
    const r = await m.api.post(`/_matrix/client/v3/rooms/${enc(roomId)}/join`, {});
    if (r.status !== 200) throw new Error(`join: ${r.status}`);
  }
  const filters = await Promise.all(members.map((m) => syncFilters.resolve(m.userId, FILTER)));
  const req = (i: number, since?: string) => ({ userId: members[i].userId, deviceId: members[i].deviceId, since, filter: filters[i], timeoutMs: 0, fullState: false });
  const tokens: string[] = [];
  for (let i = 0; i < MEMBERS; i++) tokens.push((await sync.sync(req(i))).next_batch);

  /** Store calls per operation, from the server's /metrics (hearth_db_operation_duration_seconds). */
  const storeCalls = async (): Promise<Map<string, number>> => {
    const text = await (await fetch(`${srv.metricsUrl}/metrics`)).text();
    const out = new Map<string, number>();
    for (const m of text.matchAll(/^hearth_db_operation_duration_seconds_count\{operation="([^"]+)"\} (\d+)/gm)) out.set(m[1], Number(m[2]));
    return out;
  };
  /** Store calls made inside the timed builds (the send's own are left out). */
  const reads = new Map<string, number>();
  let bytes = 0;
  /** Wall time in JSON.stringify, to split the CPU figure between building and serializing. */
  let stringifyMs = 0;
  let totalMs = 0;
  const round = async (n: number, timed: { micros: number; repark: number }): Promise<void> => {
    const body = `build ${n}`;
    const s = await members[Math.abs(n) % MEMBERS].api.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t${n}`, { msgtype: 'm.text', body });
    if (s.status !== 200) throw new Error(`send: ${s.status}`);
    // The send is acknowledged once durable; wait until readers can see it too.
    while (!(await sync.sync({ ...req(0, tokens[0]), timeoutMs: 5000 })).rooms) await new Promise((r) => setTimeout(r, 1));
    const before = await storeCalls();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < MEMBERS; i++) {
      const res = await sync.sync(req(i, tokens[i]));
      const s0 = performance.now();
      const text = JSON.stringify(res);
      stringifyMs += performance.now() - s0;
      bytes += text.length;
      tokens[i] = res.next_batch;
      const tl = (res.rooms as { join: Record<string, { timeline: { events: Array<{ content: { body?: string } }> } }> }).join[roomId]?.timeline.events;
      if (!tl?.some((e) => e.content.body === body)) throw new Error(`member ${i} did not get the message`);
    }
    totalMs += performance.now() - t0;
    const c = process.cpuUsage(c0);
    timed.micros += c.user + c.system;
    // What a reader re-parking at once used to cost: a build of the empty range from its new
    // token (timeout 0 builds it still; a parking request at the head skips it).
    const p0 = process.cpuUsage();
    for (let i = 0; i < MEMBERS; i++) {
      const res = await sync.sync(req(i, tokens[i]));
      if (!sync.isEmpty(res)) throw new Error(`member ${i}: the range after its token is not empty`);
      JSON.stringify(res);
    }
    const p = process.cpuUsage(p0);
    timed.repark += p.user + p.system;
    for (const [op, n] of await storeCalls()) if (n > (before.get(op) ?? 0)) reads.set(op, (reads.get(op) ?? 0) + n - (before.get(op) ?? 0));
  };
  const warm = { micros: 0, repark: 0 };
  for (let n = 0; n < WARMUP_ROUNDS; n++) await round(-1 - n, warm);
  const profile = process.env.HEARTH_BENCH_WINDOW_PROFILE;
  const inspector = profile ? new Session() : undefined;
  if (inspector) {
    inspector.connect();
    await inspector.post('Profiler.enable');
    await inspector.post('Profiler.setSamplingInterval', { interval: 100 });
    await inspector.post('Profiler.start');
  }
  const timed = { micros: 0, repark: 0 };
  bytes = 0;
  stringifyMs = totalMs = 0;
  reads.clear();
  for (let n = 0; n < ROUNDS; n++) await round(n, timed);
  if (inspector) {
    const { profile: p } = await inspector.post('Profiler.stop');
    writeFileSync(profile!, JSON.stringify(p));
    inspector.disconnect();
  }
  const deliveries = ROUNDS * MEMBERS;
  console.log(`sync build: ${MEMBERS} members × ${ROUNDS} messages = ${deliveries} deltas; CPU ${(timed.micros / deliveries).toFixed(1)} µs per delta (build + JSON.stringify, ${Math.round(bytes / deliveries)} bytes; JSON.stringify ${Math.round((100 * stringifyMs) / totalMs)} % of the wall time)`);
  console.log(`empty build at the head (what parking built before it skipped it): CPU ${(timed.repark / deliveries).toFixed(1)} µs per reader`);
  const perDelta = [...reads].sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ${(n / deliveries).toFixed(2)}`);
  console.log(`store calls per delta: ${perDelta.length ? perDelta.join(', ') : 'none'}`);
  await srv.stop();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
