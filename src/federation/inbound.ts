// What other servers may ask of this one (the /_matrix/federation endpoints' logic; the HTTP
// layer is listener.ts). `origin` is always the server authenticated by X-Matrix.
//
// Invariants:
// - /send answers per PDU and never fails as a whole for a bad PDU (a non-200 stalls the
//   sender's queue): `{}` for every PDU received and dealt with (accepted, soft-failed, outlier,
//   rejected by the auth rules, or dropped for a gap that could not be filled), as Synapse
//   answers; `{error}` only for an invalid PDU (format, signatures) or an ACL ban. It is
//   idempotent per (origin, txnId) for recent transactions, and PDUs are idempotent by event ID
//   anyway. Rooms are processed in parallel, each room's PDUs in order,
//   all through RoomInput.receive.
// - EDUs are believed only for users on the origin server who are joined to the room.
// - History reads (/event, /state*, /event_auth, /backfill, /get_missing_events) are served only
//   to a server whose users could see the event: a member joined at it (invited too, for
//   `invited` visibility), a member joined now for `shared` history, or world_readable history.
//   /event, /backfill and /get_missing_events serve our erased users' events redacted.
// - Membership handshakes (make_*/send_*) only concern users of the origin server.

import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import { MatrixError } from '../errors.js';
import { isJsonObject } from '../protocol/canonical-json.js';
import { addEventSignature, authEventIds, computeEventId, prevEventIds } from '../protocol/events.js';
import { isValidUserId, serverNameOf } from '../protocol/ids.js';
import { isRoomVersion } from '../protocol/room-versions.js';
import { redactEvent } from '../protocol/redaction.js';
import type { JsonObject, JsonValue, Pdu, RoomVersion, SigningKey } from '../protocol/types.js';
import type { KeyRing } from '../room/key-ring.js';
import { checkAgainstState, checkFormat, checkSignatures } from '../room/pdu-checks.js';
import type { InputOutcome, RoomInput } from '../room/room-input.js';
import { lookupIn } from '../room/event-judge.js';
import type { TypingService } from '../ephemeral/typing.js';
import type { ReceiptService } from '../receipts/receipt-service.js';
import type { StoredEvent, Store } from '../store/types.js';
import type { FederationSender } from './sender.js';
import { serverAclAllows } from './acl.js';
import { DEFAULT_GAP_BUDGET, type GapBudget, type GapFiller } from './gap-fill.js';

export interface InboundDeps {
  serverName: string;
  signingKey: SigningKey;
  store: Store;
  roomInput: RoomInput;
  keyRing: KeyRing;
  typing: TypingService;
  receipts: ReceiptService;
  sender: FederationSender;
  logger: Logger;
  maxPdus: number;
  maxEdus: number;
  /** Fills gaps before PDUs (get_missing_events, /state_ids); absent: gaps make outliers. */
  gaps?: GapFiller;
  /** Further EDU types (device lists, to-device, presence); true when the type was handled. */
  moreEdus?: (origin: string, type: JsonValue | undefined, content: JsonObject) => Promise<boolean>;
  now?: () => number;
}

const MAX_AUTH_CHAIN = 100_000;

export class FederationInbound {
  private readonly txns = new LRUCache<string, Promise<JsonObject>>({ max: 10_000 });
  private readonly now: () => number;

  constructor(private readonly d: InboundDeps) {
    this.now = d.now ?? Date.now;
  }

  // ---- /send -------------------------------------------------------------------------------

  send(origin: string, txnId: string, body: JsonValue | undefined): Promise<JsonObject> {
    if (!isJsonObject(body)) throw new MatrixError('M_BAD_JSON', 'A transaction is a JSON object');
    const pdus = body.pdus ?? [];
    const edus = body.edus ?? [];
    if (!Array.isArray(pdus) || !Array.isArray(edus)) throw new MatrixError('M_BAD_JSON', 'pdus and edus must be arrays');
    if (pdus.length > this.d.maxPdus || edus.length > this.d.maxEdus) {
      throw new MatrixError('M_BAD_JSON', `A transaction carries at most ${this.d.maxPdus} PDUs and ${this.d.maxEdus} EDUs`);
    }
    const key = `${origin}\u0000${txnId}`;
    let done = this.txns.get(key);
    if (!done) {
      done = this.processTransaction(origin, pdus, edus);
      this.txns.set(key, done);
      done.catch(() => this.txns.delete(key));
    }
    return done;
  }

