// Accounts, logins, devices and access tokens. Only hashes of access tokens are stored.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { MatrixError } from '../errors.js';
import type { AuthInfo } from './auth-info.js';
import { isValidLocalpartForRegistration, parseUserId } from '../protocol/ids.js';
import type { JsonObject } from '../protocol/types.js';
import type { DeviceRecord, Store } from '../store/types.js';
import { StoreConflictError } from '../store/types.js';
import { generateAccessToken, generateDeviceId, hashAccessToken, hashPassword, verifyPassword } from './credentials.js';
import { UiaSessions, UiaWrongUserError, type UiaRequest } from './uia.js';
import { LocalExpiringMap, type ExpiringMap } from '../cluster/shared-state.js';
import type { AccessTokenCache } from './token-cache.js';

export interface RegistrationPolicy {
  enabled: boolean;
  token: string | null;
}

/** As Synapse: long enough to hand to an integration manager, short enough to be worthless later. */
const OPENID_TOKEN_LIFETIME_MS = 3600_000;

export interface LoginResult {
  user_id: string;
  access_token: string;
  device_id: string;
  home_server: string;
  well_known?: JsonObject;
}

export class AccountService {
  readonly uia: UiaSessions;

  constructor(
    private readonly store: Store,
    private readonly serverName: string,
    private readonly registration: RegistrationPolicy,
    private readonly now: () => number = Date.now,
    /**
     * Cleans up what hangs off a device elsewhere (its keys, pending to-device messages) and
     * records the user's device-list change.
     */
    private readonly onDeviceDeleted: (userId: string, deviceId: string) => Promise<void> = async () => undefined,
    /**
     * Records a change of the user's device list that is not a deletion (a new device, a renamed
     * one), so device_lists.changed and /keys/changes report it to the user and to room-mates.
     */
    private readonly onDeviceListChanged: (userId: string) => Promise<void> = async () => undefined,
    /** Where UIA sessions live (shared between processes in a cluster). */
    uiaSessions: ExpiringMap = new LocalExpiringMap(now),
    /** The application service whose exclusive namespace holds a user ID, if any (src/appservice). */
    private readonly exclusiveOwner: (userId: string) => string | null = () => null,
    /** Tokens already checked (token-cache.ts); without it every request reads the store. */
    private readonly tokens?: AccessTokenCache,
    /** Single sign-on is on: users may answer UIA with m.login.sso (src/auth/sso). */
    private readonly ssoUia = false,
  ) {
    this.uia = new UiaSessions(uiaSessions, now);
  }

  listDevices(userId: string): Promise<DeviceRecord[]> {
    return this.store.devices.listDevices(userId);
  }

  getDevice(userId: string, deviceId: string): Promise<DeviceRecord | null> {
    return this.store.devices.getDevice(userId, deviceId);
  }

  /** Records when and from where a device was last seen (GET /devices, /admin/whois). */
  touchDevice(userId: string, deviceId: string, ts: number, ip: string | null, userAgent: string | null): Promise<void> {
    return this.store.devices.touchDevice(userId, deviceId, ts, ip, userAgent);
  }

  async isAdmin(userId: string): Promise<boolean> {
    return (await this.store.accounts.getUser(userId))?.admin === true;
  }

  /** Whether the account exists and is not deactivated. */
  async isActive(userId: string): Promise<boolean> {
    const u = await this.store.accounts.getUser(userId);
    return u !== null && !u.deactivated;
  }

  /** Whether the account exists (deactivated ones included). */
  async exists(userId: string): Promise<boolean> {
    return (await this.store.accounts.getUser(userId)) !== null;
  }

  /** The one way devices are removed: the device, its tokens, and (via the hook) its keys. */
  async deleteDevice(userId: string, deviceId: string): Promise<boolean> {
    let existed: boolean;
    try {
      existed = await this.store.devices.deleteDevice(userId, deviceId);
    } finally {
      // Dropped whatever the outcome: the tokens may be gone even if the call failed late.
      this.tokens?.dropUsers([userId]);
    }
    if (existed) await this.onDeviceDeleted(userId, deviceId);
    return existed;
  }

  /** Renames a device (false when the user has no such device); room-mates learn of it. */
  async renameDevice(userId: string, deviceId: string, displayName: string | null): Promise<boolean> {
    const ok = await this.store.devices.setDeviceDisplayName(userId, deviceId, displayName);
    if (ok) await this.onDeviceListChanged(userId);
    return ok;
  }

  userIdFor(localpart: string): string {
    return `@${localpart}:${this.serverName}`;
  }

  registrationFlows(): string[][] {
    return this.registration.token ? [['m.login.registration_token']] : [['m.login.dummy']];
  }

  /** `appServiceId`: the AS registering it, which may claim IDs in its own exclusive namespaces. */
  async isAvailable(localpart: string, appServiceId?: string): Promise<void> {
    if (!isValidLocalpartForRegistration(localpart)) throw new MatrixError('M_INVALID_USERNAME', 'Invalid username');
    const userId = this.userIdFor(localpart);
    if (userId.length > 255) throw new MatrixError('M_INVALID_USERNAME', 'User ID too long');
    const owner = this.exclusiveOwner(userId);
    if (owner !== null && owner !== appServiceId) throw new MatrixError('M_EXCLUSIVE', 'User ID is reserved by an application service');
    if (await this.store.accounts.getUser(userId)) throw new MatrixError('M_USER_IN_USE', 'User ID already taken');
  }

