// A labelled histogram for a hot path: the store-call timer (timed-store.ts, every store call).
// A child for one label set is made once and kept; observing through it is a bucket search and a
// few additions. prom-client's Histogram hashes and validates the whole label set on every
// observation, even through a child from `.labels()` (~0.5 µs each, several per send). The HTTP
// metrics have their own objects (http-metrics.ts), fitted to their fixed three labels.
//
// Invariants: it registers on a prom-client Registry as a metric object (name, help, type,
// get(), reset()) and renders exactly as prom-client's Histogram does: the same names, series in
// first-observed order, labels in the order given with `le` first, the same cumulative buckets,
// `+Inf`, `_sum` and `_count`. Label names are fixed at construction and every child carries a
// value for each; a label set seen once is a series kept forever, so callers pass bounded
// values (operation names), never raw input.

import type { Registry } from 'prom-client';

type Labels<L extends string> = Readonly<Record<L, string>>;

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** What prom-client's Registry reads of a metric (its `get()` shape, as its own metrics give it). */
interface RegistryMetric {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: string }>;
  reset(): void;
}

abstract class Labelled<L extends string, C> implements RegistryMetric {
  abstract readonly type: string;
  readonly aggregator = 'sum';
  protected readonly children = new Map<string, { labels: Labels<L>; child: C }>();

  constructor(
    readonly name: string,
    readonly help: string,
    protected readonly labelNames: readonly L[],
    registers: readonly Registry[],
  ) {
    for (const r of registers) r.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The child for one label set; keep it where the label set is fixed. */
  labels(labels: Labels<L>): C {
    let key = '';
    for (const n of this.labelNames) key += labels[n] + '\u0000';
    return this.childFor(key, labels);
  }

  protected childFor(key: string, labels: Labels<L>): C {
    const found = this.children.get(key);
    if (found) return found.child;
    const own = {} as Record<L, string>;
    for (const n of this.labelNames) own[n] = String(labels[n]);
    const child = this.makeChild();
    this.children.set(key, { labels: own, child });
    return child;
  }

  protected abstract makeChild(): C;
  protected abstract values(): MetricValue[];

  async get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: string }> {
    return { name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: this.aggregator };
  }

  reset(): void {
    this.children.clear();
  }
}

export class HistogramChild {
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    let i = 0;
    const bounds = this.bounds;
    while (i < bounds.length && value > bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }

  /** Returns a function that observes the seconds since this call. */
  startTimer(): () => void {
    const t0 = performance.now();
    return () => this.observe((performance.now() - t0) / 1000);
  }
}

export class LabelledHistogram<L extends string> extends Labelled<L, HistogramChild> {
  readonly type = 'histogram';
  private readonly bounds: readonly number[];

  constructor(opts: { name: string; help: string; labelNames: readonly L[]; buckets: readonly number[]; registers: readonly Registry[] }) {
    super(opts.name, opts.help, opts.labelNames, opts.registers);
    this.bounds = [...opts.buckets].sort((a, b) => a - b);
  }

  protected makeChild(): HistogramChild {
    return new HistogramChild(this.bounds);
  }

  protected values(): MetricValue[] {
    const out: MetricValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, child } of this.children.values()) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += child.counts[i];
        out.push({ value: acc, labels: { le, ...labels }, metricName: bucket });
      });
      out.push({ value: child.count, labels: { le: '+Inf', ...labels }, metricName: bucket });
      out.push({ value: child.sum, labels: { ...labels }, metricName: `${this.name}_sum` });
      out.push({ value: child.count, labels: { ...labels }, metricName: `${this.name}_count` });
    }
    return out;
  }
}
