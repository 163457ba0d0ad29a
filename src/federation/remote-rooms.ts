// Local users entering rooms that live on other servers: joins through make_join/send_join,
// knocks through make_knock/send_knock, leaves through make_leave/send_leave, invites of remote
// users through invite v2, other servers' aliases through query/directory, and older history
// through /backfill.
//
// Invariants (join):
// - The template from make_join must be exactly the user's join in the asked room; we set the
//   timestamp, hash, sign and compute the ID ourselves (in v1/v2, choose it: `$random:us`).
// - Every PDU in the send_join answer passes checks 1-4 (format, signatures through the key ring,
//   content hash, auth against its own auth events, checked in depth order) before anything is
//   stored; a state event failing them is left out of the state, and a state without the create
//   event refuses the join (a create event declaring another version than make_join's fails the
//   auth check). A make_join naming a version we do not implement is refused at once; one naming
//   none (1 or 2) whose template is no v1/v2 event is sent to send_join as built, to learn the
//   version from the answer's create event, and refused whatever the answer. The join itself
//   must pass the auth rules against that state.
// - The result goes to RoomInput.adoptRoom: the chain and state as outliers, the join as the
//   room's first timeline event with that state before it (one writer per room).

import type { Logger } from 'pino';
import { ERRCODE_STATUS, MatrixError, type Errcode } from '../errors.js';
import { isJsonObject } from '../protocol/canonical-json.js';
import { authEventIds, eventIdAssignedByServer, eventReferences, newServerEventId, signEvent, verifyEventSignature } from '../protocol/events.js';
import { isValidRoomId, isValidServerName, serverNameOf } from '../protocol/ids.js';
import { isRoomVersion, roomVersionRules, SUPPORTED_ROOM_VERSIONS } from '../protocol/room-versions.js';
import type { JsonObject, JsonValue, Pdu, RoomVersion, SigningKey } from '../protocol/types.js';
import type { StateEntry } from '../store/types.js';
import type { KeyRing } from '../room/key-ring.js';
import { checkAgainstState, checkFormat, checkSignatures } from '../room/pdu-checks.js';
import type { RoomInput } from '../room/room-input.js';
import type { RemoteMembership } from '../room/room-service.js';
import { FederationError, fedPath, type FederationClient } from './client.js';
import { verifyChain } from './verify-chain.js';

export interface RemoteRoomsDeps {
  serverName: string;
  signingKey: SigningKey;
  client: Pick<FederationClient, 'request'>;
  keyRing: KeyRing;
  roomInput: RoomInput;
  logger: Logger;
  now?: () => number;
  /** Told of a join accepted through send_join before it is stored: not to be sent out again. */
  handedOver?: (eventId: string) => void;
  /** Stored events (auth events of backfilled history). */
  events?: (ids: string[]) => Promise<Map<string, { pdu: Pdu }>>;
}

/**
 * A server's 4xx answer to a make_join, send_join or invite request (not 401/429, which say nothing about
 * the room), as the Matrix error to give the client: the server's status and errcode.
 */
function refusalOf(err: unknown, server: string): MatrixError | undefined {
  if (!(err instanceof FederationError) || err.errcode === undefined || !/^[A-Z][A-Z0-9_.]{1,127}$/.test(err.errcode)) return undefined;
  if (err.status < 400 || err.status >= 500 || err.status === 401 || err.status === 429) return undefined;
  const extra: JsonObject = err.roomVersion !== undefined ? { room_version: err.roomVersion } : {};
  return new MatrixError(err.errcode as Errcode, `${server} refused: ${err.message}`, extra, err.status);
}

export class RemoteRooms implements RemoteMembership {
  constructor(private readonly d: RemoteRoomsDeps) {}

  async join(userId: string, roomId: string, via: string[], content: JsonObject): Promise<void> {
    const errors: string[] = [];
    let refusal: MatrixError | undefined;
    for (const server of via.filter((s) => s !== this.d.serverName)) {
      try {
        await this.joinVia(server, userId, roomId, content);
        return;
      } catch (err) {
        if (err instanceof MatrixError && err.errcode !== 'M_UNKNOWN') throw err;
        refusal ??= refusalOf(err, server);
        this.d.logger.warn({ err, server, roomId }, 'remote join attempt failed');
        errors.push(`${server}: ${(err as Error).message}`);
      }
    }
    // A server that refused (rather than failed) is the client's answer: its status and errcode
    // (M_INCOMPATIBLE_ROOM_VERSION with the room's version, M_FORBIDDEN, ...) pass through.
    if (refusal) throw refusal;
    throw new MatrixError('M_UNKNOWN', `Could not join through any server (${errors.join('; ') || 'no server to ask'})`, {}, 502);
  }

