// History reads for other servers (/event, /state, /state_ids, /event_auth, /backfill,
// /get_missing_events; FederationInbound in inbound.ts serves them through this). Invariants:
// an event is served only to a server whose users could see it: a member joined at it (invited
// too, for `invited` visibility), a member joined now for `shared` history, or world_readable
// history; rejected events are never served, and an outlier has no state to serve; a server the
// room's ACL bans gets M_FORBIDDEN; /event, /backfill and /get_missing_events serve our erased
// users' events redacted; an auth chain walk stops at MAX_AUTH_CHAIN events.

import { MatrixError } from '../errors.js';
import { isJsonObject } from '../protocol/canonical-json.js';
import { authEventIds, prevEventIds } from '../protocol/events.js';
import { serverNameOf } from '../protocol/ids.js';
import { redactEvent } from '../protocol/redaction.js';
import type { JsonObject, JsonValue, Pdu } from '../protocol/types.js';
import type { Store, StoredEvent } from '../store/types.js';

const MAX_AUTH_CHAIN = 100_000;

export interface HistoryDeps {
  serverName: string;
  store: Store;
  now: () => number;
  /** The room's current server ACL lets `server` in (no ACL: yes). */
  aclAllows: (roomId: string, server: string) => Promise<boolean>;
  /** Servers with a joined member in the room now. */
  serversInRoom: (roomId: string) => Promise<Set<string>>;
}

export class FederationHistory {
  constructor(private readonly d: HistoryDeps) {}

  async getEvent(origin: string, eventId: string): Promise<JsonObject> {
    const ev = await this.d.store.rooms.getEvent(eventId);
    if (!ev || ev.rejected !== null || !(await this.serverMaySee(origin, ev))) throw new MatrixError('M_NOT_FOUND', 'Event not found');
    if (!(await this.d.aclAllows(ev.roomId, origin))) throw aclError();
    const pdus = await this.erasedRedacted(ev.roomId, [ev.pdu]);
    return { origin: this.d.serverName, origin_server_ts: this.d.now(), pdus: pdus as unknown as JsonObject[] };
  }

  async state(origin: string, roomId: string, eventId: string, idsOnly: boolean): Promise<JsonObject> {
    // An outlier has no known state: not found, before visibility (which an outlier always fails).
    const ev = await this.readable(origin, roomId, eventId, { outlierNotFound: true });
    const entries = await this.d.store.rooms.getStateAtEvent(ev.eventId, 'before');
    if (!entries) throw new MatrixError('M_NOT_FOUND', 'No state is known at that event');
    const ids = entries.map((e) => e.eventId);
    const chain = [...(await this.authChain(ids))];
    if (idsOnly) return { pdu_ids: ids, auth_chain_ids: chain };
    return { pdus: (await this.pdusOf(ids)) as unknown as JsonObject[], auth_chain: (await this.pdusOf(chain)) as unknown as JsonObject[] };
  }

  async eventAuth(origin: string, roomId: string, eventId: string): Promise<JsonObject> {
    const ev = await this.readable(origin, roomId, eventId);
    // The chain starting at the event itself: its own auth events are part of it.
    const chain = await this.authChain([ev.eventId]);
    return { auth_chain: (await this.pdusOf([...chain])) as unknown as JsonObject[] };
  }

  async backfill(origin: string, roomId: string, from: string[], limit: number): Promise<JsonObject> {
    if (!(await this.d.aclAllows(roomId, origin))) throw aclError();
    const pdus = await this.erasedRedacted(roomId, await this.walkBack(origin, roomId, from, new Set(), Math.min(Math.max(limit, 0), 100), 0));
    return { origin: this.d.serverName, origin_server_ts: this.d.now(), pdus: pdus as unknown as JsonObject[] };
  }

  async getMissingEvents(origin: string, roomId: string, body: JsonValue | undefined): Promise<JsonObject> {
    if (!(await this.d.aclAllows(roomId, origin))) throw aclError();
    // Both lists are required by the spec; a missing one counts as empty, as Synapse does (SyTest
    // asks with `{}`): nothing to walk back from, so no events. A list of the wrong type is refused.
    if (!isJsonObject(body) || !isListOrAbsent(body.latest_events) || !isListOrAbsent(body.earliest_events)) {
      throw new MatrixError('M_BAD_JSON', 'latest_events and earliest_events must be lists of event IDs');
    }
    const strings = (l: JsonValue[] | undefined) => (l ?? []).filter((x): x is string => typeof x === 'string');
    const limit = typeof body.limit === 'number' ? Math.min(Math.max(body.limit, 0), 20) : 10;
    const minDepth = typeof body.min_depth === 'number' ? body.min_depth : 0;
    const latest = await this.d.store.rooms.getEvents(strings(body.latest_events));
    const starts = [...latest.values()].filter((e) => e.roomId === roomId).flatMap((e) => prevEventIds(e.pdu));
    const events = await this.erasedRedacted(roomId, await this.walkBack(origin, roomId, starts, new Set(strings(body.earliest_events)), limit, minDepth));
    return { events: events.reverse() as unknown as JsonObject[] };
  }

