// Helpers for spec/federation/synapse.spec.ts: the Synapse control script (bench/peers/synapse/ctl,
// which installs a pinned matrix-synapse into a venv and starts it), a Hearth configured to
// federate with it on loopback, and client-API polling.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Api, enc, startTestServer, type TestServer } from './server.js';

export type User = Api & { userId: string; deviceId: string };

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CTL = join(REPO, 'bench/peers/synapse/ctl');

import { freePort } from './ports.js';
export { freePort };

/** Runs the Synapse control script; rejects with its output when it exits non-zero. */
export function ctl(cmd: string, env: Record<string, string>, timeoutMs: number): Promise<string> {
  return new Promise((res, rej) => {
    const child = spawn(CTL, [cmd], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      rej(new Error(`bench/peers/synapse/ctl ${cmd} could not run: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) res(out);
      else rej(new Error(`bench/peers/synapse/ctl ${cmd} failed (${signal ?? `exit ${code}`}):\n${out}`));
    });
  });
}

export async function syncUntil<T>(api: Api, pick: (body: any) => T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let since: string | undefined;
  while (Date.now() < deadline) {
    const res = await api.get(`/_matrix/client/v3/sync?timeout=1000${since ? `&since=${enc(since)}` : ''}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const found = pick(res.body);
    if (found !== undefined) return found;
    since = res.body.next_batch;
  }
  throw new Error('timed out waiting for sync');
}

export async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Bodies of m.room.message events in a room (not redacted ones), oldest first, through /messages. */
export async function texts(api: Api, roomId: string): Promise<string[]> {
  const res = await api.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return [...res.body.chunk].reverse().filter((e: any) => e.type === 'm.room.message' && typeof e.content.body === 'string').map((e: any) => e.content.body);
}

export async function joined(api: Api, roomId: string): Promise<string[]> {
  const res = await api.get(`/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`);
  return res.status === 200 ? Object.keys(res.body.joined).sort() : [];
}

/** Hearth as in the two-servers spec: TLS federation listener, verify_tls off, loopback allowed. */
export function startHearth(port: number, dataDir?: string): Promise<TestServer> {
  return startTestServer(
    {
      server_name: `127.0.0.1:${port}`,
      listeners: { client: { host: '127.0.0.1', port: 0 }, federation: { enabled: true, host: '127.0.0.1', port } },
      federation: { verify_tls: false, ip_range_whitelist: ['127.0.0.1/32'], min_backoff_ms: 100, max_backoff_ms: 500 },
    },
    dataDir,
  );
}
