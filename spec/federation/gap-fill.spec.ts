// GapFiller (src/federation/gap-fill.ts) against a scripted peer on a real SQLite store and
// RoomInput: a gap within the budget is filled and every event accepted in order; a wider gap
// is bridged with the state at the missing prev events as the peer reports it (/state_ids at
// each prev, never at the event itself), resolved with the known prevs' states; a pushed event
// nothing connects is refused without asking for state; a peer with an endless history cannot
// make us fetch more than one transaction's budget, and what cannot be connected is refused,
// not stored.

import assert from 'node:assert/strict';
import { pino } from 'pino';
import { buildPdu, type BuiltPdu } from '../helpers/pdu-builder.js';
import { generateSigningKey } from '../../src/protocol/crypto.js';
import { prevEventIds } from '../../src/protocol/events.js';
import type { JsonObject, JsonValue } from '../../src/protocol/types.js';
import { stateTuple } from '../../src/protocol/types.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';
import { LocalNotifier } from '../../src/sync/notifier.js';
import { RoomInput } from '../../src/room/room-input.js';
import { StaticKeyRing } from '../../src/room/key-ring.js';
import { resolveState } from '../../src/protocol/state-res/index.js';
import { DEFAULT_GAP_BUDGET, GapFiller } from '../../src/federation/gap-fill.js';

const SERVER = 'gap.test';
const PEER = 'peer.test';
const alice = `@alice:${SERVER}`;
const bob = `@bob:${SERVER}`;

