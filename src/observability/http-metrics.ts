// The two per-request HTTP metrics (requests by method, route and status, and their latency
// histogram) as prom-client metric objects of our own. prom-client's Counter.inc and
// Histogram.observe each validate the labels, sort and hash them into a key and allocate per call
// (~2-3 µs of every request, the whole of a small GET's metrics cost); here a request finds its
// series through two map lookups on strings it already has and adds to plain numbers.
//
// Invariants:
// - The exposition is what prom-client's Counter and Histogram print for the same observations
//   (same names, help, types, label order `le` first, buckets cumulative, +Inf, _sum, _count), so
//   dashboards and specs read it unchanged; the registry formats the lines.
// - One series per distinct (method, route, status): `route` is a pattern, never a raw URL, and
//   methods outside HTTP_METHODS count as OTHER, so the series stay bounded.

import type { Registry } from 'prom-client';

const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']);

interface Series {
  labels: { method: string; route: string; status: string };
  count: number;
  sum: number;
  /** Per bucket, not cumulative (summed at exposition). */
  buckets: Float64Array;
}

interface ValuePair {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName?: string;
}

interface MetricData {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: ValuePair[];
  aggregator: 'sum';
}

/** The request counter and latency histogram of one registry, fed by observe(). */
export class HttpMetrics {
  /** route -> "METHOD status" -> series. */
  private readonly byRoute = new Map<string, Map<string, Series>>();

  constructor(
    registry: Registry,
    private readonly bounds: readonly number[],
    names = { requests: 'hearth_http_requests_total', duration: 'hearth_http_request_duration_seconds' },
  ) {
    const series = (): Series[] => [...this.byRoute.values()].flatMap((m) => [...m.values()]);
    const reset = (): void => this.byRoute.clear();
    registry.registerMetric(
      new ExposedMetric(names.requests, 'HTTP requests handled, by method, route pattern and status.', 'counter', reset, () =>
        series().map((s) => ({ labels: { ...s.labels }, value: s.count })),
      ) as never,
    );
    registry.registerMetric(
      new ExposedMetric(names.duration, 'HTTP request latency, by method, route pattern and status. Includes /sync long-polls.', 'histogram', reset, () =>
        series().flatMap((s) => this.histogramValues(names.duration, s)),
      ) as never,
    );
  }

  observe(method: string, route: string, status: number, seconds: number): void {
    let forRoute = this.byRoute.get(route);
    if (!forRoute) this.byRoute.set(route, (forRoute = new Map()));
    const m = HTTP_METHODS.has(method) ? method : 'OTHER';
    const key = `${m} ${status}`;
    let s = forRoute.get(key);
    if (!s) forRoute.set(key, (s = { labels: { method: m, route, status: String(status) }, count: 0, sum: 0, buckets: new Float64Array(this.bounds.length) }));
    s.count++;
    s.sum += seconds;
    const b = this.bounds;
    for (let i = 0; i < b.length; i++) {
      if (seconds <= b[i]) {
        s.buckets[i]++;
        break;
      }
    }
  }

  private histogramValues(name: string, s: Series): ValuePair[] {
    const out: ValuePair[] = [];
    let acc = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      acc += s.buckets[i];
      out.push({ labels: { le: this.bounds[i] }, value: acc, metricName: `${name}_bucket`, sharedLabels: s.labels });
    }
    out.push(
      { labels: { le: '+Inf' }, value: s.count, metricName: `${name}_bucket`, sharedLabels: s.labels },
      { labels: {}, value: s.sum, metricName: `${name}_sum`, sharedLabels: s.labels },
      { labels: {}, value: s.count, metricName: `${name}_count`, sharedLabels: s.labels },
    );
    return out;
  }
}

/** What prom-client's Registry asks of a metric: its name, type, values, and reset. */
class ExposedMetric {
  readonly aggregator = 'sum' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    private readonly onReset: () => void,
    private readonly values: () => ValuePair[],
  ) {}

  /** For the text exposition: series labels kept apart, as prom-client's own metrics give them. */
  getForPromString(): Promise<MetricData> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: this.aggregator });
  }

  /** For the JSON form: each value's labels merged, as prom-client's get() does. */
  get(): Promise<MetricData> {
    const values = this.values().map((v) => ({ value: v.value, metricName: v.metricName, labels: { ...v.labels, ...v.sharedLabels } }));
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }

  /** Registry.resetMetrics(): both metrics share their series, so either resets both. */
  reset(): void {
    this.onReset();
  }
}
