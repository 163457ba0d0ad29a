// Room input on a real DAG, on one server without federation: two branches of one room built
// with hand-signed PDUs through `receive`, the current state as the resolution of both, a total
// stream order, and every outcome (accepted, rejected, soft-failed, outlier).

import { assert } from '../helpers/assert.js';
import { buildPdu, type BuiltPdu } from '../helpers/pdu-builder.js';
import { generateSigningKey } from '../../src/protocol/crypto.js';
import { authEventIds, eventIdAssignedByServer, prevEventIds, verifyEventSignature } from '../../src/protocol/events.js';
import type { JsonObject, Pdu, RoomVersion, SigningKey } from '../../src/protocol/types.js';
import { roomVersionRules } from '../../src/protocol/room-versions.js';
import { authEventTypesFor } from '../../src/protocol/auth-rules.js';
import { stateTuple } from '../../src/protocol/types.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';
import { LocalNotifier } from '../../src/sync/notifier.js';
import { RoomInput, type InputOutcome } from '../../src/room/room-input.js';
import { StaticKeyRing } from '../../src/room/key-ring.js';
import { resolveState } from '../../src/protocol/state-res/index.js';
import { toStateMap } from '../../src/room/dag-state.js';

const SERVER = 'fork.test';
const alice = `@alice:${SERVER}`;
const bob = `@bob:${SERVER}`;
const carol = `@carol:${SERVER}`;

interface World {
  version: RoomVersion;
  /** Every PDU the test knows (stored or built), for v1/v2 hashed references. */
  pdus: Map<string, Pdu>;
  store: SqliteStore;
  input: RoomInput;
  key: SigningKey;
  keyRing: StaticKeyRing;
  roomId: string;
  /** Event IDs of the room's current state by `type\0stateKey` after setup. */
  ids: Map<string, string>;
  tip: { eventId: string; depth: number };
}

async function setup(version: RoomVersion): Promise<World> {
  const store = await openSqliteStore({ path: ':memory:' });
  const key = generateSigningKey('fork');
  const keyRing = StaticKeyRing.forServer(SERVER, [key]);
  const input = new RoomInput({ store, notifier: new LocalNotifier(), serverName: SERVER, signingKey: key, keyRing, resolveState });
  const derived = roomVersionRules(version).roomIdFromCreateEvent;
  const { roomId } = await input.createRoom(derived ? null : `!fork${Math.random().toString(36).slice(2)}:${SERVER}`, version, alice, [
    { type: 'm.room.create', stateKey: '', sender: alice, content: roomVersionRules(version).auth.creatorInContent ? { room_version: version, creator: alice } : { room_version: version } },
    { type: 'm.room.member', stateKey: alice, sender: alice, content: { membership: 'join' } },
    // v12 creators have infinite power and may not be listed.
    { type: 'm.room.power_levels', stateKey: '', sender: alice, content: { users: roomVersionRules(version).auth.privilegedCreators ? {} : { [alice]: 100 }, users_default: 0, ban: 50, state_default: 50 } },
    { type: 'm.room.join_rules', stateKey: '', sender: alice, content: { join_rule: 'public' } },
  ]);
  const join = await input.submit(roomId, { type: 'm.room.member', stateKey: bob, sender: bob, content: { membership: 'join' } });
  const ids = new Map((await store.rooms.getCurrentState(roomId)).map((e) => [stateTuple(e.type, e.stateKey), e.eventId]));
  const ev = await store.rooms.getEvent(join.eventId);
  const stored = await store.rooms.getRoomEvents({ roomId, dir: 'f', from: 0, limit: 100 });
  const pdus = new Map(stored.map((e) => [e.eventId, e.pdu]));
  return { version, pdus, store, input, key, keyRing, roomId, ids, tip: { eventId: join.eventId, depth: ev?.pdu.depth ?? 0 } };
}

function authFor(w: World, sender: string, extra: string[] = []): string[] {
  // The auth events selection of the room's version (v12 does not cite the create event).
  const selection = authEventTypesFor({ type: 'm.room.message', sender, content: {} }, w.version).map(([t, k]) => stateTuple(t, k));
  const keys = [...selection, ...extra];
  return keys.map((k) => w.ids.get(k)).filter((id): id is string => id !== undefined);
}

