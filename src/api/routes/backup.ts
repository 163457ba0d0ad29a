// Server-side room key backup: /room_keys/version[/{version}] and /room_keys/keys[/{roomId}[/{sessionId}]].

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import type { Ctx } from '../middleware.js';
import { param, queryString, type ClientRoutes, valid } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import type { RoomKeyData, RoomKeyRecord } from '../../store/e2ee-types.js';
import { nestRoomKeys, type KeyBackupService } from '../../e2ee/key-backup.js';

const versionSchema = z
  .object({
    algorithm: z.string().min(1).max(255),
    auth_data: z.record(z.string(), z.unknown()),
    version: z.string().optional(),
  })
  .passthrough();

const keyData = z
  .object({
    first_message_index: z.number().int().min(0),
    forwarded_count: z.number().int().min(0),
    is_verified: z.boolean(),
    session_data: z.record(z.string(), z.unknown()),
  })
  .passthrough();
const sessions = z.record(z.string().min(1).max(255), keyData);
const roomSchema = z.object({ sessions }).passthrough();
const allSchema = z.object({ rooms: z.record(z.string().min(1).max(255), roomSchema) }).passthrough();

type KeyData = z.infer<typeof keyData>;
const toData = (d: KeyData): RoomKeyData => ({
  first_message_index: d.first_message_index,
  forwarded_count: d.forwarded_count,
  is_verified: d.is_verified,
  session_data: d.session_data as JsonObject,
});

function version(ctx: Ctx): string {
  const v = queryString(ctx, 'version');
  if (!v) throw new MatrixError('M_MISSING_PARAM', 'version: required');
  return v;
}

export function backupRoutes(r: ClientRoutes, s: { keyBackup: KeyBackupService }): void {
  const b = s.keyBackup;

  r.authed('post', '/room_keys/version', async (ctx, auth) => {
    const req = valid(ctx, versionSchema);
    ctx.body = { version: await b.create(auth.userId, req.algorithm, req.auth_data as JsonObject) };
  }, { schema: versionSchema });
  r.authed('get', '/room_keys/version', async (ctx, auth) => {
    ctx.body = await b.info(auth.userId);
  });
  r.authed('get', '/room_keys/version/:version', async (ctx, auth) => {
    ctx.body = await b.info(auth.userId, param(ctx, 'version'));
  });
  r.authed('put', '/room_keys/version/:version', async (ctx, auth) => {
    const req = valid(ctx, versionSchema);
    await b.update(auth.userId, param(ctx, 'version'), req.algorithm, req.auth_data as JsonObject, req.version);
    ctx.body = {};
  }, { schema: versionSchema });
  r.authed('delete', '/room_keys/version/:version', async (ctx, auth) => {
    await b.delete(auth.userId, param(ctx, 'version'));
    ctx.body = {};
  });

  r.authed('put', '/room_keys/keys', async (ctx, auth) => {
    const req = valid(ctx, allSchema);
    const records: RoomKeyRecord[] = [];
    for (const [roomId, room] of Object.entries(req.rooms)) {
      for (const [sessionId, d] of Object.entries(room.sessions)) records.push({ roomId, sessionId, data: toData(d) });
    }
    ctx.body = await b.put(auth.userId, version(ctx), records);
  }, { schema: allSchema });
  r.authed('put', '/room_keys/keys/:roomId', async (ctx, auth) => {
    const req = valid(ctx, roomSchema);
    const roomId = param(ctx, 'roomId');
    const records = Object.entries(req.sessions).map(([sessionId, d]) => ({ roomId, sessionId, data: toData(d) }));
    ctx.body = await b.put(auth.userId, version(ctx), records);
  }, { schema: roomSchema });
  r.authed('put', '/room_keys/keys/:roomId/:sessionId', async (ctx, auth) => {
    const d = valid(ctx, keyData);
    ctx.body = await b.put(auth.userId, version(ctx), [{ roomId: param(ctx, 'roomId'), sessionId: param(ctx, 'sessionId'), data: toData(d) }]);
  }, { schema: keyData });

  r.authed('get', '/room_keys/keys', async (ctx, auth) => {
    ctx.body = { rooms: nestRoomKeys(await b.get(auth.userId, version(ctx))) };
  });
  r.authed('get', '/room_keys/keys/:roomId', async (ctx, auth) => {
    const roomId = param(ctx, 'roomId');
    ctx.body = nestRoomKeys(await b.get(auth.userId, version(ctx), roomId))[roomId] ?? { sessions: {} };
  });
  r.authed('get', '/room_keys/keys/:roomId/:sessionId', async (ctx, auth) => {
    const [found] = await b.get(auth.userId, version(ctx), param(ctx, 'roomId'), param(ctx, 'sessionId'));
    if (!found) throw new MatrixError('M_NOT_FOUND', 'Key not found');
    ctx.body = found.data;
  });

  r.authed('delete', '/room_keys/keys', async (ctx, auth) => {
    ctx.body = await b.remove(auth.userId, version(ctx));
  });
  r.authed('delete', '/room_keys/keys/:roomId', async (ctx, auth) => {
    ctx.body = await b.remove(auth.userId, version(ctx), param(ctx, 'roomId'));
  });
  r.authed('delete', '/room_keys/keys/:roomId/:sessionId', async (ctx, auth) => {
    ctx.body = await b.remove(auth.userId, version(ctx), param(ctx, 'roomId'), param(ctx, 'sessionId'));
  });
}
