// The space hierarchy (GET /rooms/{roomId}/hierarchy): a depth-first walk over m.space.child
// events from a root room, one page at a time.
//
// Invariants:
// - A room is listed only if the requester may see it: joined or invited, or the join rule is
//   public, knock or knock_restricted, or restricted with the requester joined to an allowed
//   room, or history is world_readable. An inaccessible room is not listed and its children are
//   not walked, so nothing behind it leaks. The root itself being inaccessible is a 403.
// - Local rooms only: a child this server has no state for is skipped (asking the servers in
//   `via` over federation comes with federation).
// - Children are valid only with a non-empty `via`; they are walked in the spec's order: by
//   `order` (printable ASCII, at most 50 characters) first, then origin_server_ts, then room ID.
// - Each room appears once even if the graph has cycles or shared children.
// - Tokens are stateless: they carry the root, max_depth, suggested_only and the number of rooms
//   already returned; the walk is repeated and skips that many. A token used with other
//   parameters is refused (the spec forbids changing them mid-pagination).

import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import type { Store } from '../store/types.js';
import type { RoomState } from './room-state.js';
import { allowedRoomIds, roomSummary } from './room-summary.js';

export interface HierarchyRequest {
  roomId: string;
  userId: string;
  maxDepth?: number;
  limit?: number;
  from?: string;
  suggestedOnly?: boolean;
}

interface Token {
  r: string;
  d: number;
  s: boolean;
  n: number;
}

export const DEFAULT_MAX_DEPTH = 50;
const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 100;

interface Child {
  roomId: string;
  order: string | null;
  ts: number;
  suggested: boolean;
  stripped: JsonObject;
}

function validOrder(v: unknown): string | null {
  return typeof v === 'string' && v.length <= 50 && /^[\x20-\x7e]*$/.test(v) ? v : null;
}

/** The valid m.space.child entries of a room, in the spec's order. */
export function spaceChildren(state: RoomState): Child[] {
  const out: Child[] = [];
  for (const { pdu } of state.all()) {
    if (pdu.type !== 'm.space.child' || pdu.state_key === undefined) continue;
    const via = pdu.content.via;
    if (!Array.isArray(via) || via.length === 0 || !via.every((v) => typeof v === 'string')) continue;
    out.push({
      roomId: pdu.state_key,
      order: validOrder(pdu.content.order),
      ts: pdu.origin_server_ts,
      suggested: pdu.content.suggested === true,
      stripped: { type: pdu.type, state_key: pdu.state_key, content: pdu.content, sender: pdu.sender, origin_server_ts: pdu.origin_server_ts },
    });
  }
  return out.sort((a, b) => {
    if (a.order !== null && b.order !== null && a.order !== b.order) return a.order < b.order ? -1 : 1;
    if (a.order !== null && b.order === null) return -1;
    if (a.order === null && b.order !== null) return 1;
    if (a.ts !== b.ts) return a.ts - b.ts;
    return a.roomId < b.roomId ? -1 : a.roomId > b.roomId ? 1 : 0;
  });
}

/** A room's summary as the hierarchy lists it (client and federation alike). */
export function hierarchySummary(roomId: string, state: RoomState): JsonObject {
  const summary = roomSummary(roomId, state);
  const version = state.content('m.room.create')?.room_version;
  summary.room_version = typeof version === 'string' ? version : '1';
  const encryption = state.content('m.room.encryption')?.algorithm;
  if (typeof encryption === 'string') summary.encryption = encryption;
  const allowed = allowedRoomIds(state);
  if (allowed.length > 0) summary.allowed_room_ids = allowed;
  return summary;
}

function encodeToken(t: Token): string {
  return Buffer.from(JSON.stringify(t)).toString('base64url');
}

function decodeToken(raw: string): Token {
  try {
    const t = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as Partial<Token>;
    if (typeof t.r === 'string' && Number.isSafeInteger(t.d) && typeof t.s === 'boolean' && Number.isSafeInteger(t.n) && (t.n as number) >= 0) {
      return t as Token;
    }
  } catch {
    // fall through
  }
  throw new MatrixError('M_INVALID_PARAM', 'Unknown pagination token');
}

export class HierarchyService {
  constructor(
    private readonly store: Store,
    private readonly currentState: (roomId: string) => Promise<RoomState | null>,
  ) {}

  async hierarchy(req: HierarchyRequest): Promise<JsonObject> {
    const limit = Math.min(req.limit ?? DEFAULT_LIMIT, MAX_LIMIT);
    let maxDepth = req.maxDepth ?? DEFAULT_MAX_DEPTH;
    let suggestedOnly = req.suggestedOnly ?? false;
    let skip = 0;
    if (req.from !== undefined) {
      const t = decodeToken(req.from);
      if (t.r !== req.roomId) throw new MatrixError('M_INVALID_PARAM', 'The token belongs to another room');
      if ((req.maxDepth !== undefined && req.maxDepth !== t.d) || (req.suggestedOnly !== undefined && req.suggestedOnly !== t.s)) {
        throw new MatrixError('M_INVALID_PARAM', 'max_depth and suggested_only cannot change during pagination');
      }
      maxDepth = t.d;
      suggestedOnly = t.s;
      skip = t.n;
    }

    const rootState = await this.currentState(req.roomId);
    if (!rootState || !(await this.accessible(req.userId, req.roomId, rootState))) {
      throw new MatrixError('M_FORBIDDEN', 'You may not view this room');
    }

    const rooms: JsonObject[] = [];
    let listed = 0;
    let more = false;
    const seen = new Set<string>([req.roomId]);
    // Depth-first: the stack's top is the next room; children are pushed in reverse order.
    const stack: Array<{ roomId: string; depth: number; state: RoomState | null }> = [{ roomId: req.roomId, depth: 0, state: rootState }];
    while (stack.length > 0) {
      const { roomId, depth, state: known } = stack.pop()!;
      const state = known ?? (await this.currentState(roomId));
      if (!state) continue; // not known to this server: federation would ask `via`
      if (depth > 0 && !(await this.accessible(req.userId, roomId, state))) continue;
      if (listed >= skip + limit) {
        more = true;
        break;
      }
      const children = spaceChildren(state).filter((c) => !suggestedOnly || c.suggested);
      if (listed >= skip) {
        const summary = hierarchySummary(roomId, state);
        summary.children_state = children.map((c) => c.stripped);
        rooms.push(summary);
      }
      listed++;
      if (depth < maxDepth) {
        for (let i = children.length - 1; i >= 0; i--) {
          const c = children[i];
          if (seen.has(c.roomId)) continue;
          seen.add(c.roomId);
          stack.push({ roomId: c.roomId, depth: depth + 1, state: null });
        }
      }
    }
    const out: JsonObject = { rooms };
    if (more) out.next_batch = encodeToken({ r: req.roomId, d: maxDepth, s: suggestedOnly, n: skip + limit });
    return out;
  }

  /** The spec's list of who may see a room in the hierarchy (see the header). */
  async accessible(userId: string, roomId: string, state: RoomState): Promise<boolean> {
    const m = state.membership(userId);
    if (m === 'join' || m === 'invite') return true;
    const rule = state.joinRule();
    if (rule === 'public' || rule === 'knock' || rule === 'knock_restricted') return true;
    if (state.content('m.room.history_visibility')?.history_visibility === 'world_readable') return true;
    if (rule === 'restricted') {
      for (const allowed of allowedRoomIds(state)) {
        if ((await this.store.rooms.getMembership(allowed, userId))?.membership === 'join') return true;
      }
    }
    return false;
  }
}