function build(
  w: World,
  sender: string,
  type: string,
  content: JsonObject,
  prev: { eventId: string; depth: number }[],
  opts: { stateKey?: string; auth?: string[] } = {},
): BuiltPdu & { depth: number } {
  const depth = Math.max(...prev.map((p) => p.depth)) + 1;
  const built = buildPdu(
    {
      roomId: w.roomId,
      sender,
      type,
      stateKey: opts.stateKey,
      content,
      prevEvents: prev.map((p) => p.eventId),
      authEvents: opts.auth ?? authFor(w, sender),
      depth,
    },
    SERVER,
    w.key,
    w.version,
    (id) => w.pdus.get(id),
  );
  w.pdus.set(built.eventId, built.pdu);
  return { ...built, depth };
}

async function receive(w: World, ev: BuiltPdu): Promise<InputOutcome> {
  return w.input.receive(w.roomId, structuredClone(ev.pdu), SERVER);
}

async function stateAfter(w: World, eventId: string): Promise<Map<string, string>> {
  const s = await w.store.rooms.getStateAtEvent(eventId, 'after');
  assert.ok(s, `state after ${eventId}`);
  return toStateMap(s);
}

async function timeline(w: World): Promise<string[]> {
  const evs = await w.store.rooms.getRoomEvents({ roomId: w.roomId, dir: 'f', from: 0, limit: 1000 });
  for (let i = 1; i < evs.length; i++) assert.ok(evs[i].stream > evs[i - 1].stream, 'stream order is strictly increasing');
  return evs.map((e) => e.eventId);
}

