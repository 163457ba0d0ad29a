// Accounts, logins, devices and access tokens. Only hashes of access tokens are stored.

import { timingSafeEqual } from 'node:crypto';
import { MatrixError } from '../errors.js';
import type { AuthInfo } from '../api/middleware.js';
import { isValidLocalpartForRegistration, parseUserId } from '../protocol/ids.js';
import type { JsonObject } from '../protocol/types.js';
import type { Store } from '../store/types.js';
import { StoreConflictError } from '../store/types.js';
import { generateAccessToken, generateDeviceId, hashAccessToken, hashPassword, verifyPassword } from './credentials.js';
import { UiaSessions, UiaWrongUserError } from './uia.js';
import { LocalExpiringMap, type ExpiringMap } from '../cluster/shared-state.js';

export interface RegistrationPolicy {
  enabled: boolean;
  token: string | null;
}

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
    /** Cleans up what hangs off a device elsewhere (its keys, pending to-device messages). */
    private readonly onDeviceDeleted: (userId: string, deviceId: string) => Promise<void> = async () => undefined,
    /** Where UIA sessions live (shared between processes in a cluster). */
    uiaSessions: ExpiringMap = new LocalExpiringMap(now),
  ) {
    this.uia = new UiaSessions(uiaSessions, now);
  }

  /** The one way devices are removed: the device, its tokens, and (via the hook) its keys. */
  async deleteDevice(userId: string, deviceId: string): Promise<boolean> {
    const existed = await this.store.devices.deleteDevice(userId, deviceId);
    if (existed) await this.onDeviceDeleted(userId, deviceId);
    return existed;
  }

  userIdFor(localpart: string): string {
    return `@${localpart}:${this.serverName}`;
  }

  registrationFlows(): string[][] {
    return this.registration.token ? [['m.login.registration_token']] : [['m.login.dummy']];
  }

  async isAvailable(localpart: string): Promise<void> {
    if (!isValidLocalpartForRegistration(localpart)) throw new MatrixError('M_INVALID_USERNAME', 'Invalid username');
    const userId = this.userIdFor(localpart);
    if (userId.length > 255) throw new MatrixError('M_INVALID_USERNAME', 'User ID too long');
    if (await this.store.accounts.getUser(userId)) throw new MatrixError('M_USER_IN_USE', 'User ID already taken');
  }

  /** Creates an account (registration policy checks are the caller's, see /register). */
  async createAccount(localpart: string, password: string | null, admin = false, displayname?: string): Promise<string> {
    await this.isAvailable(localpart);
    const userId = this.userIdFor(localpart);
    try {
      await this.store.accounts.createUser({
        userId,
        passwordHash: password === null ? null : await hashPassword(password),
        admin,
        createdTs: this.now(),
        displayname: displayname ?? localpart,
      });
    } catch (err) {
      if (err instanceof StoreConflictError) throw new MatrixError('M_USER_IN_USE', 'User ID already taken');
      throw err;
    }
    return userId;
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
    return { user_id: userId, access_token: token, device_id: device, home_server: this.serverName };
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
    const owner = await this.store.devices.lookupAccessToken(tokenHash);
    if (!owner) throw new MatrixError('M_UNKNOWN_TOKEN', 'Unknown access token', { soft_logout: false });
    return { userId: owner.userId, deviceId: owner.deviceId, tokenHash };
  }

  async logout(auth: AuthInfo): Promise<void> {
    await this.deleteDevice(auth.userId, auth.deviceId);
  }

  async logoutAll(userId: string): Promise<void> {
    for (const d of await this.store.devices.listDevices(userId)) await this.deleteDevice(userId, d.deviceId);
    await this.store.devices.deleteAccessTokensForUser(userId);
  }

  async changePassword(auth: AuthInfo, newPassword: string, logoutDevices: boolean): Promise<void> {
    await this.store.accounts.setPasswordHash(auth.userId, await hashPassword(newPassword));
    if (logoutDevices) {
      for (const d of await this.store.devices.listDevices(auth.userId)) {
        if (d.deviceId !== auth.deviceId) await this.deleteDevice(auth.userId, d.deviceId);
      }
      await this.store.devices.deleteAccessTokensForUser(auth.userId, auth.deviceId);
    }
  }

  async deactivate(userId: string): Promise<void> {
    await this.logoutAll(userId);
    await this.store.accounts.deactivateUser(userId);
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
