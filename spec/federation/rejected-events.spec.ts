// Inbound PDUs that fail, over /send on a real store (spec/helpers/inbound-room.ts: a remote
// server's really signed PDUs): what SyTest's 36state, 31room-send, 52soft-fail, 61push and
// 39redactions tests check, each asserted against the store here.
// - A PDU rejected by the auth rules is answered `{}` (as Synapse), stored rejected, and changes
//   nothing: not the room state, not the state a later event sees, not the timeline, no push.
//   Over federation there is no state at it: /state and /state_ids are M_NOT_FOUND.
// - A redaction that can never apply to the event it names (another room, a sender with neither
//   the redact level nor the target's server) is answered `{}`, kept (soft-failed) but withheld
//   from the timeline, and the target is untouched; a rightful one redacts its target.
// - v1 references with an empty hashes object are accepted (only the event ID counts).
// - A sender cannot take over a room by withholding a gap's events and claiming, for the state
//   at them, a power-levels event of its own made as if the room had none (SyTest 36state "take
//   over the room"): whether the origin answers /state or not, the room keeps its power levels.

import { assert } from '../helpers/assert.js';
import { alice, openInboundRoom, REMOTE, rob, type InboundRoom, type OriginAnswer } from '../helpers/inbound-room.js';
import type { BuiltPdu } from '../helpers/pdu-builder.js';
import type { JsonValue } from '../../src/protocol/types.js';
import { MatrixError } from '../../src/errors.js';
import { stateTuple } from '../../src/protocol/types.js';
import type { Pdu } from '../../src/protocol/types.js';

const mallory = `@mallory:${REMOTE}`;

