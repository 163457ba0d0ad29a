// Which room events an application service is sent (Application Service API, "Registration"):
// events whose sender or target (a membership's state_key) is the AS's user or in its user
// namespaces; events in rooms whose ID matches its room namespaces, or that have an alias
// matching its alias namespaces; and events in rooms where one of its users is joined or invited.
//
// Invariants:
// - Membership answers are cached per room and dropped on every m.room.member event of that
//   room before the event itself is judged, so the cache never outlives the membership it
//   summarises by more than the event that changes it. Events are judged in stream order (one
//   caller: the AS's sender), so a room's answer is read after every earlier membership change.
// - Aliases are read from the store for each event of a room only when the AS has alias
//   namespaces (directory aliases change without any room event, so they are not cached).

import { LRUCache } from 'lru-cache';
import type { Pdu } from '../protocol/types.js';
import type { RoomStore } from '../store/types.js';
import { isAppServiceUser, matchesAny, type AppServiceRegistration } from './registration.js';

const ROOM_CACHE_ENTRIES = 50_000;

export class AppServiceInterest {
  private readonly members = new LRUCache<string, boolean>({ max: ROOM_CACHE_ENTRIES });

  constructor(
    private readonly reg: AppServiceRegistration,
    private readonly rooms: Pick<RoomStore, 'getRoomMembers' | 'getAliasesForRoom'>,
  ) {}

  async interested(roomId: string, pdu: Pdu): Promise<boolean> {
    const reg = this.reg;
    if (pdu.type === 'm.room.member') this.members.delete(roomId);
    if (isAppServiceUser(reg, pdu.sender)) return true;
    if (pdu.type === 'm.room.member' && typeof pdu.state_key === 'string' && isAppServiceUser(reg, pdu.state_key)) return true;
    if (matchesAny(reg.rooms, roomId)) return true;
    if (reg.aliases.length > 0) {
      if (pdu.type === 'm.room.canonical_alias' && this.canonicalAliasMatches(pdu)) return true;
      const aliases = await this.rooms.getAliasesForRoom(roomId);
      if (aliases.some((a) => matchesAny(reg.aliases, a))) return true;
    }
    return this.hasMember(roomId);
  }

  private canonicalAliasMatches(pdu: Pdu): boolean {
    const c = pdu.content;
    const all = [c.alias, ...(Array.isArray(c.alt_aliases) ? c.alt_aliases : [])];
    return all.some((a) => typeof a === 'string' && matchesAny(this.reg.aliases, a));
  }

  private async hasMember(roomId: string): Promise<boolean> {
    const cached = this.members.get(roomId);
    if (cached !== undefined) return cached;
    const members = await this.rooms.getRoomMembers(roomId, ['join', 'invite']);
    const found = members.some((m) => isAppServiceUser(this.reg, m.userId));
    this.members.set(roomId, found);
    return found;
  }
}
