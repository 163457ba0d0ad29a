// Single sign-on (spec "Single Sign-On", Synapse's CAS endpoints) and the UIA fallback pages
// (spec "Fallback"). The browser-facing endpoints answer with HTML pages and redirects, not JSON;
// src/auth/sso/html.ts escapes every value that reaches a page. Errors the browser sees are pages
// too (with the status), except a missing or bad redirectUrl, which the client itself sent.

import { MatrixError } from '../../errors.js';
import { CasService, SsoError, checkRedirectUrl } from '../../auth/sso/cas.js';
import { authDonePage, errorPage, escapeHtml, page } from '../../auth/sso/html.js';
import type { Ctx } from '../middleware.js';
import { param, queryString, type ApiServices, type ClientRoutes } from '../routing.js';

type SsoRouteDeps = Pick<ApiServices, 'cas' | 'recaptcha' | 'accounts' | 'limits' | 'logger' | 'serverName'>;

/** The identity provider ID the CAS server has in m.login.sso's identity_providers. */
export const CAS_IDP_ID = 'cas';

function html(ctx: Ctx, status: number, body: string, frameable = false): void {
  ctx.status = status;
  ctx.type = 'text/html';
  ctx.headers['Cache-Control'] = 'no-store';
  // A page that hands out a login token must not be framed by another site (clickjacking);
  // the UIA fallback pages may be (spec: clients may show them in a frame).
  if (!frameable) {
    ctx.headers['X-Frame-Options'] = 'DENY';
    ctx.headers['Content-Security-Policy'] = "frame-ancestors 'none'";
  }
  ctx.body = body;
}

function redirect(ctx: Ctx, url: string): void {
  ctx.status = 302;
  ctx.headers.Location = url;
  ctx.headers['Cache-Control'] = 'no-store';
  ctx.type = 'text/html';
  ctx.body = page('Redirecting', `<p><a href="${escapeHtml(url)}">Continue</a></p>`);
}

export function ssoRoutes(r: ClientRoutes, s: SsoRouteDeps): void {
  const cas = (): CasService => {
    if (!s.cas) throw new MatrixError('M_NOT_FOUND', 'Single sign-on is not enabled on this server', {}, 404);
    return s.cas;
  };
  const toCas = (ctx: Ctx) => {
    const service = cas();
    redirect(ctx, service.loginUrl({ redirectUrl: checkRedirectUrl(queryString(ctx, 'redirectUrl')) }));
  };
  r.route('get', '/login/sso/redirect', toCas);
  r.route('get', '/login/sso/redirect/:idpId', (ctx) => {
    if (param(ctx, 'idpId') !== CAS_IDP_ID) throw new MatrixError('M_NOT_FOUND', 'Unknown identity provider', {}, 404);
    toCas(ctx);
  });
  r.route('get', '/login/cas/redirect', toCas);

  r.route('get', '/login/cas/ticket', async (ctx) => {
    const service = cas();
    const ticket = queryString(ctx, 'ticket');
    const session = queryString(ctx, 'session');
    const redirectUrl = queryString(ctx, 'redirectUrl');
    if (!ticket) throw new MatrixError('M_MISSING_PARAM', 'ticket is required');
    // Each ticket costs a request to the CAS server: spent from the login bucket, as a login is.
    await s.limits.login.consume(ctx.ip);
    try {
      if (session !== undefined) {
        await service.completeUia(ticket, session);
        html(ctx, 200, authDonePage(), true);
        return;
      }
      const target = checkRedirectUrl(redirectUrl);
      const done = await service.completeLogin(ticket, target);
      // A page with a link rather than a redirect (Synapse's behaviour for clients it does not
      // know): the user sees which account and which application the token goes to before it
      // leaves, so a link crafted to send someone's token elsewhere needs their click.
      const parsed = new URL(target); // checkRedirectUrl parsed it already
      const host = parsed.host || parsed.protocol;
      html(
        ctx,
        200,
        page(
          'Continue to your account',
          `<h1>Continue to your account</h1>\n<p>You are signed in to ${escapeHtml(s.serverName)} as <b>${escapeHtml(done.userId)}</b>.</p>\n` +
            `<p>Continue to <b>${escapeHtml(host)}</b> only if you started this sign-in there.</p>\n` +
            `<p><a href="${escapeHtml(done.redirectTo)}">Continue</a></p>`,
        ),
      );
    } catch (err) {
      if (!(err instanceof SsoError)) throw err;
      s.logger.warn({ err }, 'CAS ticket refused');
      html(ctx, err.status, errorPage(err.message), session !== undefined);
    }
  });

  // The UIA fallback pages (spec "Fallback"): GET /auth/<stage>/fallback/web?session=...
  r.route('get', '/auth/:stage/fallback/web', async (ctx) => {
    const stage = param(ctx, 'stage');
    const session = queryString(ctx, 'session');
    if (!session) throw new MatrixError('M_MISSING_PARAM', 'session is required');
    if (stage === 'm.login.sso') {
      const url = cas().loginUrl({ session });
      html(
        ctx,
        200,
        page(
          'Confirm your identity',
          '<h1>Confirm your identity</h1>\n<p>To continue, confirm your identity with single sign-on.</p>\n' +
            `<p><a href="${escapeHtml(url)}">Continue with single sign-on</a></p>`,
        ),
        true,
      );
      return;
    }
    if (stage === 'm.login.recaptcha' && s.recaptcha) {
      const response = queryString(ctx, 'response');
      if (response === undefined) {
        html(ctx, 200, recaptchaPage(s.recaptcha.settings.public_key, session), true);
        return;
      }
      await s.limits.registration.consume(ctx.ip);
      try {
        await s.recaptcha.verify(response, ctx.ip || null);
      } catch (err) {
        if (!(err instanceof MatrixError)) throw err;
        s.logger.info({ err }, 'reCAPTCHA fallback refused');
        html(ctx, 401, recaptchaPage(s.recaptcha.settings.public_key, session, 'The captcha was not accepted; try again.'), true);
        return;
      }
      if (!(await s.accounts.uia.completeStage(session, 'm.login.recaptcha', null))) {
        html(ctx, 400, errorPage('The authentication session is unknown or has expired; start again from the application.'), true);
        return;
      }
      html(ctx, 200, authDonePage(), true);
      return;
    }
    throw new MatrixError('M_NOT_FOUND', `No fallback page for ${stage}`, {}, 404);
  });
}

/**
 * Google's widget; the form comes back here by GET with the widget's token as `response` (the
 * route table reads JSON bodies only, and the token is single-use and short-lived).
 */
function recaptchaPage(publicKey: string, session: string, problem?: string): string {
  return page(
    'Authentication',
    '<h1>Please verify that you are not a robot</h1>\n' +
      (problem ? `<p>${escapeHtml(problem)}</p>\n` : '') +
      '<form id="f" method="get">' +
      `<input type="hidden" name="session" value="${escapeHtml(session)}">` +
      '<input type="hidden" name="response" id="r" value="">' +
      `<div class="g-recaptcha" data-sitekey="${escapeHtml(publicKey)}" data-callback="captchaDone"></div>` +
      '</form>',
    '<script>function captchaDone(t) { document.getElementById("r").value = t; document.getElementById("f").submit(); }</script>' +
      '<script src="https://www.recaptcha.net/recaptcha/api.js" async defer></script>',
  );
}
