// Pushers (spec "Push notifications": GET /pushers, POST /pushers/set). Only `http` pushers:
// Hearth sends no email.
//
// A gateway URL whose host is an IP literal in a refused range (outbound.ip_range_blacklist) is
// rejected here; a name is only checked when the push gateway worker connects, since its DNS
// answer can change.

import { MatrixError } from '../../errors.js';
import { body } from '../middleware.js';
import type { ApiServices, ClientRoutes } from '../routing.js';
import type { JsonObject, JsonValue } from '../../protocol/types.js';
import type { PusherRecord } from '../../store/types.js';
import type { OutboundGuard } from '../../net/outbound-guard.js';

const NOTIFY_PATH = '/_matrix/push/v1/notify';
// Pusher data is copied into every queued notification for the pusher; keep it small.
const MAX_DATA_BYTES = 8192;

type PusherRouteDeps = Pick<ApiServices, 'pushers' | 'outboundGuard' | 'now'>;

export function pusherRoutes(r: ClientRoutes, s: PusherRouteDeps): void {
  r.authed('get', '/pushers', async (ctx, auth) => {
    const pushers = await s.pushers.list(auth.userId);
    ctx.body = { pushers: pushers.map(toJson) };
  });

  r.authed('post', '/pushers/set', async (ctx, auth) => {
    const req = body(ctx);
    const missing = ['kind', 'app_id', 'pushkey'].filter((k) => req[k] === undefined);
    if (missing.length > 0) throw new MatrixError('M_MISSING_PARAM', `Missing parameters: ${missing.join(', ')}`);
    const appId = string(req, 'app_id');
    const pushkey = string(req, 'pushkey');
    if (appId.length > 64) throw new MatrixError('M_INVALID_PARAM', 'app_id must be at most 64 characters');
    if (Buffer.byteLength(pushkey) > 512) throw new MatrixError('M_INVALID_PARAM', 'pushkey must be at most 512 bytes');

    if (req.kind === null) {
      await s.pushers.remove(auth.userId, appId, pushkey);
      ctx.body = {};
      return;
    }
    const stillMissing = ['app_display_name', 'device_display_name', 'lang', 'data'].filter((k) => req[k] === undefined);
    if (stillMissing.length > 0) throw new MatrixError('M_MISSING_PARAM', `Missing parameters: ${stillMissing.join(', ')}`);
    if (req.kind !== 'http') {
      throw new MatrixError('M_INVALID_PARAM', typeof req.kind === 'string' ? `Unsupported pusher kind ${req.kind}` : 'kind must be a string or null');
    }
    const data = req.data;
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new MatrixError('M_INVALID_PARAM', 'data must be an object');
    if (Buffer.byteLength(JSON.stringify(data)) > MAX_DATA_BYTES) throw new MatrixError('M_INVALID_PARAM', `data must be at most ${MAX_DATA_BYTES} bytes`);
    if (data.url === undefined) throw new MatrixError('M_MISSING_PARAM', 'Missing parameters: data.url');
    checkGatewayUrl(data.url, s.outboundGuard);
    // Only event_id_only is defined; any other format is stored as given and gets full pushes.
    if (data.format !== undefined && typeof data.format !== 'string') throw new MatrixError('M_INVALID_PARAM', 'data.format must be a string');
    const append = req.append ?? false;
    if (typeof append !== 'boolean') throw new MatrixError('M_INVALID_PARAM', 'append must be a boolean');
    const profileTag = req.profile_tag ?? null;
    if (profileTag !== null && typeof profileTag !== 'string') throw new MatrixError('M_INVALID_PARAM', 'profile_tag must be a string');

    const pusher: PusherRecord = {
      userId: auth.userId,
      deviceId: auth.deviceId,
      kind: 'http',
      appId,
      pushkey,
      pushkeyTs: s.now(),
      appDisplayName: string(req, 'app_display_name', true),
      deviceDisplayName: string(req, 'device_display_name', true),
      profileTag,
      lang: string(req, 'lang', true),
      data,
    };
    await s.pushers.set(pusher, append);
    ctx.body = {};
  });
}

function string(req: JsonObject, key: string, allowEmpty = false): string {
  const v: JsonValue | undefined = req[key];
  if (typeof v !== 'string' || (v === '' && !allowEmpty)) throw new MatrixError('M_INVALID_PARAM', `${key} must be a ${allowEmpty ? '' : 'non-empty '}string`);
  return v;
}

/**
 * An absolute http(s) URL ending in the notify path, whose host is not an IP literal the outbound
 * policy refuses. The spec asks for HTTPS; plain http is accepted for gateways on the same host
 * or network (allowed through outbound.ip_range_whitelist) and tests.
 */
function checkGatewayUrl(value: JsonValue, guard: OutboundGuard): void {
  let url: URL | null = null;
  if (typeof value === 'string') {
    try {
      url = new URL(value);
    } catch {
      url = null;
    }
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || !url.pathname.endsWith(NOTIFY_PATH)) {
    throw new MatrixError('M_INVALID_PARAM', `data.url must be an absolute http(s) URL ending in ${NOTIFY_PATH}`);
  }
  const verdict = guard.checkUrl(url);
  if (!verdict.ok) throw new MatrixError('M_INVALID_PARAM', `data.url is not allowed: ${verdict.reason}`);
}

function toJson(p: PusherRecord): JsonObject {
  const o: JsonObject = {
    pushkey: p.pushkey,
    kind: p.kind,
    app_id: p.appId,
    app_display_name: p.appDisplayName,
    device_display_name: p.deviceDisplayName,
    lang: p.lang,
    data: p.data,
  };
  if (p.profileTag !== null) o.profile_tag = p.profileTag;
  return o;
}
