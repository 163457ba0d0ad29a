// The homeserver's side of the Identity Service API v2: lookups (hashed), store-invite, bind,
// unbind, and key validity checks, against an identity server a client names (id_server).
//
// Invariants:
// - Every request goes through the OutboundHttp it is given, i.e. through the outbound guard
//   (src/net/outbound-guard.ts): id_server and key_validity_url are user-steered, so the
//   refused IP ranges apply to them as to push gateways. Redirects are not followed.
// - id_server is a bare server name (host[:port], isValidServerName); anything else (a path, a
//   scheme, userinfo) is refused with M_INVALID_PARAM before any request. Requests go to
//   https://<id_server>, as the spec says.
// - A failing or malformed identity server answer is an IdentityServerError (mapped by callers
//   to a Matrix error), never a crash; bodies are capped at 64 KiB.
// - Lookups send hashes (sha256 with the server's pepper) when the server offers them, and the
//   plain "address medium" only when it offers nothing else (spec: Identity Service API,
//   "Security considerations" / hashed lookups).

import { createHash } from 'node:crypto';
import type { OutboundHttp } from '../net/outbound-guard.js';
import { isJsonObject, parseStrictJson } from '../protocol/canonical-json.js';
import { isValidServerName } from '../protocol/ids.js';
import type { JsonObject, JsonValue, SigningKey } from '../protocol/types.js';
import { buildXMatrixAuthorization } from '../protocol/x-matrix.js';
import { MatrixError } from '../errors.js';

export class IdentityServerError extends Error {
  constructor(
    readonly idServer: string,
    readonly status: number,
    readonly errcode: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'IdentityServerError';
  }
}

/** What store-invite returns: the token and the keys the invite will be signed with. */
export interface StoredInvite {
  token: string;
  displayName: string;
  publicKeys: Array<{ publicKey: string; keyValidityUrl: string }>;
}

export interface IdentityClientDeps {
  http: OutboundHttp;
  /** This homeserver: the origin of X-Matrix-signed unbind requests. */
  serverName: string;
  signingKey: SigningKey;
  timeoutMs: number;
}

const MAX_RESPONSE_BYTES = 64 * 1024;

/** Refuses an id_server that is not a bare server name (it becomes the URL's authority). */
export function checkIdServer(idServer: unknown): string {
  if (typeof idServer !== 'string' || idServer === '') throw new MatrixError('M_MISSING_PARAM', 'id_server is required');
  if (!isValidServerName(idServer)) throw new MatrixError('M_INVALID_PARAM', 'id_server must be a server name (host[:port])');
  return idServer;
}

/** Email addresses are compared case-insensitively; other media as given. */
export function normaliseAddress(medium: string, address: string): string {
  return medium === 'email' ? address.toLowerCase() : address;
}

/** The spec's sha256 lookup hash: unpadded URL-safe base64 of SHA-256("address medium pepper"). */
export function lookupHash(medium: string, address: string, pepper: string): string {
  return createHash('sha256').update(`${address} ${medium} ${pepper}`, 'utf8').digest('base64url');
}

export class IdentityClient {
  constructor(private readonly d: IdentityClientDeps) {}

  /** The Matrix ID bound to (medium, address), or null when none is. */
  async lookup(idServer: string, accessToken: string, medium: string, address: string): Promise<string | null> {
    const details = await this.call(idServer, 'GET', '/_matrix/identity/v2/hash_details', { accessToken });
    const algorithms = Array.isArray(details.algorithms) ? details.algorithms : [];
    const pepper = typeof details.lookup_pepper === 'string' ? details.lookup_pepper : '';
    let body: JsonObject;
    let key: string;
    if (algorithms.includes('sha256')) {
      key = lookupHash(medium, address, pepper);
      body = { addresses: [key], algorithm: 'sha256', pepper };
    } else if (algorithms.includes('none')) {
      key = `${address} ${medium}`;
      body = { addresses: [key], algorithm: 'none', pepper };
    } else {
      throw new IdentityServerError(idServer, 200, undefined, `${idServer} offers no lookup algorithm we know`);
    }
    const res = await this.call(idServer, 'POST', '/_matrix/identity/v2/lookup', { accessToken, body });
    const mxid = isJsonObject(res.mappings) ? res.mappings[key] : undefined;
    return typeof mxid === 'string' ? mxid : null;
  }

  /** Asks the identity server to hold an invite for (medium, address) until it is bound. */
  async storeInvite(idServer: string, accessToken: string, invite: JsonObject): Promise<StoredInvite> {
    const res = await this.call(idServer, 'POST', '/_matrix/identity/v2/store-invite', { accessToken, body: invite });
    const token = res.token;
    if (typeof token !== 'string' || token === '' || token.length > 255) throw new IdentityServerError(idServer, 200, undefined, 'store-invite answered without a token');
    const publicKeys: StoredInvite['publicKeys'] = [];
    if (Array.isArray(res.public_keys)) {
      for (const k of res.public_keys.slice(0, 10)) {
        if (isJsonObject(k) && typeof k.public_key === 'string' && typeof k.key_validity_url === 'string') {
          publicKeys.push({ publicKey: k.public_key, keyValidityUrl: k.key_validity_url });
        }
      }
    }
    if (publicKeys.length === 0) throw new IdentityServerError(idServer, 200, undefined, 'store-invite answered without public keys');
    const displayName = typeof res.display_name === 'string' ? res.display_name : '';
    return { token, displayName, publicKeys };
  }

