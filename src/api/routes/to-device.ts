// PUT /sendToDevice/{eventType}/{txnId}.

import { z } from 'zod';
import { body } from '../middleware.js';
import { param, parse, type ClientRoutes } from '../routing.js';
import type { ToDeviceService } from '../../e2ee/to-device.js';

const schema = z.object({ messages: z.record(z.string().max(255), z.unknown()) }).passthrough();

export function toDeviceRoutes(r: ClientRoutes, s: { toDevice: ToDeviceService }): void {
  r.authed('put', '/sendToDevice/:eventType/:txnId', async (ctx, auth) => {
    const req = parse(schema, body(ctx));
    ctx.body = await s.toDevice.send(auth.userId, auth.deviceId, param(ctx, 'eventType'), param(ctx, 'txnId'), req.messages);
  });
}
