// Registration through user-interactive auth (spec "Account registration and management").
//
// Invariants:
// - A registration UIA session remembers the parameters of the request that began it (username,
//   device, display name, inhibit_login) and a hash of its password, never the password itself.
//   A continuing request that carries only `auth` is served with those; one that carries
//   parameters replaces them (the password hash only when it brings a new password).
// - A session creates at most one account. Once it has, retrying it (with any body) answers for
//   that same account: a fresh login for it, never M_USER_IN_USE and never a second user.
// - Concurrent completions of one session in this process wait for the first one's account. The
//   session data is serialised into the UIA store (Redis in a cluster), so the in-flight creation
//   promise lives beside it in a process-local map keyed by session ID.
// - With email on (src/threepid), a flow of the m.login.email.identity stage is offered; the
//   address its session validated is kept in the UIA session and put on the account created.

import { randomBytes } from 'node:crypto';
import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import type { AccountService, LoginResult } from './account-service.js';
import { hashPassword } from './credentials.js';
import type { UiaRequest } from './uia.js';
import type { Logger } from 'pino';
import type { ValidatedThreepid } from '../threepid/validation.js';

export interface RegistrationRequest {
  username?: string;
  password?: string;
  device_id?: string;
  initial_device_display_name?: string;
  inhibit_login?: boolean;
  /** Upgrading a guest account (spec "Guest Access"): the guest's access token. */
  guest_access_token?: string;
  auth?: JsonObject;
}

interface SessionParams {
  username?: string;
  deviceId?: string;
  displayName?: string;
  inhibitLogin: boolean;
  passwordHash?: string;
  /** The guest account this registration upgrades instead of creating one. */
  guestUserId?: string;
  /** Set once this session has created its account. */
  userId?: string;
  /** The address an m.login.email.identity stage validated, for the account once created. */
  threepid?: ValidatedThreepid;
}

/** The email stage, when email is on (src/threepid). */
export interface RegistrationThreepids {
  /** The address a stage's threepid_creds prove; throws (failing the stage) if none or in use. */
  validate(auth: JsonObject): Promise<ValidatedThreepid>;
  /** Puts the address on the new account. */
  attach(userId: string, threepid: ValidatedThreepid): Promise<void>;
  /** The email flow is the only one (registration.require_email). */
  required: boolean;
}

/** How long a finished creation stays in the process-local map: as long as a UIA session lives. */
const CREATED_TTL_MS = 10 * 60_000;

const PARAM_KEYS = ['username', 'password', 'device_id', 'initial_device_display_name', 'inhibit_login', 'guest_access_token'] as const;

export type RegistrationResult = LoginResult | { user_id: string; home_server: string };

export class Registration {
  /** Account creations in flight (or just finished) in this process, by UIA session ID. */
  private readonly creating = new Map<string, Promise<string>>();

  constructor(
    private readonly accounts: AccountService,
    private readonly serverName: string,
    /**
     * reCAPTCHA (recaptcha.*): its public key goes into the challenge's params; `required` puts
     * m.login.recaptcha first in every flow, otherwise it may be completed but is not needed.
     */
    private readonly captcha: { publicKey: string; required: boolean } | null = null,
    private readonly threepids: RegistrationThreepids | null = null,
    private readonly logger?: Logger,
  ) {}

  /** The flows offered: the account policy's, with email on one with the email stage, a required captcha first in each. */
  flows(): string[][] {
    const base = this.accounts.registrationFlows();
    let flows = base;
    if (this.threepids) {
      // A required registration token stays required: the email flow adds to it.
      const email = base[0]!.includes('m.login.registration_token') ? ['m.login.registration_token', 'm.login.email.identity'] : ['m.login.email.identity'];
      flows = this.threepids.required ? [email] : [...base, email];
    }
    return this.captcha?.required ? flows.map((f) => ['m.login.recaptcha', ...f]) : flows;
  }

