// Outbound federation requests: discovery, X-Matrix signing, and the guarded undici client
// (src/net/outbound-guard.ts: keep-alive pooling, refused IP ranges checked on the address
// dialled, no redirects, no proxy).
//
// Invariants: the path signed is exactly the path sent (callers pass it already percent-encoded,
// see `fedPath`); a PUT/POST always carries a JSON body and signs it as `content`; a non-2xx
// answer throws FederationError with the status and the peer's errcode; bodies are capped.

import type { OutboundHttp, OutboundStreamResponse } from '../net/outbound-guard.js';
import type { Readable } from 'node:stream';
import { isJsonObject, parseStrictJson } from '../protocol/canonical-json.js';
import { buildXMatrixAuthorization } from '../protocol/x-matrix.js';
import type { JsonObject, JsonValue, SigningKey } from '../protocol/types.js';
import type { ServerDiscovery } from './discovery.js';
import type { KeyFetcher } from './keys.js';
import { FederationPolicy } from './policy.js';

export class FederationError extends Error {
  constructor(
    readonly destination: string,
    readonly status: number,
    readonly errcode: string | undefined,
    message: string,
    /** M_INCOMPATIBLE_ROOM_VERSION's room_version, when the peer named one. */
    readonly roomVersion?: string,
    /** A success whose body is JSON but not Matrix JSON (a float, an integer past 2^53). */
    readonly notMatrixJson = false,
  ) {
    super(message);
    this.name = 'FederationError';
  }
}

/** A path from a template whose arguments are percent-encoded (`!`, `:`, `@`, `$` included). */
export function fedPath(strings: TemplateStringsArray, ...args: string[]): string {
  let out = strings[0];
  args.forEach((a, i) => {
    out += encodeURIComponent(a).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`) + strings[i + 1];
  });
  return out;
}

export interface FederationRequest {
  method: 'GET' | 'PUT' | 'POST';
  /** Encoded path with query, e.g. from fedPath. */
  path: string;
  body?: JsonObject;
  /** Unsigned (key requests). */
  unsigned?: boolean;
  maxResponseBytes?: number;
  timeoutMs?: number;
}

export class FederationClient implements KeyFetcher {
  constructor(
    private readonly serverName: string,
    private readonly signingKey: SigningKey,
    private readonly discovery: ServerDiscovery,
    private readonly http: OutboundHttp,
    private readonly policy: FederationPolicy = new FederationPolicy({ allowed_servers: null, denied_servers: [] }),
  ) {}

  async request(destination: string, req: FederationRequest): Promise<JsonValue> {
    if (!this.policy.allows(destination)) {
      throw new FederationError(destination, 403, 'M_FORBIDDEN', `federation with ${destination} is not allowed by this server's configuration`);
    }
    const target = await this.discovery.resolve(destination);
    const host = target.host.includes(':') ? `[${target.host}]` : target.host;
    const headers: Record<string, string> = { host: target.hostHeader };
    let body: string | undefined;
    const content = req.body ?? (req.method === 'GET' ? undefined : {});
    if (content !== undefined) {
      body = JSON.stringify(content);
      headers['content-type'] = 'application/json';
    }
    if (!req.unsigned) {
      headers.authorization = buildXMatrixAuthorization(
        { method: req.method, uri: req.path, origin: this.serverName, destination, content },
        this.signingKey,
      );
    }
    const res = await this.http.request(`https://${host}:${target.port}${req.path}`, {
      method: req.method,
      headers,
      body,
      signal: AbortSignal.timeout(req.timeoutMs ?? 60_000),
      maxResponseBytes: req.maxResponseBytes ?? 64 * 1024 * 1024,
    });
    if (res.truncated) throw new FederationError(destination, res.status, undefined, `${req.method} ${req.path}: response too large`);
    let json: JsonValue | undefined;
    let parseError = '';
    try {
      json = parseStrictJson(res.body.toString('utf8'));
    } catch (err) {
      json = undefined;
      parseError = (err as Error).message;
    }
    if (res.status < 200 || res.status >= 300) {
      const errcode = isJsonObject(json) && typeof json.errcode === 'string' ? json.errcode : undefined;
      const error = isJsonObject(json) && typeof json.error === 'string' ? json.error : '';
      const roomVersion = isJsonObject(json) && typeof json.room_version === 'string' && json.room_version.length <= 32 ? json.room_version : undefined;
      throw new FederationError(destination, res.status, errcode, `${req.method} ${req.path} on ${destination}: ${res.status} ${errcode ?? ''} ${error}`, roomVersion);
    }
    if (json === undefined) {
      const notMatrix = !parseError.startsWith('invalid JSON');
      throw new FederationError(destination, res.status, undefined, `${req.method} ${req.path} on ${destination}: not ${notMatrix ? 'Matrix ' : ''}JSON${notMatrix ? ` (${parseError})` : ''}`, undefined, notMatrix);
    }
    return json;
  }

  /**
   * A signed GET whose 2xx body the caller streams (remote media). A non-2xx answer throws
   * FederationError as request() does, after reading at most 64 KiB of its body.
   */
  async stream(destination: string, path: string, signal: AbortSignal): Promise<OutboundStreamResponse> {
    if (!this.policy.allows(destination)) {
      throw new FederationError(destination, 403, 'M_FORBIDDEN', `federation with ${destination} is not allowed by this server's configuration`);
    }
    const target = await this.discovery.resolve(destination);
    const host = target.host.includes(':') ? `[${target.host}]` : target.host;
    const authorization = buildXMatrixAuthorization({ method: 'GET', uri: path, origin: this.serverName, destination }, this.signingKey);
    const res = await this.http.stream(`https://${host}:${target.port}${path}`, { method: 'GET', headers: { host: target.hostHeader, authorization }, signal });
    if (res.status >= 200 && res.status < 300) return res;
    const text = await readCapped(res.body, 64 * 1024);
    let json: JsonValue | undefined;
    try {
      json = parseStrictJson(text);
    } catch {
      json = undefined;
    }
    const errcode = isJsonObject(json) && typeof json.errcode === 'string' ? json.errcode : undefined;
    throw new FederationError(destination, res.status, errcode, `GET ${path} on ${destination}: ${res.status} ${errcode ?? ''}`);
  }

  /** The guarded HTTP client itself, for an unsigned GET of a URL a peer named (a media redirect). */
  get outbound(): OutboundHttp {
    return this.http;
  }

  async fetchDirect(serverName: string): Promise<unknown> {
    return this.request(serverName, { method: 'GET', path: '/_matrix/key/v2/server', unsigned: true, maxResponseBytes: 64 * 1024, timeoutMs: 15_000 });
  }

  async fetchFromNotary(notary: string, serverName: string): Promise<unknown[]> {
    const res = await this.request(notary, {
      method: 'POST',
      path: '/_matrix/key/v2/query',
      body: { server_keys: { [serverName]: {} } },
      maxResponseBytes: 1024 * 1024,
      timeoutMs: 15_000,
    });
    return isJsonObject(res) && Array.isArray(res.server_keys) ? res.server_keys : [];
  }
}

/** The start of a body as text, at most `max` bytes; the rest is dropped. */
async function readCapped(body: Readable, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of body) {
      const b = c as Buffer;
      chunks.push(b.subarray(0, max - n));
      n += b.length;
      if (n >= max) break;
    }
  } catch {
    // A body cut off: what arrived is enough to report.
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks).toString('utf8');
}
