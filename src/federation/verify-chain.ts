// Checks 1-4 on events another server hands over in bulk without their DAG context (a
// send_join answer, a /state answer filling a gap): format, signatures through the key ring,
// content hash (a mismatch keeps the redacted form), auth against their own auth events.
//
// Invariants: an event is kept only if every auth event it cites was itself kept (checked in
// depth order, so a chain is checked from its root); nothing here writes; the result lists the
// `state` events that passed, in the order given.

import { authEventIds } from '../protocol/events.js';
import type { JsonValue, Pdu, RoomVersion } from '../protocol/types.js';
import type { KeyRing } from '../room/key-ring.js';
import { checkAgainstAuthEvents, checkFormat, checkHashOrRedact, checkSignatures } from '../room/pdu-checks.js';

export async function verifyChain(
  roomId: string,
  version: RoomVersion,
  keyRing: KeyRing,
  state: readonly JsonValue[],
  chain: readonly JsonValue[],
  /** Events already trusted (stored) that candidates may cite as auth events. */
  known: ReadonlyMap<string, Pdu> = new Map(),
): Promise<{ events: Map<string, Pdu>; stateIds: string[] }> {
  const candidates = new Map<string, Pdu>();
  const stateIds: string[] = [];
  for (const [list, isState] of [[chain, false], [state, true]] as const) {
    for (const raw of list) {
      const f = checkFormat(raw, roomId, version);
      if (!f.ok) continue;
      if (!candidates.has(f.value.eventId)) {
        if ((await checkSignatures(f.value.pdu, version, keyRing)) !== undefined) continue;
        candidates.set(f.value.eventId, checkHashOrRedact(f.value.pdu, version).pdu);
      }
      if (isState) stateIds.push(f.value.eventId);
    }
  }
  const good = new Map<string, Pdu>();
  const createPdu = [...candidates.values(), ...known.values()].find((p) => p.type === 'm.room.create' && p.state_key === '');
  for (const [id, pdu] of [...candidates].sort((a, b) => a[1].depth - b[1].depth)) {
    const auth = authEventIds(pdu).map((a) => good.get(a) ?? known.get(a));
    if (auth.some((a) => a === undefined)) continue; // cites something missing or refused
    if (checkAgainstAuthEvents(pdu, version, auth as Pdu[], createPdu) !== undefined) continue;
    good.set(id, pdu);
  }
  return { events: good, stateIds: stateIds.filter((id) => good.has(id)) };
}
