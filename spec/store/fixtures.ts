// Hand-built room v11-shaped PDUs for store tests. Nothing is signed or hashed for real: the
// store treats PDUs as opaque JSON apart from room_id/type/state_key/sender/content.membership.

import { assert } from '../helpers/assert.js';
import { randomBytes } from 'node:crypto';
import type { JsonObject, Pdu } from '../../src/protocol/types.js';
import { StoreConflictError, type PersistEventInput, type StateEntry, type Store } from '../../src/store/types.js';

export const SERVER = 'hearth.test';

export function randomId(bytes = 9): string {
  return randomBytes(bytes).toString('base64url');
}

export function newEventId(): string {
  return `$${randomBytes(32).toString('base64url')}`;
}

export function userId(local: string): string {
  return `@${local}:${SERVER}`;
}

export interface BuiltEvent {
  eventId: string;
  pdu: Pdu;
}

export interface SentEvent extends BuiltEvent {
  stream: number;
}

/**
 * Tracks one room's DAG head and resolved state so each new event gets plausible prev/auth
 * events and a default state delta.
 */
export class FakeRoom {
  readonly roomId: string;
  private depth = 0;
  private extremities: string[] = [];
  /** `${type}\0${stateKey}` -> event ID of the current state. */
  readonly state = new Map<string, string>();

  constructor(roomId?: string) {
    this.roomId = roomId ?? `!${randomId()}:${SERVER}`;
  }

  build(type: string, sender: string, content: JsonObject, stateKey?: string): BuiltEvent {
    const authKeys = ['m.room.create\u0000', 'm.room.power_levels\u0000', `m.room.member\u0000${sender}`];
    const pdu: Pdu = {
      room_id: this.roomId,
      sender,
      type,
      content,
      origin_server_ts: 1_700_000_000_000 + ++this.depth,
      depth: this.depth,
      prev_events: [...this.extremities],
      auth_events: authKeys.map((k) => this.state.get(k)).filter((id): id is string => id !== undefined),
      hashes: { sha256: randomBytes(32).toString('base64') },
      signatures: { [SERVER]: { 'ed25519:a_key': randomBytes(64).toString('base64') } },
    };
    if (stateKey !== undefined) pdu.state_key = stateKey;
    return { eventId: newEventId(), pdu };
  }

  /** The persist input for `ev`, advancing this room's head and state as if it were accepted. */
  input(ev: BuiltEvent, extra: Partial<PersistEventInput> = {}): PersistEventInput {
    const stateDelta: StateEntry[] =
      extra.stateDelta ??
      (ev.pdu.state_key !== undefined ? [{ type: ev.pdu.type, stateKey: ev.pdu.state_key, eventId: ev.eventId }] : []);
    for (const e of stateDelta) this.state.set(`${e.type}\u0000${e.stateKey}`, e.eventId);
    const forwardExtremities = extra.forwardExtremities ?? [ev.eventId];
    this.extremities = [...forwardExtremities];
    return { eventId: ev.eventId, pdu: ev.pdu, ...extra, stateDelta, forwardExtremities };
  }

  async send(
    store: Store,
    type: string,
    sender: string,
    content: JsonObject,
    stateKey?: string,
    extra: Partial<PersistEventInput> = {},
  ): Promise<SentEvent> {
    const ev = this.build(type, sender, content, stateKey);
    const { stream } = await store.rooms.persistEvent(this.input(ev, extra));
    return { ...ev, stream };
  }

  message(store: Store, sender: string, body: string, extra: Partial<PersistEventInput> = {}): Promise<SentEvent> {
    return this.send(store, 'm.room.message', sender, { msgtype: 'm.text', body }, undefined, extra);
  }

  member(store: Store, sender: string, target: string, membership: string): Promise<SentEvent> {
    return this.send(store, 'm.room.member', sender, { membership }, target);
  }

  /** createRoom plus the usual initial state: create, creator join, power levels, join rules, history visibility. */
  async create(store: Store, creator: string): Promise<SentEvent[]> {
    await store.rooms.createRoom({ roomId: this.roomId, roomVersion: '11', creator, createdTs: 1_700_000_000_000 });
    return [
      await this.send(store, 'm.room.create', creator, { room_version: '11' }, ''),
      await this.member(store, creator, creator, 'join'),
      await this.send(store, 'm.room.power_levels', creator, { users: { [creator]: 100 }, users_default: 0 }, ''),
      await this.send(store, 'm.room.join_rules', creator, { join_rule: 'public' }, ''),
      await this.send(store, 'm.room.history_visibility', creator, { history_visibility: 'shared' }, ''),
    ];
  }
}

/** Room v11 redaction, simplified to what the tests need: content stripped except membership. */
export function redact(pdu: Pdu): Pdu {
  const content: JsonObject = {};
  if (pdu.type === 'm.room.member' && pdu.content.membership !== undefined) content.membership = pdu.content.membership;
  const out: Pdu = {
    room_id: pdu.room_id,
    sender: pdu.sender,
    type: pdu.type,
    content,
    origin_server_ts: pdu.origin_server_ts,
    depth: pdu.depth,
    prev_events: structuredClone(pdu.prev_events),
    auth_events: structuredClone(pdu.auth_events),
    hashes: { ...pdu.hashes },
    signatures: structuredClone(pdu.signatures),
  };
  if (pdu.state_key !== undefined) out.state_key = pdu.state_key;
  return out;
}

export async function assertConflict(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof StoreConflictError, `expected StoreConflictError, got ${String(err)}`);
    return true;
  });
}

export function stateMap(entries: StateEntry[]): Map<string, string> {
  return new Map(entries.map((e) => [`${e.type}|${e.stateKey}`, e.eventId]));
}

export function sortedState(entries: StateEntry[]): StateEntry[] {
  return [...entries].sort((a, b) => (a.type + '\u0000' + a.stateKey < b.type + '\u0000' + b.stateKey ? -1 : 1));
}
