// Room upgrades (Client-Server spec, "Room Upgrades", server behaviour): a room is replaced by a
// new room of another version, linked both ways (tombstone -> replacement_room, create event ->
// predecessor). Invariants:
// - Nothing is written anywhere unless the upgrader may send m.room.tombstone in the old room,
//   checked by the real auth rules against the old room's current state before the new room
//   exists.
// - The old room's queue is held from that check until its tombstone is durable
//   (RoomInput.submitHolding): nothing enters the old room in between, so the tombstone follows
//   exactly the state that was copied.
// - The new room is finished (copied state, bans, moved aliases, restored power levels) before
//   the tombstone naming it is written: a member who follows the tombstone finds a complete room.
// - Follow-up writes to the old room after its tombstone (canonical alias, restricted power
//   levels) and the directory move are best effort: failures are logged, the upgrade stands.
// - A room another server upgraded moves our aliases and directory entry when one of our users
//   joins the new room, and only if the old room's tombstone names it.
// - Per-version rules (room ID format, `creator`, creators' power) stay in RoomService.createRoom
//   and the auth rules; this file only decides what is copied, so it holds for every version.
// - The whole upgrade runs where the old room is written: a cluster worker without the
//   room_writer role sends it, as data, to the room's writer (writer-operations.ts).

import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import { isValidUserId, serverNameOf } from '../protocol/ids.js';
import { copyablePowerLevels, creatorsOf, intValue, objectField, requiredPowerLevel, requiredToCopyState } from '../protocol/power-levels.js';
import { findRoomVersion, roomVersionRules } from '../protocol/room-versions.js';
import type { JsonObject, JsonValue, RoomVersion } from '../protocol/types.js';
import type { Store } from '../store/types.js';
import type { PushRulesService } from '../push/push-rules-service.js';
import { copyRoomRules } from '../push/ruleset.js';
import type { Notifier } from '../sync/notifier.js';
import type { EventDraft, RoomInput } from './room-input.js';
import type { RoomService } from './room-service.js';
import type { RoomState } from './room-state.js';
import { WriterOperations } from './writer-operations.js';

type Sender = { userId: string; deviceId?: string };

/** State the spec recommends transferring (power levels are handled on their own). */
const COPIED_STATE = [
  'm.room.join_rules',
  'm.room.name',
  'm.room.topic',
  'm.room.history_visibility',
  'm.room.guest_access',
  'm.room.avatar',
  'm.room.encryption',
  'm.room.server_acl',
] as const;

const TOMBSTONE_BODY = 'This room has been replaced';

/** What the upgrade takes from the old room, read once under its queue. */
interface OldRoom {
  roomId: string;
  createContent: JsonObject;
  state: Array<{ type: string; stateKey: string; content: JsonObject }>;
  powerLevels: JsonObject | undefined;
  bans: Array<{ userId: string; reason?: string }>;
  canonicalAlias: JsonObject | undefined;
  /** Creators with infinite power (v12 and later); empty for earlier versions. */
  privilegedCreators: string[];
}

/** Who creates the new room: the upgrader, plus (where the version has them) additional creators. */
interface NewCreators {
  /** Null when the new version gives creators no special power. */
  privileged: string[] | null;
  additional: string[];
}

export class RoomUpgradeService {
  /** Upgrades under way in this process, by old room. */
  private readonly inFlight = new Map<string, { userId: string; version: string; result: Promise<string> }>();

  constructor(
    private readonly store: Store,
    private readonly input: RoomInput,
    private readonly rooms: RoomService,
    private readonly serverName: string,
    private readonly pushRules: PushRulesService,
    private readonly notifier: Notifier,
    private readonly logger: Logger,
    private readonly writerOps: WriterOperations = new WriterOperations(),
  ) {
    writerOps.define('room.upgrade', (roomId, [sender, version, creators]) =>
      this.upgradeHere(sender as Sender, roomId, version as string, creators as string[]),
    );
  }

