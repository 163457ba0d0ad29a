// Local events, built and checked before they reach a room's queue: a draft becomes a PDU on
// the room's current state (prev_events = forward extremities, auth_events from the auth-event
// selection, depth), signed with this server's key, then through checks 1-3 (format and size,
// signatures; the content hash was just computed, so step 3 cannot fail). Nothing here writes:
// RoomInput owns ordering and persistence, this owns what an event looks like.
//
// Redactions are checked here too, for both origins: a local one must name an existing target in
// the same room that its sender may redact (the client gets 400/403), a received one redacts its
// target only when the auth rules' redaction conditions hold ("Handling redactions"), and one
// that can never apply to the target it names is withheld from clients.
//
// v12 create events derive the room ID from their hash: their timestamps never repeat within one
// builder, so two identical requests in one millisecond still make two rooms.

import { MatrixError } from '../errors.js';
import { authEventTypesFor, mayApplyRedaction, redactionTargetOf } from '../protocol/auth-rules.js';
import { eventIdAssignedByServer, eventReferences, MAX_PDU_BYTES, newServerEventId, signLocalEvent } from '../protocol/events.js';
import { roomVersionRules } from '../protocol/room-versions.js';
import { redactEvent } from '../protocol/redaction.js';
import { CanonicalJsonError } from '../protocol/canonical-json.js';
import { publicKeyObject } from '../protocol/crypto.js';
import type { JsonObject, Pdu, SigningKey } from '../protocol/types.js';
import type { RoomStore, StoredEvent } from '../store/types.js';
import type { KeyObject } from 'node:crypto';
import type { KeyRing } from './key-ring.js';
import { checkFormat, checkSignatures, type OwnSignature } from './pdu-checks.js';
import type { RoomState } from './room-state.js';

export interface EventDraft {
  type: string;
  stateKey?: string;
  sender: string;
  content: JsonObject;
  /** Target of an m.room.redaction. */
  redacts?: string;
  /**
   * Client idempotency: a retry with the same (room, user, device, scope, txnId) returns the first
   * event. `scope` names the endpoint (the spec scopes transaction IDs by request path).
   */
  txn?: { userId: string; deviceId: string; txnId: string; scope: string };
  /**
   * The sender must be joined (a client send other than their own membership): checked by the
   * room's writer against its current state before anything else, 403 otherwise. The auth rules
   * would refuse most such events too, but with another message, and only after building one.
   */
  requireJoined?: boolean;
}

/** A local or received event ready for the room's queue, with the redaction it applies. */
export interface Prepared {
  eventId: string;
  pdu: Pdu;
  redaction?: { targetEventId: string; redactedPdu: Pdu };
  txn?: EventDraft['txn'];
  /** A redaction's target, however the client named it (see withRedactsTarget). */
  redacts?: string;
}

export interface EventBuilderDeps {
  serverName: string;
  signingKey: SigningKey;
  keyRing: KeyRing;
  rooms: Pick<RoomStore, 'getEvent'>;
  now: () => number;
}

export class EventBuilder {
  private readonly ownPublicKey: KeyObject;
  /** Last origin_server_ts given to a create event whose hash is the room ID (see build). */
  private lastDerivedCreateTs = 0;

  constructor(private readonly deps: EventBuilderDeps) {
    this.ownPublicKey = publicKeyObject(deps.signingKey.publicKey);
  }

