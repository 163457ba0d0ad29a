// Where a local event's PDU goes, computed by the room's writer from the room state it holds in
// memory, so the entries can be written in the event's own commit (PersistEventInput.outbound).
//
// Invariants: pure. Every server with a joined member, plus the target's server for a membership
// change other than an invite (a kicked, banned or leaving user's server hears of it; an invite
// went to the invitee's server through /invite already), minus ourselves, servers the room's ACL
// denies (the ACL the event itself sets, if it is one: ACLs hold both ways) and servers the
// federation policy refuses. The state is the one before the event; with the target's server
// added, that is the same set as "joined after the event, plus the target".

import { serverNameOf } from '../protocol/ids.js';
import type { Pdu } from '../protocol/types.js';
import type { RoomState } from '../room/room-state.js';
import { serverAclAllows } from './acl.js';

export function pduDestinations(me: string, before: RoomState, pdu: Pdu, allows: (server: string) => boolean): string[] {
  const servers = new Set<string>(before.joinedServers());
  if (pdu.type === 'm.room.member' && typeof pdu.state_key === 'string' && pdu.content.membership !== 'invite') {
    const s = serverNameOf(pdu.state_key);
    if (s !== undefined) servers.add(s);
  }
  const acl = pdu.type === 'm.room.server_acl' && pdu.state_key === '' ? pdu.content : before.content('m.room.server_acl');
  return allowedOthers(me, servers, acl, allows);
}

/** Where an EDU about the room goes (a receipt): its joined servers but ours, the room's ACL and `allows` applied. */
export function roomDestinations(me: string, state: RoomState, allows: (server: string) => boolean): string[] {
  return allowedOthers(me, new Set(state.joinedServers()), state.content('m.room.server_acl'), allows);
}

function allowedOthers(me: string, servers: Set<string>, acl: Parameters<typeof serverAclAllows>[0], allows: (server: string) => boolean): string[] {
  servers.delete(me);
  return [...servers].filter((s) => serverAclAllows(acl, s) && allows(s)).sort();
}