for (const version of ['1', '11', '12'] as const)
describe(`Room input on a DAG: forks on one server (room v${version})`, function () {
  let w: World;
  beforeEach(async function () {
    w = await setup(version);
  });
  afterEach(async function () {
    await w.input.drain();
    await w.store.close();
  });

  it('two branches: both accepted, the current state is the resolution of both, the stream order stays total', async function () {
    const topic = build(w, alice, 'm.room.topic', { topic: 'branch one' }, [w.tip], { stateKey: '' });
    const name = build(w, alice, 'm.room.name', { name: 'branch two' }, [w.tip], { stateKey: '' });
    assert.deepEqual(await receive(w, topic), { outcome: 'accepted', eventId: topic.eventId, stream: (await w.store.rooms.getEvent(topic.eventId))?.stream });
    const second = await receive(w, name);
    assert.equal(second.outcome, 'accepted');

    assert.deepEqual((await w.store.rooms.getForwardExtremities(w.roomId)).sort(), [topic.eventId, name.eventId].sort());
    // Each branch's state knows only its own change.
    assert.equal((await stateAfter(w, topic.eventId)).get(stateTuple('m.room.name', '')), undefined);
    assert.equal((await stateAfter(w, name.eventId)).get(stateTuple('m.room.topic', '')), undefined);
    const all = await w.store.rooms.getRoomEvents({ roomId: w.roomId, dir: 'f', from: 0, limit: 1000 });
    const byId = new Map(all.map((e) => [e.eventId, { eventId: e.eventId, pdu: e.pdu }]));
    const expected = resolveState(w.version, [await stateAfter(w, topic.eventId), await stateAfter(w, name.eventId)], {
      getEvent: (id) => byId.get(id),
    });
    const current = toStateMap(await w.store.rooms.getCurrentState(w.roomId));
    assert.deepEqual(current, expected);
    assert.equal(current.get(stateTuple('m.room.topic', '')), topic.eventId);
    assert.equal(current.get(stateTuple('m.room.name', '')), name.eventId);
    const group = await w.store.rooms.getCurrentStateGroup(w.roomId);
    assert.ok(group !== null);
    assert.deepEqual(toStateMap(await w.store.rooms.getStateGroup(group)), expected);

    const order = await timeline(w);
    assert.deepEqual(order.slice(-2), [topic.eventId, name.eventId]);
    // The writer's in-memory state follows the resolution too.
    assert.deepEqual((await w.input.currentState(w.roomId))?.stateMap(), current);

    // A local send now merges the fork: it cites both extremities and becomes the only one.
    const merged = await w.input.submit(w.roomId, { type: 'm.room.message', sender: bob, content: { msgtype: 'm.text', body: 'merge' } });
    const mergedEv = await w.store.rooms.getEvent(merged.eventId);
    assert.deepEqual((mergedEv ? prevEventIds(mergedEv.pdu) : []).sort(), [topic.eventId, name.eventId].sort());
    assert.deepEqual(await w.store.rooms.getForwardExtremities(w.roomId), [merged.eventId]);
    assert.deepEqual(await w.store.rooms.getPrevEvents([merged.eventId]), new Map([[merged.eventId, [topic.eventId, name.eventId].sort()]]));
    assert.deepEqual(toStateMap((await w.store.rooms.getStateAtEvent(merged.eventId, 'before')) ?? []), expected);
  });

  it('resolves two branches that set the same key as the resolver says, in memory and in the store', async function () {
    const a = build(w, alice, 'm.room.topic', { topic: 'A' }, [w.tip], { stateKey: '' });
    const b = build(w, alice, 'm.room.topic', { topic: 'B' }, [w.tip], { stateKey: '' });
    const a2 = build(w, alice, 'm.room.message', { msgtype: 'm.text', body: 'on A' }, [a]);
    for (const ev of [a, b, a2]) assert.equal((await receive(w, ev)).outcome, 'accepted');
    assert.deepEqual((await w.store.rooms.getForwardExtremities(w.roomId)).sort(), [a2.eventId, b.eventId].sort());
    const all = await w.store.rooms.getRoomEvents({ roomId: w.roomId, dir: 'f', from: 0, limit: 1000 });
    const byId = new Map(all.map((e) => [e.eventId, { eventId: e.eventId, pdu: e.pdu }]));
    const expected = resolveState(w.version, [await stateAfter(w, a2.eventId), await stateAfter(w, b.eventId)], { getEvent: (id) => byId.get(id) });
    const winner = expected.get(stateTuple('m.room.topic', ''));
    assert.ok(winner === a.eventId || winner === b.eventId);
    assert.deepEqual(toStateMap(await w.store.rooms.getCurrentState(w.roomId)), expected);
    assert.deepEqual((await w.input.currentState(w.roomId))?.stateMap(), expected);
    // /sync's change log saw the topic move to the winner.
    const changes = await w.store.rooms.getStateChanges(w.roomId, 0, w.store.currentPosition());
    assert.equal(changes.find((e) => e.type === 'm.room.topic')?.eventId, winner);
  });

  it('soft-fails an event whose sender is banned on the other fork; it stays out of the timeline and extremities', async function () {
    const ban = build(w, alice, 'm.room.member', { membership: 'ban' }, [w.tip], { stateKey: bob, auth: authFor(w, alice, [stateTuple('m.room.member', bob)]) });
    assert.equal((await receive(w, ban)).outcome, 'accepted');
    // Bob, on a branch that has not seen the ban: allowed by the state before it, not by the room's.
    const msg = build(w, bob, 'm.room.message', { msgtype: 'm.text', body: 'on the other fork' }, [w.tip]);
    const out = await receive(w, msg);
    assert.equal(out.outcome, 'soft_failed');
    const stored = await w.store.rooms.getEvent(msg.eventId);
    assert.equal(stored?.softFailed, true);
    assert.equal(stored?.rejected, null);
    assert.ok(!(await timeline(w)).includes(msg.eventId));
    assert.deepEqual(await w.store.rooms.getForwardExtremities(w.roomId), [ban.eventId]);
    assert.equal((await w.store.rooms.getMembership(w.roomId, bob))?.membership, 'ban');
    // It has a state (it is not an outlier): bob was joined before it.
    assert.equal((await w.store.rooms.getStateAtEvent(msg.eventId, 'before'))?.find((e) => e.stateKey === bob)?.eventId, w.ids.get(stateTuple('m.room.member', bob)));
    // Receiving it again gives the same outcome and writes nothing.
    assert.equal((await receive(w, msg)).outcome, 'soft_failed');
  });

  it('rejects an event that fails auth, stores it flagged, and never cites it afterwards', async function () {
    // Carol never joined: her topic fails auth against its own auth events (step 4).
    const bad = build(w, carol, 'm.room.topic', { topic: 'hijack' }, [w.tip], { stateKey: '' });
    const out = await receive(w, bad);
    assert.equal(out.outcome, 'rejected');
    assert.ok(out.outcome === 'rejected' && out.stored && /not joined/.test(out.reason), JSON.stringify(out));
    const stored = await w.store.rooms.getEvent(bad.eventId);
    assert.ok(stored?.rejected);
    assert.ok(!(await timeline(w)).includes(bad.eventId));
    assert.equal((await w.store.rooms.getCurrentState(w.roomId)).find((e) => e.type === 'm.room.topic'), undefined);
    assert.deepEqual(await w.store.rooms.getForwardExtremities(w.roomId), [w.tip.eventId]);

    // An event citing the rejected one as an auth event is rejected too (rule 2.3).
    const citing = build(w, alice, 'm.room.message', { msgtype: 'm.text', body: 'x' }, [w.tip], { auth: [...authFor(w, alice), bad.eventId] });
    const out2 = await receive(w, citing);
    assert.equal(out2.outcome, 'rejected');

    // Local sends cite neither as prev nor as auth event.
    const local = await w.input.submit(w.roomId, { type: 'm.room.topic', stateKey: '', sender: alice, content: { topic: 'real' } });
    const pdu = (await w.store.rooms.getEvent(local.eventId))?.pdu;
    assert.ok(pdu && !prevEventIds(pdu).includes(bad.eventId) && !authEventIds(pdu).includes(bad.eventId));
    assert.ok(!prevEventIds(pdu).includes(citing.eventId));
    assert.deepEqual(prevEventIds(pdu), [w.tip.eventId]);
    const citers = [...(await w.store.rooms.getPrevEvents(await timeline(w))).values()].filter((prevs) => prevs.includes(bad.eventId));
    assert.deepEqual(citers, [], 'no accepted event cites the rejected one');
  });

  it('rejects (state check) an event allowed by its auth events but not by the state before it', async function () {
    const ban = build(w, alice, 'm.room.member', { membership: 'ban' }, [w.tip], { stateKey: bob, auth: authFor(w, alice, [stateTuple('m.room.member', bob)]) });
    assert.equal((await receive(w, ban)).outcome, 'accepted');
    // Cites bob's old join as auth event, but its prev event is the ban.
    const after = build(w, bob, 'm.room.message', { msgtype: 'm.text', body: 'after my ban' }, [{ eventId: ban.eventId, depth: ban.depth }]);
    const out = await receive(w, after);
    assert.equal(out.outcome, 'rejected');
    const stored = await w.store.rooms.getEvent(after.eventId);
    assert.ok(stored?.rejected);
    // It got as far as the state check, so its state before is recorded.
    assert.ok(await w.store.rooms.getStateAtEvent(after.eventId, 'before'));
  });

  it('stores an event with unknown prev events as an outlier: no state, not in the timeline, not an extremity', async function () {
    const unknownPrev = { eventId: eventIdAssignedByServer(w.version) ? `$unknownprev:${SERVER}` : `$${'A'.repeat(43)}`, depth: w.tip.depth };
    const ev = build(w, alice, 'm.room.message', { msgtype: 'm.text', body: 'from the future' }, [unknownPrev]);
    const out = await receive(w, ev);
    assert.equal(out.outcome, 'outlier');
    const stored = await w.store.rooms.getEvent(ev.eventId);
    assert.equal(stored?.outlier, true);
    assert.equal(await w.store.rooms.getStateAtEvent(ev.eventId, 'before'), null);
    assert.ok(!(await timeline(w)).includes(ev.eventId));
    assert.deepEqual(await w.store.rooms.getForwardExtremities(w.roomId), [w.tip.eventId]);
    assert.deepEqual(await w.store.rooms.getPrevEvents([ev.eventId]), new Map([[ev.eventId, [unknownPrev.eventId]]]));
  });

  it('accepts an event with unknown prev events given the state after the missing prev (the federation gap fallback)', async function () {
    const unknownPrev = { eventId: eventIdAssignedByServer(w.version) ? `$gapprev:${SERVER}` : `$${'B'.repeat(43)}`, depth: w.tip.depth + 5 };
    const ev = build(w, bob, 'm.room.message', { msgtype: 'm.text', body: 'after a gap' }, [unknownPrev]);
    const reported = toStateMap(await w.store.rooms.getCurrentState(w.roomId));
    const out = await w.input.receive(w.roomId, structuredClone(ev.pdu), SERVER, [reported]);
    assert.equal(out.outcome, 'accepted');
    assert.deepEqual(toStateMap((await w.store.rooms.getStateAtEvent(ev.eventId, 'before')) ?? []), reported);
    assert.ok((await timeline(w)).includes(ev.eventId));
    assert.deepEqual((await w.store.rooms.getForwardExtremities(w.roomId)).sort(), [w.tip.eventId, ev.eventId].sort());
    // Without the state the same kind of event is still an outlier.
    const other = build(w, bob, 'm.room.message', { msgtype: 'm.text', body: 'no state' }, [unknownPrev]);
    assert.equal((await receive(w, other)).outcome, 'outlier');
  });

  it('clamps the depth of local events after a remote event with the largest depth', async function () {
    const deep = build(w, bob, 'm.room.message', { msgtype: 'm.text', body: 'deep' }, [{ ...w.tip, depth: Number.MAX_SAFE_INTEGER - 1 }]);
    assert.equal(deep.depth, Number.MAX_SAFE_INTEGER);
    assert.equal((await receive(w, deep)).outcome, 'accepted');
    for (const body of ['one', 'two']) {
      const local = await w.input.submit(w.roomId, { type: 'm.room.message', sender: alice, content: { msgtype: 'm.text', body } });
      assert.equal((await w.store.rooms.getEvent(local.eventId))?.pdu.depth, Number.MAX_SAFE_INTEGER);
    }
  });

  it('checks signatures with the key ring and redacts on a content hash mismatch', async function () {
    // Unknown server: rejected without being stored.
    const mallory = '@mallory:evil.test';
    const evilKey = generateSigningKey('evil');
    const forged = buildPdu(
      { roomId: w.roomId, sender: mallory, type: 'm.room.message', content: { body: 'hi' }, prevEvents: [w.tip.eventId], authEvents: authFor(w, mallory), depth: w.tip.depth + 1 },
      'evil.test',
      evilKey,
      w.version,
      (id) => w.pdus.get(id),
    );
    const out = await receive(w, forged);
    assert.equal(out.outcome, 'rejected');
    assert.ok(out.outcome === 'rejected' && !out.stored && /signature/.test(out.reason));
    assert.equal(await w.store.rooms.getEvent(forged.eventId), null);

    // Signed by us but signature bytes tampered with: rejected.
    const tampered = build(w, alice, 'm.room.message', { msgtype: 'm.text', body: 'x' }, [w.tip]);
    const sigs = tampered.pdu.signatures[SERVER];
    const keyId = Object.keys(sigs)[0];
    sigs[keyId] = sigs[keyId].slice(0, -4) + (sigs[keyId].endsWith('AAAA') ? 'BBBB' : 'AAAA');
    assert.equal((await receive(w, tampered)).outcome, 'rejected');

    // Content changed after signing: the signature (over the redacted form) still holds, the
    // hash does not, so the event is kept redacted.
    const changed = build(w, alice, 'm.room.message', { msgtype: 'm.text', body: 'original' }, [w.tip]);
    changed.pdu.content = { msgtype: 'm.text', body: 'altered' };
    assert.equal((await receive(w, changed)).outcome, 'accepted');
    assert.deepEqual({ ...(await w.store.rooms.getEvent(changed.eventId))?.pdu.content }, {});

    // A key ring that knows the other server lets its events through to the auth checks.
    w.keyRing.add('evil.test', evilKey.keyId, evilKey.publicKey);
    const out2 = await receive(w, forged);
    assert.ok(out2.outcome === 'rejected' && /not joined/.test(out2.reason), JSON.stringify(out2));
  });

  it('applies a received redaction to its target when the sender may redact it', async function () {
    const msg = build(w, bob, 'm.room.message', { msgtype: 'm.text', body: 'secret' }, [w.tip]);
    assert.equal((await receive(w, msg)).outcome, 'accepted');
    const target = roomVersionRules(w.version).redactsInContent ? { content: { redacts: msg.eventId } } : { top: msg.eventId };
    const red = build(w, alice, 'm.room.redaction', target.content ?? {}, [msg]);
    if (target.top) {
      // Top-level `redacts` before v11: rebuild with it in the signed PDU.
      const built = buildPdu(
        { roomId: w.roomId, sender: alice, type: 'm.room.redaction', content: {}, prevEvents: [msg.eventId], authEvents: authFor(w, alice), depth: msg.depth + 1, redacts: target.top },
        SERVER,
        w.key,
        w.version,
        (id) => w.pdus.get(id),
      );
      red.eventId = built.eventId;
      red.pdu = built.pdu;
    }
    assert.equal((await receive(w, red)).outcome, 'accepted');
    const stored = await w.store.rooms.getEvent(msg.eventId);
    assert.equal(stored?.redactedBy, red.eventId);
    assert.equal(stored?.pdu.content.body, undefined);
  });

  it('rejects malformed PDUs with a reason instead of throwing', async function () {
    const good = build(w, alice, 'm.room.message', { msgtype: 'm.text', body: 'x' }, [w.tip]);
    const cases: unknown[] = [
      null,
      'string',
      { ...good.pdu, room_id: '!other:fork.test' },
      { ...good.pdu, depth: -1 },
      { ...good.pdu, prev_events: ['not-an-id'] },
      { ...good.pdu, content: { big: 'x'.repeat(70_000) } },
    ];
    for (const c of cases) {
      const out = await w.input.receive(w.roomId, c, SERVER);
      assert.equal(out.outcome, 'rejected', JSON.stringify(c)?.slice(0, 80));
    }
    const unknownRoom = await w.input.receive(`!nope:${SERVER}`, good.pdu, SERVER);
    assert.equal(unknownRoom.outcome, 'rejected');
    const secondCreate = buildPdu(
      { roomId: w.roomId, sender: alice, type: 'm.room.create', stateKey: '', content: { room_version: w.version }, prevEvents: [], authEvents: [], depth: 1 },
      SERVER,
      w.key,
      w.version,
      (id) => w.pdus.get(id),
    );
    const out = await receive(w, secondCreate);
    assert.ok(out.outcome === 'rejected' && !out.stored, JSON.stringify(out));
    assert.equal((await w.store.rooms.getForwardExtremities(w.roomId)).length, 1);
  });
});

