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
// - History reads (/event, /state*, /event_auth, /backfill, /get_missing_events: history-reads.ts)
//   are served only to a server whose users could see the event: a member joined at it (invited
//   too, for `invited` visibility), a member joined now for `shared` history, or world_readable
//   history. /event, /backfill and /get_missing_events serve our erased users' events redacted.
// - Membership handshakes (make_*/send_*) only concern users of the origin server.

import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import { MatrixError } from '../errors.js';
import { isJsonObject } from '../protocol/canonical-json.js';
import { addEventSignature, computeEventId, prevEventIds } from '../protocol/events.js';
import { isValidUserId, serverNameOf } from '../protocol/ids.js';
import { isRoomVersion } from '../protocol/room-versions.js';
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
import { aclError, FederationHistory } from './history-reads.js';

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

export class FederationInbound {
  private readonly txns = new LRUCache<string, Promise<JsonObject>>({ max: 10_000 });
  private readonly now: () => number;
  private readonly history: FederationHistory;

  constructor(private readonly d: InboundDeps) {
    this.now = d.now ?? Date.now;
    this.history = new FederationHistory({
      serverName: d.serverName,
      store: d.store,
      now: this.now,
      aclAllows: (roomId, server) => this.aclAllows(roomId, server),
      serversInRoom: (roomId) => this.serversInRoom(roomId),
    });
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
    // We are the resident server the joiner chose: the rest of the room learns it from us. Its
    // PDU is queued for them in the event's own commit, so a crash after it loses nothing (an
    // event we already had, e.g. a retried send_join, was queued when it was first stored).
    const out = await this.d.roomInput.receive(roomId, raw, origin, undefined, { relay: true });
    if (out.outcome !== 'accepted') throw new MatrixError('M_FORBIDDEN', `The ${membership} was not accepted: ${(out as { reason?: string }).reason ?? out.outcome}`);
    const stored = await this.d.store.rooms.getEvent(eventId);
    if (!stored) throw new Error('accepted event not found');
    return stored;
  }

  async sendJoin(origin: string, roomId: string, eventId: string, raw: JsonValue | undefined): Promise<JsonObject> {
    const stored = await this.sendMembership(origin, roomId, eventId, raw, 'join');
    // omit_members is not honoured: the full state is always sent, and said so (spec: allowed).
    const stateIds = (await this.d.store.rooms.getStateAtEvent(eventId, 'before')) ?? [];
    const state = await this.history.pdusOf(stateIds.map((e) => e.eventId));
    const chain = await this.history.authChain([...stateIds.map((e) => e.eventId), eventId]);
    return {
      origin: this.d.serverName,
      state: state as unknown as JsonObject[],
      auth_chain: (await this.history.pdusOf([...chain])) as unknown as JsonObject[],
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

  // ---- history reads (history-reads.ts) -------------------------------------------------------

  getEvent(origin: string, eventId: string): Promise<JsonObject> {
    return this.history.getEvent(origin, eventId);
  }

  state(origin: string, roomId: string, eventId: string, idsOnly: boolean): Promise<JsonObject> {
    return this.history.state(origin, roomId, eventId, idsOnly);
  }

  eventAuth(origin: string, roomId: string, eventId: string): Promise<JsonObject> {
    return this.history.eventAuth(origin, roomId, eventId);
  }

  backfill(origin: string, roomId: string, from: string[], limit: number): Promise<JsonObject> {
    return this.history.backfill(origin, roomId, from, limit);
  }

  getMissingEvents(origin: string, roomId: string, body: JsonValue | undefined): Promise<JsonObject> {
    return this.history.getMissingEvents(origin, roomId, body);
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

}

function safeEventId(raw: JsonValue, version: RoomVersion): string | undefined {
  try {
    return isJsonObject(raw) ? computeEventId(raw, version) : undefined;
  } catch {
    return undefined;
  }
}
