// Storage contract for accounts, devices and access tokens.
// Same rules as src/store/types.ts, which composes it into Store: async, concurrent-safe,
// writes resolve after commit, stream positions come from the one global sequence and are
// completed before the write resolves; returned objects are the caller's.

// ---------------------------------------------------------------------------------------------
// Accounts, devices, access tokens

export interface UserRecord {
  userId: string;
  /** scrypt hash string, or null for accounts that cannot log in with a password. */
  passwordHash: string | null;
  admin: boolean;
  deactivated: boolean;
  createdTs: number;
  displayname: string | null;
  avatarUrl: string | null;
  /** A guest account (spec "Guest Access"): limited to the endpoints guests may use. */
  isGuest: boolean;
}

export interface NewUser {
  userId: string;
  passwordHash: string | null;
  admin: boolean;
  createdTs: number;
  displayname: string | null;
  /** Defaults to false. */
  isGuest?: boolean;
}

export interface DeviceRecord {
  userId: string;
  deviceId: string;
  displayName: string | null;
  lastSeenTs: number | null;
  lastSeenIp: string | null;
  lastSeenUserAgent: string | null;
}

export interface TokenOwner {
  userId: string;
  deviceId: string;
}

/** What an access token authenticates: its owner, and whether that account is a guest's. */
export interface AccessTokenInfo extends TokenOwner {
  isGuest: boolean;
}

export interface AccountStore {
  /** Throws StoreConflictError if the user ID is taken. */
  createUser(user: NewUser): Promise<void>;
  getUser(userId: string): Promise<UserRecord | null>;
  setPasswordHash(userId: string, passwordHash: string): Promise<void>;
  /** Marks the account deactivated and clears its password hash; devices/tokens are removed separately. */
  deactivateUser(userId: string): Promise<void>;
  /** Fields set to undefined are left unchanged; null clears them. */
  setProfile(userId: string, profile: { displayname?: string | null; avatarUrl?: string | null }): Promise<void>;
  countUsers(): Promise<number>;
  /** Makes a guest account a full account with this password; false if it is not a guest's. */
  upgradeGuest(userId: string, passwordHash: string): Promise<boolean>;
  /**
   * Records that the user was erased at stream position `stream`. The first erasure counts: a
   * second call leaves the recorded position unchanged. Returns the recorded position.
   */
  markErased(userId: string, stream: number): Promise<number>;
  /** The erasure position of each of `userIds` that was erased; others are absent. */
  getErasures(userIds: string[]): Promise<Map<string, number>>;

  /** Stores an OpenID token (its hash) until `expiresTs`; prunes expired ones. */
  addOpenIdToken(tokenHash: string, userId: string, expiresTs: number): Promise<void>;
  /** The user an OpenID token was issued to, if it exists and has not expired at `now`. */
  lookupOpenIdToken(tokenHash: string, now: number): Promise<string | null>;
}

export interface DeviceStore {
  /**
   * Creates the device, or keeps it when it exists: then the display name is updated if given
   * (non-null) and last-seen is updated to `ts` (and `ip`, if given).
   */
  upsertDevice(device: { userId: string; deviceId: string; displayName: string | null; ts: number; ip: string | null }): Promise<void>;
  getDevice(userId: string, deviceId: string): Promise<DeviceRecord | null>;
  listDevices(userId: string): Promise<DeviceRecord[]>;
  setDeviceDisplayName(userId: string, deviceId: string, displayName: string | null): Promise<boolean>;
  /** Deletes the device and every access token of it. Returns false if it did not exist. */
  deleteDevice(userId: string, deviceId: string): Promise<boolean>;
  /** Records last-seen information; cheap, may be coalesced by the backend. */
  touchDevice(userId: string, deviceId: string, ts: number, ip: string | null, userAgent?: string | null): Promise<void>;

  /** Stores only the hash of an access token. */
  addAccessToken(tokenHash: string, owner: TokenOwner, ts: number): Promise<void>;
  lookupAccessToken(tokenHash: string): Promise<AccessTokenInfo | null>;
  deleteAccessToken(tokenHash: string): Promise<void>;
  /** Deletes every token of the user (logout/all, deactivate, password change without logout_devices=false). */
  deleteAccessTokensForUser(userId: string, exceptDeviceId?: string): Promise<void>;
}