describe('federation/gap-fill: GapFiller against a scripted peer', () => {
  let store: SqliteStore;
  let input: RoomInput;
  let roomId: string;
  let chain: BuiltPdu[];
  let calls: { missing: number; missingEvents: number; stateIds: number; state: number; stateIdsAt: string[] };
  let answerState: boolean;
  let filler: GapFiller;
  let signKey: ReturnType<typeof generateSigningKey>;

  beforeEach(async () => {
    store = await openSqliteStore({ path: ':memory:' });
    const key = generateSigningKey('gap');
    signKey = key;
    const keyRing = StaticKeyRing.forServer(SERVER, [key]);
    input = new RoomInput({ store, notifier: new LocalNotifier(), serverName: SERVER, signingKey: key, keyRing, resolveState });
    ({ roomId } = await input.createRoom(`!gap${Math.random().toString(36).slice(2)}:${SERVER}`, '11', alice, [
      { type: 'm.room.create', stateKey: '', sender: alice, content: { room_version: '11' } },
      { type: 'm.room.member', stateKey: alice, sender: alice, content: { membership: 'join' } },
      { type: 'm.room.power_levels', stateKey: '', sender: alice, content: { users: { [alice]: 100 } } },
      { type: 'm.room.join_rules', stateKey: '', sender: alice, content: { join_rule: 'public' } },
    ]));
    const join = await input.submit(roomId, { type: 'm.room.member', stateKey: bob, sender: bob, content: { membership: 'join' } });
    const state = new Map((await store.rooms.getCurrentState(roomId)).map((e) => [stateTuple(e.type, e.stateKey), e.eventId]));
    const auth = [stateTuple('m.room.create', ''), stateTuple('m.room.power_levels', ''), stateTuple('m.room.member', bob)].map((k) => state.get(k) as string);
    let prev = { eventId: join.eventId, depth: (await store.rooms.getEvent(join.eventId))!.pdu.depth };
    // The peer's history after the join: a long chain of bob's messages nobody sent us.
    chain = [];
    for (let i = 0; i < 300; i++) {
      const b = buildPdu({ roomId, sender: bob, type: 'm.room.message', content: { body: `m${i}` }, prevEvents: [prev.eventId], authEvents: auth, depth: prev.depth + 1 }, SERVER, key, '11');
      chain.push(b);
      prev = { eventId: b.eventId, depth: b.pdu.depth };
    }
    calls = { missing: 0, missingEvents: 0, stateIds: 0, state: 0, stateIdsAt: [] };
    answerState = false;
    const byId = new Map(chain.map((c) => [c.eventId, c]));
    const request = async (_origin: string, method: string, path: string, body?: JsonObject): Promise<JsonValue> => {
      if (method === 'POST' && path.includes('/get_missing_events/')) {
        calls.missing++;
        // An honest walk back from latest_events, newest first, returned oldest first.
        const out: JsonValue[] = [];
        let frontier = (body!.latest_events as string[]).flatMap((id) => (byId.get(id) ? prevEventIds(byId.get(id)!.pdu) : []));
        while (frontier.length > 0 && out.length < (body!.limit as number)) {
          const ev = byId.get(frontier[0]);
          if (!ev) break;
          out.push(ev.pdu as unknown as JsonValue);
          frontier = prevEventIds(ev.pdu);
        }
        calls.missingEvents += out.length;
        return { events: out.reverse() };
      }
      if (path.includes('/state_ids/')) {
        calls.stateIds++;
        calls.stateIdsAt.push(decodeURIComponent(path.split('event_id=')[1]));
        if (!answerState) throw new Error('connect ECONNREFUSED');
        return { pdu_ids: [...state.values()], auth_chain_ids: [] };
      }
      if (method === 'GET' && path.includes('/event/')) {
        const ev = byId.get(decodeURIComponent(path.split('/event/')[1]));
        if (ev) return { origin: PEER, origin_server_ts: 0, pdus: [ev.pdu as unknown as JsonValue] };
      }
      calls.state++;
      throw new Error(`unexpected ${method} ${path}`);
    };
    filler = new GapFiller({ store, roomInput: input, keyRing, logger: pino({ level: 'silent' }), request });
  });

  afterEach(async () => {
    await input.drain();
    await store.close();
  });

  const timelineBodies = async () =>
    (await store.rooms.getRoomEvents({ roomId, dir: 'f', from: 0, limit: 1000 })).filter((e) => e.pdu.type === 'm.room.message').map((e) => e.pdu.content.body);

  it('fills a gap within the budget: every event accepted, in order, no /state_ids', async () => {
    const last = chain[29];
    const out = await filler.receive(PEER, roomId, '11', structuredClone(last.pdu) as unknown as JsonValue, last.eventId, { ...DEFAULT_GAP_BUDGET });
    assert.equal(out.outcome, 'accepted');
    assert.deepEqual(await timelineBodies(), chain.slice(0, 30).map((c) => c.pdu.content.body));
    assert.equal(calls.stateIds, 0);
    assert.equal(calls.missing, 2, '20 events, then the remaining 9');
  });

  it('bridges a gap wider than the budget with the peer\'s /state_ids: the newest events accepted, the oldest missing', async () => {
    answerState = true;
    const last = chain[149];
    const out = await filler.receive(PEER, roomId, '11', structuredClone(last.pdu) as unknown as JsonValue, last.eventId, { ...DEFAULT_GAP_BUDGET });
    assert.equal(out.outcome, 'accepted');
    assert.ok(calls.missingEvents <= DEFAULT_GAP_BUDGET.events && calls.missing <= DEFAULT_GAP_BUDGET.requests);
    assert.equal(calls.stateIds, 1);
    // Asked at the oldest fetched event's prev (the state after it), not at the fetched event.
    const oldest = 150 - 1 - DEFAULT_GAP_BUDGET.events;
    assert.deepEqual(calls.stateIdsAt, [chain[oldest - 1].eventId]);
    assert.equal(await store.rooms.getEvent(chain[oldest - 1].eventId), null, 'a message prev adds nothing to the state: not stored');
    const bodies = await timelineBodies();
    assert.deepEqual(bodies, chain.slice(150 - 1 - DEFAULT_GAP_BUDGET.events, 150).map((c) => c.pdu.content.body));
    assert.equal((await store.rooms.getEvent(last.eventId))?.outlier, false);
  });

  it('a peer whose history never connects gets one budget of requests; nothing unconnected is stored', async () => {
    const last = chain[299];
    const budget = { ...DEFAULT_GAP_BUDGET };
    const out = await filler.receive(PEER, roomId, '11', structuredClone(last.pdu) as unknown as JsonValue, last.eventId, budget);
    assert.equal(out.outcome, 'rejected');
    assert.equal((out as { stored: boolean }).stored, false);
    assert.ok(calls.missing <= DEFAULT_GAP_BUDGET.requests, `${calls.missing} get_missing_events requests`);
    assert.ok(calls.missingEvents <= DEFAULT_GAP_BUDGET.events, `${calls.missingEvents} events fetched`);
    assert.ok(calls.stateIds <= DEFAULT_GAP_BUDGET.stateFallbacks, `${calls.stateIds} /state_ids requests`);
    assert.deepEqual(await timelineBodies(), []);
    const stored = await store.rooms.getEvents(chain.map((c) => c.eventId));
    assert.equal(stored.size, 0, 'no outliers either');
    // The same transaction's budget is spent: another PDU gets no fetches at all.
    const before = calls.missing;
    await filler.receive(PEER, roomId, '11', structuredClone(chain[298].pdu) as unknown as JsonValue, chain[298].eventId, budget);
    assert.equal(calls.missing, before);
  });

  it('a pushed event nothing connects is refused without asking anyone for state', async () => {
    answerState = true;
    // The peer will not divulge the events before it: get_missing_events answers nothing.
    filler = new GapFiller({
      store, roomInput: input, keyRing: StaticKeyRing.forServer(SERVER, []), logger: pino({ level: 'silent' }),
      request: async (_o, method, path) => {
        if (method === 'POST' && path.includes('/get_missing_events/')) return { events: [] };
        calls.stateIds++;
        throw new Error(`unexpected ${method} ${path}`);
      },
    });
    const last = chain[5];
    const out = await filler.receive(PEER, roomId, '11', structuredClone(last.pdu) as unknown as JsonValue, last.eventId, { ...DEFAULT_GAP_BUDGET });
    assert.equal(out.outcome, 'rejected');
    assert.equal((out as { stored: boolean }).stored, false);
    assert.equal(calls.stateIds, 0);
    assert.equal(await store.rooms.getEvent(last.eventId), null);
  });

  it('a fetched event with a known and a missing state prev: the state after the missing one, from the peer, resolved with the known one', async () => {
    // join -- B (ours, known)            X cites B and Y; the peer sends E (citing X), answers
    //     \-- T (name) -- Y (topic) -- X -- E    get_missing_events with X only, and the state at Y.
    const s0 = new Map((await store.rooms.getCurrentState(roomId)).map((e) => [stateTuple(e.type, e.stateKey), e.eventId]));
    const authOf = (user: string) => [stateTuple('m.room.create', ''), stateTuple('m.room.power_levels', ''), stateTuple('m.room.member', user)].map((k) => s0.get(k) as string);
    const [tip] = await store.rooms.getForwardExtremities(roomId);
    const tipDepth = (await store.rooms.getEvent(tip))!.pdu.depth;
    const t = buildPdu({ roomId, sender: alice, type: 'm.room.name', stateKey: '', content: { name: 'from the peer' }, prevEvents: [tip], authEvents: authOf(alice), depth: tipDepth + 1 }, SERVER, signKey, '11');
    const y = buildPdu({ roomId, sender: alice, type: 'm.room.topic', stateKey: '', content: { topic: 'y' }, prevEvents: [t.eventId], authEvents: authOf(alice), depth: tipDepth + 2 }, SERVER, signKey, '11');
    const b = await input.submit(roomId, { type: 'm.room.message', sender: alice, content: { body: 'B' } });
    const x = buildPdu({ roomId, sender: bob, type: 'm.room.message', content: { body: 'X' }, prevEvents: [b.eventId, y.eventId], authEvents: authOf(bob), depth: tipDepth + 3 }, SERVER, signKey, '11');
    const e = buildPdu({ roomId, sender: bob, type: 'm.room.message', content: { body: 'E' }, prevEvents: [x.eventId], authEvents: authOf(bob), depth: tipDepth + 4 }, SERVER, signKey, '11');
    const s0Pdus = [...(await store.rooms.getEvents([...s0.values()])).values()].map((ev) => ev.pdu as unknown as JsonValue);
    const asked: string[] = [];
    let rounds = 0;
    filler = new GapFiller({
      store, roomInput: input, keyRing: StaticKeyRing.forServer(SERVER, [signKey]), logger: pino({ level: 'silent' }),
      request: async (_o, method, path): Promise<JsonValue> => {
        asked.push(`${method} ${decodeURIComponent(path)}`);
        if (method === 'POST' && path.includes('/get_missing_events/')) return { events: rounds++ === 0 ? [x.pdu as unknown as JsonValue] : [] };
        if (path.includes('/state_ids/') && decodeURIComponent(path).endsWith(`event_id=${y.eventId}`)) return { pdu_ids: [...s0.values(), t.eventId], auth_chain_ids: [] };
        if (path.includes('/state/') && decodeURIComponent(path).endsWith(`event_id=${y.eventId}`)) return { pdus: [...s0Pdus, t.pdu as unknown as JsonValue], auth_chain: [] };
        if (decodeURIComponent(path).endsWith(`/event/${y.eventId}`)) return { origin: PEER, origin_server_ts: 0, pdus: [y.pdu as unknown as JsonValue] };
        throw new Error(`404 for ${method} ${path}`);
      },
    });
    const out = await filler.receive(PEER, roomId, '11', structuredClone(e.pdu) as unknown as JsonValue, e.eventId, { ...DEFAULT_GAP_BUDGET });
    assert.equal(out.outcome, 'accepted');
    assert.ok(!asked.some((a) => a.includes(`event_id=${x.eventId}`) || a.includes(`event_id=${e.eventId}`)), `state asked at the prev only: ${asked.join(', ')}`);
    const xStored = await store.rooms.getEvent(x.eventId);
    assert.equal(xStored?.outlier, false);
    assert.equal(xStored?.rejected, null);
    const before = new Map(((await store.rooms.getStateAtEvent(x.eventId, 'before')) ?? []).map((en) => [stateTuple(en.type, en.stateKey), en.eventId]));
    assert.equal(before.get(stateTuple('m.room.topic', '')), y.eventId, 'the missing prev itself is in the state after it');
    assert.equal(before.get(stateTuple('m.room.name', '')), t.eventId, 'the state before the missing prev, as the peer reports it');
    assert.equal(before.get(stateTuple('m.room.member', bob)), s0.get(stateTuple('m.room.member', bob)));
    const current = new Map((await store.rooms.getCurrentState(roomId)).map((en) => [stateTuple(en.type, en.stateKey), en.eventId]));
    assert.equal(current.get(stateTuple('m.room.topic', '')), y.eventId);
    assert.equal(current.get(stateTuple('m.room.name', '')), t.eventId);
    // Y and T are known now, as outliers: no state, not in the timeline.
    assert.equal((await store.rooms.getEvent(y.eventId))?.outlier, true);
    assert.equal((await store.rooms.getEvent(t.eventId))?.outlier, true);
    assert.deepEqual(await timelineBodies(), ['B', 'X', 'E']);
    assert.deepEqual(await store.rooms.getForwardExtremities(roomId), [e.eventId]);
  });

  it('a missing prev whose auth events are in another room is stored rejected; the fetched event citing it is rejected with a state, and the pushed one after it accepted', async () => {
    const carol = `@carol:${SERVER}`;
    const { roomId: otherRoom } = await input.createRoom(`!other${Math.random().toString(36).slice(2)}:${SERVER}`, '11', carol, [
      { type: 'm.room.create', stateKey: '', sender: carol, content: { room_version: '11' } },
      { type: 'm.room.member', stateKey: carol, sender: carol, content: { membership: 'join' } },
    ]);
    const foreign = (await store.rooms.getCurrentState(otherRoom)).find((en) => en.type === 'm.room.member')!.eventId;
    const s0 = new Map((await store.rooms.getCurrentState(roomId)).map((en) => [stateTuple(en.type, en.stateKey), en.eventId]));
    const k = (t: string, sk = '') => s0.get(stateTuple(t, sk)) as string;
    const [tip] = await store.rooms.getForwardExtremities(roomId);
    const d = (await store.rooms.getEvent(tip))!.pdu.depth;
    // Q: carol "joins" the invite-less room with her membership of the other room as authority.
    const q = buildPdu({ roomId, sender: carol, type: 'm.room.member', stateKey: carol, content: { membership: 'join' }, prevEvents: [tip], authEvents: [k('m.room.create'), k('m.room.join_rules'), k('m.room.power_levels'), foreign], depth: d + 1 }, SERVER, signKey, '11');
    const r = buildPdu({ roomId, sender: carol, type: 'm.room.message', content: { body: 'R' }, prevEvents: [q.eventId], authEvents: [k('m.room.create'), k('m.room.power_levels'), q.eventId], depth: d + 2 }, SERVER, signKey, '11');
    const e = buildPdu({ roomId, sender: bob, type: 'm.room.message', content: { body: 'S' }, prevEvents: [r.eventId], authEvents: [k('m.room.create'), k('m.room.power_levels'), k('m.room.member', bob)], depth: d + 3 }, SERVER, signKey, '11');
    let rounds = 0;
    filler = new GapFiller({
      store, roomInput: input, keyRing: StaticKeyRing.forServer(SERVER, [signKey]), logger: pino({ level: 'silent' }),
      request: async (_o, method, path): Promise<JsonValue> => {
        const p = decodeURIComponent(path);
        if (method === 'POST' && p.includes('/get_missing_events/')) return { events: rounds++ === 0 ? [r.pdu as unknown as JsonValue] : [] };
        if (p.includes('/state_ids/') && p.endsWith(`event_id=${q.eventId}`)) return { pdu_ids: [...s0.values()], auth_chain_ids: [] };
        if (p.endsWith(`/event/${q.eventId}`)) return { origin: PEER, origin_server_ts: 0, pdus: [q.pdu as unknown as JsonValue] };
        throw new Error(`404 for ${method} ${path}`);
      },
    });
    const out = await filler.receive(PEER, roomId, '11', structuredClone(e.pdu) as unknown as JsonValue, e.eventId, { ...DEFAULT_GAP_BUDGET });
    assert.equal(out.outcome, 'accepted');
    assert.match((await store.rooms.getEvent(q.eventId))?.rejected ?? '', /another room/);
    const rStored = await store.rooms.getEvent(r.eventId);
    assert.match(rStored?.rejected ?? '', /rejected/);
    assert.notEqual(await store.rooms.getStateAtEvent(r.eventId, 'after'), null, 'the rejected event has a state, so S is not cut off');
    assert.equal((await store.rooms.getMembership(roomId, carol)), null);
    assert.deepEqual(await timelineBodies(), ['S']);
  });
});
