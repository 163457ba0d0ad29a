// The m.login.recaptcha UIA stage: the response token the browser got from Google's widget is
// checked at the siteverify API with the site's private key (a form POST: secret, response,
// remoteip), as Synapse does. The siteverify URL is the operator's (config), so the outbound IP
// guard for user-steered URLs does not apply. Any answer but {"success": true} fails the stage.

import { MatrixError } from '../errors.js';
import type { Logger } from 'pino';
import type { OutboundHttp } from '../net/outbound-guard.js';

export interface RecaptchaSettings {
  public_key: string;
  private_key: string;
  siteverify_api: string;
}

const TIMEOUT_MS = 10_000;

export class Recaptcha {
  constructor(
    readonly settings: RecaptchaSettings,
    private readonly http: OutboundHttp,
    private readonly log: Logger,
  ) {}

  /** Resolves when Google accepts `response`; MatrixError M_UNAUTHORIZED otherwise. */
  async verify(response: unknown, ip: string | null): Promise<void> {
    if (typeof response !== 'string' || response === '' || response.length > 8192) {
      throw new MatrixError('M_UNAUTHORIZED', 'Captcha response is missing', {}, 401);
    }
    const form = new URLSearchParams({ secret: this.settings.private_key, response });
    if (ip) form.set('remoteip', ip);
    let ok = false;
    try {
      const res = await this.http.request(this.settings.siteverify_api, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
        signal: AbortSignal.timeout(TIMEOUT_MS),
        maxResponseBytes: 64 * 1024,
      });
      if (res.status === 200 && !res.truncated) {
        const body = JSON.parse(res.body.toString('utf8')) as { success?: unknown };
        ok = body !== null && typeof body === 'object' && body.success === true;
      }
    } catch (err) {
      this.log.warn({ err }, 'reCAPTCHA siteverify request failed');
      throw new MatrixError('M_UNKNOWN', 'Could not check the captcha', {}, 502);
    }
    if (!ok) throw new MatrixError('M_UNAUTHORIZED', 'Captcha authentication failed', {}, 401);
  }
}