  /**
   * The spec's "when a user joins the new room, transfer their personalised settings": if
   * `roomId` replaces a room `userId` was joined to, their tags (unless they already tagged the
   * new room), their push rules for the old room, and the old room's place in their `m.direct`
   * (the new room is added next to it, so a direct chat stays direct) carry over. Best effort:
   * failures are logged, the join stands.
   */
  async carryOverUserState(userId: string, roomId: string): Promise<void> {
    try {
      const state = await this.input.currentState(roomId);
      const predecessor = state?.content('m.room.create', '')?.predecessor;
      const oldRoomId = predecessor && typeof predecessor === 'object' && !Array.isArray(predecessor) ? predecessor.room_id : undefined;
      if (typeof oldRoomId !== 'string' || !state) return;
      await this.carryOverRoomState(state, oldRoomId, roomId);
      if ((await this.store.rooms.getMembership(oldRoomId, userId))?.membership !== 'join') return;
      const tags = await this.store.userData.getAccountData(userId, oldRoomId, 'm.tag');
      if (tags && !(await this.store.userData.getAccountData(userId, roomId, 'm.tag'))) {
        const stream = await this.store.userData.setAccountData(userId, roomId, 'm.tag', tags);
        this.notifier.publish({ stream, userIds: [userId] });
      }
      const direct = await this.store.userData.getAccountData(userId, '', 'm.direct');
      const withNew = direct ? addDirectRoom(direct, oldRoomId, roomId) : undefined;
      if (withNew) {
        const stream = await this.store.userData.setAccountData(userId, '', 'm.direct', withNew);
        this.notifier.publish({ stream, userIds: [userId] });
      }
      const rules = await this.pushRules.userRules(userId);
      const copied = copyRoomRules(rules, oldRoomId, roomId);
      if (JSON.stringify(copied) !== JSON.stringify(rules)) await this.pushRules.update(userId, (u) => copyRoomRules(u, oldRoomId, roomId));
    } catch (err) {
      this.logger.warn({ err, userId, roomId }, 'room upgrade: could not carry over tags and push rules');
    }
  }

  /**
   * A room another server upgraded, joined by one of our users: our aliases of the old room and
   * its place in our directory move to the new room, as the upgrading server moved its own
   * (Synapse does this on the remote join). Only when the old room's tombstone, as we hold it,
   * names this room: a room claiming any predecessor cannot take that room's aliases.
   */
  private async carryOverRoomState(state: RoomState, oldRoomId: string, roomId: string): Promise<void> {
    const create = state.get('m.room.create', '')?.pdu;
    if (!create || serverNameOf(create.sender) === this.serverName) return; // our own upgrade moved them
    if ((await this.input.currentState(oldRoomId))?.content('m.room.tombstone', '')?.replacement_room !== roomId) return;
    await this.moveAliases(oldRoomId, roomId);
    if ((await this.store.rooms.getRoomVisibility(oldRoomId)) === 'public') {
      await this.store.rooms.setRoomVisibility(roomId, 'public');
      await this.store.rooms.setRoomVisibility(oldRoomId, 'private');
    }
  }

  /**
   * Upgrades `oldRoomId` to `newVersion`; returns the replacement room's ID. `additionalCreators`
   * become the new room's co-creators where the version has them (v12+), and are ignored
   * otherwise (spec); the old room's additional creators are not carried over by themselves.
   */
  upgrade(sender: Sender, oldRoomId: string, newVersion: string, additionalCreators: string[] = []): Promise<string> {
    const who: Sender = sender.deviceId === undefined ? { userId: sender.userId } : { userId: sender.userId, deviceId: sender.deviceId };
    return this.writerOps.run<string>(oldRoomId, 'room.upgrade', [who, newVersion, additionalCreators]);
  }

  private async upgradeHere(sender: Sender, oldRoomId: string, newVersion: string, additionalCreators: string[]): Promise<string> {
    const rules = findRoomVersion(newVersion);
    if (!rules) throw new MatrixError('M_UNSUPPORTED_ROOM_VERSION', `Room version ${newVersion} is not supported by this server`);
    let creators: NewCreators = { privileged: null, additional: [] };
    if (rules.auth.privilegedCreators) {
      for (const u of additionalCreators) if (!isValidUserId(u)) throw new MatrixError('M_BAD_JSON', `additional_creators: not a user ID: ${u}`);
      const additional = [...new Set(additionalCreators)].filter((u) => u !== sender.userId);
      creators = { privileged: [sender.userId, ...additional], additional };
    }
    // A retried or double-clicked request joins the upgrade in flight instead of making a
    // second replacement room; someone else's concurrent upgrade of the room is refused.
    const running = this.inFlight.get(oldRoomId);
    if (running) {
      if (running.userId === sender.userId && running.version === newVersion) return running.result;
      throw new MatrixError('M_UNKNOWN', 'An upgrade of this room is already in progress', {}, 400);
    }
    const result = this.run(sender, oldRoomId, rules.id, creators);
    const entry = { userId: sender.userId, version: newVersion, result };
    this.inFlight.set(oldRoomId, entry);
    try {
      return await result;
    } finally {
      if (this.inFlight.get(oldRoomId) === entry) this.inFlight.delete(oldRoomId);
    }
  }

