// How long a user of server B takes to join a room of server A with N members (issue 12: "joining a
// 1,000-member room takes ≤ 10 s"): make_join, send_join (the room's whole state and auth chain,
// each event's signatures and hashes checked once), and B storing the state, until the join
// returns to the client. Both servers run in this process (in-memory-fast SQLite with
// synchronous: normal) on loopback over TLS. Usage:
//
//   npm run build && node dist/bench/federation-join.js [--members 1000]
//
// Prints one JSON line: members, seconds to fill the room on A, join seconds, and the member
// count B then reports. Not part of `npm run bench` (it measures one operation, not a load).

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createHearth, type Hearth } from '../src/app.js';
import { validateConfig } from '../src/config/load.js';
import { createLogger } from '../src/observability/logger.js';

const enc = encodeURIComponent;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function start(port: number, dir: string): Promise<Hearth> {
  const config = validateConfig({
    server_name: `127.0.0.1:${port}`,
    listeners: { client: { host: '127.0.0.1', port: 0 }, federation: { enabled: true, host: '127.0.0.1', port } },
    federation: { verify_tls: false, ip_range_whitelist: ['127.0.0.1/32'] },
    storage: { sqlite: { path: join(dir, 'hearth.sqlite'), synchronous: 'normal' } },
    signing_key_path: join(dir, 'signing.key'),
    media: { path: join(dir, 'media') },
    log: { level: 'warn' },
    limits: { rate_limits: { enabled: false }, admission: { max_event_loop_lag_ms: 0, max_send_delay_ms: 0, send_target_delay_ms: 0 } },
    metrics: { enabled: false },
  });
  const h = await createHearth(config, { logger: createLogger(config), processMetrics: false });
  await h.start();
  return h;
}

async function call(base: string, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { members: { type: 'string', default: '1000' } } });
  const members = Number(values.members);
  const dirA = mkdtempSync(join(tmpdir(), 'fedjoin-a-'));
  const dirB = mkdtempSync(join(tmpdir(), 'fedjoin-b-'));
  const [pa, pb] = [await freePort(), await freePort()];
  const a = await start(pa, dirA);
  const b = await start(pb, dirB);
  try {
    const login = async (h: Hearth, localpart: string) => {
      const userId = await h.services.accounts.createAccount(localpart, null);
      const l = await h.services.accounts.login(userId, undefined, null, null);
      return { userId, token: l.access_token as string };
    };
    const owner = await login(a, 'owner');
    const room = await call(a.url, owner.token, 'POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    const t0 = performance.now();
    for (let i = 0; i < members - 1; i += 20) {
      await Promise.all(
        Array.from({ length: Math.min(20, members - 1 - i) }, async (_, k) => {
          const u = await login(a, `m${i + k}`);
          await call(a.url, u.token, 'POST', `/_matrix/client/v3/join/${enc(room.room_id)}`, {});
        }),
      );
    }
    const fillSeconds = (performance.now() - t0) / 1000;
    const bob = await login(b, 'bob');
    const t1 = performance.now();
    await call(b.url, bob.token, 'POST', `/_matrix/client/v3/join/${enc(room.room_id)}?server_name=${enc(`127.0.0.1:${pa}`)}`, {});
    const joinSeconds = (performance.now() - t1) / 1000;
    const seen = await call(b.url, bob.token, 'GET', `/_matrix/client/v3/rooms/${enc(room.room_id)}/joined_members`);
    process.stdout.write(
      JSON.stringify({ members, fillSeconds: Math.round(fillSeconds * 10) / 10, joinSeconds: Math.round(joinSeconds * 1000) / 1000, membersSeenOnB: Object.keys(seen.joined).length }) + '\n',
    );
  } finally {
    await b.stop();
    await a.stop();
    rmSync(dirA, { recursive: true, force: true });
    rmSync(dirB, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
