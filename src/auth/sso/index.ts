// Composition of single sign-on and the captcha stage, from config: login tokens always (in the
// shared state, so a token issued by one process is redeemed by any), CAS and reCAPTCHA only when
// enabled. Their outbound requests go to operator-chosen URLs (cas.server_url,
// recaptcha.siteverify_api) through a client of their own with no IP-range refusals (see cas.ts);
// user-steered URLs keep the guarded client.

import type { Logger } from 'pino';
import type { HearthConfig } from '../../config/schema.js';
import type { SharedState } from '../../cluster/shared-state.js';
import { createOutboundHttp, OutboundGuard, type OutboundHttp } from '../../net/outbound-guard.js';
import type { AccountService } from '../../users/account-service.js';
import { Recaptcha } from '../recaptcha.js';
import { CasService } from './cas.js';
import { LoginTokens } from './login-tokens.js';

export interface SsoServices {
  loginTokens: LoginTokens;
  cas: CasService | null;
  recaptcha: Recaptcha | null;
  close(): Promise<void>;
}

export function createSsoServices(
  config: Pick<HearthConfig, 'cas' | 'recaptcha'>,
  deps: { accounts: AccountService; shared: SharedState; logger: Logger; baseUrl: () => string; now?: () => number; http?: OutboundHttp },
): SsoServices {
  const loginTokens = new LoginTokens(deps.shared.map('login-token'), deps.now);
  const needsHttp = config.cas.enabled || config.recaptcha.enabled;
  const http = needsHttp ? (deps.http ?? createOutboundHttp(new OutboundGuard({ ip_range_blacklist: [], ip_range_whitelist: [] }))) : null;
  const cas =
    config.cas.enabled && config.cas.server_url !== null && http
      ? new CasService({ ...config.cas, server_url: config.cas.server_url }, { http, accounts: deps.accounts, loginTokens, baseUrl: deps.baseUrl })
      : null;
  const { recaptcha: rc } = config;
  const recaptcha =
    rc.enabled && rc.public_key !== null && rc.private_key !== null && http
      ? new Recaptcha({ public_key: rc.public_key, private_key: rc.private_key, siteverify_api: rc.siteverify_api }, http, deps.logger)
      : null;
  return {
    loginTokens,
    cas,
    recaptcha,
    async close() {
      if (http && !deps.http) await http.close();
    },
  };
}