// State resolution v1 treats a key missing from one fork as unconflicted, so only v2 and v2.1
// can drop a key from the room's state.
for (const version of ['11', '12'] as const)
describe(`Room input on a DAG: a resolution that drops a key (room v${version})`, function () {
  let w: World;
  beforeEach(async function () {
    w = await setup(version);
  });
  afterEach(async function () {
    await w.input.drain();
    await w.store.close();
  });

  it('a topic whose only candidate fails auth after resolution leaves the current state exactly the resolved state', async function () {
    const pl = w.ids.get(stateTuple('m.room.power_levels', '')) as string;
    const plContent = (w.pdus.get(pl) as Pdu).content;
    // Branch one: bob gets the power to set state and sets a topic (a key the room never had).
    const raise = build(w, alice, 'm.room.power_levels', { ...plContent, users: { ...(plContent.users as JsonObject), [bob]: 50 } }, [w.tip], { stateKey: '' });
    assert.equal((await receive(w, raise)).outcome, 'accepted');
    w.ids.set(stateTuple('m.room.power_levels', ''), raise.eventId);
    const topic = build(w, bob, 'm.room.topic', { topic: 'from bob' }, [raise], { stateKey: '' });
    assert.equal((await receive(w, topic)).outcome, 'accepted');
    assert.equal(toStateMap(await w.store.rooms.getCurrentState(w.roomId)).get(stateTuple('m.room.topic', '')), topic.eventId);
    w.ids.set(stateTuple('m.room.power_levels', ''), pl);

    // Branch two, from before the raise: alice bans bob. Resolved, bob is banned, so his topic
    // fails the iterative auth checks and the key has no value at all.
    const ban = build(w, alice, 'm.room.member', { membership: 'ban' }, [w.tip], { stateKey: bob, auth: authFor(w, alice, [stateTuple('m.room.member', bob)]) });
    assert.equal((await receive(w, ban)).outcome, 'accepted');
    assert.deepEqual((await w.store.rooms.getForwardExtremities(w.roomId)).sort(), [topic.eventId, ban.eventId].sort());

    const all = await w.store.rooms.getRoomEvents({ roomId: w.roomId, dir: 'f', from: 0, limit: 1000 });
    const byId = new Map(all.map((e) => [e.eventId, { eventId: e.eventId, pdu: e.pdu }]));
    const expected = resolveState(w.version, [await stateAfter(w, topic.eventId), await stateAfter(w, ban.eventId)], { getEvent: (id) => byId.get(id) });
    assert.equal(expected.has(stateTuple('m.room.topic', '')), false, 'the scenario drops the topic');
    assert.equal(expected.get(stateTuple('m.room.member', bob)), ban.eventId);

    const current = toStateMap(await w.store.rooms.getCurrentState(w.roomId));
    assert.deepEqual(current, expected, 'no extra keys');
    const group = await w.store.rooms.getCurrentStateGroup(w.roomId);
    assert.ok(group !== null);
    assert.deepEqual(toStateMap(await w.store.rooms.getStateGroup(group)), expected);
    assert.deepEqual((await w.input.currentState(w.roomId))?.stateMap(), expected, 'the writer agrees in memory');
    assert.equal((await w.store.rooms.getMembership(w.roomId, bob))?.membership, 'ban');

    // A local send merges the fork on top of the resolved state: the topic does not come back.
    const merged = await w.input.submit(w.roomId, { type: 'm.room.message', sender: alice, content: { msgtype: 'm.text', body: 'merge' } });
    assert.deepEqual(toStateMap((await w.store.rooms.getStateAtEvent(merged.eventId, 'before')) ?? []), expected);
    assert.deepEqual(toStateMap(await w.store.rooms.getCurrentState(w.roomId)), expected);
    // A fresh writer (state loaded from the store) sees the same.
    const fresh = new RoomInput({ store: w.store, notifier: new LocalNotifier(), serverName: SERVER, signingKey: w.key, keyRing: w.keyRing, resolveState });
    assert.deepEqual((await fresh.currentState(w.roomId))?.stateMap(), expected);
  });
});