  /** Binds the 3PID validated in session `sid` to `mxid`; returns the (medium, address) bound. */
  async bind(idServer: string, accessToken: string, sid: string, clientSecret: string, mxid: string): Promise<{ medium: string; address: string }> {
    const res = await this.call(idServer, 'POST', '/_matrix/identity/v2/3pid/bind', { accessToken, body: { sid, client_secret: clientSecret, mxid } });
    if (typeof res.medium !== 'string' || typeof res.address !== 'string') throw new IdentityServerError(idServer, 200, undefined, 'bind answered without medium and address');
    return { medium: res.medium, address: res.address };
  }

  /**
   * Removes the binding of (medium, address) to `mxid`, signed by this homeserver (X-Matrix).
   * False when the identity server has no such binding (404) or does not support unbinding.
   */
  async unbind(idServer: string, mxid: string, medium: string, address: string): Promise<boolean> {
    const body: JsonObject = { mxid, threepid: { medium, address } };
    const path = '/_matrix/identity/v2/3pid/unbind';
    const authorization = buildXMatrixAuthorization({ method: 'POST', uri: path, origin: this.d.serverName, destination: idServer, content: body }, this.d.signingKey);
    try {
      await this.call(idServer, 'POST', path, { body, authorization });
      return true;
    } catch (err) {
      if (err instanceof IdentityServerError && (err.status === 404 || err.status === 501)) return false;
      throw err;
    }
  }

  /**
   * Whether the identity server still vouches for `publicKey` (GET key_validity_url). The URL
   * came from the identity server through an m.room.third_party_invite event; it must be https.
   */
  async isKeyValid(keyValidityUrl: string, publicKey: string): Promise<boolean> {
    let url: URL;
    try {
      url = new URL(keyValidityUrl);
    } catch {
      return false;
    }
    if (url.protocol !== 'https:') return false;
    url.searchParams.set('public_key', publicKey);
    const res = await this.d.http.request(url, { method: 'GET', signal: AbortSignal.timeout(this.d.timeoutMs), maxResponseBytes: MAX_RESPONSE_BYTES });
    if (res.status !== 200 || res.truncated) return false;
    try {
      const json = parseStrictJson(res.body.toString('utf8'));
      return isJsonObject(json) && json.valid === true;
    } catch {
      return false;
    }
  }

  private async call(
    idServer: string,
    method: 'GET' | 'POST',
    path: string,
    opts: { accessToken?: string; authorization?: string; body?: JsonObject },
  ): Promise<JsonObject> {
    checkIdServer(idServer);
    const headers: Record<string, string> = {};
    if (opts.accessToken !== undefined) headers.authorization = `Bearer ${opts.accessToken}`;
    else if (opts.authorization !== undefined) headers.authorization = opts.authorization;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    const res = await this.d.http.request(`https://${idServer}${path}`, {
      method,
      headers,
      body,
      signal: AbortSignal.timeout(this.d.timeoutMs),
      maxResponseBytes: MAX_RESPONSE_BYTES,
    });
    let json: JsonValue | undefined;
    try {
      json = res.truncated ? undefined : parseStrictJson(res.body.toString('utf8'));
    } catch {
      json = undefined;
    }
    if (res.status < 200 || res.status >= 300) {
      const errcode = isJsonObject(json) && typeof json.errcode === 'string' ? json.errcode : undefined;
      throw new IdentityServerError(idServer, res.status, errcode, `${method} ${path} on ${idServer}: ${res.status} ${errcode ?? ''}`);
    }
    if (!isJsonObject(json)) throw new IdentityServerError(idServer, res.status, undefined, `${method} ${path} on ${idServer}: not a JSON object`);
    return json;
  }
}

/** Error codes (anywhere in the cause chain) meaning the named server cannot be used at all. */
const UNUSABLE = new Set(['ERR_OUTBOUND_REFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH']);

function unusable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && UNUSABLE.has(code)) return true;
    // undici wraps per-address failures in an AggregateError.
    if (e instanceof AggregateError && e.errors.some((x) => unusable(x))) return true;
  }
  return false;
}

/**
 * A client-facing error for an identity server that failed. An identity server the client named
 * that cannot be used at all (the outbound guard refuses it, its name does not resolve, it refuses
 * connections) is the request's fault: 400 M_SERVER_NOT_TRUSTED, the spec's code for an identity
 * server this server does not trust or support. One that answered badly or timed out is 502 (an
 * upstream failure; Synapse answers 500 there). Only what the identity server itself answered is
 * repeated: the guard's reason (which address a name resolved to) is not, so a user naming
 * `id_server` cannot map internal addresses. Callers log the error itself.
 */
export function identityFailure(err: unknown): MatrixError {
  if (err instanceof MatrixError) return err;
  if (unusable(err)) return new MatrixError('M_SERVER_NOT_TRUSTED', 'The identity server cannot be used: not reachable', {}, 400);
  const what = err instanceof IdentityServerError ? err.message : 'not reachable';
  return new MatrixError('M_UNKNOWN', `The identity server could not be used: ${what}`, {}, 502);
}