  private async processTransaction(origin: string, pdus: JsonValue[], edus: JsonValue[]): Promise<JsonObject> {
    const byRoom = new Map<string, JsonValue[]>();
    const results: JsonObject = {};
    for (const raw of pdus) {
      const roomId = isJsonObject(raw) && typeof raw.room_id === 'string' ? raw.room_id : undefined;
      if (roomId === undefined) continue; // no room, no ID we could report it under
      byRoom.set(roomId, [...(byRoom.get(roomId) ?? []), raw]);
    }
    const budget: GapBudget = { ...DEFAULT_GAP_BUDGET };
    await Promise.all(
      [...byRoom].map(async ([roomId, list]) => {
        const room = await this.d.store.rooms.getRoom(roomId);
        if (!room) {
          this.d.logger.info({ origin, roomId, pdus: list.length }, 'PDUs for a room this server is not in dropped');
          return;
        }
        // Events of this transaction stored here with a state: a later PDU citing only them has no gap.
        const storedHere = new Set<string>();
        for (const raw of list) {
          // Room input computes the event ID anyway (a canonical JSON pass and a SHA-256 per
          // PDU); ours is only needed when it cannot say which event it judged.
          const fallbackId = () => safeEventId(raw, room.roomVersion);
          if (!(await this.aclAllows(roomId, origin))) {
            const id = fallbackId();
            if (id !== undefined) results[id] = { error: 'Server is banned from this room by its server ACL' };
            continue;
          }
          try {
            const out = await this.receiveOne(origin, roomId, room.roomVersion, raw, storedHere, budget);
            const id = out.eventId ?? fallbackId();
            if (id === undefined) continue;
            if (out.outcome === 'accepted' || out.outcome === 'soft_failed') storedHere.add(id);
            // `{}` for a PDU received and dealt with, as Synapse answers (it judges PDUs after
            // answering): stored whatever the verdict (rejected by the auth rules too), or dropped
            // because the gap before it could not be filled. An error only for a PDU that is
            // itself invalid (format, signatures): the one thing its sender could fix.
            const invalid = out.outcome === 'rejected' && !out.stored && !out.gap;
            results[id] = invalid ? { error: out.reason } : {};
            if (out.outcome === 'rejected' && !invalid) this.d.logger.info({ origin, roomId, eventId: id, reason: out.reason, stored: out.stored }, 'received PDU rejected');
          } catch (err) {
            this.d.logger.warn({ err, origin, roomId }, 'PDU processing failed');
            const id = fallbackId();
            if (id !== undefined) results[id] = { error: 'internal error' };
          }
        }
      }),
    );
    for (const edu of edus) {
      try {
        await this.edu(origin, edu);
      } catch (err) {
        this.d.logger.warn({ err, origin }, 'EDU processing failed');
      }
    }
    return { pdus: results };
  }

  /**
   * Through the gap filler, which checks the PDU's format and looks its prev events up, unless
   * every prev event is one this transaction has just stored with a state: then there is no gap,
   * and room input alone does the work (one format check and event ID per PDU, not three).
   */
  private receiveOne(origin: string, roomId: string, version: RoomVersion, raw: JsonValue, storedHere: ReadonlySet<string>, budget: GapBudget): Promise<InputOutcome> {
    const prevs = isJsonObject(raw) ? prevEventIds(raw as unknown as Pdu) : [];
    if (!this.d.gaps || (prevs.length > 0 && prevs.every((id) => storedHere.has(id)))) return this.d.roomInput.receive(roomId, raw, origin);
    const eventId = safeEventId(raw, version);
    if (eventId === undefined) return this.d.roomInput.receive(roomId, raw, origin);
    return this.d.gaps.receive(origin, roomId, version, raw, eventId, budget);
  }

  private async edu(origin: string, edu: JsonValue): Promise<void> {
    if (!isJsonObject(edu) || !isJsonObject(edu.content)) return;
    const c = edu.content;
    if (edu.edu_type === 'm.typing') {
      if (typeof c.room_id !== 'string' || typeof c.user_id !== 'string' || typeof c.typing !== 'boolean') return;
      if (!(await this.joinedFrom(origin, c.room_id, c.user_id))) return;
      this.d.typing.setTyping(c.room_id, c.user_id, c.typing, 30_000);
    } else if (edu.edu_type === 'm.receipt') {
      for (const [roomId, byType] of Object.entries(c)) {
        if (!isJsonObject(byType) || !isJsonObject(byType['m.read'])) continue;
        for (const [userId, r] of Object.entries(byType['m.read'])) {
          if (!isJsonObject(r) || !Array.isArray(r.event_ids) || typeof r.event_ids[0] !== 'string') continue;
          if (!(await this.joinedFrom(origin, roomId, userId))) continue;
          const thread = isJsonObject(r.data) && typeof r.data.thread_id === 'string' ? r.data.thread_id : null;
          await this.d.receipts.receiveRemote(userId, roomId, r.event_ids[0], thread);
        }
      }
    } else if (this.d.moreEdus) {
      await this.d.moreEdus(origin, edu.edu_type, c);
    }
    // Other EDU types are ignored, as the spec allows.
  }