  /** Builds and signs a local event, then runs checks 1-3 on it. Writes nothing. */
  async prepare(roomId: string, given: EventDraft, state: RoomState): Promise<Prepared> {
    const version = state.version;
    const draft = given.type === 'm.room.redaction' ? withRedactsTarget(given) : given;
    if (draft.type.includes('\u0000') || draft.stateKey?.includes('\u0000')) {
      throw new MatrixError('M_INVALID_PARAM', 'Event types and state keys may not contain NUL');
    }
    const pdu = this.build(roomId, draft, state);
    // v1/v2: the ID is ours to choose, and part of what gets hashed and signed.
    if (eventIdAssignedByServer(version)) pdu.event_id = newServerEventId(this.deps.serverName);
    let signed: Pdu;
    let known: { eventId: string; size: number };
    try {
      // One canonical JSON pass each for hash and signature; the ID and size come from them.
      ({ pdu: signed, ...known } = signLocalEvent(pdu, this.deps.serverName, this.deps.signingKey, version));
    } catch (err) {
      // Content from any path (createRoom's creation_content, initial_state, ...) that canonical
      // JSON cannot represent: floats, unsafe integers, lone surrogates.
      if (err instanceof CanonicalJsonError) throw new MatrixError('M_BAD_JSON', `Event content is not valid canonical JSON: ${err.message}`);
      throw err;
    }
    // createRoom builds a v12 create event before its room ID exists (roomId '').
    const format = checkFormat(signed, roomId === '' ? null : roomId, version, { copy: false, known });
    if (!format.ok) {
      if (format.tooLarge) throw new MatrixError('M_TOO_LARGE', `Event is larger than ${MAX_PDU_BYTES} bytes`);
      throw new MatrixError('M_BAD_JSON', `Invalid event: ${format.reason}`);
    }
    const { eventId } = format.value;
    const { serverName, signingKey } = this.deps;
    const own: OwnSignature = { serverName, keyId: signingKey.keyId, signature: signed.signatures[serverName]?.[signingKey.keyId] ?? '', publicKey: this.ownPublicKey };
    const badSignature = await checkSignatures(signed, version, this.deps.keyRing, own);
    // Our own key failing means a misconfigured key ring, not a client error.
    if (badSignature !== undefined) throw new Error(`locally signed event fails the signature check: ${badSignature}`);
    // Step 3 is skipped: signLocalEvent computed hashes.sha256 over this very object a moment ago, so
    // re-hashing it (another canonical JSON pass and SHA-256 per send) could never disagree.
    return { eventId, pdu: format.value.pdu, txn: draft.txn, redacts: draft.redacts };
  }

  /** Bookkeeping only local events get: `unsigned.replaces_state` (outside hashes and signatures). */
  finishLocal(p: Prepared, draft: EventDraft, state: RoomState): void {
    if (draft.stateKey === undefined) return;
    // Clients get prev_content from this at read time, so a later redaction of the previous
    // event is respected.
    const prev = state.get(draft.type, draft.stateKey);
    if (prev) p.pdu.unsigned = { replaces_state: prev.eventId };
  }

  build(roomId: string, draft: EventDraft, state: RoomState): Pdu {
    const rules = roomVersionRules(state.version);
    const authEvents: Array<{ eventId: string; pdu: Pdu }> = [];
    const selection = authEventTypesFor({ type: draft.type, state_key: draft.stateKey, sender: draft.sender, content: draft.content }, state.version);
    for (const [t, k] of selection) {
      const e = state.get(t, k);
      if (e && !authEvents.some((a) => a.eventId === e.eventId)) authEvents.push(e);
    }
    const content: JsonObject = { ...draft.content };
    const pdu: Pdu = {
      room_id: roomId,
      sender: draft.sender,
      type: draft.type,
      content,
      origin_server_ts: this.deps.now(),
      depth: state.nextDepth(),
      // v1/v2 cite prev_events with their hashes, so they need the PDUs; later versions the IDs.
      prev_events: rules.eventReferencesWithHashes
        ? eventReferences(state.extremityEvents().slice(0, 20), state.version)
        : state.extremities.slice(0, 20),
      auth_events: eventReferences(authEvents, state.version),
      hashes: { sha256: '' },
      signatures: {},
    };
    if (draft.type === 'm.room.create' && rules.roomIdFromCreateEvent) {
      // v12: the create event has no room ID; the room ID is its hash. Two identical requests
      // in one millisecond would otherwise make the same room, so timestamps here never repeat.
      delete pdu.room_id;
      pdu.origin_server_ts = Math.max(pdu.origin_server_ts, this.lastDerivedCreateTs + 1);
      this.lastDerivedCreateTs = pdu.origin_server_ts;
    }
    if (draft.stateKey !== undefined) pdu.state_key = draft.stateKey;
    if (draft.type === 'm.room.redaction' && draft.redacts) {
      // v11 moved `redacts` into content; earlier versions keep it top-level.
      if (rules.redactsInContent) content.redacts = draft.redacts;
      else pdu.redacts = draft.redacts;
    }
    delete (pdu as Partial<Pdu>).hashes;
    return pdu;
  }