  /** Creates an account (registration policy checks are the caller's, see /register). */
  async createAccount(localpart: string, password: string | null, admin = false, displayname?: string): Promise<string> {
    await this.isAvailable(localpart);
    return this.createAccountWithHash(localpart, password === null ? null : await hashPassword(password), admin, displayname);
  }

  /** As createAccount, with the password already hashed (registration hashes it up front). */
  async createAccountWithHash(localpart: string, passwordHash: string | null, admin = false, displayname?: string, appServiceId?: string): Promise<string> {
    await this.isAvailable(localpart, appServiceId);
    const userId = this.userIdFor(localpart);
    try {
      await this.store.accounts.createUser({ userId, passwordHash, admin, createdTs: this.now(), displayname: displayname ?? localpart });
    } catch (err) {
      if (err instanceof StoreConflictError) throw new MatrixError('M_USER_IN_USE', 'User ID already taken');
      throw err;
    }
    return userId;
  }

  /**
   * Creates a guest account (spec "Guest Access") and logs it in: a random `guest-` localpart
   * (also its display name), no password.
   */
  async registerGuest(deviceId: string | undefined, displayName: string | null, ip: string | null): Promise<LoginResult> {
    for (let attempt = 0; ; attempt++) {
      const localpart = `guest-${randomBytes(8).toString('hex')}`;
      const userId = this.userIdFor(localpart);
      try {
        // The localpart as display name, as for other accounts: clients read one from the start.
        await this.store.accounts.createUser({ userId, passwordHash: null, admin: false, createdTs: this.now(), displayname: localpart, isGuest: true });
      } catch (err) {
        // 64 random bits: a clash is a freak event, two in a row a bug.
        if (err instanceof StoreConflictError && attempt === 0) continue;
        throw err;
      }
      return this.login(userId, deviceId, displayName, ip);
    }
  }

  /** The guest behind a guest access token (for upgrading to a full account), or null. */
  async guestOf(token: string): Promise<string | null> {
    const owner = await this.store.devices.lookupAccessToken(hashAccessToken(token));
    return owner?.isGuest ? owner.userId : null;
  }

  /** Makes a guest account a full one with this password hash; M_FORBIDDEN if no longer a guest. */
  async upgradeGuest(userId: string, passwordHash: string): Promise<void> {
    if (!(await this.store.accounts.upgradeGuest(userId, passwordHash))) throw new MatrixError('M_FORBIDDEN', 'Not a guest account');
  }

  /**
   * Issues an OpenID token (spec "OpenID"): a bearer token a third party (an integration
   * manager, a widget) exchanges at /openid/userinfo for the user's ID and nothing else.
   */
  async issueOpenIdToken(userId: string): Promise<{ access_token: string; token_type: 'Bearer'; matrix_server_name: string; expires_in: number }> {
    const token = generateAccessToken();
    await this.store.accounts.addOpenIdToken(hashAccessToken(token), userId, this.now() + OPENID_TOKEN_LIFETIME_MS);
    return { access_token: token, token_type: 'Bearer', matrix_server_name: this.serverName, expires_in: OPENID_TOKEN_LIFETIME_MS / 1000 };
  }

  /** The user an unexpired OpenID token was issued to, or null. */
  async openIdUser(token: string): Promise<string | null> {
    return this.store.accounts.lookupOpenIdToken(hashAccessToken(token), this.now());
  }

