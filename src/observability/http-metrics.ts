// The two per-request HTTP metrics (requests by method, route and status, and their latency
// histogram) as prom-client metric objects of our own. prom-client's Counter.inc and
// Histogram.observe each validate the labels, sort and hash them into a key and allocate per call
// (~2-3 µs of every request, the whole of a small GET's metrics cost); here a request finds its
// series (a kept LabelledHistogram child, labelled.ts) through two map lookups on strings it
// already has, and the request counter is read off the same children's counts.
//
// Invariants:
// - The exposition is what prom-client's Counter and Histogram print for the same observations
//   (same names, help, types, label order `le` first, buckets cumulative, +Inf, _sum, _count), so
//   dashboards and specs read it unchanged; the registry formats the lines.
// - One series per distinct (method, route, status): `route` is a pattern, never a raw URL, and
//   methods outside HTTP_METHODS count as OTHER, so the series stay bounded.

import type { Registry } from 'prom-client';
import { LabelledHistogram, type HistogramChild } from './labelled.js';

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']);

type HttpLabels = 'method' | 'route' | 'status';

interface Series {
  labels: Record<HttpLabels, string>;
  child: HistogramChild;
}

/** The request counter and latency histogram of one registry, fed by observe(). */
export class HttpMetrics {
  /** route -> "METHOD status" -> series. */
  private readonly byRoute = new Map<string, Map<string, Series>>();
  private readonly duration: LabelledHistogram<HttpLabels>;

  constructor(
    registry: Registry,
    bounds: readonly number[],
    names = { requests: 'hearth_http_requests_total', duration: 'hearth_http_request_duration_seconds' },
  ) {
    // The counter first: the registry lists metrics in registration order, as before.
    registry.registerMetric(new RequestCounter(names.requests, this.byRoute) as never);
    this.duration = new LabelledHistogram({
      name: names.duration,
      help: 'HTTP request latency, by method, route pattern and status. Includes /sync long-polls.',
      labelNames: ['method', 'route', 'status'],
      buckets: bounds,
      registers: [registry],
    });
  }

  observe(method: string, route: string, status: number, seconds: number): void {
    let forRoute = this.byRoute.get(route);
    if (!forRoute) this.byRoute.set(route, (forRoute = new Map()));
    const m = HTTP_METHODS.has(method) ? method : 'OTHER';
    const key = `${m} ${status}`;
    let s = forRoute.get(key);
    if (!s) {
      const labels = { method: m, route, status: String(status) };
      forRoute.set(key, (s = { labels, child: this.duration.labels(labels) }));
    }
    s.child.observe(seconds);
  }
}

/** The request counter: each series' histogram count, as prom-client's Registry reads a metric. */
class RequestCounter {
  readonly help = 'HTTP requests handled, by method, route pattern and status.';
  readonly type = 'counter';
  readonly aggregator = 'sum';

  constructor(
    readonly name: string,
    private readonly byRoute: Map<string, Map<string, Series>>,
  ) {}

  get(): Promise<{ name: string; help: string; type: string; values: Array<{ labels: Record<string, string>; value: number }>; aggregator: string }> {
    const values = [...this.byRoute.values()].flatMap((m) => [...m.values()].map((s) => ({ labels: { ...s.labels }, value: s.child.count })));
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }

  /** Registry.resetMetrics() resets the histogram too; the series go with its children. */
  reset(): void {
    this.byRoute.clear();
  }
}