  private async run(sender: Sender, oldRoomId: string, version: RoomVersion, creators: NewCreators): Promise<string> {
    const me = sender.userId;
    const membership = await this.store.rooms.getMembership(oldRoomId, me);
    if (membership?.membership !== 'join') {
      // A room this server has never heard of is 404, as Synapse answers (the spec lists no code for it).
      if (!membership && !(await this.store.rooms.getRoom(oldRoomId))) throw new MatrixError('M_NOT_FOUND', 'Unknown room');
      throw new MatrixError('M_FORBIDDEN', 'You are not joined to this room');
    }

    const idFirst = !roomVersionRules(version).roomIdFromCreateEvent;
    const tombstone = (replacement: string): EventDraft => ({
      type: 'm.room.tombstone',
      stateKey: '',
      sender: me,
      content: { body: TOMBSTONE_BODY, replacement_room: replacement },
    });
    let old: OldRoom | undefined;
    let newRoomId = '';
    await this.input.submitHolding(
      oldRoomId,
      async (state) => {
        if (state.membership(me) !== 'join') throw new MatrixError('M_FORBIDDEN', 'You are not joined to this room');
        // The check the spec puts first. Where the new ID is chosen up front, this is the very
        // tombstone that will be written; otherwise the replacement is not known yet, and the
        // auth rules do not look at it.
        const candidate = this.rooms.newRoomId();
        if (idFirst) newRoomId = candidate;
        await this.input.authorise(oldRoomId, tombstone(candidate), state).catch((err: unknown) => {
          if (err instanceof MatrixError && err.errcode === 'M_FORBIDDEN') {
            throw new MatrixError('M_FORBIDDEN', `You are not allowed to upgrade this room: ${err.message}`);
          }
          throw err;
        });
        old = snapshot(oldRoomId, state);
        // Room IDs derived from the create event cannot be named before it exists; the create
        // event cannot then cite the tombstone (it names the new room), so `predecessor` carries
        // only the room ID, as the spec allows for such versions.
        if (!idFirst) newRoomId = await this.buildNewRoom(sender, old, version, creators);
        return tombstone(newRoomId);
      },
      idFirst ? async (tombstoneId) => void (await this.buildNewRoom(sender, old!, version, creators, newRoomId, tombstoneId)) : undefined,
    );
    await this.afterTombstone(sender, old!, newRoomId);
    await this.carryOverUserState(me, newRoomId);
    return newRoomId;
  }

  /** Creates and fills the replacement room. Runs while the old room's queue is held. */
  private async buildNewRoom(
    sender: Sender,
    old: OldRoom,
    version: RoomVersion,
    creators: NewCreators,
    roomId?: string,
    tombstoneId?: string,
  ): Promise<string> {
    const me = sender.userId;
    const predecessor: JsonObject = { room_id: old.roomId };
    if (tombstoneId) predecessor.event_id = tombstoneId;
    const creationContent: JsonObject = { predecessor };
    if (old.createContent.type !== undefined) creationContent.type = old.createContent.type;
    if (old.createContent['m.federate'] === false) creationContent['m.federate'] = false;
    if (creators.additional.length > 0) creationContent.additional_creators = creators.additional;

    const initialState = old.state.map((s) => ({ type: s.type, state_key: s.stateKey, content: s.content }));
    // An absent m.room.guest_access means "forbidden"; without it the preset would allow guests.
    if (!old.state.some((s) => s.type === 'm.room.guest_access')) {
      initialState.push({ type: 'm.room.guest_access', state_key: '', content: { guest_access: 'forbidden' } });
    }
    let finalLevels: JsonObject | undefined;
    let raisedLevels: JsonObject | undefined;
    if (old.powerLevels) {
      ({ initial: raisedLevels, final: finalLevels } = planPowerLevels(old.powerLevels, me, old.privilegedCreators, creators.privileged));
      initialState.push({ type: 'm.room.power_levels', state_key: '', content: raisedLevels });
    }

    const created = await this.rooms.createRoom(
      sender,
      { preset: 'private_chat', room_version: version, creation_content: creationContent, initial_state: initialState },
      roomId ? { roomId } : {},
    );
    const newRoomId = created.roomId;

    const log = { oldRoomId: old.roomId, newRoomId, userId: me };
    // A ban or the canonical alias that cannot be copied (say, a banned user who outranks the
    // upgrader) costs only that event; the room is still usable.
    for (const ban of old.bans) {
      const content: JsonObject = { membership: 'ban' };
      if (ban.reason !== undefined) content.reason = ban.reason;
      await this.input
        .submit(newRoomId, { type: 'm.room.member', stateKey: ban.userId, sender: me, content })
        .catch((err: unknown) => this.logger.warn({ err, ...log, target: ban.userId }, 'room upgrade: ban not copied'));
    }
    if (old.canonicalAlias) {
      const moved = this.splitCanonicalAlias(old.canonicalAlias).moved;
      if (Object.keys(moved).length > 0) {
        await this.input
          .submit(newRoomId, { type: 'm.room.canonical_alias', stateKey: '', sender: me, content: moved })
          .catch((err: unknown) => this.logger.warn({ err, ...log }, 'room upgrade: canonical alias not copied'));
      }
    }
    // Not best effort: a failure here would leave the upgrader raised. It aborts the upgrade
    // before aliases move or the tombstone is written, so the half-built room stays unreachable.
    if (finalLevels && raisedLevels !== finalLevels) {
      await this.input.submit(newRoomId, { type: 'm.room.power_levels', stateKey: '', sender: me, content: finalLevels });
    }
    await this.moveAliases(old.roomId, newRoomId);
    this.logger.info({ oldRoomId: old.roomId, newRoomId, version, userId: me }, 'room upgraded');
    return newRoomId;
  }

