// What a user may read of a room's state: the state itself, single state events, member lists
// (now or at a stream position) and the rooms they are joined to.
//
// Invariants:
// - A joined user reads the current state; one who left (or was kicked) reads the state as it
//   was when they went; banned users, invitees and strangers only read world-readable rooms
//   (invitees get invite_state through /sync instead). Anything else is 403 M_FORBIDDEN. The
//   spec does not single out bans; Synapse refuses them, and clients (SyTest's ban test) rely on
//   the 403 to see that a ban has arrived.
// - /members?at= never lets a leaver look past their departure.

import { MatrixError } from '../errors.js';
import type { MembershipRecord, StateEntry, Store, StoredEvent } from '../store/types.js';
import type { VisibilityChecker } from './visibility.js';

export class RoomStateReader {
  constructor(
    private readonly store: Store,
    private readonly visibility: VisibilityChecker,
  ) {}

  /** The state entries the user may read (see the invariants); throws 403 otherwise. */
  async visibleState(userId: string, roomId: string): Promise<StateEntry[]> {
    const m = await this.store.rooms.getMembership(roomId, userId);
    if (m?.membership === 'join') return this.store.rooms.getCurrentState(roomId);
    if (m?.membership === 'leave') return this.store.rooms.getStateAt(roomId, m.stream);
    if (await this.visibility.isWorldReadable(roomId)) return this.store.rooms.getCurrentState(roomId);
    throw new MatrixError('M_FORBIDDEN', 'You are not a member of this room');
  }

  /** The visible state as events, in stream order. */
  async stateEvents(userId: string, roomId: string): Promise<StoredEvent[]> {
    return this.eventsOf(await this.visibleState(userId, roomId));
  }

  /** One visible state event; 404 when there is none. */
  async stateEvent(userId: string, roomId: string, type: string, stateKey: string): Promise<StoredEvent> {
    const entry = (await this.visibleState(userId, roomId)).find((e) => e.type === type && e.stateKey === stateKey);
    const ev = entry && (await this.store.rooms.getEvent(entry.eventId));
    if (!ev) throw new MatrixError('M_NOT_FOUND', 'Event not found');
    return ev;
  }

  /** Member events, of the visible state or (with `at`) of the state at that stream position. */
  async memberEvents(userId: string, roomId: string, at?: number): Promise<StoredEvent[]> {
    let state: StateEntry[];
    if (at !== undefined) {
      const mine = await this.store.rooms.getMembership(roomId, userId);
      if (!mine) throw new MatrixError('M_FORBIDDEN', 'You are not a member of this room');
      const bound = mine.membership === 'join' || mine.membership === 'invite' ? at : Math.min(at, mine.stream);
      state = await this.store.rooms.getStateAt(roomId, bound);
    } else {
      state = await this.visibleState(userId, roomId);
    }
    return this.eventsOf(state.filter((e) => e.type === 'm.room.member'));
  }

  /** Joined members with their member events; only for a joined user. */
  async joinedMembers(userId: string, roomId: string): Promise<Array<{ member: MembershipRecord; event: StoredEvent | undefined }>> {
    const mine = await this.store.rooms.getMembership(roomId, userId);
    if (mine?.membership !== 'join') throw new MatrixError('M_FORBIDDEN', 'You are not joined to this room');
    const members = await this.store.rooms.getRoomMembers(roomId, ['join']);
    const events = await this.store.rooms.getEvents(members.map((m) => m.eventId));
    return members.map((member) => ({ member, event: events.get(member.eventId) }));
  }

  async joinedRooms(userId: string): Promise<string[]> {
    return (await this.store.rooms.getRoomsForUser(userId, ['join'])).map((m) => m.roomId);
  }

  private async eventsOf(entries: StateEntry[]): Promise<StoredEvent[]> {
    const events = await this.store.rooms.getEvents(entries.map((e) => e.eventId));
    return [...events.values()].sort((a, b) => a.stream - b.stream);
  }
}