  private async readable(origin: string, roomId: string, eventId: string, opts: { outlierNotFound?: boolean } = {}): Promise<StoredEvent> {
    const ev = await this.d.store.rooms.getEvent(eventId);
    if (!ev || ev.roomId !== roomId || ev.rejected !== null) throw new MatrixError('M_NOT_FOUND', 'Event not found');
    if (opts.outlierNotFound && ev.outlier) throw new MatrixError('M_NOT_FOUND', 'No state is known at that event');
    if (!(await this.d.aclAllows(roomId, origin))) throw aclError();
    if (!(await this.serverMaySee(origin, ev))) throw new MatrixError('M_FORBIDDEN', 'Your server has no member in the room at that event');
    return ev;
  }

  /**
   * History visibility for servers (as the spec has it for clients, per server): world_readable
   * events are public; a member of `origin` joined in the state after the event (or invited, with
   * `invited` visibility) sees it; `shared` history is also open to a server with a member joined
   * now, since its users may page back through it (Synapse backfills a newly joined room so).
   * `joinedNow` caches that last check across one request.
   */
  private async serverMaySee(origin: string, ev: StoredEvent, joinedNow: { value?: boolean } = {}): Promise<boolean> {
    const entries = await this.d.store.rooms.getStateAtEvent(ev.eventId, 'after');
    if (!entries) return false; // an outlier: no state known, nothing vouches for the origin
    const relevant = entries.filter(
      (e) => (e.type === 'm.room.member' && serverNameOf(e.stateKey) === origin) || (e.type === 'm.room.history_visibility' && e.stateKey === ''),
    );
    const events = await this.d.store.rooms.getEvents(relevant.map((e) => e.eventId));
    let visibility = 'shared';
    const memberships = new Set<unknown>();
    for (const e of relevant) {
      const pdu = events.get(e.eventId)?.pdu;
      if (!pdu) continue;
      if (e.type === 'm.room.history_visibility') {
        if (typeof pdu.content.history_visibility === 'string') visibility = pdu.content.history_visibility;
      } else {
        memberships.add(pdu.content.membership);
      }
    }
    if (visibility === 'world_readable' || memberships.has('join')) return true;
    if (visibility === 'invited') return memberships.has('invite');
    if (visibility !== 'shared') return false;
    joinedNow.value ??= (await this.d.serversInRoom(ev.roomId)).has(origin);
    return joinedNow.value;
  }

  /**
   * History served to other servers (/event, /backfill, /get_missing_events) carries the events of
   * our erased users redacted, as Synapse serves them: the spec asks it for servers that join
   * after the erasure, and servers that were there before hold their own copies already.
   */
  private async erasedRedacted(roomId: string, pdus: Pdu[]): Promise<Pdu[]> {
    const senders = [...new Set(pdus.map((p) => p.sender).filter((s) => serverNameOf(s) === this.d.serverName))];
    if (senders.length === 0) return pdus;
    const erased = await this.d.store.accounts.getErasures(senders);
    if (erased.size === 0) return pdus;
    const version = (await this.d.store.rooms.getRoom(roomId))?.roomVersion;
    if (version === undefined) return pdus;
    return pdus.map((p) => (erased.has(p.sender) ? redactEvent(p, version) : p));
  }

  private async walkBack(origin: string, roomId: string, starts: string[], stop: Set<string>, limit: number, minDepth: number): Promise<Pdu[]> {
    const out: Pdu[] = [];
    const seen = new Set<string>(stop);
    let frontier = starts.filter((id) => !seen.has(id));
    for (const id of frontier) seen.add(id);
    const joinedNow: { value?: boolean } = {};
    while (frontier.length > 0 && out.length < limit) {
      const found = await this.d.store.rooms.getEvents(frontier);
      const next: string[] = [];
      for (const id of frontier) {
        const ev = found.get(id);
        if (!ev || ev.roomId !== roomId || ev.rejected !== null || ev.pdu.depth < minDepth) continue;
        if (!(await this.serverMaySee(origin, ev, joinedNow))) continue;
        if (out.length < limit) out.push(ev.pdu);
        for (const p of prevEventIds(ev.pdu)) {
          if (!seen.has(p)) {
            seen.add(p);
            next.push(p);
          }
        }
      }
      frontier = next;
    }
    return out;
  }

  async authChain(from: string[]): Promise<Set<string>> {
    const chain = new Set<string>();
    let frontier = [...new Set(from)];
    const visited = new Set(frontier);
    while (frontier.length > 0 && chain.size < MAX_AUTH_CHAIN) {
      const found = await this.d.store.rooms.getEvents(frontier);
      const next: string[] = [];
      for (const ev of found.values()) {
        for (const a of authEventIds(ev.pdu)) {
          chain.add(a);
          if (!visited.has(a)) {
            visited.add(a);
            next.push(a);
          }
        }
      }
      frontier = next;
    }
    return chain;
  }

  async pdusOf(ids: string[]): Promise<Pdu[]> {
    const found = await this.d.store.rooms.getEvents(ids);
    return ids.map((id) => found.get(id)?.pdu).filter((p): p is Pdu => p !== undefined);
  }
}

export function aclError(): MatrixError {
  return new MatrixError('M_FORBIDDEN', 'Server is banned from this room by its server ACL');
}

function isListOrAbsent(v: JsonValue | undefined): v is JsonValue[] | undefined {
  return v === undefined || Array.isArray(v);
}
