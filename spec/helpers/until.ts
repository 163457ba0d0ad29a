// Waiting on a condition in tests: poll until `check` gives something other than false, null or
// undefined, or fail naming what was awaited once the deadline passes. Tests wait on conditions,
// never on fixed sleeps, so they hold on a loaded machine and stay fast on an idle one.

export interface UntilOptions {
  /** Default 10 s. */
  timeoutMs?: number;
  /** Poll interval; default 10 ms. */
  everyMs?: number;
}

type Awaited<T> = Exclude<T, false | null | undefined>;

/** Resolves with the first value of `check` that is not false, null or undefined. */
export async function until<T>(what: string | (() => string), check: () => T | Promise<T>, opts: UntilOptions | number = {}): Promise<Awaited<T>> {
  const { timeoutMs = 10_000, everyMs = 10 } = typeof opts === 'number' ? { timeoutMs: opts } : opts;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== false && v !== null && v !== undefined) return v as Awaited<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