  private async moveAliases(oldRoomId: string, newRoomId: string): Promise<void> {
    for (const alias of await this.store.rooms.getAliasesForRoom(oldRoomId)) {
      const found = await this.store.rooms.getAlias(alias);
      if (!found || found.roomId !== oldRoomId) continue;
      await this.store.rooms.deleteAlias(alias);
      await this.store.rooms.createAlias(alias, newRoomId, found.creator);
    }
  }

  /** Local aliases move to the new room; any others stay behind. */
  private splitCanonicalAlias(content: JsonObject): { moved: JsonObject; kept: JsonObject } {
    const local = (a: JsonValue | undefined): a is string => typeof a === 'string' && serverNameOf(a) === this.serverName;
    const moved: JsonObject = {};
    const kept: JsonObject = { ...content };
    if (local(content.alias)) {
      moved.alias = content.alias;
      delete kept.alias;
    }
    if (Array.isArray(content.alt_aliases)) {
      const alt = content.alt_aliases;
      const movedAlt = alt.filter(local);
      if (movedAlt.length > 0) moved.alt_aliases = movedAlt;
      const keptAlt = alt.filter((a) => !local(a));
      if (keptAlt.length > 0) kept.alt_aliases = keptAlt;
      else delete kept.alt_aliases;
    }
    return { moved, kept };
  }

  /** The old room after its tombstone: aliases gone, chatter stopped, directory entry moved. */
  private async afterTombstone(sender: Sender, old: OldRoom, newRoomId: string): Promise<void> {
    const me = sender.userId;
    const log = { oldRoomId: old.roomId, newRoomId, userId: me };
    if (old.canonicalAlias) {
      const { moved, kept } = this.splitCanonicalAlias(old.canonicalAlias);
      if (Object.keys(moved).length > 0) {
        await this.input
          .submit(old.roomId, { type: 'm.room.canonical_alias', stateKey: '', sender: me, content: kept })
          .catch((err: unknown) => this.logger.warn({ err, ...log }, 'room upgrade: could not remove moved aliases from the old room'));
      }
    }
    if (old.powerLevels) {
      const restricted = restrictChatter(copyablePowerLevels(old.powerLevels));
      if (restricted) {
        await this.input
          .submit(old.roomId, { type: 'm.room.power_levels', stateKey: '', sender: me, content: restricted })
          .catch((err: unknown) => this.logger.warn({ err, ...log }, 'room upgrade: could not restrict power levels in the old room'));
      }
    }
    try {
      if ((await this.store.rooms.getRoomVisibility(old.roomId)) === 'public') {
        await this.store.rooms.setRoomVisibility(newRoomId, 'public');
        await this.store.rooms.setRoomVisibility(old.roomId, 'private');
      }
    } catch (err) {
      this.logger.warn({ err, ...log }, 'room upgrade: could not move the room directory entry');
    }
  }
}

