// Server-side room key backup (spec "Server-side key backups"). The session data is encrypted
// by the client; Hearth only enforces versioning and the store keeps the best copy per session.

import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import type { BackupVersion, E2eeStore, RoomKeyData, RoomKeyRecord } from '../store/e2ee-types.js';
import { dict } from '../protocol/canonical-json.js';

const unknownVersion = (): MatrixError => new MatrixError('M_NOT_FOUND', 'Unknown backup version');

/**
 * The backup algorithms the spec defines. Synapse stores any string here; Hearth refuses others
 * (400 M_INVALID_PARAM, Synapse's code for a bad algorithm on update) so a backup version always
 * names a format clients can read.
 */
export const KNOWN_BACKUP_ALGORITHMS: ReadonlySet<string> = new Set(['m.megolm_backup.v1.curve25519-aes-sha2']);

function checkAlgorithm(algorithm: string): void {
  if (!KNOWN_BACKUP_ALGORITHMS.has(algorithm)) {
    throw new MatrixError('M_INVALID_PARAM', `Unsupported backup algorithm; supported: ${[...KNOWN_BACKUP_ALGORITHMS].join(', ')}`);
  }
}

export class KeyBackupService {
  constructor(private readonly e2ee: E2eeStore) {}

  async create(userId: string, algorithm: string, authData: JsonObject): Promise<string> {
    checkAlgorithm(algorithm);
    return this.e2ee.createBackupVersion(userId, algorithm, authData);
  }

  /** The given version, or the latest; 404 M_NOT_FOUND when there is none. */
  async info(userId: string, version?: string): Promise<JsonObject> {
    const v = await this.e2ee.getBackupVersion(userId, version);
    if (!v) throw version === undefined ? new MatrixError('M_NOT_FOUND', 'No current backup version') : unknownVersion();
    return describe(v);
  }

  async update(userId: string, version: string, algorithm: string, authData: JsonObject, bodyVersion?: string): Promise<void> {
    if (bodyVersion !== undefined && bodyVersion !== version) throw new MatrixError('M_INVALID_PARAM', 'version in body does not match the path');
    checkAlgorithm(algorithm);
    const v = await this.e2ee.getBackupVersion(userId, version);
    if (!v) throw unknownVersion();
    if (v.algorithm !== algorithm) throw new MatrixError('M_INVALID_PARAM', 'Algorithm does not match');
    if (!(await this.e2ee.updateBackupVersion(userId, version, algorithm, authData))) throw unknownVersion();
  }

  async delete(userId: string, version: string): Promise<void> {
    if (!(await this.e2ee.deleteBackupVersion(userId, version))) throw unknownVersion();
  }

  /** Writes go only to the current version: an older one is 403 with the current version named. */
  async put(userId: string, version: string, keys: RoomKeyRecord[]): Promise<{ etag: string; count: number }> {
    const current = await this.e2ee.getBackupVersion(userId);
    if (!current) throw unknownVersion();
    if (current.version !== version) {
      throw new MatrixError('M_WRONG_ROOM_KEYS_VERSION', 'Wrong backup version', { current_version: current.version });
    }
    return this.e2ee.putRoomKeys(userId, version, keys);
  }

  async get(userId: string, version: string, roomId?: string, sessionId?: string): Promise<RoomKeyRecord[]> {
    await this.existing(userId, version);
    return this.e2ee.getRoomKeys(userId, version, roomId, sessionId);
  }

  async remove(userId: string, version: string, roomId?: string, sessionId?: string): Promise<{ etag: string; count: number }> {
    await this.existing(userId, version);
    return this.e2ee.deleteRoomKeys(userId, version, roomId, sessionId);
  }

  private async existing(userId: string, version: string): Promise<BackupVersion> {
    const v = await this.e2ee.getBackupVersion(userId, version);
    if (!v) throw unknownVersion();
    return v;
  }
}

function describe(v: BackupVersion): JsonObject {
  return { algorithm: v.algorithm, auth_data: v.authData, count: v.count, etag: v.etag, version: v.version };
}

/** Groups records as the API nests them: {rooms: {roomId: {sessions: {sessionId: data}}}}. */
export function nestRoomKeys(records: RoomKeyRecord[]): Record<string, { sessions: Record<string, RoomKeyData> }> {
  const rooms: Record<string, { sessions: Record<string, RoomKeyData> }> = dict();
  for (const r of records) (rooms[r.roomId] ??= { sessions: dict() }).sessions[r.sessionId] = r.data;
  return rooms;
}
