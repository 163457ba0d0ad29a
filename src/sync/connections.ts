// Which users currently have a connected device: an open sync socket, or a /sync long-poll in
// flight or finished within `recentMs`. Push notifications go only to users with none (the
// WhatsApp model). In-memory per process; Redis holds it in scale-out.

export class ConnectionTracker {
  private readonly sockets = new Map<string, number>();
  private readonly polls = new Map<string, { active: number; lastEnd: number }>();

  constructor(
    private readonly recentMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  socketOpened(userId: string): void {
    this.sockets.set(userId, (this.sockets.get(userId) ?? 0) + 1);
  }

  socketClosed(userId: string): void {
    const n = (this.sockets.get(userId) ?? 1) - 1;
    if (n <= 0) this.sockets.delete(userId);
    else this.sockets.set(userId, n);
  }

  pollStarted(userId: string): void {
    const p = this.polls.get(userId) ?? { active: 0, lastEnd: 0 };
    p.active++;
    this.polls.set(userId, p);
  }

  pollEnded(userId: string): void {
    const p = this.polls.get(userId);
    if (!p) return;
    p.active = Math.max(0, p.active - 1);
    p.lastEnd = this.now();
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
