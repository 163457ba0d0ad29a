// The part of E2eeStore each backend serves from two smaller stores of its own: key material
// (device keys, one-time and fallback keys, cross-signing) and room key backup. Written once
// here, so a backend's E2eeStore holds only what it implements itself (device-list changes,
// to-device messages, device deletion).

import type { JsonObject, JsonValue } from '../protocol/types.js';
import type { BackupVersion, ClaimedKey, CrossSigningKeys, E2eeStore, OneTimeKeyInput, RoomKeyRecord, SignatureInput } from './types.js';

export type E2eeKeyMaterialStore = Pick<
  E2eeStore,
  | 'setDeviceKeys'
  | 'getDeviceKeys'
  | 'addOneTimeKeys'
  | 'countOneTimeKeys'
  | 'claimOneTimeKey'
  | 'setFallbackKey'
  | 'getUnusedFallbackKeyTypes'
  | 'getCrossSigningKeys'
  | 'setCrossSigningKeys'
  | 'addSignatures'
  | 'getSignatures'
>;

export type E2eeBackupStore = Pick<
  E2eeStore,
  'createBackupVersion' | 'getBackupVersion' | 'updateBackupVersion' | 'deleteBackupVersion' | 'putRoomKeys' | 'getRoomKeys' | 'deleteRoomKeys'
>;

export abstract class E2eeDelegation<K extends E2eeKeyMaterialStore, B extends E2eeBackupStore> implements E2eeKeyMaterialStore, E2eeBackupStore {
  constructor(
    protected readonly keys: K,
    protected readonly backup: B,
  ) {}

  setDeviceKeys(userId: string, deviceId: string, keys: JsonObject): Promise<'stored' | 'replaced' | 'unchanged'> {
    return this.keys.setDeviceKeys(userId, deviceId, keys);
  }
  getDeviceKeys(userIds: string[]): Promise<Map<string, Map<string, JsonObject>>> {
    return this.keys.getDeviceKeys(userIds);
  }
  addOneTimeKeys(userId: string, deviceId: string, keys: OneTimeKeyInput[]): Promise<void> {
    return this.keys.addOneTimeKeys(userId, deviceId, keys);
  }
  countOneTimeKeys(userId: string, deviceId: string): Promise<Record<string, number>> {
    return this.keys.countOneTimeKeys(userId, deviceId);
  }
  claimOneTimeKey(userId: string, deviceId: string, algorithm: string): Promise<ClaimedKey | null> {
    return this.keys.claimOneTimeKey(userId, deviceId, algorithm);
  }
  setFallbackKey(userId: string, deviceId: string, algorithm: string, keyId: string, key: JsonValue): Promise<void> {
    return this.keys.setFallbackKey(userId, deviceId, algorithm, keyId, key);
  }
  getUnusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]> {
    return this.keys.getUnusedFallbackKeyTypes(userId, deviceId);
  }
  getCrossSigningKeys(userId: string): Promise<CrossSigningKeys> {
    return this.keys.getCrossSigningKeys(userId);
  }
  setCrossSigningKeys(userId: string, keys: CrossSigningKeys): Promise<void> {
    return this.keys.setCrossSigningKeys(userId, keys);
  }
  addSignatures(signatures: SignatureInput[]): Promise<void> {
    return this.keys.addSignatures(signatures);
  }
  getSignatures(targetUserIds: string[]): Promise<SignatureInput[]> {
    return this.keys.getSignatures(targetUserIds);
  }

  createBackupVersion(userId: string, algorithm: string, authData: JsonObject): Promise<string> {
    return this.backup.createBackupVersion(userId, algorithm, authData);
  }
  getBackupVersion(userId: string, version?: string): Promise<BackupVersion | null> {
    return this.backup.getBackupVersion(userId, version);
  }
  updateBackupVersion(userId: string, version: string, algorithm: string, authData: JsonObject): Promise<boolean> {
    return this.backup.updateBackupVersion(userId, version, algorithm, authData);
  }
  deleteBackupVersion(userId: string, version: string): Promise<boolean> {
    return this.backup.deleteBackupVersion(userId, version);
  }
  putRoomKeys(userId: string, version: string, keys: RoomKeyRecord[]): Promise<{ etag: string; count: number }> {
    return this.backup.putRoomKeys(userId, version, keys);
  }
  getRoomKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<RoomKeyRecord[]> {
    return this.backup.getRoomKeys(userId, version, roomId, sessionId);
  }
  deleteRoomKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<{ etag: string; count: number }> {
    return this.backup.deleteRoomKeys(userId, version, roomId, sessionId);
  }
}