  /**
   * What an accepted redaction from outside does to its target ("Handling redactions"):
   * `redaction` when the target is here, in this room, not yet redacted, and the sender has the
   * redact level or is on the target sender's server. `withheld` (why) when the target is here
   * but the redaction can never apply to it: in another room, the create event, rejected, or a
   * sender with neither the level nor the target's server. Such a redaction passed the auth rules
   * (they do not look at the target) and stays in the DAG, but clients never see it (the caller
   * soft-fails it), as Synapse withholds it. A target not here yet stays as it is and the
   * redaction is shown (it would need applying on the target's arrival, which nothing does yet).
   */
  async receivedRedaction(roomId: string, pdu: Pdu, state: RoomState): Promise<{ redaction?: Prepared['redaction']; withheld?: string }> {
    if (pdu.type !== 'm.room.redaction') return {};
    const targetId = redactionTargetOf(pdu, state.version);
    if (targetId === undefined) return {};
    const target = await this.deps.rooms.getEvent(targetId);
    if (!target) return {};
    if (target.roomId !== roomId) return { withheld: `redacts ${targetId}, an event of another room` };
    if (target.pdu.type === 'm.room.create') return { withheld: 'redacts the create event' };
    if (target.rejected !== null) return { withheld: `redacts ${targetId}, a rejected event` };
    if (!mayApplyRedaction(pdu, target.pdu, state.content('m.room.power_levels'), state.get('m.room.create', '')?.pdu, state.version)) {
      return { withheld: `${pdu.sender} may not redact ${targetId}` };
    }
    if (target.redactedBy) return {};
    return { redaction: { targetEventId: targetId, redactedPdu: redactEvent(target.pdu, state.version) as Pdu } };
  }

  /**
   * Client-side redaction rules on top of the auth rules: the target must be in this room, and a
   * user may redact others' events only with the `redact` power level.
   */
  async redactionTarget(
    roomId: string,
    targetId: string,
    redaction: Pdu,
    state: RoomState,
  ): Promise<{ targetEventId: string; redactedPdu: Pdu } | undefined> {
    const target: StoredEvent | null = await this.deps.rooms.getEvent(targetId);
    // The auth rules let a remote server's redaction arrive before its target; a local client
    // has no such excuse, and a target in another room would redact nothing here (Synapse: 400).
    if (!target) throw new MatrixError('M_INVALID_PARAM', 'Cannot redact an event that does not exist', {}, 400);
    if (target.roomId !== roomId) throw new MatrixError('M_INVALID_PARAM', 'Cannot redact an event from a different room', {}, 400);
    if (target.pdu.sender !== redaction.sender && !state.canRedactOthers(redaction.sender)) {
      throw new MatrixError('M_FORBIDDEN', 'You cannot redact events of other users');
    }
    if (target.redactedBy) return undefined;
    return { targetEventId: targetId, redactedPdu: redactEvent(target.pdu, state.version) as Pdu };
  }
}

/**
 * Every m.room.redaction names its target, however it was sent: /redact passes it as `redacts`,
 * /send carries it in content (v11's home for it, and what clients send for every version). So
 * /send cannot skip the checks /redact gets.
 */
function withRedactsTarget(draft: EventDraft): EventDraft {
  const target = draft.redacts ?? draft.content.redacts;
  if (typeof target !== 'string' || !target.startsWith('$')) {
    throw new MatrixError('M_BAD_JSON', 'A redaction needs `redacts`: the ID of the event to redact');
  }
  return { ...draft, redacts: target };
}
