// /keys/*: device keys, one-time keys, key queries and claims, device-list changes, and
// cross-signing keys and signatures.

import { z } from 'zod';
import { MatrixError } from '../../errors.js';
import { body, uiaRequest } from '../middleware.js';
import { queryString, type ApiServices, type ClientRoutes, valid } from '../routing.js';
import type { JsonObject } from '../../protocol/types.js';
import { parseToken } from '../../sync/token.js';
import type { E2eeServices } from '../../e2ee/index.js';
import { backupRoutes } from './backup.js';
import { toDeviceRoutes } from './to-device.js';

export type E2eeApiServices = Pick<ApiServices, 'e2ee' | 'accounts' | 'currentToken' | 'limits'>;

const object = z.record(z.string(), z.unknown());
const MAX_KEYS_PER_UPLOAD = 1000;
const MAX_USERS_PER_REQUEST = 1000;

const uploadSchema = z
  .object({
    device_keys: object.optional(),
    one_time_keys: object.optional(),
    fallback_keys: object.optional(),
    // The unstable name some clients still send (MSC2732).
    'org.matrix.msc2732.fallback_keys': object.optional(),
  })
  .passthrough();

const querySchema = z
  .object({
    device_keys: z.record(z.string().max(255), z.array(z.string().max(255)).max(1000)),
    timeout: z.number().int().optional(),
  })
  .passthrough();

const claimSchema = z
  .object({
    one_time_keys: z.record(z.string().max(255), z.record(z.string().max(255), z.string().min(1).max(255))),
    timeout: z.number().int().optional(),
  })
  .passthrough();

const signingUploadSchema = z
  .object({
    master_key: object.optional(),
    self_signing_key: object.optional(),
    user_signing_key: object.optional(),
    auth: object.optional(),
  })
  .passthrough();

function limitEntries(what: string, n: number, max: number): void {
  if (n > max) throw new MatrixError('M_INVALID_PARAM', `Too many ${what} (at most ${max})`);
}

/** Every end-to-end encryption route: keys, cross-signing, to-device, key backup. */
export function e2eeRoutes(r: ClientRoutes, s: E2eeApiServices): void {
  keyRoutes(r, s.e2ee, s);
  toDeviceRoutes(r, { toDevice: s.e2ee.toDevice, limits: s.limits });
  backupRoutes(r, s.e2ee);
}

type KeyRouteDeps = Pick<ApiServices, 'accounts' | 'currentToken' | 'limits'>;

function keyRoutes(r: ClientRoutes, e: E2eeServices, s: KeyRouteDeps): void {
  r.authed('post', '/keys/upload', async (ctx, auth) => {
    const req = valid(ctx, uploadSchema);
    const fallback = req.fallback_keys ?? req['org.matrix.msc2732.fallback_keys'];
    limitEntries('one-time keys', Object.keys(req.one_time_keys ?? {}).length, MAX_KEYS_PER_UPLOAD);
    limitEntries('fallback keys', Object.keys(fallback ?? {}).length, 10);
    ctx.body = await e.keys.upload(auth.userId, auth.deviceId, {
      device_keys: req.device_keys as JsonObject | undefined,
      one_time_keys: req.one_time_keys,
      fallback_keys: fallback,
    });
  }, { schema: uploadSchema });

  r.authed('post', '/keys/query', async (ctx, auth) => {
    const req = valid(ctx, querySchema);
    limitEntries('users', Object.keys(req.device_keys).length, MAX_USERS_PER_REQUEST);
    ctx.body = await e.keys.query(auth.userId, req.device_keys, req.timeout);
  }, { schema: querySchema });

  r.authed('post', '/keys/claim', async (ctx) => {
    const req = valid(ctx, claimSchema);
    const n = Object.values(req.one_time_keys).reduce((a, d) => a + Object.keys(d).length, 0);
    limitEntries('devices', n, MAX_USERS_PER_REQUEST);
    ctx.body = await e.keys.claim(req.one_time_keys, req.timeout);
  }, { schema: claimSchema });

  r.authed('get', '/keys/changes', async (ctx, auth) => {
    const fromRaw = queryString(ctx, 'from');
    if (!fromRaw) throw new MatrixError('M_MISSING_PARAM', 'from: required');
    const from = parseToken(fromRaw, 'from').stream;
    // `to` is required by the spec, but like Synapse we read up to now when it is missing.
    const toRaw = queryString(ctx, 'to');
    const now = s.currentToken().stream;
    const to = toRaw ? Math.min(parseToken(toRaw, 'to').stream, now) : now;
    ctx.body = await e.deviceLists.changes(auth.userId, from, to);
  });

  // The cross-signing uploads also answer under /unstable, where clients from before their
  // stabilisation (v1.1) still send them.
  const crossSigningVersions = ['v3', 'r0', 'unstable'];
  r.authed(
    'post',
    '/keys/device_signing/upload',
    async (ctx, auth) => {
      const req = valid(ctx, signingUploadSchema);
      await e.crossSigning.upload(auth.userId, req, async () => {
        await s.accounts.reauthenticate('device_signing:' + auth.userId, auth.userId, uiaRequest(ctx), req.auth as JsonObject | undefined);
      });
      ctx.body = {};
    },
    { versions: crossSigningVersions, schema: signingUploadSchema },
  );

  r.authed(
    'post',
    '/keys/signatures/upload',
    async (ctx, auth) => {
      const req = body(ctx);
      limitEntries('users', Object.keys(req).length, MAX_USERS_PER_REQUEST);
      ctx.body = await e.crossSigning.uploadSignatures(auth.userId, req);
    },
    crossSigningVersions,
  );
}
