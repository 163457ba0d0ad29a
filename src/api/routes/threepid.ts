// Email addresses on accounts (src/threepid): the requestToken endpoints (registration, adding
// an address, password reset), the validation link, and the account's address list
// (GET /account/3pid, POST /account/3pid/add and the deprecated POST /account/3pid).
//
// Every requestToken may send a mail: each is rate-limited per client address and per email
// address (limits.rate_limits.threepid_request_token); following a link spends from the login
// budget. SMS is not supported: the
// msisdn requestTokens answer M_THREEPID_MEDIUM_NOT_SUPPORTED.

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body, uiaRequest, type Ctx } from '../middleware.js';
import { parse, type ApiServices, type ClientRoutes } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import { escapeHtml, SUBMIT_TOKEN_PATH, type TokenPurpose } from '../../threepid/validation.js';

type ThreepidRouteDeps = Pick<ApiServices, 'threepids' | 'limits' | 'accounts' | 'registration'>;

const VERSIONS = ['v3', 'r0', 'unstable'];

const requestTokenSchema = z
  .object({
    client_secret: z.string().min(1).max(255),
    email: z.string().min(1).max(512),
    send_attempt: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
    next_link: z.string().max(2048).optional(),
    id_server: z.string().max(255).optional(),
    id_access_token: z.string().max(1024).optional(),
  })
  .passthrough();

const submitSchema = z.object({ sid: z.string().min(1).max(255), client_secret: z.string().min(1).max(255), token: z.string().min(1).max(255) }).passthrough();
const credsSchema = z.object({ sid: z.string().min(1).max(255), client_secret: z.string().min(1).max(255) }).passthrough();
const addSchema = z.object({ sid: z.string().min(1).max(255), client_secret: z.string().min(1).max(255), auth: z.record(z.string(), z.unknown()).optional() }).passthrough();

export function threepidRoutes(r: ClientRoutes, s: ThreepidRouteDeps): void {
  const requestToken = (purpose: TokenPurpose) => async (ctx: Ctx) => {
    await s.limits.threepid_request_token.consume(`ip:${ctx.ip}`);
    const validation = s.threepids.validation;
    if (!validation) throw new MatrixError('M_THREEPID_DENIED', 'Email validation is not enabled on this server');
    if (purpose === 'register' && !s.registration.enabled) throw new MatrixError('M_FORBIDDEN', 'Registration is disabled');
    const req = parse(requestTokenSchema, body(ctx));
    // Each request is charged to its address too: one client cannot flood one inbox from many IPs.
    await s.limits.threepid_request_token.consume(`email:${req.email.trim().toLowerCase()}`);
    ctx.body = await validation.requestToken(purpose, req);
  };
  r.route('post', '/register/email/requestToken', requestToken('register'), VERSIONS);
  r.route('post', '/account/3pid/email/requestToken', requestToken('add'), VERSIONS);
  r.route('post', '/account/password/email/requestToken', requestToken('reset'), VERSIONS);
  for (const path of ['/register/msisdn/requestToken', '/account/3pid/msisdn/requestToken', '/account/password/msisdn/requestToken']) {
    r.route('post', path, () => {
      throw new MatrixError('M_THREEPID_MEDIUM_NOT_SUPPORTED', 'This server does not send SMS: phone numbers cannot be validated');
    }, VERSIONS);
  }

  // The mailed link (GET, a person in a browser) and the submit_url (POST, a client).
  r.raw('get', SUBMIT_TOKEN_PATH, async (ctx) => {
    const q = (k: string) => (typeof ctx.query[k] === 'string' ? (ctx.query[k] as string) : '');
    // Guessing tokens is an authentication attempt: the login budget, not the mail one (many
    // people behind one address follow their links at once).
    await s.limits.login.consume(`submit:${ctx.ip}`);
    const validation = s.threepids.validation;
    let nextLink: string | null = null;
    try {
      if (!validation) throw new MatrixError('M_THREEPID_DENIED', 'Email validation is not enabled on this server');
      ({ nextLink } = await validation.submit(q('sid'), q('client_secret'), q('token')));
    } catch (err) {
      if (!(err instanceof MatrixError)) throw err;
      ctx.status = err.status;
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = page('Validation failed', err.message);
      return;
    }
    if (nextLink !== null) {
      const url = new URL(nextLink);
      url.searchParams.set('sid', q('sid'));
      ctx.status = 302;
      ctx.headers.location = url.toString();
      ctx.type = 'text/html; charset=utf-8';
      ctx.body = page('Email validated', 'Your email address has been validated.');
      return;
    }
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = page('Email validated', 'Your email address has been validated. You may close this page and return to your Matrix client.');
  });
  r.raw('post', SUBMIT_TOKEN_PATH, async (ctx) => {
    // Guessing tokens is an authentication attempt: the login budget, not the mail one (many
    // people behind one address follow their links at once).
    await s.limits.login.consume(`submit:${ctx.ip}`);
    const validation = s.threepids.validation;
    if (!validation) throw new MatrixError('M_THREEPID_DENIED', 'Email validation is not enabled on this server');
    const req = parse(submitSchema, body(ctx));
    await validation.submit(req.sid, req.client_secret, req.token);
    ctx.body = { success: true };
  });

  r.authed('get', '/account/3pid', async (ctx, auth) => {
    ctx.body = { threepids: await s.threepids.accounts.list(auth.userId) };
  }, VERSIONS);

  r.authed('post', '/account/3pid/add', async (ctx, auth) => {
    const req = parse(addSchema, body(ctx));
    // The account's own re-authentication (password, or SSO when CAS is on), as /account/password.
    await s.accounts.reauthenticate('3pid_add:' + auth.userId, auth.userId, uiaRequest(ctx), req.auth as JsonObject | undefined);
    const v = await s.threepids.accounts.validatedCreds(req);
    await s.threepids.accounts.addValidated(auth.userId, v);
    ctx.body = {};
  }, VERSIONS);

  // Deprecated (spec r0): three_pid_creds (or threePidCreds) of a session; no UIA. `bind` would
  // bind at the identity server the session came from, but our sessions are our own.
  r.authed('post', '/account/3pid', async (ctx, auth) => {
    const b = body(ctx);
    const creds = parse(credsSchema, b.three_pid_creds ?? b.threePidCreds);
    const v = await s.threepids.accounts.validatedCreds(creds);
    await s.threepids.accounts.addValidated(auth.userId, v);
    ctx.body = {};
  }, VERSIONS);
}

function page(title: string, text: string): string {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>`;
}
