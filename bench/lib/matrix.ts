// A lean Matrix client for the generator: node:http with keep-alive (cheaper per request than
// fetch, so the generator is less often the bottleneck), registration through m.login.dummy or
// the Synapse-compatible shared-secret admin API, and the handful of endpoints the scenarios use.

import { createHmac } from 'node:crypto';
import http from 'node:http';
import { sleep } from './schedule.js';

export const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 30000, scheduling: 'lifo' });

export interface HttpResult {
  status: number;
  body: any;
  /** performance.now() when the whole response had been read. */
  at: number;
}

export class HttpError extends Error {
  constructor(readonly status: number, readonly body: any, what: string) {
    super(`${what}: HTTP ${status} ${typeof body === 'object' ? JSON.stringify(body).slice(0, 300) : String(body).slice(0, 300)}`);
  }
}

export interface RequestOptions {
  token?: string;
  body?: unknown;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** One HTTP request to a loopback URL; never throws for HTTP statuses, only for transport errors. */
export function request(method: string, url: string, o: RequestOptions = {}): Promise<HttpResult> {
  const u = new URL(url);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) throw new Error(`refusing non-loopback target ${u.hostname}`);
  const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
  const headers: Record<string, string> = {};
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port, path: u.pathname + u.search, method, headers, agent, timeout: o.timeoutMs ?? 120_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const at = performance.now();
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = text ? JSON.parse(text) : {};
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, body, at });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${o.timeoutMs ?? 120_000} ms: ${method} ${u.pathname}`)));
    req.on('error', reject);
    if (o.signal) {
      const onAbort = () => req.destroy(new Error('aborted'));
      if (o.signal.aborted) onAbort();
      else {
        o.signal.addEventListener('abort', onAbort, { once: true });
        req.on('close', () => o.signal!.removeEventListener('abort', onAbort));
      }
    }
    req.end(payload);
  });
}

/** Retries 429 and 503 (honouring retry_after_ms) and transport errors, a bounded number of times. */
export async function requestRetry(method: string, url: string, o: RequestOptions = {}, attempts = 8): Promise<HttpResult> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      const res = await request(method, url, o);
      if (res.status !== 429 && res.status !== 503) return res;
      const wait = Number(res.body?.retry_after_ms) || 500 * (i + 1);
      await sleep(Math.min(wait, 10_000));
      last = new HttpError(res.status, res.body, `${method} ${new URL(url).pathname}`);
    } catch (err) {
      if (o.signal?.aborted) throw err;
      last = err;
      await sleep(200 * (i + 1));
    }
  }
  throw last;
}

const enc = encodeURIComponent;

export class MatrixClient {
  constructor(readonly base: string, readonly userId: string, readonly token: string, readonly deviceId: string) {}

  url(path: string): string {
    return this.base + path;
  }

  async call(method: string, path: string, body?: unknown): Promise<any> {
    const res = await requestRetry(method, this.url(path), { token: this.token, body });
    if (res.status !== 200) throw new HttpError(res.status, res.body, `${method} ${path.split('?')[0]}`);
    return res.body;
  }

  async createRoom(name: string, extra: Record<string, unknown> = {}): Promise<string> {
    const body = await this.call('POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat', name, ...extra });
    return body.room_id as string;
  }

  async join(roomId: string): Promise<void> {
    await this.call('POST', `/_matrix/client/v3/join/${enc(roomId)}`, {});
  }

  /** PUT /send; the caller decides what to do with errors (the ceiling counts them). */
  send(roomId: string, txnId: string, body: string): Promise<HttpResult> {
    return request('PUT', this.url(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${enc(txnId)}`), {
      token: this.token,
      body: { msgtype: 'm.text', body },
      timeoutMs: 60_000,
    });
  }

  sync(params: { since?: string; timeout?: number; filter?: string; setPresence?: string }, signal?: AbortSignal): Promise<HttpResult> {
    const q = new URLSearchParams();
    if (params.since) q.set('since', params.since);
    if (params.timeout !== undefined) q.set('timeout', String(params.timeout));
    if (params.filter) q.set('filter', params.filter);
    if (params.setPresence) q.set('set_presence', params.setPresence);
    return request('GET', this.url(`/_matrix/client/v3/sync?${q}`), { token: this.token, timeoutMs: (params.timeout ?? 0) + 60_000, signal });
  }

  async uploadFilter(filter: object): Promise<string> {
    const body = await this.call('POST', `/_matrix/client/v3/user/${enc(this.userId)}/filter`, filter);
    return body.filter_id as string;
  }

  /** Events between two tokens, newest first (dir=b), one page. */
  async messages(roomId: string, from: string, to: string | undefined, limit: number): Promise<{ chunk: any[]; end?: string }> {
    const q = new URLSearchParams({ dir: 'b', from, limit: String(limit) });
    if (to) q.set('to', to);
    return this.call('GET', `/_matrix/client/v3/rooms/${enc(roomId)}/messages?${q}`);
  }
}

export interface Registration {
  /** Shared secret for /_synapse/admin/v1/register, used when m.login.dummy is not offered. */
  sharedSecret?: string;
  password?: string;
}

/** Registers `localpart` and returns a logged-in client. */
export async function register(base: string, localpart: string, reg: Registration = {}): Promise<MatrixClient> {
  const password = reg.password ?? `pw-${localpart}-bench`;
  const first = await requestRetry('POST', `${base}/_matrix/client/v3/register`, { body: { username: localpart, password } });
  const dummy = first.status === 401 && Array.isArray(first.body?.flows) && first.body.flows.some((f: any) => f.stages?.length === 1 && f.stages[0] === 'm.login.dummy');
  if (dummy) {
    const res = await requestRetry('POST', `${base}/_matrix/client/v3/register`, {
      body: { username: localpart, password, auth: { type: 'm.login.dummy', session: first.body.session } },
    });
    if (res.status === 200) return new MatrixClient(base, res.body.user_id, res.body.access_token, res.body.device_id);
    if (!reg.sharedSecret) throw new HttpError(res.status, res.body, 'register (m.login.dummy)');
  } else if (first.status === 200) {
    return new MatrixClient(base, first.body.user_id, first.body.access_token, first.body.device_id);
  }
  if (!reg.sharedSecret) throw new HttpError(first.status, first.body, 'register: no m.login.dummy flow and no --shared-secret');
  return registerShared(base, localpart, password, reg.sharedSecret);
}

/** Synapse's shared-secret registration: mac = HMAC-SHA1(secret, nonce\0user\0password\0notadmin). */
export async function registerShared(base: string, localpart: string, password: string, secret: string): Promise<MatrixClient> {
  const n = await requestRetry('GET', `${base}/_synapse/admin/v1/register`);
  if (n.status !== 200 || typeof n.body?.nonce !== 'string') throw new HttpError(n.status, n.body, 'GET /_synapse/admin/v1/register');
  const nonce = n.body.nonce as string;
  const mac = createHmac('sha1', secret).update([nonce, localpart, password, 'notadmin'].join('\0')).digest('hex');
  const res = await requestRetry('POST', `${base}/_synapse/admin/v1/register`, { body: { nonce, username: localpart, password, admin: false, mac } });
  if (res.status !== 200) throw new HttpError(res.status, res.body, 'POST /_synapse/admin/v1/register');
  return new MatrixClient(base, res.body.user_id, res.body.access_token, res.body.device_id);
}
