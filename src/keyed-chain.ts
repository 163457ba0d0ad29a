// Runs async tasks one at a time per key, in call order; different keys run concurrently, and a
// failed task never stops the next. Room input queues a room's jobs on it (src/room/room-queue.ts);
// the Cassandra modules use it where SQLite's single write queue orders two writes of one key (a
// read-check-write, or two positioned writes whose last-write-wins order must match their stream
// order), and in front of their lightweight transactions (concurrent callers on one instance
// queue here instead of contending in Paxos, where fifty proposers on one partition cost retries,
// timeouts and round trips; instances still race each other, and the LWT decides those races).
// It orders this process's tasks only; see each user for what that means across processes.
//
// Invariant: a key's entry is removed once its last queued task settles, so the map only holds
// keys with work in flight.

export class KeyedChain {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(task, task);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    // Forget the key once nothing is queued behind this task (keeps the map small).
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }

  /** Settles once every task queued so far has finished, whatever its outcome. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.tails.values()]);
  }
}
