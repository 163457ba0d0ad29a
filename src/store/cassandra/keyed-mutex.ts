// Runs async sections one at a time per key, within this process. The Cassandra modules use it
// in front of their lightweight transactions: instances still race each other (the LWT decides
// those races), but concurrent callers on one instance queue here instead of contending in
// Paxos, where fifty proposers on one partition cost retries, timeouts and round trips.
//
// Invariant: a key's entry is removed once its last queued section settles, so the map only
// holds keys with work in flight.

export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, section: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const result = prev.then(section, section);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
