// Composition of email on accounts (src/app.ts calls this): the SMTP mailer and validation
// sessions when `email.enabled`, and the account addresses (listed, removed, used for login)
// either way, so that turning email off keeps addresses readable and removable.

import type { Logger } from 'pino';
import type { HearthConfig } from '../config/schema.js';
import type { ThreepidStore } from '../store/threepid-types.js';
import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import type { RegistrationThreepids } from '../users/registration.js';
import { AccountThreepids } from './account-threepids.js';
import { createSmtpMailer, type Mailer } from './mailer.js';
import { EmailValidation } from './validation.js';

export interface ThreepidServices {
  /** Null when email is off. */
  validation: EmailValidation | null;
  accounts: AccountThreepids;
  close(): void;
}

export function createThreepids(d: {
  config: Pick<HearthConfig, 'email' | 'public_baseurl'>;
  store: { threepids: ThreepidStore };
  logger: Logger;
  /** Replaces the SMTP mailer (tests). */
  mailer?: Mailer;
  now?: () => number;
}): ThreepidServices {
  const e = d.config.email;
  const mailer = e.enabled ? (d.mailer ?? createSmtpMailer(e)) : null;
  const validation = mailer
    ? new EmailValidation({
        store: d.store,
        mailer,
        publicBaseUrl: d.config.public_baseurl,
        appName: e.app_name,
        tokenLifetimeMs: e.validation_token_lifetime_ms,
        logger: d.logger,
        ...(d.now ? { now: d.now } : {}),
      })
    : null;
  const accounts = new AccountThreepids({ store: d.store, validation, ...(d.now ? { now: d.now } : {}) });
  return { validation, accounts, close: () => mailer?.close() };
}

/** Registration's m.login.email.identity stage (src/users/registration.ts); null when email is off. */
export function registrationEmailStage(t: ThreepidServices, required: boolean): RegistrationThreepids | null {
  if (!t.validation) return null;
  return {
    validate: async (auth) => {
      const v = await t.accounts.validatedCreds(((auth.threepid_creds ?? auth.threepidCreds) ?? {}) as JsonObject);
      if ((await t.accounts.userFor(v.medium, v.address)) !== null) throw new MatrixError('M_THREEPID_IN_USE', 'Email is already in use');
      return v;
    },
    attach: (userId, v) => t.accounts.addValidated(userId, v),
    required,
  };
}
