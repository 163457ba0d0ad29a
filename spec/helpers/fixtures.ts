// Shared fixtures for the HTTP-level specs: API path constants, the user and response types,
// accounts created straight through the account service, `ok()` / `expectError()` checks, and
// small request builders (room paths, createRoom, sending events, /sync queries).

import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from './server.js';

export const V1 = '/_matrix/client/v1';
export const V3 = '/_matrix/client/v3';

/** The password `Api.register()` uses by default. */
export const PASSWORD = 'correct horse battery';

/** What `Api.req()` resolves to. */
export type Res = { status: number; body: any };

/** A logged-in client, as `Api.register()` and `makeUser()` return it. */
export type User = Api & { userId: string; deviceId: string };

/**
 * Creates an account directly through the account service (no password, no HTTP registration)
 * and returns a client logged in on a new device.
 */
export async function makeUser(srv: TestServer, localpart: string, displayname?: string): Promise<User> {
  const accounts = srv.hearth.services.accounts;
  const userId = await accounts.createAccount(localpart, null, false, displayname);
  const l = await accounts.login(userId, undefined, null, null);
  return Object.assign(new Api(srv.url, l.access_token), { userId, deviceId: l.device_id });
}

/** Awaits a request, asserts that it answered exactly 200 (`what` names it), and returns its body. */
export async function ok(p: Promise<Res>, what: string): Promise<any> {
  const r = await p;
  assert.equal(r.status, 200, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Asserts a Matrix error: this status, this errcode and a string `error`. */
export const expectError = (r: Res, status: number, errcode: string): void => {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.errcode, errcode, JSON.stringify(r.body));
  assert.equal(typeof r.body.error, 'string', JSON.stringify(r.body));
};

/** `/_matrix/client/v3/rooms/{roomId}/{rest}`. */
export const roomPath = (roomId: string, rest: string): string => `${V3}/rooms/${enc(roomId)}/${rest}`;

/** POST /createRoom, asserting 200 (through `ok`, named `what`); returns the room ID. */
export async function createRoom(who: Api, body: Record<string, unknown>, what = 'createRoom'): Promise<string> {
  return (await ok(who.post(`${V3}/createRoom`, body), what)).room_id;
}

/**
 * Creates a room as `owner` (by default a private chat inviting `members`) and has every member
 * join it, asserting 200 for each step.
 */
export async function roomWith(
  owner: User,
  members: User[],
  createBody: Record<string, unknown> = { preset: 'private_chat', invite: members.map((m) => m.userId) },
): Promise<string> {
  const roomId = await createRoom(owner, createBody);
  for (const m of members) await ok(m.post(roomPath(roomId, 'join'), {}), 'join');
  return roomId;
}

/** PUT /rooms/{roomId}/send/{type}/{txnId}, asserting 200 (through `ok`, named `what`); returns the event ID. */
export async function sendEvent(who: Api, roomId: string, type: string, txnId: string, content: Record<string, unknown>, what: string): Promise<string> {
  return (await ok(who.put(roomPath(roomId, `send/${type}/${txnId}`), content), what)).event_id;
}

export interface SyncQuery {
  since?: string;
  /** Default 0. */
  timeout?: number;
  /** A filter object (sent as JSON) or a filter ID / JSON string (sent as is). */
  filter?: unknown;
  full_state?: boolean;
  set_presence?: string;
}

/** The path of a GET /sync with these query parameters (timeout always, the others when set). */
export function syncPath(q: SyncQuery = {}): string {
  const parts = [`timeout=${q.timeout ?? 0}`];
  if (q.since) parts.push(`since=${enc(q.since)}`);
  if (q.filter !== undefined) parts.push(`filter=${enc(typeof q.filter === 'string' ? q.filter : JSON.stringify(q.filter))}`);
  if (q.full_state) parts.push('full_state=true');
  if (q.set_presence) parts.push(`set_presence=${q.set_presence}`);
  return `${V3}/sync?${parts.join('&')}`;
}

/** GET /sync, asserting 200 (through `ok`, named 'sync'); returns the body. */
export function syncOk(who: Api, q: SyncQuery = {}): Promise<any> {
  return ok(who.get(syncPath(q)), 'sync');
}

/** POST /login with m.login.password for a user ID or localpart (plus any `extra` fields); returns the raw response. */
export const passwordLogin = (api: Api, user: string, password: string, extra: Record<string, unknown> = {}): Promise<Res> =>
  api.post(`${V3}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password, ...extra });

/** Logs in with a password (asserting 200) and returns a client for the new device. */
export async function loginClient(base: string, user: string, password: string, extra: Record<string, unknown> = {}): Promise<Api & { deviceId: string }> {
  const r = await passwordLogin(new Api(base), user, password, extra);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return Object.assign(new Api(base, r.body.access_token), { deviceId: r.body.device_id as string });
}

/** An m.login.password User-Interactive Authentication stage (with `session` when given, even empty). */
export const passwordAuth = (user: string, password: string, session?: string) => ({
  type: 'm.login.password',
  identifier: { type: 'm.id.user', user },
  password,
  ...(session === undefined ? {} : { session }),
});

/**
 * One test server for the enclosing describe block (started in before, stopped in after), with
 * numbered users (`<prefix>1`, …) and text messages under unique transaction IDs.
 */
export function serverPerSuite(prefix: string): {
  users: (k: number) => Promise<User[]>;
  send: (who: User, roomId: string, body: string) => Promise<string>;
  next: () => number;
} {
  let srv: TestServer | undefined;
  let api: Api | undefined;
  let n = 0;
  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
  });
  after(async () => srv?.stop());
  const next = () => ++n;
  return {
    users: (k) => Promise.all(Array.from({ length: k }, () => api!.register(`${prefix}${next()}`))),
    send: (who, roomId, body) => sendEvent(who, roomId, 'm.room.message', `${prefix}t${next()}`, { msgtype: 'm.text', body }, `send ${body}`),
    next,
  };
}
