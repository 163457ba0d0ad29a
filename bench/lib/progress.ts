// A one-line progress bar on stderr, drawn only when stderr is a terminal (never in CI logs).

export class Progress {
  private readonly tty = Boolean(process.stderr.isTTY);
  private last = 0;
  private readonly started = performance.now();

  constructor(private readonly label: string, private readonly total: number) {}

  update(done: number, extra = ''): void {
    if (!this.tty) return;
    const now = performance.now();
    if (now - this.last < 200 && done < this.total) return;
    this.last = now;
    const width = 30;
    const frac = this.total > 0 ? Math.min(1, done / this.total) : 0;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    const secs = ((now - this.started) / 1000).toFixed(0);
    process.stderr.write(`\r  ${this.label} [${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${secs}s ${extra}`.slice(0, (process.stderr.columns || 100) - 1).padEnd(Math.min(100, (process.stderr.columns || 100) - 1)));
  }

  done(): void {
    if (this.tty) process.stderr.write('\r'.padEnd(Math.min(100, (process.stderr.columns || 100) - 1)) + '\r');
  }
}

/** Runs `fn` while a bar tracks elapsed time against `ms`. */
export async function timed<T>(label: string, ms: number, fn: () => Promise<T>): Promise<T> {
  const p = new Progress(label, ms);
  const t0 = performance.now();
  const timer = setInterval(() => p.update(performance.now() - t0), 250);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
    p.done();
  }
}
