// A tiny in-memory room for auth-rule scenarios: builds PDUs with the selected auth_events,
// checks them against the current state and applies accepted state events. Works for every room
// version: v1/v2 events get a server-assigned event_id and hashed references, v12 rooms take
// their ID from the create event (until then `roomId` is the placeholder given).
import { assert } from '../helpers/assert.js';
import { AuthError, authEventTypesFor, checkAuthEventsSelection, checkEventAuth } from '../../src/protocol/auth-rules.js';
import { authEventIds, computeEventId, eventReferences, roomIdFromCreateEvent, signEvent } from '../../src/protocol/events.js';
import { findRoomVersion } from '../../src/protocol/room-versions.js';
import { serverNameOf } from '../../src/protocol/ids.js';
import type { JsonObject, Pdu, RoomVersion } from '../../src/protocol/types.js';
import { stateTuple } from '../../src/protocol/types.js';
import { specKey } from './vectors.js';

const { key } = specKey();

export class TestRoom {
  readonly state = new Map<string, Pdu>();
  readonly byId = new Map<string, Pdu>();
  private extremities: string[] = [];
  private depth = 0;
  private ts = 1_700_000_000_000;
  private serial = 0;

  constructor(
    readonly version: RoomVersion,
    public roomId = '!room:a.org',
  ) {}

  lookup = (type: string, stateKey: string): Pdu | undefined => this.state.get(stateTuple(type, stateKey));

  build(sender: string, type: string, content: JsonObject, stateKey?: string, extra: JsonObject = {}): Pdu {
    const authEvents: Array<{ eventId: string; pdu: Pdu }> = [];
    for (const [t, k] of authEventTypesFor({ type, state_key: stateKey, sender, content }, this.version)) {
      const e = this.lookup(t, k);
      if (e) authEvents.push({ eventId: computeEventId(e, this.version), pdu: e });
    }
    const prev = this.extremities.map((id) => ({ eventId: id, pdu: this.byId.get(id)! }));
    const rules = findRoomVersion(this.version)!;
    const pdu: Pdu = {
      room_id: this.roomId,
      sender,
      type,
      content,
      origin_server_ts: this.ts++,
      depth: this.depth + 1,
      prev_events: eventReferences(prev, this.version),
      auth_events: eventReferences(authEvents, this.version),
      hashes: { sha256: '' },
      signatures: {},
    };
    if (rules.eventIdFormat === 'server') pdu.event_id = `$ev${++this.serial}:${serverNameOf(sender) ?? 'unknown'}`;
    if (type === 'm.room.create' && rules.roomIdFromCreateEvent) delete pdu.room_id;
    Object.assign(pdu, extra);
    if (stateKey !== undefined) pdu.state_key = stateKey;
    return signEvent(pdu, serverNameOf(sender) ?? 'unknown', key, this.version);
  }

  check(pdu: Pdu): void {
    checkEventAuth(pdu, this.version, this.lookup);
    // Every event the builder makes must also satisfy rule 2 against its own auth events.
    const own = authEventIds(pdu).map((id) => this.byId.get(id)).filter((e): e is Pdu => e !== undefined);
    checkAuthEventsSelection(pdu, own, this.version);
  }

  apply(pdu: Pdu): string {
    const id = computeEventId(pdu, this.version);
    if (pdu.type === 'm.room.create') this.roomId = roomIdFromCreateEvent(pdu, this.version) ?? this.roomId;
    this.byId.set(id, pdu);
    if (pdu.state_key !== undefined) this.state.set(stateTuple(pdu.type, pdu.state_key), pdu);
    this.extremities = [id];
    this.depth = pdu.depth;
    return id;
  }

  /** Builds, checks (must pass) and applies. */
  send(sender: string, type: string, content: JsonObject, stateKey?: string, extra?: JsonObject): Pdu {
    const pdu = this.build(sender, type, content, stateKey, extra);
    this.check(pdu);
    this.apply(pdu);
    return pdu;
  }

  /** Builds and checks; the check must fail with a reason matching `reason`. */
  reject(sender: string, type: string, content: JsonObject, stateKey: string | undefined, reason: RegExp, extra?: JsonObject): void {
    const pdu = this.build(sender, type, content, stateKey, extra);
    assert.throws(() => checkEventAuth(pdu, this.version, this.lookup), (e: unknown) => {
      assert.ok(e instanceof AuthError, `expected AuthError, got ${String(e)}`);
      assert.match(e.message, reason);
      return true;
    });
  }

  member(sender: string, membership: string, target = sender, extra: JsonObject = {}): Pdu {
    return this.send(sender, 'm.room.member', { membership, ...extra }, target);
  }

  rejectMember(sender: string, membership: string, target: string, reason: RegExp, extra: JsonObject = {}): void {
    this.reject(sender, 'm.room.member', { membership, ...extra }, target, reason);
  }

  powerLevels(sender: string, content: JsonObject): Pdu {
    return this.send(sender, 'm.room.power_levels', content, '');
  }

  currentPowerLevels(): JsonObject {
    return this.lookup('m.room.power_levels', '')?.content ?? {};
  }

  /** create + creator join + power levels + join rule: the usual start of a room. */
  static standard(version: RoomVersion, joinRule = 'invite', users: JsonObject = {}): TestRoom {
    const room = new TestRoom(version);
    const createContent: JsonObject = { room_version: version };
    if (findRoomVersion(version)!.auth.creatorInContent) createContent.creator = ALICE;
    room.send(ALICE, 'm.room.create', createContent, '');
    room.member(ALICE, 'join');
    // v12 creators have infinite power and may not be listed.
    const privileged = findRoomVersion(version)!.auth.privilegedCreators;
    room.powerLevels(ALICE, {
      users: privileged ? { ...users } : { [ALICE]: 100, ...users },
      users_default: 0,
      events_default: 0,
      state_default: 50,
      ban: 50,
      kick: 50,
      redact: 50,
      invite: 0,
      events: { 'm.room.power_levels': 100 },
    });
    room.send(ALICE, 'm.room.join_rules', { join_rule: joinRule }, '');
    return room;
  }
}

export const ALICE = '@alice:a.org';
export const BOB = '@bob:b.org';
export const CAROL = '@carol:c.org';
export const DAVE = '@dave:a.org';
