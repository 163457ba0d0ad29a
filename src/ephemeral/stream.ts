// The in-memory ephemeral stream (typing, presence): a hybrid clock, never persisted.
//
// - A position is max(last + 1, wall clock in ms): strictly increasing in this process, and
//   close to wall time, so positions stay ahead of any token issued before a restart unless the
//   previous run averaged more than one change per millisecond. A token from the future is still
//   handled (sync treats it as "send everything"), so the clock only makes that rare.
// - In a cluster each worker has its own stream, and positions are comparable across workers:
//   every worker follows the wall clock, and observe() moves it past positions seen in other
//   workers' broadcasts, so a change applied here after a token was issued elsewhere gets a
//   position above that token (given clocks within a few ms and broadcasts delivered to every
//   worker at about the same time). A token from one worker therefore works on another.

/** Positions observed from other workers further than this ahead of our clock are ignored. */
const MAX_AHEAD_MS = 60_000;

export class EphemeralStream {
  private pos: number;

  constructor(
    start?: number,
    private readonly clock: () => number = Date.now,
  ) {
    this.pos = start ?? clock();
  }

  current(): number {
    return this.pos;
  }

  next(): number {
    this.pos = Math.max(this.pos + 1, this.clock());
    return this.pos;
  }

  /** A position another worker handed out: ours move above it (a runaway clock is ignored). */
  observe(pos: number): void {
    if (Number.isSafeInteger(pos) && pos > this.pos && pos <= this.clock() + MAX_AHEAD_MS) this.pos = pos;
  }
}
