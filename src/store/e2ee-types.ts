// Storage contract for end-to-end encryption support: device keys, one-time and fallback keys,
// cross-signing keys and signatures, device-list change tracking, to-device messages and room
// key backup. Hearth never sees plaintext: it stores and relays these JSON objects verbatim.
// Same rules as src/store/types.ts (async, concurrent-safe, writes resolve after commit, stream
// positions from the one global sequence, completed before the write resolves).

import type { JsonObject, JsonValue } from '../protocol/types.js';

export interface OneTimeKeyInput {
  /** e.g. "signed_curve25519" */
  algorithm: string;
  keyId: string;
  key: JsonValue;
}

export interface ClaimedKey {
  algorithm: string;
  keyId: string;
  key: JsonValue;
  /** True when no one-time key was left and the fallback key was handed out. */
  fallback: boolean;
}

export interface CrossSigningKeys {
  master?: JsonObject;
  self_signing?: JsonObject;
  user_signing?: JsonObject;
}

export interface SignatureInput {
  /** Owner of the signed key. */
  targetUserId: string;
  /** A device ID, or the unpadded base64 public key of a cross-signing key. */
  targetKeyId: string;
  signerUserId: string;
  /** e.g. "ed25519:<device or public key>" */
  signerKeyId: string;
  signature: string;
}

export interface ToDeviceInput {
  userId: string;
  /** A device ID; "*" is expanded by the caller, never stored. */
  deviceId: string;
  type: string;
  sender: string;
  content: JsonObject;
}

export interface ToDeviceMessage {
  stream: number;
  type: string;
  sender: string;
  content: JsonObject;
}

export interface BackupVersion {
  version: string;
  algorithm: string;
  authData: JsonObject;
  /** Changes whenever the keys in the backup change. */
  etag: string;
  count: number;
}

export interface RoomKeyData {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: JsonObject;
}

export interface RoomKeyRecord {
  roomId: string;
  sessionId: string;
  data: RoomKeyData;
}

export interface E2eeStore {
  // ---- device keys -------------------------------------------------------------------------
  /**
   * Stores a device's signed device_keys object: 'stored' for the device's first, 'replaced'
   * when it differs from the stored one (the new object wins, as Synapse does), 'unchanged'
   * for an identical one (key order aside; nothing written). 'stored' and 'replaced' mark the
   * user's device list changed at a new stream position; 'unchanged' spends none. Of
   * concurrent first uploads exactly one is 'stored'.
   */
  setDeviceKeys(userId: string, deviceId: string, keys: JsonObject): Promise<'stored' | 'replaced' | 'unchanged'>;
  /** Device keys of the given users (all their devices that uploaded keys). */
  getDeviceKeys(userIds: string[]): Promise<Map<string, Map<string, JsonObject>>>;

  // ---- one-time and fallback keys ----------------------------------------------------------
  /**
   * Adds one-time keys. A key ID already present (or already claimed earlier) with the same
   * content is ignored; with different content the whole call throws StoreConflictError and
   * nothing is written.
   */
  addOneTimeKeys(userId: string, deviceId: string, keys: OneTimeKeyInput[]): Promise<void>;
  /** Unclaimed one-time keys per algorithm. */
  countOneTimeKeys(userId: string, deviceId: string): Promise<Record<string, number>>;
  /**
   * Atomically claims the oldest unclaimed one-time key of the algorithm; if none, returns the
   * device's fallback key of that algorithm (marking it used, not removing it). Two concurrent
   * claims never get the same one-time key.
   */
  claimOneTimeKey(userId: string, deviceId: string, algorithm: string): Promise<ClaimedKey | null>;
  /** Replaces the device's fallback key of that algorithm (new one is unused). */
  setFallbackKey(userId: string, deviceId: string, algorithm: string, keyId: string, key: JsonValue): Promise<void>;
  /** Algorithms with an unused fallback key. */
  getUnusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]>;

  // ---- cross-signing -----------------------------------------------------------------------
  getCrossSigningKeys(userId: string): Promise<CrossSigningKeys>;
  /**
   * Sets the given keys (others unchanged) and marks the user's device list changed: for the
   * owner alone when the only key that changed is the user-signing key (see getDeviceListChanges).
   */
  setCrossSigningKeys(userId: string, keys: CrossSigningKeys): Promise<void>;
  /** Stores signatures (replacing one by the same signer key on the same target); marks each target user changed. */
  addSignatures(signatures: SignatureInput[]): Promise<void>;
  /** Signatures on the keys of the given users. */
  getSignatures(targetUserIds: string[]): Promise<SignatureInput[]>;

  // ---- device-list change stream -----------------------------------------------------------
  /** Records that a user's devices or keys changed; returns the stream position. */
  markDeviceListChanged(userId: string): Promise<number>;
  /**
   * Users (distinct) whose device lists changed in (fromExclusive, toInclusive]. A change only
   * its owner may hear of (setCrossSigningKeys with nothing but a new user-signing key) counts
   * only when that owner is `owner`.
   */
  getDeviceListChanges(fromExclusive: number, toInclusive: number, owner?: string): Promise<string[]>;

  // ---- to-device messages ------------------------------------------------------------------
  /** Queues messages; all share one stream position (returned). */
  queueToDevice(messages: ToDeviceInput[]): Promise<number>;
  /** Pending messages of a device with stream <= upTo, oldest first, at most `limit`. */
  getToDevice(userId: string, deviceId: string, upTo: number, limit: number): Promise<ToDeviceMessage[]>;
  /** Deletes the device's messages with stream <= upTo (the device acknowledged them). */
  ackToDevice(userId: string, deviceId: string, upTo: number): Promise<void>;

  /** Removes a deleted device's keys, one-time and fallback keys and pending to-device messages, and marks the list changed. */
  deleteDeviceE2ee(userId: string, deviceId: string): Promise<void>;

  // ---- room key backup ---------------------------------------------------------------------
  createBackupVersion(userId: string, algorithm: string, authData: JsonObject): Promise<string>;
  /** The given version, or the latest (non-deleted) when `version` is undefined. */
  getBackupVersion(userId: string, version?: string): Promise<BackupVersion | null>;
  /** Returns false if the version does not exist. */
  updateBackupVersion(userId: string, version: string, algorithm: string, authData: JsonObject): Promise<boolean>;
  /** Deletes the version and its keys. Returns false if it did not exist. */
  deleteBackupVersion(userId: string, version: string): Promise<boolean>;
  /**
   * Stores keys into a version. An existing session is replaced only if the new one is better:
   * verified beats unverified, then a lower first_message_index, then a lower forwarded_count.
   * Returns the version's new etag and count.
   */
  putRoomKeys(userId: string, version: string, keys: RoomKeyRecord[]): Promise<{ etag: string; count: number }>;
  getRoomKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<RoomKeyRecord[]>;
  deleteRoomKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<{ etag: string; count: number }>;
}