describe('Room input: local sends take the same checks', function () {
  it('a key ring that does not know our key stops local sends at the signature check', async function () {
    const store = await openSqliteStore({ path: ':memory:' });
    const key = generateSigningKey('local');
    const input = new RoomInput({ store, notifier: new LocalNotifier(), serverName: SERVER, signingKey: key, keyRing: new StaticKeyRing() });
    try {
      await assert.rejects(
        input.createRoom(`!local:${SERVER}`, '11', alice, [{ type: 'm.room.create', stateKey: '', sender: alice, content: { room_version: '11' } }]),
        /signature check/,
      );
      assert.equal(await store.rooms.getRoom(`!local:${SERVER}`), null);
    } finally {
      await input.drain();
      await store.close();
    }
  });

  it('a key ring with another key under our key ID stops local sends (own signatures skip only the verify)', async function () {
    const store = await openSqliteStore({ path: ':memory:' });
    const key = generateSigningKey('local');
    const impostor = generateSigningKey('local');
    const ring = StaticKeyRing.forServer(SERVER, [impostor]);
    const input = new RoomInput({ store, notifier: new LocalNotifier(), serverName: SERVER, signingKey: key, keyRing: ring });
    try {
      await assert.rejects(
        input.createRoom(`!other:${SERVER}`, '11', alice, [{ type: 'm.room.create', stateKey: '', sender: alice, content: { room_version: '11' } }]),
        /signature check/,
      );
      assert.equal(await store.rooms.getRoom(`!other:${SERVER}`), null);
      ring.add(SERVER, key.keyId, key.publicKey);
      const { events } = await input.createRoom(`!other:${SERVER}`, '11', alice, [
        { type: 'm.room.create', stateKey: '', sender: alice, content: { room_version: '11' } },
      ]);
      const stored = await store.rooms.getEvent(events[0].eventId);
      assert.ok(stored && verifyEventSignature(stored.pdu, SERVER, key.keyId, key.publicKey, '11'));
    } finally {
      await input.drain();
      await store.close();
    }
  });
});