  private async joinedFrom(origin: string, roomId: string, userId: string): Promise<boolean> {
    if (serverNameOf(userId) !== origin || !(await this.aclAllows(roomId, origin))) return false;
    return (await this.d.store.rooms.getMembership(roomId, userId))?.membership === 'join';
  }

  // ---- membership handshakes -----------------------------------------------------------------

  async makeMembership(origin: string, roomId: string, userId: string, membership: 'join' | 'leave' | 'knock', versions: string[]): Promise<JsonObject> {
    if (!isValidUserId(userId) || serverNameOf(userId) !== origin) throw new MatrixError('M_FORBIDDEN', 'The user is not on the requesting server');
    const t = await this.d.roomInput.template(roomId, { type: 'm.room.member', stateKey: userId, sender: userId, content: { membership } });
    if (!t) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    if (!serverAclAllows(t.state.content('m.room.server_acl'), origin)) throw aclError();
    // A room none of our users is in any more: our state of it may be stale, and a join through
    // us would go nowhere (nobody here passes it on). The joining server must ask a resident one.
    if (membership !== 'leave' && !t.state.joinedMembers().some((m) => serverNameOf(m.userId) === this.d.serverName)) {
      throw new MatrixError('M_NOT_FOUND', 'This server is no longer in the room');
    }
    if (membership !== 'leave' && !versions.includes(t.version)) {
      throw new MatrixError('M_INCOMPATIBLE_ROOM_VERSION', `The room is version ${t.version}`, { room_version: t.version });
    }
    const refusal = checkAgainstState(t.pdu, t.version, lookupIn(t.state));
    if (refusal !== undefined) throw new MatrixError('M_FORBIDDEN', refusal);
    return { room_version: t.version, event: t.pdu as unknown as JsonObject };
  }

  /** The version of a room stored here, if any. */
  async roomVersion(roomId: string): Promise<RoomVersion | undefined> {
    return (await this.d.store.rooms.getRoom(roomId))?.roomVersion;
  }

  async sendMembership(origin: string, roomId: string, eventId: string, raw: JsonValue | undefined, membership: 'join' | 'leave' | 'knock'): Promise<StoredEvent> {
    const room = await this.d.store.rooms.getRoom(roomId);
    if (!room) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
    if (!(await this.aclAllows(roomId, origin))) throw aclError();
    if (!isJsonObject(raw) || raw.type !== 'm.room.member' || !isJsonObject(raw.content) || raw.content.membership !== membership) {
      throw new MatrixError('M_BAD_JSON', `Not an m.room.member ${membership} event`);
    }
    if (typeof raw.sender !== 'string' || raw.state_key !== raw.sender || serverNameOf(raw.sender) !== origin) {
      throw new MatrixError('M_FORBIDDEN', 'The event must be about a user of the requesting server, sent by that user');
    }
    if (safeEventId(raw, room.roomVersion) !== eventId) throw new MatrixError('M_BAD_JSON', 'The event ID does not match the event');
    const out = await this.d.roomInput.receive(roomId, raw, origin);
    if (out.outcome !== 'accepted') throw new MatrixError('M_FORBIDDEN', `The ${membership} was not accepted: ${(out as { reason?: string }).reason ?? out.outcome}`);
    const stored = await this.d.store.rooms.getEvent(eventId);
    if (!stored) throw new Error('accepted event not found');
    // We are the resident server the joiner chose: the rest of the room learns it from us.
    const servers = await this.serversInRoom(roomId);
    servers.delete(origin);
    this.d.sender.sendPdu(servers, stored.pdu);
    return stored;
  }

  async sendJoin(origin: string, roomId: string, eventId: string, raw: JsonValue | undefined): Promise<JsonObject> {
    const stored = await this.sendMembership(origin, roomId, eventId, raw, 'join');
    // omit_members is not honoured: the full state is always sent, and said so (spec: allowed).
    const stateIds = (await this.d.store.rooms.getStateAtEvent(eventId, 'before')) ?? [];
    const state = await this.pdusOf(stateIds.map((e) => e.eventId));
    const chain = await this.authChain([...stateIds.map((e) => e.eventId), eventId]);
    return {
      origin: this.d.serverName,
      state: state as unknown as JsonObject[],
      auth_chain: (await this.pdusOf([...chain])) as unknown as JsonObject[],
      event: stored.pdu as unknown as JsonObject,
      members_omitted: false,
      servers_in_room: [...(await this.serversInRoom(roomId))],
    };
  }

