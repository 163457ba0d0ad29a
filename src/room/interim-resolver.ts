// Interim stand-in for state resolution until src/protocol/state-res (pure v1/v2/v2.1) is wired
// in from src/app.ts. It is NOT the spec's algorithm: it keeps every unconflicted entry, then
// offers the conflicted candidates to the auth rules against the partial state, control events
// (power levels, join rules, bans and kicks) first, then by (depth, event ID), keeping the last
// one allowed per key. It is deterministic and independent of the order of the state sets, and
// it agrees with v2 on the simple forks room input meets today (e.g. ban vs. earlier join).

import { checkEventAuth } from '../protocol/auth-rules.js';
import { stateTuple, type Pdu } from '../protocol/types.js';
import type { ResolveState, StateMap } from './state-resolver.js';

function isControl(pdu: Pdu): boolean {
  if (pdu.type === 'm.room.power_levels' || pdu.type === 'm.room.join_rules' || pdu.type === 'm.room.create') return true;
  if (pdu.type !== 'm.room.member') return false;
  const m = pdu.content.membership;
  return (m === 'ban' || m === 'leave') && pdu.state_key !== pdu.sender;
}

export const interimResolveState: ResolveState = (version, sets, source) => {
  const resolved: StateMap = new Map();
  const keys = new Set<string>();
  for (const s of sets) for (const k of s.keys()) keys.add(k);
  const candidates: Array<{ key: string; id: string; pdu: Pdu }> = [];
  for (const k of keys) {
    const values = new Set(sets.map((s) => s.get(k)));
    if (values.size === 1 && !values.has(undefined)) {
      resolved.set(k, [...values][0] as string);
      continue;
    }
    for (const id of values) {
      if (id === undefined || source.isRejected?.(id)) continue;
      const ev = source.getEvent(id);
      if (ev) candidates.push({ key: k, id, pdu: ev.pdu });
    }
  }
  candidates.sort(
    (a, b) =>
      Number(isControl(b.pdu)) - Number(isControl(a.pdu)) || a.pdu.depth - b.pdu.depth || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
  const lookup = (type: string, stateKey: string): Pdu | undefined => {
    const id = resolved.get(stateTuple(type, stateKey));
    return id === undefined ? undefined : source.getEvent(id)?.pdu;
  };
  for (const c of candidates) {
    try {
      checkEventAuth(c.pdu, version, lookup);
      resolved.set(c.key, c.id);
    } catch {
      // Not allowed by the state resolved so far: this candidate loses.
    }
  }
  return resolved;
};
