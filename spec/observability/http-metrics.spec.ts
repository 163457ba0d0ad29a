import { assert } from '../helpers/assert.js';
import { Counter, Histogram, Registry } from 'prom-client';
import { HttpMetrics } from '../../src/observability/http-metrics.js';

const BOUNDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const OBSERVATIONS: Array<[string, string, number, number]> = [
  ['GET', '/_matrix/client/v3/sync', 200, 0.0004],
  ['GET', '/_matrix/client/v3/sync', 200, 30.2],
  ['GET', '/_matrix/client/v3/sync', 200, 200],
  ['GET', '/_matrix/client/v3/sync', 401, 0.001],
  ['PUT', '/_matrix/client/v3/rooms/:roomId/send/:eventType/:txnId', 200, 0.012],
  ['BREW', '/coffee', 418, 0.05],
  ['HEAD', '/_matrix/client/v3/sync', 200, 0.003],
];

/** What prom-client's own Counter and Histogram print for the same observations. */
async function reference(): Promise<Registry> {
  const registry = new Registry();
  const labelNames = ['method', 'route', 'status'] as const;
  const c = new Counter({ name: 'hearth_http_requests_total', help: 'HTTP requests handled, by method, route pattern and status.', labelNames, registers: [registry] });
  const h = new Histogram({
    name: 'hearth_http_request_duration_seconds',
    help: 'HTTP request latency, by method, route pattern and status. Includes /sync long-polls.',
    labelNames,
    buckets: BOUNDS,
    registers: [registry],
  });
  const methods = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']);
  for (const [m, route, status, s] of OBSERVATIONS) {
    const labels = { method: methods.has(m) ? m : 'OTHER', route, status: String(status) };
    c.inc(labels);
    h.observe(labels, s);
  }
  return registry;
}

const sorted = (text: string): string[] => text.split('\n').sort();

describe('HttpMetrics', () => {
  it('prints what prom-client Counter and Histogram print for the same requests', async () => {
    const registry = new Registry();
    const http = new HttpMetrics(registry, BOUNDS);
    for (const o of OBSERVATIONS) http.observe(...o);
    // Series order may differ (ours groups by route); every line must be the same.
    assert.deepEqual(sorted(await registry.metrics()), sorted(await (await reference()).metrics()));
    assert.match(await registry.metrics(), /^hearth_http_request_duration_seconds_bucket\{le="0.001",method="GET",route="\/_matrix\/client\/v3\/sync",status="200"\} 1$/m);
    assert.match(await registry.metrics(), /^hearth_http_request_duration_seconds_bucket\{le="\+Inf",method="GET",route="\/_matrix\/client\/v3\/sync",status="200"\} 3$/m);
    assert.match(await registry.metrics(), /^hearth_http_requests_total\{method="OTHER",route="\/coffee",status="418"\} 1$/m);
  });

  it('gives the JSON form prom-client gives, and resets', async () => {
    const registry = new Registry();
    const http = new HttpMetrics(registry, BOUNDS);
    for (const o of OBSERVATIONS) http.observe(...o);
    const norm = (j: Awaited<ReturnType<Registry['getMetricsAsJSON']>>) =>
      j.map((m) => ({ name: m.name, type: m.type, values: (m as unknown as { values: Array<{ labels: object; value: number; metricName?: string }> }).values.map((v) => JSON.stringify([v.metricName ?? m.name, v.labels, v.value])).sort() }));
    assert.deepEqual(norm(await registry.getMetricsAsJSON()), norm(await (await reference()).getMetricsAsJSON()));
    registry.resetMetrics();
    assert.doesNotMatch(await registry.metrics(), /route=/);
    http.observe('GET', '/x', 200, 0.002);
    assert.match(await registry.metrics(), /^hearth_http_requests_total\{method="GET",route="\/x",status="200"\} 1$/m);
  });
});
