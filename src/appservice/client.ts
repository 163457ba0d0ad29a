// Requests from the homeserver to application services (Application Service API): transactions,
// user and alias queries, and third-party lookups. Every request carries
// `Authorization: Bearer <hs_token>` and goes through the injected OutboundHttp
// (src/net/outbound-guard.ts), so the outbound IP policy applies to AS URLs as to push gateways.
//
// Invariants:
// - Nothing here throws for what the AS answers or for a network failure: each call returns an
//   outcome the caller acts on (retry a transaction, treat a query as "not found").
// - Response bodies are bounded (MAX_RESPONSE_BYTES) and parsed through the canonical-JSON
//   intake (null-prototype objects).

import type { Logger } from 'pino';
import type { OutboundHttp } from '../net/outbound-guard.js';
import { hardenValue } from '../protocol/canonical-json.js';
import type { AppServiceRegistration } from './registration.js';

const MAX_RESPONSE_BYTES = 1024 * 1024;

export type TransactionOutcome = { ok: true } | { ok: false; why: string };

export class AppServiceClient {
  constructor(
    private readonly http: OutboundHttp,
    private readonly logger: Logger,
    private readonly timeoutMs: number,
  ) {}

  private async call(reg: AppServiceRegistration, method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<{ status: number; json: unknown } | { error: string }> {
    if (reg.url === null) return { error: 'the app service has no url' };
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const abort = signal ? AbortSignal.any([timeout, signal]) : timeout;
    try {
      const res = await this.http.request(`${reg.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${reg.hsToken}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: abort,
        maxResponseBytes: MAX_RESPONSE_BYTES,
      });
      return { status: res.status, json: res.truncated ? undefined : parseJsonBody(res.body) };
    } catch (err) {
      this.logger.warn({ err, appservice: reg.id, path }, 'app service request failed');
      return { error: (err as Error).message ?? String(err) };
    }
  }

  /** PUT /_matrix/app/v1/transactions/{txnId}: ok only on a 2xx answer. */
  async putTransaction(reg: AppServiceRegistration, txnId: number, events: unknown[], signal?: AbortSignal): Promise<TransactionOutcome> {
    const r = await this.call(reg, 'PUT', `/_matrix/app/v1/transactions/${txnId}`, { events }, signal);
    if ('error' in r) return { ok: false, why: r.error };
    if (r.status >= 200 && r.status < 300) return { ok: true };
    return { ok: false, why: `status ${r.status}` };
  }

  /** POST /_matrix/app/v1/ping: the AS's status, or why it could not be reached. */
  async ping(reg: AppServiceRegistration, transactionId: string | undefined): Promise<{ status: number; body: unknown } | { error: 'timeout' | 'failed' }> {
    const started = Date.now();
    const r = await this.call(reg, 'POST', '/_matrix/app/v1/ping', transactionId === undefined ? {} : { transaction_id: transactionId });
    if ('error' in r) return { error: Date.now() - started >= this.timeoutMs ? 'timeout' : 'failed' };
    return { status: r.status, body: r.json };
  }

  /** GET /_matrix/app/v1/users/{userId}: true when the AS says the user exists (it created it). */
  async queryUser(reg: AppServiceRegistration, userId: string): Promise<boolean> {
    const r = await this.call(reg, 'GET', `/_matrix/app/v1/users/${encodeURIComponent(userId)}`);
    return !('error' in r) && r.status >= 200 && r.status < 300;
  }

  /** GET /_matrix/app/v1/rooms/{alias}: true when the AS says it created the room for the alias. */
  async queryAlias(reg: AppServiceRegistration, alias: string): Promise<boolean> {
    const r = await this.call(reg, 'GET', `/_matrix/app/v1/rooms/${encodeURIComponent(alias)}`);
    return !('error' in r) && r.status >= 200 && r.status < 300;
  }

  /**
   * GET /_matrix/app/v1/thirdparty/{path}: the AS's JSON answer on a 2xx, else undefined
   * (an AS that fails or answers garbage simply contributes nothing).
   */
  async thirdParty(reg: AppServiceRegistration, path: string, query: Record<string, string>): Promise<unknown> {
    const qs = new URLSearchParams(query).toString();
    const r = await this.call(reg, 'GET', `/_matrix/app/v1/thirdparty/${path}${qs ? `?${qs}` : ''}`);
    if ('error' in r || r.status < 200 || r.status >= 300) return undefined;
    return r.json;
  }
}

/** The AS's answer as hardened JSON (null-prototype objects); undefined when it is not JSON. */
function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return hardenValue(JSON.parse(body.toString('utf8')));
  } catch {
    return undefined;
  }
}