  /** Verifies a registration-token UIA stage. */
  checkRegistrationToken(token: unknown): boolean {
    const expected = this.registration.token;
    if (!expected || typeof token !== 'string') return false;
    const a = Buffer.from(token);
    const b = Buffer.from(expected);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  async login(userId: string, deviceId: string | undefined, displayName: string | null, ip: string | null): Promise<LoginResult> {
    const device = deviceId ?? generateDeviceId();
    // initial_device_display_name is ignored for a device that already exists (spec /login).
    const known = deviceId !== undefined && (await this.store.devices.getDevice(userId, deviceId)) !== null;
    await this.store.devices.upsertDevice({ userId, deviceId: device, displayName: known ? null : displayName, ts: this.now(), ip });
    const token = generateAccessToken();
    await this.store.devices.addAccessToken(hashAccessToken(token), { userId, deviceId: device }, this.now());
    if (!known) await this.onDeviceListChanged(userId);
    return { user_id: userId, access_token: token, device_id: device, home_server: this.serverName };
  }

  /**
   * The account a single sign-on user logs in as: the existing one of that localpart (an account
   * made another way becomes theirs, as in Synapse), or a new one without a password. A
   * deactivated account is refused.
   */
  async ssoAccount(localpart: string, displayname: string | undefined): Promise<string> {
    const userId = this.userIdFor(localpart);
    for (let attempt = 0; ; attempt++) {
      const existing = await this.store.accounts.getUser(userId);
      if (existing) {
        if (existing.deactivated) throw new MatrixError('M_USER_DEACTIVATED', 'This account has been deactivated', {}, 403);
        return userId;
      }
      try {
        return await this.createAccountWithHash(localpart, null, false, displayname);
      } catch (err) {
        // Two first logins at once: the other one created it.
        if (err instanceof MatrixError && err.errcode === 'M_USER_IN_USE' && attempt === 0) continue;
        throw err;
      }
    }
  }

  /** Password login: accepts a localpart or a full MXID. Failures are indistinguishable. */
  async checkPassword(user: string, password: string): Promise<string> {
    const userId = user.startsWith('@') ? user : this.userIdFor(user.toLowerCase());
    let parsed;
    try {
      parsed = parseUserId(userId);
    } catch {
      throw new MatrixError('M_FORBIDDEN', 'Invalid username or password');
    }
    const record = parsed.serverName === this.serverName ? await this.store.accounts.getUser(userId) : null;
    if (!record || !record.passwordHash || !(await verifyPassword(password, record.passwordHash))) {
      throw new MatrixError('M_FORBIDDEN', 'Invalid username or password');
    }
    if (record.deactivated) throw new MatrixError('M_USER_DEACTIVATED', 'This account has been deactivated');
    return userId;
  }

  async authenticate(token: string): Promise<AuthInfo> {
    const tokenHash = hashAccessToken(token);
    const owner = this.tokens
      ? await this.tokens.lookup(tokenHash, (h) => this.store.devices.lookupAccessToken(h))
      : await this.store.devices.lookupAccessToken(tokenHash);
    if (!owner) throw new MatrixError('M_UNKNOWN_TOKEN', 'Unknown access token', { soft_logout: false });
    return { userId: owner.userId, deviceId: owner.deviceId, tokenHash, isGuest: owner.isGuest };
  }

  async logout(auth: AuthInfo): Promise<void> {
    await this.deleteDevice(auth.userId, auth.deviceId);
  }

  async logoutAll(userId: string): Promise<void> {
    for (const d of await this.store.devices.listDevices(userId)) await this.deleteDevice(userId, d.deviceId);
    await this.deleteTokensOf(userId);
  }

  private async deleteTokensOf(userId: string, exceptDeviceId?: string): Promise<void> {
    try {
      await this.store.devices.deleteAccessTokensForUser(userId, exceptDeviceId);
    } finally {
      this.tokens?.dropUsers([userId]);
    }
  }

  async changePassword(auth: AuthInfo, newPassword: string, logoutDevices: boolean): Promise<void> {
    await this.store.accounts.setPasswordHash(auth.userId, await hashPassword(newPassword));
    if (logoutDevices) {
      for (const d of await this.store.devices.listDevices(auth.userId)) {
        if (d.deviceId !== auth.deviceId) await this.deleteDevice(auth.userId, d.deviceId);
      }
      await this.deleteTokensOf(auth.userId, auth.deviceId);
    }
  }

  /** Password reset without a session (by email, src/threepid): optionally every device logged out. */
  async resetPassword(userId: string, newPassword: string, logoutDevices: boolean): Promise<void> {
    await this.store.accounts.setPasswordHash(userId, await hashPassword(newPassword));
    if (logoutDevices) await this.logoutAll(userId);
  }

  async deactivate(userId: string): Promise<void> {
    await this.logoutAll(userId);
    await this.store.accounts.deactivateUser(userId);
  }

  /**
   * User-interactive auth for an operation of `userId`'s: m.login.password if the account has a
   * password, m.login.sso when single sign-on is on (the SSO stage is completed by the ticket
   * endpoint, for the user the SSO login maps to; another user's login fails with 403).
   */
  async reauthenticate(purpose: string, userId: string, request: UiaRequest, auth: JsonObject | undefined): Promise<void> {
    const flows: string[][] = [];
    const hasPassword = (await this.store.accounts.getUser(userId))?.passwordHash != null;
    if (hasPassword || !this.ssoUia) flows.push(['m.login.password']);
    if (this.ssoUia) flows.push(['m.login.sso']);
    await this.uia.check(purpose, request, auth, flows, this.passwordStage(userId), {}, { user: userId });
  }

  /** UIA verifier for m.login.password, bound to the authenticated user. */
  passwordStage(userId: string) {
    return async (stage: string, auth: JsonObject): Promise<boolean> => {
      if (stage !== 'm.login.password') return false;
      const identifier = auth.identifier as JsonObject | undefined;
      const who = typeof identifier?.user === 'string' ? identifier.user : typeof auth.user === 'string' ? auth.user : userId;
      const claimed = who.startsWith('@') ? who : this.userIdFor(who.toLowerCase());
      if (claimed !== userId) throw new UiaWrongUserError();
      if (typeof auth.password !== 'string') throw new MatrixError('M_FORBIDDEN', 'Missing password');
      await this.checkPassword(userId, auth.password);
      return true;
    };
  }
}