  async invite(origin: string, roomId: string, eventId: string, body: JsonValue | undefined): Promise<JsonObject> {
    if (!isJsonObject(body) || !isRoomVersion(body.room_version)) {
      throw new MatrixError('M_INCOMPATIBLE_ROOM_VERSION', 'Unsupported or missing room_version', { room_version: isJsonObject(body) ? body.room_version ?? null : null });
    }
    // A room we know whose ACL bans the inviting server: refused before anything else is looked at.
    if (!(await this.aclAllows(roomId, origin))) throw aclError();
    const version = body.room_version;
    const f = checkFormat(body.event, roomId, version);
    if (!f.ok) throw new MatrixError('M_BAD_JSON', f.reason);
    const { pdu } = f.value;
    if (f.value.eventId !== eventId) throw new MatrixError('M_BAD_JSON', 'The event ID does not match the event');
    if (pdu.type !== 'm.room.member' || pdu.content.membership !== 'invite' || typeof pdu.state_key !== 'string') {
      throw new MatrixError('M_BAD_JSON', 'Not an invite');
    }
    if (serverNameOf(pdu.state_key) !== this.d.serverName) throw new MatrixError('M_NOT_FOUND', 'No such user here');
    if (serverNameOf(pdu.sender) !== origin) throw new MatrixError('M_FORBIDDEN', 'The inviter is not on the requesting server');
    const bad = await checkSignatures(pdu, version, this.d.keyRing);
    if (bad !== undefined) throw new MatrixError('M_FORBIDDEN', bad);
    const signed = addEventSignature(structuredClone(pdu), this.d.serverName, this.d.signingKey, version);
    const inRoom = (await this.serversInRoom(roomId)).has(this.d.serverName);
    // In a room we are in, an invite of a user we do not have is still a valid event of its DAG
    // (it comes through /send as well, and Synapse accepts it); elsewhere there is nobody to show it to.
    if (!inRoom && !(await this.d.store.accounts.getUser(pdu.state_key))) throw new MatrixError('M_NOT_FOUND', 'No such user here');
    if (inRoom) {
      // A room we are in: the invite joins its DAG like any PDU (it also comes through /send).
      const raw = signed as unknown as JsonValue;
      const out = this.d.gaps
        ? await this.d.gaps.receive(origin, roomId, version, raw, eventId, { ...DEFAULT_GAP_BUDGET })
        : await this.d.roomInput.receive(roomId, raw, origin);
      if (out.outcome === 'rejected') throw new MatrixError('M_FORBIDDEN', `The invite is not allowed: ${out.reason}`);
    } else {
      // A room we are not in (unknown, or every member of ours left): our copy of its DAG is stale
      // or absent and the inviting server will not send the invite through /send, so it is
      // recorded on its own, and the join goes through that server. Until then the invitee sees
      // the room through what the inviting server sent along (stripped, in the invite's unsigned).
      const roomState = await this.inviteRoomState(roomId, version, body.invite_room_state);
      const stored = roomState.length > 0 ? { ...signed, unsigned: { invite_room_state: roomState } } : signed;
      await this.d.roomInput.recordRemoteInvite(roomId, version, eventId, stored);
    }
    return { event: signed as unknown as JsonObject };
  }

  /**
   * The invite's `invite_room_state`, as stripped state: only full PDUs of this room that pass the
   * format and signature checks (spec v1.18 / MSC4311 format), at most one per (type, state_key).
   */
  private async inviteRoomState(roomId: string, version: RoomVersion, raw: JsonValue | undefined): Promise<JsonObject[]> {
    if (!Array.isArray(raw)) return [];
    const out = new Map<string, JsonObject>();
    for (const entry of raw.slice(0, 50)) {
      const f = checkFormat(entry, roomId, version);
      if (!f.ok || typeof f.value.pdu.state_key !== 'string') continue;
      const { pdu } = f.value;
      const stateKey = f.value.pdu.state_key as string;
      if ((await checkSignatures(pdu, version, this.d.keyRing)) !== undefined) continue;
      out.set(`${pdu.type}\u0000${stateKey}`, { type: pdu.type, state_key: stateKey, content: pdu.content, sender: pdu.sender });
    }
    return [...out.values()];
  }

  // ---- history reads -------------------------------------------------------------------------

