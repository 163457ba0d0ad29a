// Parked readers waiting for something relevant to a user. One registry serves the long-poll
// /sync and the WebSocket stream, so both wake through the same path.
//
// Concurrency: single-threaded (event loop). A waiter is woken at most once; the caller then
// re-reads the store from its token, so spurious wake-ups are harmless.

import type { ChangeNotice, Notifier } from './notifier.js';

interface Waiter {
  userId: string;
  roomIds: readonly string[];
  wake: () => void;
}

export class SyncWaiters {
  private readonly byUser = new Map<string, Set<Waiter>>();
  private readonly byRoom = new Map<string, Set<Waiter>>();
  private readonly unsubscribe: () => void;
  private count = 0;
  // High-water marks of published changes; one number per room/user ever notified in this process.
  private readonly lastByRoom = new Map<string, number>();
  private readonly lastByUser = new Map<string, number>();

  constructor(notifier: Notifier, private readonly onCountChange?: (n: number) => void) {
    this.unsubscribe = notifier.subscribe((n) => this.onNotice(n));
  }

  get size(): number {
    return this.count;
  }

  /**
   * Resolves true when a change relevant to the user is published above `afterStream`, false on
   * timeout or abort. The caller reads the store up to `afterStream` first; a change published
   * while it was reading is caught by the per-user/per-room high-water marks checked here.
   */
  wait(
    userId: string,
    roomIds: readonly string[],
    afterStream: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<boolean> {
    if (this.latestFor(userId, roomIds) > afterStream) return Promise.resolve(true);
    if (timeoutMs <= 0 || signal?.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      let done = false;
      const finish = (woken: boolean): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.remove(waiter);
        resolve(woken);
      };
      const onAbort = (): void => finish(false);
      const waiter: Waiter = { userId, roomIds, wake: () => finish(true) };
      const timer = setTimeout(() => finish(false), timeoutMs);
      signal?.addEventListener('abort', onAbort);
      this.add(waiter);
    });
  }

  private latestFor(userId: string, roomIds: readonly string[]): number {
    let max = this.lastByUser.get(userId) ?? 0;
    for (const r of roomIds) max = Math.max(max, this.lastByRoom.get(r) ?? 0);
    return max;
  }

  close(): void {
    this.unsubscribe();
    for (const set of this.byUser.values()) for (const w of [...set]) w.wake();
  }

  private onNotice(n: ChangeNotice): void {
    if (n.roomId) this.lastByRoom.set(n.roomId, Math.max(this.lastByRoom.get(n.roomId) ?? 0, n.stream));
    for (const u of n.userIds ?? []) this.lastByUser.set(u, Math.max(this.lastByUser.get(u) ?? 0, n.stream));
    const woken: Waiter[] = [];
    if (n.roomId) for (const w of this.byRoom.get(n.roomId) ?? []) woken.push(w);
    for (const u of n.userIds ?? []) for (const w of this.byUser.get(u) ?? []) woken.push(w);
    for (const w of woken) w.wake();
  }

  private add(w: Waiter): void {
    addTo(this.byUser, w.userId, w);
    for (const r of w.roomIds) addTo(this.byRoom, r, w);
    this.count++;
    this.onCountChange?.(this.count);
  }

  private remove(w: Waiter): void {
    removeFrom(this.byUser, w.userId, w);
    for (const r of w.roomIds) removeFrom(this.byRoom, r, w);
    this.count--;
    this.onCountChange?.(this.count);
  }
}

function addTo<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(v);
}

function removeFrom<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (!s) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
}