  private async joinVia(server: string, userId: string, roomId: string, content: JsonObject): Promise<void> {
    const ver = SUPPORTED_ROOM_VERSIONS.map((v) => `ver=${v}`).join('&');
    const made = await this.d.client.request(server, { method: 'GET', path: `${fedPath`/_matrix/federation/v1/make_join/${roomId}/${userId}`}?${ver}` });
    if (!isJsonObject(made) || !isJsonObject(made.event)) throw new MatrixError('M_UNKNOWN', 'make_join answer without an event');
    // A version we do not implement: nothing we could build or check (no other server can do better).
    if (made.room_version !== undefined && !isRoomVersion(made.room_version)) {
      throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', `The room's version ${JSON.stringify(made.room_version)} is not supported by this server`, { room_version: made.room_version });
    }
    const version: RoomVersion = isRoomVersion(made.room_version) ? made.room_version : '1';
    const t = made.event;
    if (t.room_id !== roomId || t.sender !== userId || t.state_key !== userId || t.type !== 'm.room.member' || !isJsonObject(t.content) || t.content.membership !== 'join') {
      throw new MatrixError('M_UNKNOWN', 'make_join template is not this user\'s join');
    }
    const draft: JsonObject = { ...t, content: { ...t.content, ...content, membership: 'join' }, origin_server_ts: (this.d.now ?? Date.now)() };
    for (const k of ['event_id', 'hashes', 'signatures', 'unsigned', 'origin']) delete draft[k];
    this.assignEventId(draft, version);
    const signed = signEvent(draft, this.d.serverName, this.d.signingKey, version) as unknown as Pdu;
    const f = checkFormat(signed, roomId, version);
    if (!f.ok) {
      if (made.room_version !== undefined) throw new MatrixError('M_UNKNOWN', `our join is malformed: ${f.reason}`);
      throw await this.unversionedJoinRefusal(server, roomId, signed, f.reason);
    }
    const { eventId } = f.value;
    const res = await this.v2ThenV1(server, fedPath`/_matrix/federation/v2/send_join/${roomId}/${eventId}`, fedPath`/_matrix/federation/v1/send_join/${roomId}/${eventId}`, signed as unknown as JsonObject);
    if (!isJsonObject(res) || !Array.isArray(res.state) || !Array.isArray(res.auth_chain)) throw new MatrixError('M_UNKNOWN', 'send_join answer without state');
    const { events, stateIds } = await verifyChain(roomId, version, this.d.keyRing, res.state, res.auth_chain);
    const stateEntries: StateEntry[] = [];
    let create: Pdu | undefined;
    for (const id of stateIds) {
      const pdu = events.get(id) as Pdu;
      if (pdu.state_key === undefined) continue;
      stateEntries.push({ type: pdu.type, stateKey: pdu.state_key, eventId: id });
      if (pdu.type === 'm.room.create' && pdu.state_key === '') create = pdu;
    }
    if (!create) throw new MatrixError('M_UNKNOWN', 'send_join state has no create event');
    // The resident may have counter-signed (restricted joins); its signatures are kept.
    const join = structuredClone(f.value.pdu);
    if (isJsonObject(res.event) && isJsonObject(res.event.signatures)) {
      for (const [s, sigs] of Object.entries(res.event.signatures)) if (s !== this.d.serverName && isJsonObject(sigs)) join.signatures[s] = sigs as Record<string, string>;
    }
    const byKey = new Map(stateEntries.map((e) => [`${e.type}\u0000${e.stateKey}`, events.get(e.eventId) as Pdu]));
    const refusal = checkAgainstState(join, version, (type, key) => byKey.get(`${type}\u0000${key}`));
    if (refusal !== undefined) throw new MatrixError('M_FORBIDDEN', `The join is not allowed by the room's state: ${refusal}`);
    const outliers = [...events].sort((a, b) => a[1].depth - b[1].depth).map(([id, pdu]) => ({ eventId: id, pdu }));
    this.d.handedOver?.(eventId);
    await this.d.roomInput.adoptRoom(roomId, version, create.sender, outliers, { eventId, pdu: join }, stateEntries);
  }

  /**
   * Knocks through the first of `via` that takes it (make_knock, send_knock). A refusal with a
   * Matrix error (the join rule is not knock, the version has no knocking) is the client's
   * answer; unreachable servers are skipped.
   */
  async knock(userId: string, roomId: string, via: string[], content: JsonObject): Promise<void> {
    const errors: string[] = [];
    let refusal: MatrixError | undefined;
    for (const server of via.filter((s) => s !== this.d.serverName)) {
      try {
        const ver = SUPPORTED_ROOM_VERSIONS.map((v) => `ver=${v}`).join('&');
        const made = await this.d.client.request(server, { method: 'GET', path: `${fedPath`/_matrix/federation/v1/make_knock/${roomId}/${userId}`}?${ver}` });
        if (!isJsonObject(made) || !isJsonObject(made.event) || !isRoomVersion(made.room_version)) throw new MatrixError('M_UNKNOWN', 'make_knock answer without an event');
        const version = made.room_version;
        const t = made.event;
        if (t.room_id !== roomId || t.sender !== userId || t.state_key !== userId || t.type !== 'm.room.member' || !isJsonObject(t.content) || t.content.membership !== 'knock') {
          throw new MatrixError('M_UNKNOWN', 'make_knock template is not this user\'s knock');
        }
        const draft: JsonObject = { ...t, content: { ...content, membership: 'knock' }, origin_server_ts: (this.d.now ?? Date.now)() };
        for (const k of ['event_id', 'hashes', 'signatures', 'unsigned', 'origin']) delete draft[k];
        this.assignEventId(draft, version);
        const signed = signEvent(draft, this.d.serverName, this.d.signingKey, version) as unknown as Pdu;
        const f = checkFormat(signed, roomId, version);
        if (!f.ok) throw new MatrixError('M_UNKNOWN', `our knock is malformed: ${f.reason}`);
        await this.d.client.request(server, { method: 'PUT', path: fedPath`/_matrix/federation/v1/send_knock/${roomId}/${f.value.eventId}`, body: signed as unknown as JsonObject });
        await this.d.roomInput.recordRemoteKnock(roomId, version, f.value.eventId, f.value.pdu);
        return;
      } catch (err) {
        if (err instanceof MatrixError && err.errcode !== 'M_UNKNOWN') throw err;
        if (err instanceof FederationError && err.errcode !== undefined && err.status >= 400 && err.status < 500 && err.status !== 401 && err.status !== 429) {
          const code = (err.errcode in ERRCODE_STATUS ? err.errcode : 'M_FORBIDDEN') as Errcode;
          refusal ??= new MatrixError(code, `${server} refused the knock: ${err.message}`, {}, err.status);
        }
        this.d.logger.warn({ err, server, roomId }, 'remote knock attempt failed');
        errors.push(`${server}: ${(err as Error).message}`);
      }
    }
    if (refusal) throw refusal;
    throw new MatrixError('M_UNKNOWN', `Could not knock through any server (${errors.join('; ') || 'no server to ask'})`, {}, 502);
  }

  async leave(userId: string, roomId: string, via: string[], reason?: string): Promise<void> {
    const errors: string[] = [];
    for (const server of via.filter((s) => s !== this.d.serverName)) {
      try {
        const made = await this.d.client.request(server, { method: 'GET', path: fedPath`/_matrix/federation/v1/make_leave/${roomId}/${userId}` });
        if (!isJsonObject(made) || !isJsonObject(made.event) || !isRoomVersion(made.room_version)) throw new MatrixError('M_UNKNOWN', 'make_leave answer without an event');
        const version = made.room_version;
        const t = made.event;
        if (t.room_id !== roomId || t.sender !== userId || t.state_key !== userId || t.type !== 'm.room.member' || !isJsonObject(t.content) || t.content.membership !== 'leave') {
          throw new MatrixError('M_UNKNOWN', 'make_leave template is not this user\'s leave');
        }
        const draft: JsonObject = { ...t, content: reason ? { membership: 'leave', reason } : { membership: 'leave' }, origin_server_ts: (this.d.now ?? Date.now)() };
        for (const k of ['event_id', 'hashes', 'signatures', 'unsigned', 'origin']) delete draft[k];
        this.assignEventId(draft, version);
        const signed = signEvent(draft, this.d.serverName, this.d.signingKey, version) as unknown as Pdu;
        const f = checkFormat(signed, roomId, version);
        if (!f.ok) throw new MatrixError('M_UNKNOWN', `our leave is malformed: ${f.reason}`);
        await this.v2ThenV1(server, fedPath`/_matrix/federation/v2/send_leave/${roomId}/${f.value.eventId}`, fedPath`/_matrix/federation/v1/send_leave/${roomId}/${f.value.eventId}`, signed as unknown as JsonObject);
        await this.d.roomInput.recordRemoteLeave(roomId, f.value.eventId, f.value.pdu);
        return;
      } catch (err) {
        if (err instanceof MatrixError && err.errcode !== 'M_UNKNOWN') throw err;
        this.d.logger.warn({ err, server, roomId }, 'remote leave attempt failed');
        errors.push(`${server}: ${(err as Error).message}`);
      }
    }
    throw new MatrixError('M_UNKNOWN', `Could not leave through any server (${errors.join('; ') || 'no server to ask'})`, {}, 502);
  }

  /**
   * Rejects an invite here only, when the inviting server cannot take the rejection (refused it,
   * failed, or is unreachable): the user must not be stuck with an invite they cannot get rid of.
   * The leave is ours alone (signed by us, citing the invite as its only prev and auth event); it
   * is never sent, as no server of the room would accept it. The inviting server still lists the
   * invite; a later join through it starts over.
   */
  async rejectLocally(userId: string, roomId: string, version: RoomVersion, invite: { eventId: string; pdu: Pdu }, reason?: string): Promise<void> {
    const draft: JsonObject = {
      room_id: roomId,
      type: 'm.room.member',
      state_key: userId,
      sender: userId,
      content: reason ? { membership: 'leave', reason } : { membership: 'leave' },
      origin_server_ts: (this.d.now ?? Date.now)(),
      depth: Math.min(invite.pdu.depth + 1, Number.MAX_SAFE_INTEGER),
      prev_events: eventReferences([invite], version) as JsonValue,
      auth_events: eventReferences([invite], version) as JsonValue,
    };
    this.assignEventId(draft, version);
    const signed = signEvent(draft, this.d.serverName, this.d.signingKey, version) as unknown as Pdu;
    const f = checkFormat(signed, roomId, version);
    if (!f.ok) throw new MatrixError('M_UNKNOWN', `our local leave is malformed: ${f.reason}`);
    await this.d.roomInput.recordRemoteLeave(roomId, f.value.eventId, f.value.pdu);
  }

  /**
   * Older events of a room from another server (/backfill from `from`), each through checks 1-4:
   * format, signatures, content hash, and auth against its auth events (stored here or in the
   * same answer, the create event for v12). What fails is left out; nothing is stored here.
   */
  async backfill(roomId: string, version: RoomVersion, servers: string[], from: string[], limit: number): Promise<Array<{ eventId: string; pdu: Pdu }>> {
    const create = (await this.d.roomInput.currentState(roomId))?.get('m.room.create', '')?.pdu;
    for (const server of servers) {
      let res: JsonValue;
      try {
        const query = [...from.map((v) => `v=${encodeURIComponent(v)}`), `limit=${limit}`].join('&');
        res = await this.d.client.request(server, { method: 'GET', path: `${fedPath`/_matrix/federation/v1/backfill/${roomId}`}?${query}`, maxResponseBytes: 8 * 1024 * 1024 });
      } catch (err) {
        this.d.logger.warn({ err, server, roomId }, 'backfill request failed');
        continue;
      }
      if (!isJsonObject(res) || !Array.isArray(res.pdus)) continue;
      const pdus = res.pdus.slice(0, limit * 2);
      // Auth events the answer does not carry must be stored here already (and the create event
      // is needed for v12 auth).
      const cited = new Set(pdus.flatMap((p) => (isJsonObject(p) ? authEventIds(p as unknown as Pdu) : [])));
      const stored = (await this.d.events?.([...cited])) ?? new Map<string, { pdu: Pdu }>();
      const known = new Map<string, Pdu>([...stored].map(([id, e]) => [id, e.pdu]));
      if (create) known.set('\u0000create', create);
      const { events: good } = await verifyChain(roomId, version, this.d.keyRing, [], pdus, known);
      return [...good].map(([eventId, pdu]) => ({ eventId, pdu }));
    }
    return [];
  }

  async resolveAlias(alias: string): Promise<{ roomId: string; servers: string[] }> {
    const server = serverNameOf(alias);
    if (server === undefined) throw new MatrixError('M_INVALID_PARAM', 'Invalid room alias');
    let res: JsonValue;
    try {
      res = await this.d.client.request(server, { method: 'GET', path: `/_matrix/federation/v1/query/directory?room_alias=${encodeURIComponent(alias)}` });
    } catch (err) {
      if (err instanceof FederationError && err.status === 404) throw new MatrixError('M_NOT_FOUND', `Room alias ${alias} not found`);
      this.d.logger.warn({ err, alias }, 'remote alias lookup failed');
      throw new MatrixError('M_UNKNOWN', `Could not ask ${server} about ${alias}`, {}, 502);
    }
    if (!isJsonObject(res) || !isValidRoomId(res.room_id)) throw new MatrixError('M_UNKNOWN', `${server} gave no room for ${alias}`, {}, 502);
    const servers = Array.isArray(res.servers) ? res.servers.filter((s): s is string => typeof s === 'string' && isValidServerName(s)).slice(0, 20) : [];
    // The alias's own server first: it answered, so it is up and (most likely) in the room.
    return { roomId: res.room_id, servers: [...new Set([server, ...servers])] };
  }

  async invite(roomId: string, version: RoomVersion, eventId: string, pdu: Pdu, destination: string, roomState: Pdu[]): Promise<Pdu> {
    const { unsigned: _u, ...event } = pdu;
    // Full PDUs, create event included (spec v1.18, MSC4311): the invitee's server can check their
    // signatures and that they belong to this room; Synapse complains about anything less.
    const inviteRoomState = roomState.map(({ unsigned: _x, ...e }) => e as unknown as JsonObject);
    const v2 = fedPath`/_matrix/federation/v2/invite/${roomId}/${eventId}`;
    const v2Body: JsonObject = { room_version: version, event: event as unknown as JsonObject, invite_room_state: inviteRoomState };
    // v1 carries the bare event, the room's state stripped in its unsigned, and no room version:
    // its receiver assumes 1 or 2 (the versions whose event IDs the origin server chooses), so
    // only rooms of those versions may fall back to it.
    const stripped = roomState.map((e) => ({ type: e.type, state_key: e.state_key ?? '', content: e.content, sender: e.sender }) as JsonObject);
    const v1Body = { ...(event as unknown as JsonObject), unsigned: { invite_room_state: stripped } };
    let res: JsonValue;
    try {
      res = roomVersionRules(version).eventIdFormat === 'server'
        ? await this.v2ThenV1(destination, v2, fedPath`/_matrix/federation/v1/invite/${roomId}/${eventId}`, v2Body, v1Body)
        : await this.d.client.request(destination, { method: 'PUT', path: v2, body: v2Body });
    } catch (err) {
      // The invitee's server refusing is the client's answer; an answer that is JSON but not
      // Matrix JSON (a float) is 400 M_BAD_JSON, as Synapse answers it; anything else
      // (unreachable, not JSON at all) is a bad gateway, never a 500.
      this.d.logger.warn({ err, destination, roomId }, 'remote invite failed');
      if (err instanceof FederationError && err.notMatrixJson) throw new MatrixError('M_BAD_JSON', `${destination} answered the invite with invalid JSON: ${err.message}`);
      throw refusalOf(err, destination) ?? new MatrixError('M_UNKNOWN', `Could not invite through ${destination}: ${(err as Error).message}`, {}, 502);
    }
    if (!isJsonObject(res) || !isJsonObject(res.event) || !isJsonObject(res.event.signatures)) throw new MatrixError('M_UNKNOWN', 'invite answer without a signed event', {}, 502);
    const theirs = res.event.signatures[destination];
    if (!isJsonObject(theirs)) throw new MatrixError('M_UNKNOWN', `the invite came back without ${destination}'s signature`, {}, 502);
    const out = structuredClone(pdu);
    out.signatures[destination] = theirs as Record<string, string>;
    const bad = await checkSignatures(out, version, this.d.keyRing);
    if (bad !== undefined || !(await this.signedBy(out, version, destination))) throw new MatrixError('M_UNKNOWN', `the invite's signature from ${destination} does not verify`, {}, 502);
    return out;
  }

  /**
   * PUT to the v2 form of a membership endpoint, or, when the server does not know it (404, or
   * 400 M_UNRECOGNIZED: servers from before v2), to the v1 form, whose `[200, body]` is unwrapped.
   * v1 is deprecated but still in the spec.
   */
  private async v2ThenV1(server: string, v2: string, v1: string, body: JsonObject, v1Body: JsonObject = body): Promise<JsonValue> {
    try {
      return await this.d.client.request(server, { method: 'PUT', path: v2, body });
    } catch (err) {
      const unknown = err instanceof FederationError && ((err.status === 404 && (err.errcode === undefined || err.errcode === 'M_UNRECOGNIZED')) || (err.status === 400 && err.errcode === 'M_UNRECOGNIZED'));
      if (!unknown) throw err;
      const res = await this.d.client.request(server, { method: 'PUT', path: v1, body: v1Body });
      return Array.isArray(res) && res.length === 2 && res[0] === 200 ? res[1] : res;
    }
  }

  /**
   * A make_join without `room_version` (so 1 or 2, spec) whose template is not a v1/v2 event: the
   * room is of some other version, which only its create event can tell. As Synapse does, the
   * join is sent as built (send_join); the answer's create event names the version, and the join
   * is refused whatever it says: nothing in the answer is checked, used or kept, and a resident
   * that accepted the join holds a membership we never adopt (as after any join whose answer
   * fails). The client's error names the room's version when it is one we do not implement.
   */
  private async unversionedJoinRefusal(server: string, roomId: string, signed: Pdu, reason: string): Promise<MatrixError> {
    const eventId = (signed as { event_id?: unknown }).event_id;
    if (typeof eventId !== 'string') return new MatrixError('M_UNKNOWN', `our join is malformed: ${reason}`);
    const res = await this.v2ThenV1(server, fedPath`/_matrix/federation/v2/send_join/${roomId}/${eventId}`, fedPath`/_matrix/federation/v1/send_join/${roomId}/${eventId}`, signed as unknown as JsonObject);
    const state = isJsonObject(res) && Array.isArray(res.state) ? res.state : [];
    const create = state.find((e): e is JsonObject => isJsonObject(e) && e.type === 'm.room.create' && e.state_key === '' && e.room_id === roomId);
    const raw = create && isJsonObject(create.content) ? (create.content.room_version ?? '1') : undefined;
    // Only a short string is echoed to the client; anything else from the resident is just "invalid".
    const declared = raw === undefined ? undefined : typeof raw === 'string' && raw.length <= 64 ? raw : '(invalid)';
    if (declared !== undefined && !isRoomVersion(declared)) {
      return new MatrixError('M_UNSUPPORTED_ROOM_VERSION', `The room's version ${JSON.stringify(declared)} is not supported by this server`, { room_version: declared });
    }
    return new MatrixError('M_UNKNOWN', `make_join gave no room version and a template that is not a version 1 or 2 event (${reason}); the room's create event names ${JSON.stringify(declared ?? 'nothing')}`, {}, 502);
  }

  /**
   * v1/v2 event IDs are chosen by the server that creates the event (`$random:server`), so the
   * membership event built from a make_* template gets ours; later versions derive it from the
   * reference hash.
   */
  private assignEventId(draft: JsonObject, version: RoomVersion): void {
    if (eventIdAssignedByServer(version)) draft.event_id = newServerEventId(this.d.serverName);
  }

  private async signedBy(pdu: Pdu, version: RoomVersion, server: string): Promise<boolean> {
    for (const keyId of Object.keys(pdu.signatures[server] ?? {})) {
      const key = await this.d.keyRing.verifyKey(server, keyId, pdu.origin_server_ts);
      if (key && verifyEventSignature(pdu, server, keyId, key, version)) return true;
    }
    return false;
  }
}