  /**
   * Runs one /register request of a UIA flow. `verify` checks a stage's auth dict; the request
   * identity (`request`) binds the session.
   */
  async register(
    req: RegistrationRequest,
    request: UiaRequest,
    ip: string | null,
    verify: (stage: string, auth: JsonObject) => Promise<boolean>,
  ): Promise<RegistrationResult> {
    const sessionId = typeof req.auth?.session === 'string' ? req.auth.session : undefined;
    const prior = (await this.accounts.uia.dataOf(sessionId)) as SessionParams | undefined;
    const carriesParams = PARAM_KEYS.some((k) => req[k] !== undefined);
    let params: SessionParams;
    if (prior !== undefined && (prior.userId !== undefined || (sessionId !== undefined && this.creating.has(sessionId)))) {
      params = prior;
    } else {
      params = carriesParams || !prior ? this.fromRequest(req, prior) : prior;
      if (req.guest_access_token !== undefined) params.guestUserId = await this.guestToUpgrade(req.guest_access_token, params.username);
      // Check the username before UIA so clients learn about a taken name up front, as Synapse does.
      else if (params.username !== undefined) await this.accounts.isAvailable(params.username);
      // Hashing is the slow part; only a request that brings a password pays for it.
      if (req.password !== undefined) params.passwordHash = await hashPassword(req.password);
    }
    const id = await this.accounts.uia.check(
      'register',
      // Bound to method and path only: the stages prove that a person registers, not who, and a
      // continuing request may legitimately carry other parameters (or none).
      { ...request, body: {} },
      req.auth,
      this.flows(),
      async (stage, auth) => {
        if (stage !== 'm.login.email.identity' || !this.threepids) return verify(stage, auth);
        // Kept in the session with the parameters: check() saves them once the stage completes.
        params.threepid = await this.threepids.validate(auth);
        return true;
      },
      // Parameters only for stages in a flow, as Synapse: an optional captcha needs no key.
      this.captcha?.required ? { 'm.login.recaptcha': { public_key: this.captcha.publicKey } } : {},
      { ...(this.captcha && !this.captcha.required ? { extraStages: ['m.login.recaptcha'] } : {}), keepCompleted: true, update: (data) => ((data as SessionParams | undefined)?.userId !== undefined ? data : params) },
    );
    const current = ((await this.accounts.uia.dataOf(id)) as SessionParams | undefined) ?? params;
    const userId = await this.accountFor(id, current);
    if (current.inhibitLogin) return { user_id: userId, home_server: this.serverName };
    return this.accounts.login(userId, current.deviceId, current.displayName ?? null, ip);
  }

  /** The guest a guest_access_token names; it may only upgrade itself (username = its localpart). */
  private async guestToUpgrade(token: string, username: string | undefined): Promise<string> {
    const guest = await this.accounts.guestOf(token);
    if (!guest) throw new MatrixError('M_FORBIDDEN', 'guest_access_token is not a guest account\'s access token');
    if (username === undefined || this.accounts.userIdFor(username) !== guest) {
      throw new MatrixError('M_FORBIDDEN', 'A guest may only upgrade its own account: username must be its localpart');
    }
    return guest;
  }

  private fromRequest(req: RegistrationRequest, prior: SessionParams | undefined): SessionParams {
    return {
      username: req.username?.toLowerCase(),
      deviceId: req.device_id,
      displayName: req.initial_device_display_name,
      inhibitLogin: req.inhibit_login ?? false,
      passwordHash: prior?.passwordHash,
      ...(prior?.threepid ? { threepid: prior.threepid } : {}),
    };
  }

  private async accountFor(sessionId: string, params: SessionParams): Promise<string> {
    if (params.userId !== undefined) return params.userId;
    const inFlight = this.creating.get(sessionId);
    if (inFlight) return inFlight;
    if (params.passwordHash === undefined) throw new MatrixError('M_MISSING_PARAM', 'password: required');
    const hash = params.passwordHash;
    const guest = params.guestUserId;
    // Set before any await, so a concurrent completion of this session finds it.
    const creating = (async () => {
      const userId = guest
        ? await this.accounts.upgradeGuest(guest, hash).then(() => guest)
        : await this.accounts.createAccountWithHash(params.username ?? randomBytes(6).toString('hex'), hash);
      if (params.threepid && this.threepids) {
        // The account exists by now: an address taken meanwhile by another account is left off
        // it rather than failing a registration that cannot be undone.
        await this.threepids.attach(userId, params.threepid).catch((err: unknown) => this.logger?.warn({ err, userId }, 'could not add the registration email to the new account'));
      }
      await this.accounts.uia.setData(sessionId, { ...params, userId });
      return userId;
    })();
    this.creating.set(sessionId, creating);
    try {
      const userId = await creating;
      // Kept a while after success: a request that read the session data before it recorded the
      // user must still find this account rather than create another.
      forgetLater(this.creating, sessionId);
      return userId;
    } catch (err) {
      if (this.creating.get(sessionId) === creating) this.creating.delete(sessionId);
      throw err;
    }
  }
}

/**
 * Drops the session's entry after CREATED_TTL_MS. Module-level, so the timer holds only the map
 * (a closure in a method would hold `this`, and with it the whole app, for ten minutes after a
 * stop: tests start hundreds of servers in one process).
 */
function forgetLater(creating: Map<string, Promise<string>>, sessionId: string): void {
  setTimeout(() => creating.delete(sessionId), CREATED_TTL_MS).unref();
}