  async getEvent(origin: string, eventId: string): Promise<JsonObject> {
    const ev = await this.d.store.rooms.getEvent(eventId);
    if (!ev || ev.rejected !== null || !(await this.serverMaySee(origin, ev))) throw new MatrixError('M_NOT_FOUND', 'Event not found');
    if (!(await this.aclAllows(ev.roomId, origin))) throw aclError();
    const pdus = await this.erasedRedacted(ev.roomId, [ev.pdu]);
    return { origin: this.d.serverName, origin_server_ts: this.now(), pdus: pdus as unknown as JsonObject[] };
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
    if (!(await this.aclAllows(roomId, origin))) throw aclError();
    const pdus = await this.erasedRedacted(roomId, await this.walkBack(origin, roomId, from, new Set(), Math.min(Math.max(limit, 0), 100), 0));
    return { origin: this.d.serverName, origin_server_ts: this.now(), pdus: pdus as unknown as JsonObject[] };
  }

  async getMissingEvents(origin: string, roomId: string, body: JsonValue | undefined): Promise<JsonObject> {
    if (!(await this.aclAllows(roomId, origin))) throw aclError();
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

  // ---- queries -------------------------------------------------------------------------------

  async queryProfile(userId: string, field: string | undefined): Promise<JsonObject> {
    if (serverNameOf(userId) !== this.d.serverName) throw new MatrixError('M_NOT_FOUND', 'Not a user of this server');
    const user = await this.d.store.accounts.getUser(userId);
    if (!user) throw new MatrixError('M_NOT_FOUND', 'No such user');
    const out: JsonObject = {};
    if ((field === undefined || field === 'displayname') && user.displayname !== null) out.displayname = user.displayname;
    if ((field === undefined || field === 'avatar_url') && user.avatarUrl !== null) out.avatar_url = user.avatarUrl;
    return out;
  }

  async queryDirectory(alias: string): Promise<JsonObject> {
    if (serverNameOf(alias) !== this.d.serverName) throw new MatrixError('M_NOT_FOUND', 'Not an alias of this server');
    const a = await this.d.store.rooms.getAlias(alias);
    if (!a) throw new MatrixError('M_NOT_FOUND', 'Room alias not found');
    const servers = await this.serversInRoom(a.roomId);
    servers.delete(this.d.serverName);
    return { room_id: a.roomId, servers: [this.d.serverName, ...servers] };
  }

  // ---- helpers -------------------------------------------------------------------------------

  /** The room's current server ACL lets `server` in (no ACL: yes). */
  async aclAllows(roomId: string, server: string): Promise<boolean> {
    const state = await this.d.roomInput.currentState(roomId);
    return serverAclAllows(state?.content('m.room.server_acl'), server);
  }

  /** Servers with a joined member in the room now. */
  async serversInRoom(roomId: string): Promise<Set<string>> {
    const members = await this.d.store.rooms.getRoomMembers(roomId, ['join']);
    const out = new Set<string>();
    for (const m of members) {
      const s = serverNameOf(m.userId);
      if (s !== undefined) out.add(s);
    }
    return out;
  }

  private async readable(origin: string, roomId: string, eventId: string, opts: { outlierNotFound?: boolean } = {}): Promise<StoredEvent> {
    const ev = await this.d.store.rooms.getEvent(eventId);
    if (!ev || ev.roomId !== roomId || ev.rejected !== null) throw new MatrixError('M_NOT_FOUND', 'Event not found');
    if (opts.outlierNotFound && ev.outlier) throw new MatrixError('M_NOT_FOUND', 'No state is known at that event');
    if (!(await this.aclAllows(roomId, origin))) throw aclError();
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
    joinedNow.value ??= (await this.serversInRoom(ev.roomId)).has(origin);
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

  private async authChain(from: string[]): Promise<Set<string>> {
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

  private async pdusOf(ids: string[]): Promise<Pdu[]> {
    const found = await this.d.store.rooms.getEvents(ids);
    return ids.map((id) => found.get(id)?.pdu).filter((p): p is Pdu => p !== undefined);
  }
}

function aclError(): MatrixError {
  return new MatrixError('M_FORBIDDEN', 'Server is banned from this room by its server ACL');
}

function safeEventId(raw: JsonValue, version: RoomVersion): string | undefined {
  try {
    return isJsonObject(raw) ? computeEventId(raw, version) : undefined;
  } catch {
    return undefined;
  }
}

function isListOrAbsent(v: JsonValue | undefined): v is JsonValue[] | undefined {
  return v === undefined || Array.isArray(v);
}
