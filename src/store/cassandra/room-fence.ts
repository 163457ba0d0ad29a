// Fencing of room writers (src/cluster/room-owner.ts): a write that carries an owner epoch
// (PersistEventInput.fence) is refused with StaleWriterError once a later owner of the room has
// written with a higher epoch.
//
// Invariants:
// - room_owner_epochs holds, per room, the highest epoch that passed the check; it only ever
//   grows, and is written with LWTs only (UPDATE ... IF epoch <= ?, or INSERT IF NOT EXISTS for
//   the room's first fenced write), so two owners racing are ordered by Paxos.
// - Every fenced write waits for a check that *started* after the write was handed over: at most
//   one check per room is in flight, and writes arriving meanwhile share the next one. Writes of
//   a room reach the inner store in the order they were handed over (pipelined writes depend on
//   that), since each waits on a check that settles in that order.
// - The window (documented in docs/deploy.md): the check is a separate LWT from the event's
//   logged batch (a conditional batch must stay inside one partition, and an event's batch spans
//   many). A writer paused between its check and its batch until after a new owner has written
//   still lands the writes it had already checked. Closing it needs the append itself to be
//   conditional (the room's head row carrying the epoch).
// - Writes without a fence, and events without a room ID (a v12 create event, which starts a
//   room nobody else can own yet), pass unchecked.

import type { PersistEventInput, RoomStore } from '../types.js';
import { StaleWriterError } from '../types.js';
import { applied, numOrNull, type CassandraContext } from './context.js';

interface Slot {
  /** The check in flight. */
  current: Promise<void>;
  /** The check that starts when `current` settles, shared by writes that arrived meanwhile. */
  next: Promise<void> | null;
}

export class RoomFence {
  private readonly slots = new Map<string, Slot>();

  constructor(private readonly ctx: Pick<CassandraContext, 'execute'>) {}

  /** Resolves when `epoch` is the room's highest; rejects with StaleWriterError when it is not. */
  check(roomId: string, epoch: number): Promise<void> {
    const key = `${roomId}\u0000${epoch}`;
    const slot = this.slots.get(key);
    if (!slot) {
      const s: Slot = { current: this.checkOnce(roomId, epoch), next: null };
      this.slots.set(key, s);
      this.settle(key, s);
      return s.current;
    }
    slot.next ??= slot.current.then(
      () => this.checkOnce(roomId, epoch),
      () => this.checkOnce(roomId, epoch),
    );
    return slot.next;
  }

  private settle(key: string, s: Slot): void {
    const after = () => {
      if (s.next) {
        s.current = s.next;
        s.next = null;
        this.settle(key, s);
      } else if (this.slots.get(key) === s) {
        this.slots.delete(key);
      }
    };
    s.current.then(after, after);
  }

  private async checkOnce(roomId: string, epoch: number): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const rs = await this.ctx.execute(`UPDATE room_owner_epochs SET epoch = ? WHERE room_id = ? IF epoch <= ?`, [epoch, roomId, epoch]);
      if (applied(rs)) return;
      const recorded = numOrNull(rs.first()?.['epoch']);
      if (recorded !== null) throw new StaleWriterError(roomId, epoch, recorded);
      const ins = await this.ctx.execute(`INSERT INTO room_owner_epochs (room_id, epoch) VALUES (?, ?) IF NOT EXISTS`, [roomId, epoch]);
      if (applied(ins)) return;
      // Someone inserted first: compare with theirs.
    }
    throw new Error(`room ${roomId}: fence check did not settle`);
  }
}

/** `inner` with every fenced persistEvent checked first (see the header). */
export function fencedRooms(inner: RoomStore, fence: RoomFence): RoomStore {
  const persistEvent = async (input: PersistEventInput) => {
    const roomId = input.pdu.room_id;
    if (input.fence !== undefined && typeof roomId === 'string') await fence.check(roomId, input.fence.epoch);
    return inner.persistEvent(input);
  };
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'persistEvent') return persistEvent;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
