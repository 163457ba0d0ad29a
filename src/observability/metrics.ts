// Prometheus metrics. Each Metrics owns its own Registry: prom-client's global registry would make
// a second server in the same process (tests) fail with "metric already registered", and would
// mix the two servers' numbers.

import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { HttpMetrics } from './http-metrics.js';
import { LabelledHistogram } from './labelled.js';

export interface MetricsOptions {
  /**
   * Also collect process metrics (CPU, memory, event-loop lag, GC). Each collection starts an
   * event-loop monitor and a GC observer that live as long as the process, so tests that create
   * many servers may turn this off.
   */
  defaultMetrics?: boolean;
}

export class Metrics {
  readonly registry: Registry;
  /** hearth_http_requests_total and hearth_http_request_duration_seconds (http-metrics.ts). */
  readonly http: HttpMetrics;
  readonly eventsPersisted: Counter;
  readonly syncWaiters: Gauge;
  /** Every store call (timed-store.ts): one kept child per operation (labelled.ts). */
  readonly dbTiming: LabelledHistogram<'operation'>;
  readonly connectionsRefused: Counter<'reason'>;
  readonly httpClientErrors: Counter<'status'>;

  constructor(opts: MetricsOptions = {}) {
    this.registry = new Registry();
    const registers = [this.registry];
    this.http = new HttpMetrics(this.registry, [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]);
    this.eventsPersisted = new Counter({
      name: 'hearth_events_persisted_total',
      help: 'Room events persisted.',
      registers,
    });
    this.syncWaiters = new Gauge({
      name: 'hearth_sync_waiters',
      help: '/sync requests currently waiting for new data.',
      registers,
    });
    this.dbTiming = new LabelledHistogram({
      name: 'hearth_db_operation_duration_seconds',
      help: 'Storage operation latency, by operation.',
      labelNames: ['operation'] as const,
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    });
    this.connectionsRefused = new Counter({
      name: 'hearth_http_connections_refused_total',
      help: 'Connections closed on arrival, by reason (per_address: over limits.http.max_connections_per_address).',
      labelNames: ['reason'] as const,
      registers,
    });
    this.httpClientErrors = new Counter({
      name: 'hearth_http_client_errors_total',
      help: 'Requests answered by the HTTP parser layer before routing, by status (400 malformed, 408 header or request timeout, 431 headers too large).',
      labelNames: ['status'] as const,
      registers,
    });
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Size, bound, hits and misses of each read-model cache (read at scrape time). Hits and misses
   * only grow: rate() them for a hit rate.
   */
  registerCaches(stats: () => Array<{ name: string; size: number; bound: number; hits: number; misses: number }>): void {
    const registers = [this.registry];
    const gauge = (name: string, help: string, field: 'size' | 'bound' | 'hits' | 'misses'): void => {
      new Gauge({
        name,
        help,
        labelNames: ['cache'] as const,
        registers,
        collect() {
          for (const s of stats()) this.set({ cache: s.name }, s[field]);
        },
      });
    };
    gauge('hearth_read_model_cache_size', 'Entries held by each sync read-model cache.', 'size');
    gauge('hearth_read_model_cache_bound', 'Configured bound of each sync read-model cache.', 'bound');
    gauge('hearth_read_model_cache_hits', 'Lookups answered from memory, per read-model cache (monotonic).', 'hits');
    gauge('hearth_read_model_cache_misses', 'Lookups sent to the store, per read-model cache (monotonic).', 'misses');
  }

  /**
   * A count kept by the component that owns it (work dropped, repeats ignored), read at scrape
   * time: the component needs no reference to metrics, and a process without metrics pays nothing.
   */
  registerCount(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  /**
   * The same, exposed as a Prometheus counter (name ending in _total): for counts that only grow,
   * where rate() is the question. The value is set from `read` at each scrape.
   */
  registerCounter(name: string, help: string, read: () => number): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }

  /** The Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * Records one HTTP request. `route` must be a route pattern (e.g. `/rooms/:roomId/send/...`),
   * never the raw URL: every distinct label value is a separate time series kept forever.
   */
  observeHttp(method: string, route: string, status: number, seconds: number): void {
    this.http.observe(method, route, status, seconds);
  }

  /** Times an async storage operation into dbTiming, whether it succeeds or fails. */
  async timeDb<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    const end = this.dbTiming.labels({ operation }).startTimer();
    try {
      return await fn();
    } finally {
      end();
    }
  }


}
