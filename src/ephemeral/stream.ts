// The in-memory ephemeral stream (typing, presence). It is not persisted, so it starts at the
// wall clock in milliseconds: positions stay ahead of any token issued before a restart unless
// the previous run averaged more than one change per millisecond. A token from the future is
// still handled (sync treats it as "send everything"), so the clock only makes that rare.

export class EphemeralStream {
  private pos: number;

  constructor(start: number = Date.now()) {
    this.pos = start;
  }

  current(): number {
    return this.pos;
  }

  next(): number {
    return ++this.pos;
  }
}
