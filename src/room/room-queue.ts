// The per-room job queues and pipelined-write tails behind RoomInput (room-input.ts explains
// Concurrency and Pipelining). Invariants: a room's jobs run one at a time, in the order they were
// queued, and a failed job never stops the next; any number of rooms progress in parallel. A
// room's tail is its newest pipelined write not yet known durable (the one the next write depends
// on); `drained` returns only once no write of the room is in flight, whatever their outcome.

import { KeyedChain } from '../keyed-chain.js';
import type { RoomState } from './room-state.js';

/** A pipelined write not yet known durable: the room's newest one is what the next depends on. */
export interface Tail {
  eventId: string;
  /** The in-memory state it was applied to (a reload makes a new object). */
  state: RoomState;
  done: Promise<unknown>;
}

export class RoomQueue {
  private readonly queues = new KeyedChain();
  private readonly tails = new Map<string, Tail>();

  enqueue<T>(roomId: string, job: () => Promise<T>): Promise<T> {
    return this.queues.run(roomId, job);
  }

  /** The room's newest pipelined write still in flight, if any. */
  tail(roomId: string): Tail | undefined {
    return this.tails.get(roomId);
  }

  setTail(roomId: string, tail: Tail): void {
    this.tails.set(roomId, tail);
  }

  /** Forgets `tail` once it settled, unless a newer write replaced it meanwhile. */
  settled(roomId: string, tail: Tail): void {
    if (this.tails.get(roomId) === tail) this.tails.delete(roomId);
  }

  /** Waits until none of the room's pipelined writes is in flight (their outcome is irrelevant). */
  async drained(roomId: string): Promise<void> {
    for (let t = this.tails.get(roomId); t !== undefined; t = this.tails.get(roomId)) {
      await t.done.catch(() => undefined);
      this.settled(roomId, t);
    }
  }

  /** Waits for every queued job and pipelined write to finish (used at shutdown). */
  async drain(): Promise<void> {
    await this.queues.idle();
    await Promise.allSettled([...this.tails.values()].map((t) => t.done));
  }
}
