// Single sign-on through a CAS server (CAS protocol 2.0/3.0), as Synapse offers it.
//
// The browser goes: client -> /login/sso/redirect?redirectUrl=R -> 302 to
// <server_url>/login?service=S, where S is <service base>_matrix/client/r0/login/cas/ticket?redirectUrl=R
// -> the user signs in at CAS -> CAS sends the browser to S&ticket=T -> we ask
// <server_url>/proxyValidate?ticket=T&service=S -> the CAS user maps to a localpart
// (localpart.ts) -> a one-time login token (login-tokens.ts) -> a page linking to R?loginToken=...
// For user-interactive auth the service carries ?session=ID instead of the redirect URL, and the
// ticket completes the session's m.login.sso stage for the mapped user.
//
// Invariants:
// - The service URL sent to /proxyValidate is rebuilt from the ticket request's own parameters
//   exactly as it was built for /login, so a ticket issued for one redirect URL or session does
//   not validate for another (CAS binds tickets to the service).
// - A redirect URL is accepted only if it parses as an absolute URL whose scheme cannot run
//   script (no javascript:, data:, vbscript:, blob:, file:); the token is appended to its query.
// - Requests go to the configured server_url only: that host is the operator's choice, never a
//   user's, so the outbound IP guard (for user-steered URLs) is not applied and a CAS server on an
//   internal network works, as in Synapse. Redirects are not followed; answers are capped.
// - Required attributes are checked before any account is touched.

import { MatrixError } from '../../errors.js';
import type { OutboundHttp } from '../../net/outbound-guard.js';
import type { AccountService } from '../../users/account-service.js';
import { CasXmlError, parseCasResponse, type CasSuccess } from './cas-xml.js';
import { mapUsernameToLocalpart } from './localpart.js';
import type { LoginTokens } from './login-tokens.js';

export interface CasSettings {
  server_url: string;
  service_url: string | null;
  displayname_attribute: string | null;
  required_attributes: Record<string, string | null>;
}

/** A failure to show the browser as a page (not a client API error). */
export class SsoError extends Error {
  constructor(
    readonly status: number,
    message: string,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'SsoError';
  }
}

export const CAS_TICKET_PATH = '_matrix/client/r0/login/cas/ticket';
const MAX_CAS_RESPONSE_BYTES = 64 * 1024;
const CAS_TIMEOUT_MS = 10_000;
const UNSAFE_SCHEMES = new Set(['javascript:', 'data:', 'vbscript:', 'blob:', 'file:']);

/** encodeURIComponent that also escapes !'()* (RFC 3986 unreserved characters only stay). */
export function strictEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The redirect URL, checked (see the invariants); M_INVALID_PARAM otherwise. */
export function checkRedirectUrl(value: string | undefined): string {
  if (value === undefined || value === '') throw new MatrixError('M_MISSING_PARAM', 'redirectUrl is required');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new MatrixError('M_INVALID_PARAM', 'redirectUrl must be an absolute URL');
  }
  if (UNSAFE_SCHEMES.has(url.protocol) || /[\u0000-\u001f\u007f]/.test(value) || value.length > 2048) {
    throw new MatrixError('M_INVALID_PARAM', 'redirectUrl is not an acceptable URL');
  }
  return value;
}

/** `url` with loginToken=<token> added to its query, before any fragment. */
export function withLoginToken(url: string, token: string): string {
  const hash = url.indexOf('#');
  const base = hash < 0 ? url : url.slice(0, hash);
  const fragment = hash < 0 ? '' : url.slice(hash);
  const sep = base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?';
  return `${base}${sep}loginToken=${strictEncode(token)}${fragment}`;
}

export interface CasDeps {
  /** For the CAS server only (see the invariants). */
  http: OutboundHttp;
  accounts: AccountService;
  loginTokens: LoginTokens;
  /** public_baseurl, with its trailing slash (read when needed: tests learn the port late). */
  baseUrl: () => string;
}

export class CasService {
  private readonly server: string;

  constructor(
    private readonly settings: CasSettings,
    private readonly deps: CasDeps,
  ) {
    this.server = settings.server_url.replace(/\/+$/, '');
  }

