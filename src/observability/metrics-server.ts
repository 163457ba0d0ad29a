// The metrics listener (config metrics.listen): GET /metrics and nothing else, on its own port so
// the Prometheus exposition (process details, route latencies, ~700 KB) is not public. It shares
// the client listener's slow-client limits.

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { createListener, type ListenerLimits } from '../net/listener.js';

export type RenderMetrics = () => Promise<{ contentType: string; body: string }>;

export function createMetricsServer(render: RenderMetrics, limits: ListenerLimits, logger: Logger): Server {
  return createListener((req, res) => void serve(req, res, render, logger), limits);
}

async function serve(req: IncomingMessage, res: ServerResponse, render: RenderMetrics, logger: Logger): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/metrics') return json(res, 404, 'M_UNRECOGNIZED', 'Unrecognized request');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return json(res, 405, 'M_UNRECOGNIZED', 'Method not allowed');
  }
  try {
    const m = await render();
    res.writeHead(200, { 'Content-Type': m.contentType, 'Content-Length': Buffer.byteLength(m.body) });
    res.end(req.method === 'HEAD' ? undefined : m.body);
  } catch (err) {
    logger.error({ err }, 'rendering metrics failed');
    json(res, 500, 'M_UNKNOWN', 'Internal server error');
  }
}

function json(res: ServerResponse, status: number, errcode: string, error: string): void {
  const body = JSON.stringify({ errcode, error });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}
