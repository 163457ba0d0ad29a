// Which users currently have a connected device: an open sync socket, or a /sync long-poll in
// flight or finished within `recentMs`. Push notifications go only to users with none (the
// WhatsApp model). In-memory per process: this process's connections. In a cluster each process
// also announces its users to Redis (src/cluster/connections.ts, through `watch`), so a user
// connected to any process counts.

export class ConnectionTracker {
  private readonly sockets = new Map<string, number>();
  private readonly polls = new Map<string, { active: number; lastEnd: number }>();
  private onChange: ((userId: string) => void) | undefined;

  constructor(
    private readonly recentMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Called after every change to a user's connections (one watcher: the cluster registry). */
  watch(onChange: (userId: string) => void): void {
    this.onChange = onChange;
  }

  socketOpened(userId: string): void {
    this.sockets.set(userId, (this.sockets.get(userId) ?? 0) + 1);
    this.onChange?.(userId);
  }

  socketClosed(userId: string): void {
    const n = (this.sockets.get(userId) ?? 1) - 1;
    if (n <= 0) this.sockets.delete(userId);
    else this.sockets.set(userId, n);
    this.onChange?.(userId);
  }

  pollStarted(userId: string): void {
    const p = this.polls.get(userId) ?? { active: 0, lastEnd: 0 };
    p.active++;
    this.polls.set(userId, p);
    this.onChange?.(userId);
  }

  pollEnded(userId: string): void {
    const p = this.polls.get(userId);
    if (!p) return;
    p.active = Math.max(0, p.active - 1);
    p.lastEnd = this.now();
    this.onChange?.(userId);
  }

  /**
   * Until when this process counts the user as connected: Infinity while a socket or a poll is
   * open, the end of the recent window after the last poll, or 0 if not connected at all.
   */
  connectedUntil(userId: string): number {
    if ((this.sockets.get(userId) ?? 0) > 0) return Number.POSITIVE_INFINITY;
    const p = this.polls.get(userId);
    if (!p) return 0;
    if (p.active > 0) return Number.POSITIVE_INFINITY;
    return p.lastEnd + this.recentMs;
  }

  isConnected(userId: string): boolean {
    if ((this.sockets.get(userId) ?? 0) > 0) return true;
    const p = this.polls.get(userId);
    if (!p) return false;
    if (p.active > 0) return true;
    if (this.now() - p.lastEnd < this.recentMs) return true;
    this.polls.delete(userId); // keeps the map to recently active users
    return false;
  }

  get openSockets(): number {
    let n = 0;
    for (const c of this.sockets.values()) n += c;
    return n;
  }
}
