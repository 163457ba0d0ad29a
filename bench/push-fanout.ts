// Measures (does not assert) what push-rule evaluation costs a send: wall-clock latency of
// PUT /rooms/{id}/send over real HTTP in a room with many local members (every member's rules are
// evaluated and a push action row written per notified member, inside the room's input queue)
// against the same in a 2-member room.
//
//   npx tsc -p tsconfig.json && node dist/bench/push-fanout.js [members=1000] [sends=200]
//
// Accounts are created and joined through the server's services (no HTTP, no scrypt: passwords
// are null) so that the set-up takes seconds; only the measured sends go through HTTP.

import { Api, enc, startTestServer } from '../spec/helpers/server.js';

const members = Number(process.argv[2] ?? 1000);
const sends = Number(process.argv[3] ?? 200);
const WARMUP = 20;

function pct(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function summary(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  const f = (x: number) => x.toFixed(2).padStart(7);
  return `p50 ${f(pct(s, 50))} ms  p90 ${f(pct(s, 90))} ms  p99 ${f(pct(s, 99))} ms  mean ${f(mean)} ms  max ${f(s[s.length - 1])} ms`;
}

async function main(): Promise<void> {
  const srv = await startTestServer();
  const { accounts, rooms } = srv.hearth.services;
  let txn = 0;
  try {
    const t0 = performance.now();
    const senderId = await accounts.createAccount('sender', null);
    const login = await accounts.login(senderId, undefined, null, null);
    const api = new Api(srv.url, login.access_token);
    const userIds: string[] = [];
    for (let i = 0; i < members - 1; i++) userIds.push(await accounts.createAccount(`member${String(i).padStart(4, '0')}`, null));
    const tAccounts = performance.now();

    const { roomId: big } = await rooms.createRoom({ userId: senderId }, { preset: 'public_chat', name: 'big room' });
    for (const u of userIds) await rooms.join({ userId: u }, big);
    const tJoins = performance.now();
    const { roomId: small } = await rooms.createRoom({ userId: senderId }, { preset: 'public_chat', name: 'small room' });
    await rooms.join({ userId: userIds[0] }, small);

    const joined = await api.get(`/_matrix/client/v3/rooms/${enc(big)}/joined_members`);
    const count = Object.keys(joined.body.joined ?? {}).length;

    /** CPU time (user + system) of this process per send in the last measure() call. */
    let cpuPerSend = 0;
    const measure = async (roomId: string, n: number): Promise<number[]> => {
      const out: number[] = [];
      const c0 = process.cpuUsage();
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        const r = await api.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/b${++txn}`, { msgtype: 'm.text', body: `message ${i}` });
        out.push(performance.now() - t);
        if (r.status !== 200) throw new Error(`send failed: ${r.status} ${JSON.stringify(r.body)}`);
      }
      const c = process.cpuUsage(c0);
      cpuPerSend = (c.user + c.system) / 1000 / n;
      return out;
    };
    await measure(small, WARMUP);
    await measure(big, WARMUP);
    const smallMs = await measure(small, sends);
    const smallCpu = cpuPerSend;
    const bigMs = await measure(big, sends);
    const bigCpu = cpuPerSend;

    // How many push actions one send in the big room wrote (one per notified member).
    const probe = await api.put(`/_matrix/client/v3/rooms/${enc(big)}/send/m.room.message/b${++txn}`, { msgtype: 'm.text', body: 'probe' });
    const member = await accounts.login(userIds[members - 2], undefined, null, null);
    const last = await new Api(srv.url, member.access_token).get('/_matrix/client/v3/notifications?limit=1');
    const notified = last.body.notifications?.[0]?.event?.event_id === probe.body.event_id;

    console.log(`push fan-out benchmark (node ${process.version}, SQLite synchronous=normal, ${sends} sequential sends after ${WARMUP} warm-up)`);
    console.log(`command: node dist/bench/push-fanout.js ${members} ${sends}`);
    console.log(`set-up: ${members} accounts in ${((tAccounts - t0) / 1000).toFixed(1)} s, ${members - 1} joins in ${((tJoins - tAccounts) / 1000).toFixed(1)} s (${((tJoins - tAccounts) / (members - 1)).toFixed(2)} ms/join)`);
    console.log(`2-member room     PUT /send: ${summary(smallMs)}  cpu/send ${smallCpu.toFixed(2)} ms`);
    console.log(`${String(count).padStart(4)}-member room  PUT /send: ${summary(bigMs)}  cpu/send ${bigCpu.toFixed(2)} ms`);
    console.log(`(the server runs in this process: cpu/send is server + client work; load average at the end ${(await import('node:os')).loadavg()[0].toFixed(1)})`);
    const med = (a: number[]) => pct([...a].sort((x, y) => x - y), 50);
    console.log(`ratio (p50): ${(med(bigMs) / med(smallMs)).toFixed(1)}x; per-member cost ≈ ${(((med(bigMs) - med(smallMs)) / (count - 2)) * 1000).toFixed(1)} µs`);
    console.log(`last member notified of the probe send: ${notified}`);
  } finally {
    await srv.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
