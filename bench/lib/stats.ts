// Exact latency distributions. Every sample is kept (a few hundred thousand at most in these
// scenarios), sorted once, and read with the nearest-rank method, so p99.9 and max are exact
// rather than bucketed.

export interface Distribution {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  min: number;
}

export class Samples {
  private buf = new Float64Array(1024);
  private n = 0;

  add(v: number): void {
    if (this.n === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.n++] = v;
  }

  get count(): number {
    return this.n;
  }

  /** Samples as a sorted copy. */
  sorted(): Float64Array {
    return this.buf.slice(0, this.n).sort();
  }

  summary(): Distribution {
    return summarise(this.sorted());
  }
}

/** Nearest-rank percentile of an ascending array (q in [0, 1]). */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1];
}

export function summarise(sorted: ArrayLike<number>): Distribution {
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i];
  const r = (v: number) => (Number.isFinite(v) ? Math.round(v * 1000) / 1000 : NaN);
  return {
    count: sorted.length,
    mean: r(sorted.length ? sum / sorted.length : NaN),
    min: r(sorted.length ? sorted[0] : NaN),
    p50: r(percentile(sorted, 0.5)),
    p90: r(percentile(sorted, 0.9)),
    p99: r(percentile(sorted, 0.99)),
    p999: r(percentile(sorted, 0.999)),
    max: r(sorted.length ? sorted[sorted.length - 1] : NaN),
  };
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** "p50 1.2 / p90 … / max …" in ms, for logs. */
export function fmtDist(d: Distribution, unit = 'ms'): string {
  if (!d.count) return 'no samples';
  const f = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
  return `p50 ${f(d.p50)} p90 ${f(d.p90)} p99 ${f(d.p99)} p99.9 ${f(d.p999)} max ${f(d.max)} ${unit} (n=${d.count})`;
}
