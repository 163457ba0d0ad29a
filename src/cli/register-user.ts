// `hearth register-user`: through the running server's Synapse-compatible shared-secret admin API
// (preferred: the server stays the only writer and its caches stay right), or straight into the
// database with --direct (for a stopped server, or one without a shared secret).

import type { Store } from '../store/types.js';
import { StoreConflictError } from '../store/types.js';
import { hashPassword, registrationMac } from '../users/credentials.js';

// Matrix user ID grammar for new accounts (spec: "User Identifiers"). Historical IDs allowed more,
// but servers must not create them.
const LOCALPART_RE = /^[a-z0-9._=\-/+]+$/;
const MAX_USER_ID_LENGTH = 255;

/** Splits `name` or `@name:server` into its localpart and (if given) server; throws if malformed. */
export function parseUserArg(user: string): { localpart: string; server: string | null } {
  let localpart = user;
  let server: string | null = null;
  if (user.startsWith('@')) {
    const colon = user.indexOf(':');
    if (colon < 0) throw new Error(`"${user}" is not a user ID: expected @localpart:server`);
    localpart = user.slice(1, colon);
    server = user.slice(colon + 1);
  }
  if (!LOCALPART_RE.test(localpart)) {
    throw new Error(`"${localpart}" is not a valid user name: use only a-z, 0-9 and . _ = - / +`);
  }
  return { localpart, server };
}

/**
 * Creates an account by writing to the store, bypassing the server. Returns the new user ID.
 * Only `store.accounts` is used, so any Store backend works.
 */
export async function registerUserDirect(
  store: Pick<Store, 'accounts'>,
  serverName: string,
  localpart: string,
  password: string,
  admin: boolean,
): Promise<string> {
  if (!LOCALPART_RE.test(localpart)) throw new Error(`"${localpart}" is not a valid user name`);
  const userId = `@${localpart}:${serverName}`;
  if (userId.length > MAX_USER_ID_LENGTH) throw new Error(`${userId} is longer than ${MAX_USER_ID_LENGTH} characters`);
  if (password.length === 0) throw new Error('the password must not be empty');
  const passwordHash = await hashPassword(password);
  try {
    // Synapse's default display name is the localpart; clients show it until the user sets one.
    await store.accounts.createUser({ userId, passwordHash, admin, createdTs: Date.now(), displayname: localpart });
  } catch (err) {
    if (err instanceof StoreConflictError) throw new Error(`${userId} already exists`);
    throw err;
  }
  return userId;
}

export interface RegisterViaApiOptions {
  /** Base URL of the client listener, e.g. http://127.0.0.1:8008/ */
  url: string;
  sharedSecret: string;
  localpart: string;
  password: string;
  admin: boolean;
  fetch?: typeof fetch;
}

/** Registers through /_synapse/admin/v1/register (nonce, then HMAC-authenticated POST). Returns the user ID. */
export async function registerUserViaApi(opts: RegisterViaApiOptions): Promise<string> {
  const doFetch = opts.fetch ?? fetch;
  const endpoint = new URL('_synapse/admin/v1/register', opts.url.endsWith('/') ? opts.url : `${opts.url}/`).toString();
  const call = async (init?: RequestInit): Promise<Record<string, unknown>> => {
    let res: Response;
    try {
      res = await doFetch(endpoint, init);
    } catch (err) {
      const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
      throw new Error(`cannot reach ${endpoint} (${cause}); is hearth running? Use --url, or --direct for a stopped server`);
    }
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) {
      const what = typeof body.errcode === 'string' ? `${body.errcode}: ${String(body.error ?? '')}` : res.statusText;
      throw new Error(`${init?.method ?? 'GET'} ${endpoint} failed with ${res.status} ${what}`);
    }
    return body;
  };
  const { nonce } = await call();
  if (typeof nonce !== 'string') throw new Error(`${endpoint} returned no nonce`);
  const mac = registrationMac(opts.sharedSecret, nonce, opts.localpart, opts.password, opts.admin);
  const result = await call({
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ nonce, username: opts.localpart, password: opts.password, admin: opts.admin, mac }),
  });
  // The response also carries an access token for the new account; it is deliberately not shown.
  return typeof result.user_id === 'string' ? result.user_id : opts.localpart;
}
