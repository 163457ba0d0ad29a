// PUT /sendToDevice/{eventType}/{txnId}.

import { z } from 'zod';
import { param, type ClientRoutes, valid } from '../routing.js';
import type { ToDeviceService } from '../../e2ee/to-device.js';
import type { RateLimiter } from '../../admission/rate-limit.js';
import { isJsonObject } from '../../protocol/canonical-json.js';

const schema = z.object({ messages: z.record(z.string().max(255), z.unknown()) }).passthrough();

export function toDeviceRoutes(r: ClientRoutes, s: { toDevice: ToDeviceService; limits: { to_device: RateLimiter } }): void {
  r.authed('put', '/sendToDevice/:eventType/:txnId', async (ctx, auth) => {
    const req = valid(ctx, schema);
    // Charged by recipients, not requests: one request may address thousands of devices.
    let recipients = 0;
    for (const byDevice of Object.values(req.messages)) recipients += isJsonObject(byDevice) ? Object.keys(byDevice).length : 1;
    await s.limits.to_device.consume(auth.userId, recipients);
    ctx.body = await s.toDevice.send(auth.userId, auth.deviceId, param(ctx, 'eventType'), param(ctx, 'txnId'), req.messages);
  }, { schema: schema });
}