describe('federation: rejected and withheld inbound PDUs', () => {
  let r: InboundRoom;

  afterEach(async () => {
    await r?.close();
  });

  const timelineIds = async () => (await r.store.rooms.getRoomEvents({ roomId: r.roomId, dir: 'f', from: 0, limit: 1000 })).map((e) => e.eventId);

  async function expectNotFound(p: Promise<unknown>, what: string): Promise<void> {
    await assert.rejects(p, (err: unknown) => err instanceof MatrixError && err.errcode === 'M_NOT_FOUND', what);
  }

  for (const kind of ['message', 'state'] as const) {
    it(`a ${kind} event from a sender not in the room: answered {}, stored rejected, state unchanged, no state at it over federation`, async () => {
      r = await openInboundRoom();
      const before = await r.stateIds();
      const bad = await r.build({
        sender: mallory,
        type: kind === 'state' ? 'm.room.name' : 'm.room.message',
        ...(kind === 'state' ? { stateKey: '' } : {}),
        content: kind === 'state' ? { name: 'taken over' } : { msgtype: 'm.text', body: 'Rejected' },
        prevEvents: [r.tip.eventId],
        authEvents: await r.authFor({ type: 'm.room.message', sender: mallory }),
        depth: r.tip.depth + 1,
      });
      assert.deepEqual(await r.send('t1', [bad]), { [bad.eventId]: {} });
      const stored = await r.store.rooms.getEvent(bad.eventId);
      assert.match(stored?.rejected ?? '', /not joined/);
      assert.deepEqual(await r.stateIds(), before, 'the current state is what it was');

      // A regular event citing it as its prev is accepted, with the same state before it.
      const next = await r.message('after it', { eventId: bad.eventId, depth: bad.pdu.depth });
      assert.deepEqual(await r.send('t2', [next]), { [next.eventId]: {} });
      assert.equal((await r.store.rooms.getEvent(next.eventId))?.rejected, null);
      const seen = (await r.store.rooms.getStateAtEvent(next.eventId, 'before'))!.map((e) => e.eventId).sort();
      assert.deepEqual(seen, [...before.values()].sort(), 'the state before the next event does not include it');
      assert.deepEqual(await r.stateIds(), before);
      const timeline = await timelineIds();
      assert.ok(timeline.includes(next.eventId) && !timeline.includes(bad.eventId));

      await expectNotFound(r.inbound.state(REMOTE, r.roomId, bad.eventId, false), '/state at the rejected event');
      await expectNotFound(r.inbound.state(REMOTE, r.roomId, bad.eventId, true), '/state_ids at the rejected event');
      // The same request at the accepted event is answered: the 404 is about the rejection.
      const ids = await r.inbound.state(REMOTE, r.roomId, next.eventId, true);
      assert.ok((ids.pdu_ids as string[]).includes(before.get(stateTuple('m.room.power_levels', ''))!));
      await expectNotFound(r.inbound.getEvent(REMOTE, bad.eventId), '/event of the rejected event');
    });
  }

  it('a rejected event is not pushed; an accepted one after it is', async () => {
    r = await openInboundRoom();
    const bad = await r.build({
      sender: mallory,
      type: 'm.room.message',
      content: { msgtype: 'm.text', body: 'Rejected' },
      prevEvents: [r.tip.eventId],
      authEvents: await r.authFor({ type: 'm.room.message', sender: mallory }),
      depth: r.tip.depth + 1,
    });
    const good = await r.message('Regular');
    assert.deepEqual(await r.send('t1', [bad, good]), { [bad.eventId]: {}, [good.eventId]: {} });
    const notified = (await r.store.notifications.getNotifications(alice, { limit: 10, onlyHighlight: false })).map((n) => n.eventId);
    assert.ok(notified.includes(good.eventId), `alice is notified of rob's message: ${JSON.stringify(notified)}`);
    assert.ok(!notified.includes(bad.eventId), 'never of the rejected one');
  });

  it('auth events outside the selection or of another room reject the event, answered {}, and leave both rooms\' state as it was', async () => {
    r = await openInboundRoom();
    const state = await r.stateIds();
    // Another room of this server, with a member event for rob's user ID (as SyTest forges).
    const { roomId: other } = await r.input.createRoom(null, '12', alice, [
      { type: 'm.room.create', stateKey: '', sender: alice, content: { room_version: '12' } },
      { type: 'm.room.member', stateKey: alice, sender: alice, content: { membership: 'join' } },
    ]);
    const otherState = new Map((await r.store.rooms.getCurrentState(other)).map((e) => [stateTuple(e.type, e.stateKey), e.eventId]));
    const foreignAuth = r.auth.filter((id) => id !== state.get(stateTuple('m.room.member', rob))).concat(otherState.get(stateTuple('m.room.member', alice))!);
    const foreign = await r.build({ sender: rob, type: 'm.room.message', content: { body: 'event P' }, prevEvents: [r.tip.eventId], authEvents: foreignAuth, depth: r.tip.depth + 1 });
    const withJoinRules = await r.build({
      sender: rob,
      type: 'm.room.message',
      content: { body: 'denied' },
      prevEvents: [r.tip.eventId],
      authEvents: [...r.auth, state.get(stateTuple('m.room.join_rules', ''))!],
      depth: r.tip.depth + 1,
    });
    assert.deepEqual(await r.send('t1', [foreign, withJoinRules]), { [foreign.eventId]: {}, [withJoinRules.eventId]: {} });
    assert.ok((await r.store.rooms.getEvent(foreign.eventId))?.rejected);
    assert.match((await r.store.rooms.getEvent(withJoinRules.eventId))?.rejected ?? '', /auth event/);
    assert.deepEqual(await r.stateIds(), state);
    assert.deepEqual(new Map((await r.store.rooms.getCurrentState(other)).map((e) => [stateTuple(e.type, e.stateKey), e.eventId])), otherState);
    // A later event citing both as prevs is accepted, and is what the timeline shows.
    const next = await r.build({ sender: rob, type: 'm.room.other_message_type', content: { body: 'Allowed' }, prevEvents: [foreign.eventId, withJoinRules.eventId], authEvents: r.auth, depth: r.tip.depth + 2 });
    assert.deepEqual(await r.send('t2', [next]), { [next.eventId]: {} });
    const timeline = await timelineIds();
    assert.ok(timeline.includes(next.eventId));
    assert.ok(!timeline.includes(foreign.eventId) && !timeline.includes(withJoinRules.eventId));
  });

  describe('redactions', () => {
    beforeEach(async () => {
      r = await openInboundRoom();
    });

    async function redaction(target: string, sender = rob): Promise<{ eventId: string; pdu: Pdu }> {
      const auth = await r.authFor({ type: 'm.room.redaction', sender });
      const ex = await r.store.rooms.getForwardExtremities(r.roomId);
      const depth = Math.max(...[...(await r.store.rooms.getEvents(ex)).values()].map((e) => e.pdu.depth)) + 1;
      const red = await r.build({ sender, type: 'm.room.redaction', content: { redacts: target }, prevEvents: ex, authEvents: auth, depth });
      r.tip = { eventId: red.eventId, depth };
      return red;
    }

    it('of an event in another room: answered {}, withheld from the timeline, the target untouched', async () => {
      const { roomId: other } = await r.input.createRoom(null, '12', alice, [
        { type: 'm.room.create', stateKey: '', sender: alice, content: { room_version: '12' } },
        { type: 'm.room.member', stateKey: alice, sender: alice, content: { membership: 'join' } },
        { type: 'm.room.join_rules', stateKey: '', sender: alice, content: { join_rule: 'public' } },
      ]);
      const target = await r.input.submit(other, { type: 'm.room.message', sender: alice, content: { msgtype: 'm.text', body: 'hi' } });
      // rob redacts it from this room, where he is a member; his server is not alice's.
      const red = await redaction(target.eventId);
      assert.deepEqual(await r.send('t1', [red]), { [red.eventId]: {} });
      const stored = await r.store.rooms.getEvent(red.eventId);
      assert.equal(stored?.softFailed, true, 'kept in the DAG, withheld');
      assert.equal(stored?.rejected, null, 'it passed the auth rules');
      assert.ok(!(await timelineIds()).includes(red.eventId));
      const t = await r.store.rooms.getEvent(target.eventId);
      assert.equal(t?.redactedBy, null);
      assert.equal(t?.pdu.content.body, 'hi');
    });

    it('by a sender with neither the redact level nor the target\'s server: withheld, the target untouched; a rightful one applies', async () => {
      const target = await r.input.submit(r.roomId, { type: 'm.room.message', sender: alice, content: { msgtype: 'm.text', body: 'Hello' } });
      const fake = await redaction(target.eventId);
      assert.deepEqual(await r.send('t1', [fake]), { [fake.eventId]: {} });
      assert.equal((await r.store.rooms.getEvent(fake.eventId))?.softFailed, true);
      assert.ok(!(await timelineIds()).includes(fake.eventId));
      assert.equal((await r.store.rooms.getEvent(target.eventId))?.pdu.content.body, 'Hello');

      // rob redacting his own message: applied, and shown.
      const own = await r.message('mine');
      assert.deepEqual(await r.send('t2', [own]), { [own.eventId]: {} });
      const red = await redaction(own.eventId);
      assert.deepEqual(await r.send('t3', [red]), { [red.eventId]: {} });
      const redacted = await r.store.rooms.getEvent(own.eventId);
      assert.equal(redacted?.redactedBy, red.eventId);
      assert.deepEqual(redacted?.pdu.content, {});
      assert.ok((await timelineIds()).includes(red.eventId));
    });
  });

  it('v1: references whose hashes object is empty are accepted (only the event ID counts)', async () => {
    r = await openInboundRoom({ version: '1' });
    const m = await r.build({ sender: rob, type: 'm.room.message', content: { body: 'v1' }, prevEvents: [r.tip.eventId], authEvents: r.auth, depth: r.tip.depth + 1, emptyReferenceHashes: true });
    assert.deepEqual(m.pdu.prev_events, [[r.tip.eventId, {}]]);
    assert.deepEqual(await r.send('t1', [m]), { [m.eventId]: {} });
    const stored = await r.store.rooms.getEvent(m.eventId);
    assert.equal(stored?.rejected, null);
    assert.ok((await timelineIds()).includes(m.eventId));
  });
  for (const answersState of [false, true]) {
    it(`v1: a made-up power-levels event in the state the sender claims at a gap does not take the room over (origin ${answersState ? 'answers' : 'refuses'} /state)`, async () => {
      // Built once the room exists: the events the origin serves, by ID.
      const served = new Map<string, BuiltPdu>();
      let stateAtC: { ids: string[]; auth: string[] } | undefined;
      let answeredMissing = false;
      const origin: OriginAnswer = async (method, path): Promise<JsonValue> => {
        if (method === 'POST' && path.includes('/get_missing_events/')) {
          // Only D, once (as SyTest): C stays missing.
          if (answeredMissing) throw new Error('404');
          answeredMissing = true;
          return { events: [served.get('D')!.pdu as unknown as JsonValue] };
        }
        if (path.includes('/state_ids/')) return { pdu_ids: stateAtC!.ids, auth_chain_ids: stateAtC!.auth };
        if (path.includes('/state/')) {
          if (!answersState) throw new Error('404');
          const pdu = (id: string) => [...served.values()].find((b) => b.eventId === id)?.pdu ?? null;
          const have = async (ids: string[]) => Promise.all(ids.map(async (id) => pdu(id) ?? (await r.store.rooms.getEvent(id))!.pdu));
          return { pdus: (await have(stateAtC!.ids)) as unknown as JsonValue, auth_chain: (await have(stateAtC!.auth)) as unknown as JsonValue };
        }
        const m = path.match(/\/event\/(.+)$/);
        if (m) {
          const ev = [...served.values()].find((b) => b.eventId === decodeURIComponent(m[1]));
          if (ev) return { origin: REMOTE, origin_server_ts: 0, pdus: [ev.pdu as unknown as JsonValue] };
        }
        throw new Error(`404 ${method} ${path}`);
      };
      r = await openInboundRoom({ version: '1', origin });
      const state = await r.stateIds();
      const create = state.get(stateTuple('m.room.create', ''))!;
      const robJoin = state.get(stateTuple('m.room.member', rob))!;
      const realPl = state.get(stateTuple('m.room.power_levels', ''))!;
      const nowhere = `$this-event-does-not-exist:${REMOTE}`;
      // X: a power-levels event of rob's, authorised only by the create event and his join, as if
      // the room had none, early (depth 0) so it sorts before the real one.
      const x = await r.build({ sender: rob, type: 'm.room.power_levels', stateKey: '', content: { users: { [rob]: 100, [alice]: 0 } }, prevEvents: [nowhere], authEvents: [create, robJoin], depth: 0, emptyReferenceHashes: true });
      const c = await r.build({ sender: rob, type: 'm.room.message', content: { body: 'hehehe...' }, prevEvents: [nowhere], authEvents: r.auth, depth: 10, emptyReferenceHashes: true });
      const d = await r.build({ sender: rob, type: 'm.room.message', content: { body: 'totes legit' }, prevEvents: [c.eventId], authEvents: r.auth, depth: 11, emptyReferenceHashes: true });
      const e = await r.build({ sender: rob, type: 'm.room.message', content: { body: 'nothing to see' }, prevEvents: [d.eventId], authEvents: r.auth, depth: 12, emptyReferenceHashes: true });
      served.set('X', x).set('C', c).set('D', d);
      stateAtC = { ids: [create, robJoin, x.eventId], auth: [create, robJoin] };

      assert.deepEqual(await r.send('t1', [e]), { [e.eventId]: {} });
      if (answersState) {
        // The gap was bridged with the claimed state, minus X: rob's level is 0 and a power-levels
        // event needs state_default (50 without a power-levels event), so X fails its own auth
        // events and is never part of any state here.
        assert.deepEqual(r.requests.slice(-3), ['GET /_matrix/federation/v1/state_ids', 'GET /_matrix/federation/v1/state', 'GET /_matrix/federation/v1/event']);
        const before = await r.store.rooms.getStateAtEvent(d.eventId, 'before');
        assert.ok(before, 'D was taken, with the state the origin claimed');
        assert.ok(!before.some((s) => s.eventId === x.eventId), 'without X');
      } else {
        assert.equal(await r.store.rooms.getEvent(e.eventId), null, 'E, still cut off, was dropped');
      }
      const now = await r.stateIds();
      assert.equal(now.get(stateTuple('m.room.power_levels', '')), realPl, 'the real power levels are still the room\'s');
      const pl = await r.store.rooms.getEvent(realPl);
      assert.equal(pl?.pdu.content.users && (pl.pdu.content.users as Record<string, number>)[alice], 100);
      assert.equal(now.get(stateTuple('m.room.member', alice)), state.get(stateTuple('m.room.member', alice)), 'alice is still joined');
      // And alice can still do what her power level allows.
      await r.input.submit(r.roomId, { type: 'm.room.name', stateKey: '', sender: alice, content: { name: 'still mine' } });
    });
  }
});