  /** Where the browser is sent back to: the ticket endpoint with `args` as its query. */
  serviceUrl(args: { redirectUrl: string } | { session: string }): string {
    const base = this.settings.service_url ?? this.deps.baseUrl();
    const root = base.endsWith('/') ? base : `${base}/`;
    const query = 'redirectUrl' in args ? `redirectUrl=${strictEncode(args.redirectUrl)}` : `session=${strictEncode(args.session)}`;
    return `${root}${CAS_TICKET_PATH}?${query}`;
  }

  /** The CAS login page for this service. */
  loginUrl(args: { redirectUrl: string } | { session: string }): string {
    return `${this.server}/login?service=${strictEncode(this.serviceUrl(args))}`;
  }

  /** Asks the CAS server about a ticket; the successful answer, or SsoError. */
  async validate(ticket: string, service: string): Promise<CasSuccess> {
    const url = `${this.server}/proxyValidate?ticket=${strictEncode(ticket)}&service=${strictEncode(service)}`;
    let res;
    try {
      res = await this.deps.http.request(url, { signal: AbortSignal.timeout(CAS_TIMEOUT_MS), maxResponseBytes: MAX_CAS_RESPONSE_BYTES });
    } catch (err) {
      throw new SsoError(502, 'Could not reach the CAS server', err);
    }
    if (res.status !== 200 || res.truncated) throw new SsoError(502, `The CAS server answered ${res.status}`);
    let answer;
    try {
      answer = parseCasResponse(res.body.toString('utf8'));
    } catch (err) {
      if (err instanceof CasXmlError) throw new SsoError(502, `The CAS server's answer could not be read: ${err.message}`);
      throw err;
    }
    if (!answer.ok) throw new SsoError(401, `The CAS server did not accept the ticket (${answer.code})`);
    for (const [name, wanted] of Object.entries(this.settings.required_attributes)) {
      const values = answer.attributes.get(name);
      if (!values || (wanted !== null && !values.includes(wanted))) throw new SsoError(401, 'You are not authorised to log in here.');
    }
    return answer;
  }

  /** The Matrix user a CAS user is, whether or not the account exists yet. */
  userIdOf(casUser: string): string {
    return this.deps.accounts.userIdFor(this.localpartOf(casUser));
  }

  /** A login ticket: the account (created on first login) and a login token for it. */
  async completeLogin(ticket: string, redirectUrl: string): Promise<{ userId: string; loginToken: string; redirectTo: string }> {
    const answer = await this.validate(ticket, this.serviceUrl({ redirectUrl }));
    const localpart = this.localpartOf(answer.user);
    const attr = this.settings.displayname_attribute;
    const displayname = attr === null ? undefined : answer.attributes.get(attr)?.[0] || undefined;
    let userId: string;
    try {
      userId = await this.deps.accounts.ssoAccount(localpart, displayname);
    } catch (err) {
      if (err instanceof MatrixError && err.status < 500) throw new SsoError(403, err.message);
      throw err;
    }
    const loginToken = await this.deps.loginTokens.issue(userId);
    return { userId, loginToken, redirectTo: withLoginToken(redirectUrl, loginToken) };
  }

  /**
   * A ticket for user-interactive auth: completes the session's m.login.sso stage for the user
   * the CAS login maps to (the session's next request fails with 403 if that is someone else).
   */
  async completeUia(ticket: string, session: string): Promise<string> {
    const answer = await this.validate(ticket, this.serviceUrl({ session }));
    const userId = this.userIdOf(answer.user);
    if (!(await this.deps.accounts.uia.completeStage(session, 'm.login.sso', userId))) {
      throw new SsoError(400, 'The authentication session is unknown or has expired; start again from the application.');
    }
    return userId;
  }

  private localpartOf(casUser: string): string {
    const localpart = mapUsernameToLocalpart(casUser);
    if (localpart === '' || this.deps.accounts.userIdFor(localpart).length > 255) throw new SsoError(400, 'The CAS username cannot be a Matrix user ID');
    return localpart;
  }
}