function snapshot(roomId: string, state: RoomState): OldRoom {
  const copied: OldRoom['state'] = [];
  for (const type of COPIED_STATE) {
    const content = state.content(type, '');
    if (content) copied.push({ type, stateKey: '', content });
  }
  const createContent = state.content('m.room.create', '') ?? {};
  const bans: OldRoom['bans'] = [];
  for (const { pdu } of state.all()) {
    // A space keeps its children (Synapse does the same); an emptied child entry is a removal.
    if (createContent.type === 'm.space' && pdu.type === 'm.space.child' && pdu.state_key !== undefined && Object.keys(pdu.content).length > 0) {
      copied.push({ type: pdu.type, stateKey: pdu.state_key, content: pdu.content });
    }
    if (pdu.type === 'm.room.member' && pdu.state_key !== undefined && pdu.content.membership === 'ban') {
      const reason = pdu.content.reason;
      bans.push({ userId: pdu.state_key, ...(typeof reason === 'string' ? { reason } : {}) });
    }
  }
  const create = state.get('m.room.create', '')?.pdu;
  const privileged = roomVersionRules(state.version).auth.privilegedCreators;
  return {
    roomId,
    privilegedCreators: privileged ? [...creatorsOf(create, state.version)] : [],
    createContent,
    state: copied,
    powerLevels: state.content('m.room.power_levels', ''),
    bans,
    canonicalAlias: state.content('m.room.canonical_alias', ''),
  };
}

/**
 * Power levels for the replacement room. `final` is the old room's content, valid for the new
 * version; `initial` is what the room starts with so that the upgrader can copy everything into
 * it (`final` itself when no raise is needed). Creators of the new room, where the version makes
 * them all-powerful, must not be listed; creators of an old such room who move to a version
 * without that are listed above everyone else instead of losing their power.
 */
export function planPowerLevels(
  old: JsonObject,
  upgrader: string,
  oldPrivilegedCreators: readonly string[],
  newPrivilegedCreators: readonly string[] | null,
): { initial: JsonObject; final: JsonObject } {
  const final = copyablePowerLevels(old);
  const users: JsonObject = { ...(objectField(final, 'users') ?? {}) };
  if (newPrivilegedCreators === null && oldPrivilegedCreators.length > 0) {
    // They outranked everyone; they still do.
    const others = Object.entries(users).filter(([u]) => !oldPrivilegedCreators.includes(u));
    const listed = others.map(([, v]) => intValue(v)).filter((n): n is number => n !== undefined);
    const top = Math.min(Number.MAX_SAFE_INTEGER, Math.max(100, requiredToCopyState(final), ...listed.map((n) => n + 1)));
    for (const c of oldPrivilegedCreators) users[c] = top;
  }
  if (newPrivilegedCreators !== null) {
    for (const c of newPrivilegedCreators) delete users[c];
    // Room versions with privileged creators need a tombstone level above state_default in a
    // room's first power levels, so that by default only creators can upgrade it again.
    const stateDefault = intValue(final.state_default) ?? 50;
    if (requiredPowerLevel('m.room.tombstone', '', final) <= stateDefault) {
      final.events = { ...(objectField(final, 'events') ?? {}), 'm.room.tombstone': Math.max(150, stateDefault + 1) };
    }
  }
  final.users = users;
  // All-powerful creators need no raise.
  const initial = newPrivilegedCreators !== null ? final : raiseUser(final, upgrader, requiredToCopyState(final));
  return { initial, final };
}

/** `levels` with `userId` at `needed` at least; the same object when no raise is needed. */
function raiseUser(levels: JsonObject, userId: string, needed: number): JsonObject {
  const users = objectField(levels, 'users') ?? {};
  const current = intValue(users[userId]) ?? intValue(levels.users_default) ?? 0;
  if (current >= needed) return levels;
  return { ...levels, users: { ...users, [userId]: needed } };
}

/**
 * The spec's suggestion for the old room: sending events and inviting need more than the
 * default user level (at least 50). Undefined when the room already demands that.
 */
function restrictChatter(levels: JsonObject): JsonObject | undefined {
  const restricted = Math.max((intValue(levels.users_default) ?? 0) + 1, 50);
  const out: JsonObject = { ...levels };
  let changed = false;
  for (const key of ['events_default', 'invite'] as const) {
    if ((intValue(levels[key]) ?? 0) < restricted) {
      out[key] = restricted;
      changed = true;
    }
  }
  return changed ? out : undefined;
}

/**
 * `m.direct` content with `newRoomId` listed beside `oldRoomId` for every user whose list holds
 * the old room; undefined when nothing changes (no such list, or the new room is already there).
 * The old room stays listed: its history is still a direct chat.
 */
export function addDirectRoom(direct: JsonObject, oldRoomId: string, newRoomId: string): JsonObject | undefined {
  let changed = false;
  const out: JsonObject = { ...direct };
  for (const [user, rooms] of Object.entries(direct)) {
    if (!Array.isArray(rooms) || !rooms.includes(oldRoomId) || rooms.includes(newRoomId)) continue;
    out[user] = [...rooms, newRoomId];
    changed = true;
  }
  return changed ? out : undefined;
}
