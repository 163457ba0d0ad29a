// Wake-up signalling between writers and waiting readers (long-poll /sync, later the WebSocket
// stream). The interface is what a Redis pub/sub implementation provides in scale-out mode: a
// writer publishes *that* something changed at a position and for whom; readers re-read the store.
// Notifications carry no data, so a lost or duplicated one can only cost a spurious wake-up,
// never a lost event: readers always read from their token up to the store's completed position.

export interface ChangeNotice {
  /** Durable stream position the change was persisted at (already completed in the store). */
  stream?: number;
  /** Ephemeral stream position (typing, presence) of the change. */
  ephemeral?: number;
  /** Room whose members should wake up. */
  roomId?: string;
  /** Users who should wake up regardless of membership (invitees, account data owner, ...). */
  userIds?: string[];
  /** Set for typing and presence changes: they wake only readers whose filter wants them. */
  kind?: EphemeralKind;
}

export type EphemeralKind = 'typing' | 'presence';

export interface Notifier {
  publish(notice: ChangeNotice): void;
  /** Returns an unsubscribe function. Listeners must not throw. */
  subscribe(listener: (notice: ChangeNotice) => void): () => void;
  close(): Promise<void>;
}

/** Single-process notifier: synchronous fan-out to listeners. */
export class LocalNotifier implements Notifier {
  private readonly listeners = new Set<(notice: ChangeNotice) => void>();

  publish(notice: ChangeNotice): void {
    for (const l of this.listeners) l(notice);
  }

  subscribe(listener: (notice: ChangeNotice) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
