// Room versions 1-12 as data (spec "Room Versions"). Every behaviour that differs between room
// versions is a field here, and code reads the field rather than comparing version strings, so
// what changed in which version stays visible in one table. Redaction keeps its own table in
// redaction.ts (same idea, finer grained).
//
// Invariant: every RoomVersion has exactly one entry; the flags of a version are those of its
// predecessor plus the changes its spec page lists.

/** Room versions Hearth can create and join. */
export type RoomVersion = '1' | '2' | '3' | '4' | '5' | '6' | '7' | '8' | '9' | '10' | '11' | '12';

/** How event IDs are formed. */
export type EventIdFormat =
  /** v1/v2: `$opaque:server`, chosen by the sending server and carried in the PDU as `event_id`. */
  | 'server'
  /** v3: `$` + reference hash, standard base64. */
  | 'hash-base64'
  /** v4+: `$` + reference hash, URL-safe base64. */
  | 'hash-base64url';

export type StateResAlgorithm = 'v1' | 'v2' | 'v2.1';

/** Differences in the authorisation rules. */
export interface AuthRuleFlags {
  /** v1-v5: m.room.aliases has its own rule (state_key must be the sender's domain). */
  specialCaseAliases: boolean;
  /** v1-v2: rule 11, a redaction needs the redact level or the same event-ID domain as its target. */
  redactionRule: boolean;
  /** v6+: rule 9.4/9.5 also compare power_levels `notifications`. */
  notificationsInPowerLevels: boolean;
  /** v7+: `knock` membership, `knock` join rule. */
  knocking: boolean;
  /** v8+: `restricted` join rule and `join_authorised_via_users_server`. */
  restrictedJoins: boolean;
  /** v10+: `knock_restricted` join rule. */
  knockRestricted: boolean;
  /** v10+: power level values must be integers (before: integer-valued strings are accepted). */
  integerPowerLevels: boolean;
  /** v1-v5: power level floats are truncated (later versions cannot carry floats at all). */
  floatPowerLevels: boolean;
  /** v1-v10: the create event must have `content.creator`, and that user is the creator. v11+: the sender. */
  creatorInContent: boolean;
  /**
   * v12: the create event's sender and `content.additional_creators` have infinite power, may not
   * appear in power_levels.users, and the create event is implied by the room ID rather than
   * cited in auth_events.
   */
  privilegedCreators: boolean;
}

export interface RoomVersionRules {
  readonly id: RoomVersion;
  readonly stability: 'stable';
  readonly eventIdFormat: EventIdFormat;
  /** v1/v2: prev_events and auth_events are `[event_id, {sha256}]` pairs instead of bare IDs. */
  readonly eventReferencesWithHashes: boolean;
  /** v12: room ID = `!` + the create event's reference hash; the create event has no room_id. */
  readonly roomIdFromCreateEvent: boolean;
  /** v6+: events must be valid canonical JSON (v1-v5 tolerate floats and out-of-range integers). */
  readonly strictCanonicalJson: boolean;
  /** v11+: m.room.redaction carries its target in `content.redacts` (before: top-level `redacts`). */
  readonly redactsInContent: boolean;
  readonly stateRes: StateResAlgorithm;
  readonly auth: Readonly<AuthRuleFlags>;
}

const V1_AUTH: AuthRuleFlags = {
  specialCaseAliases: true,
  redactionRule: true,
  notificationsInPowerLevels: false,
  knocking: false,
  restrictedJoins: false,
  knockRestricted: false,
  integerPowerLevels: false,
  floatPowerLevels: true,
  creatorInContent: true,
  privilegedCreators: false,
};

function derive(
  base: RoomVersionRules,
  id: RoomVersion,
  changes: Partial<Omit<RoomVersionRules, 'id' | 'auth'>>,
  auth: Partial<AuthRuleFlags> = {},
): RoomVersionRules {
  return Object.freeze({ ...base, ...changes, id, auth: Object.freeze({ ...base.auth, ...auth }) });
}

const V1: RoomVersionRules = Object.freeze({
  id: '1',
  stability: 'stable',
  eventIdFormat: 'server',
  eventReferencesWithHashes: true,
  roomIdFromCreateEvent: false,
  strictCanonicalJson: false,
  redactsInContent: false,
  stateRes: 'v1',
  auth: Object.freeze(V1_AUTH),
});
const V2 = derive(V1, '2', { stateRes: 'v2' });
const V3 = derive(V2, '3', { eventIdFormat: 'hash-base64', eventReferencesWithHashes: false }, { redactionRule: false });
const V4 = derive(V3, '4', { eventIdFormat: 'hash-base64url' });
// v5 only enforces signing-key validity periods, which concern key fetching, not these rules.
const V5 = derive(V4, '5', {});
const V6 = derive(
  V5,
  '6',
  { strictCanonicalJson: true },
  { specialCaseAliases: false, notificationsInPowerLevels: true, floatPowerLevels: false },
);
const V7 = derive(V6, '7', {}, { knocking: true });
const V8 = derive(V7, '8', {}, { restrictedJoins: true });
// v9 only changes redaction (join_authorised_via_users_server survives), see redaction.ts.
const V9 = derive(V8, '9', {});
const V10 = derive(V9, '10', {}, { knockRestricted: true, integerPowerLevels: true });
const V11 = derive(V10, '11', { redactsInContent: true }, { creatorInContent: false });
const V12 = derive(V11, '12', { roomIdFromCreateEvent: true, stateRes: 'v2.1' }, { privilegedCreators: true });

const ROOM_VERSIONS: Readonly<Record<RoomVersion, RoomVersionRules>> = Object.freeze({
  '1': V1, '2': V2, '3': V3, '4': V4, '5': V5, '6': V6,
  '7': V7, '8': V8, '9': V9, '10': V10, '11': V11, '12': V12,
});

/** Every version Hearth supports, oldest first. */
export const SUPPORTED_ROOM_VERSIONS: readonly RoomVersion[] = Object.freeze(Object.keys(ROOM_VERSIONS) as RoomVersion[]);

/** What createRoom uses without `room_version` (the spec says servers SHOULD default to 12). */
export const DEFAULT_ROOM_VERSION: RoomVersion = '12';

export function isRoomVersion(v: unknown): v is RoomVersion {
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(ROOM_VERSIONS, v);
}

/** The rules of a supported version, or undefined. */
export function findRoomVersion(v: unknown): RoomVersionRules | undefined {
  return isRoomVersion(v) ? ROOM_VERSIONS[v] : undefined;
}

export class UnsupportedRoomVersionError extends Error {
  override name = 'UnsupportedRoomVersionError';
}

/** The rules of a version; throws UnsupportedRoomVersionError for anything else. */
export function roomVersionRules(v: string): RoomVersionRules {
  const rules = findRoomVersion(v);
  if (!rules) throw new UnsupportedRoomVersionError(`unsupported room version ${JSON.stringify(v)}`);
  return rules;
}
