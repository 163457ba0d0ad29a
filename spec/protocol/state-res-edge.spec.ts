// State resolution on awkward input: rejected auth events, events the source does not have,
// forged auth_events cycles, malformed content, unsupported room versions, trivial inputs.
import { assert } from '../helpers/assert.js';
import { EventGraph } from '../../src/protocol/state-res/graph.js';
import { UnsupportedRoomVersionError, resolveState, stateResRules } from '../../src/protocol/state-res/index.js';
import { splitConflictedV2 } from '../../src/protocol/state-res/v2.js';
import { stateTuple } from '../../src/protocol/types.js';
import { RoomBuilder, type VectorPdu, sortedEntries } from './state-res-harness.js';

const ALICE = '@alice:example.com';
const BOB = '@bob:example.com';
const CAROL = '@carol:example.com';
const PL = stateTuple('m.room.power_levels', '');
const TOPIC = stateTuple('m.room.topic', '');
const CAROL_MEMBER = stateTuple('m.room.member', CAROL);
const JOIN_RULES = stateTuple('m.room.join_rules', '');

/** alice (100) and bob (50) in a public v11 room with carol; fork A: bob kicks carol. */
function kickRoom(version = '11'): { r: RoomBuilder; a: Map<string, string>; b: Map<string, string>; kick: VectorPdu; plId: string } {
  const r = new RoomBuilder(version);
  const trunk = r.bootstrap(ALICE, { [ALICE]: 100, [BOB]: 50 });
  for (const u of [BOB, CAROL]) r.must(trunk, u, 'm.room.member', u, { membership: 'join' });
  const fa = r.fork(trunk);
  const kick = r.must(fa, BOB, 'm.room.member', CAROL, { membership: 'leave' });
  return { r, a: fa.state, b: r.fork(trunk).state, kick, plId: trunk.state.get(PL) as string };
}

describe('protocol/state-res: edge cases', () => {
  it('a key missing from the state is taken from the event auth_events, unless that event was rejected', () => {
    const { r, a, b, kick, plId } = kickRoom();
    // Neither state names the power levels, so the kick is checked against its own auth events.
    a.delete(PL);
    b.delete(PL);
    assert.equal(resolveState('11', [a, b], r.source).get(CAROL_MEMBER), kick.event_id);
    r.source.rejectedIds.add(plId);
    const resolved = resolveState('11', [a, b], r.source);
    assert.equal(resolved.get(CAROL_MEMBER), b.get(CAROL_MEMBER), 'without the rejected PL, bob has no kick power');
  });

  it('events the source does not know are left out, not fatal', () => {
    const { r, a, b, kick } = kickRoom();
    const unknownTopic = '$not-here';
    a.set(TOPIC, unknownTopic);
    const resolved = resolveState('11', [a, b], r.source);
    assert.equal(resolved.get(CAROL_MEMBER), kick.event_id);
    assert.equal(resolved.has(TOPIC), false, 'a conflicted entry we cannot see is not applied');
    // Unconflicted entries are taken as given, seen or not (step 5).
    b.set(TOPIC, unknownTopic);
    assert.equal(resolveState('11', [a, b], r.source).get(TOPIC), unknownTopic);
  });

  it('a forged auth_events cycle neither hangs nor throws', () => {
    for (const version of ['10', '11', '12']) {
      const { r, a, b } = kickRoom(version);
      const forge = (id: string, type: string, content: Record<string, string>, cites: string): VectorPdu => {
        const e = r.build(r.fork(), ALICE, type, '', content, { id });
        e.auth_events = [cites];
        return e;
      };
      // Topics are ordered by mainline, so they still resolve to one of the two.
      const x = forge('$cycle-x', 'm.room.topic', { topic: 'x' }, '$cycle-y');
      const y = forge('$cycle-y', 'm.room.topic', { topic: 'y' }, '$cycle-x');
      // Join rules are power events: Kahn's algorithm never finds them ready, so neither applies.
      const p = forge('$cycle-p', 'm.room.join_rules', { join_rule: 'invite' }, '$cycle-q');
      const q = forge('$cycle-q', 'm.room.join_rules', { join_rule: 'knock' }, '$cycle-p');
      a.set(TOPIC, x.event_id);
      b.set(TOPIC, y.event_id);
      a.set(JOIN_RULES, p.event_id);
      b.set(JOIN_RULES, q.event_id);
      const resolved = resolveState(version, [a, b], r.source);
      assert.equal(resolved.has(JOIN_RULES), false, `v${version}`);
      assert.equal(resolved.get(CAROL_MEMBER), a.get(CAROL_MEMBER), `v${version}: the rest of the state is intact`);
      if (version !== '12') assert.ok([x.event_id, y.event_id].includes(resolved.get(TOPIC) as string), `v${version}`);
    }
  });

  it('malformed events (content not an object, no state_key, no sender) are not applied', () => {
    for (const version of ['10', '11', '12']) {
      const { r, a, b } = kickRoom(version);
      const bad = r.build(r.fork(), BOB, 'm.room.topic', '', { topic: 'bad' }, { id: '$bad' });
      (bad as unknown as { content: unknown }).content = null;
      const noKey = r.build(r.fork(), BOB, 'm.room.name', '', { name: 'n' }, { id: '$nokey' });
      delete (noKey as Partial<VectorPdu>).state_key;
      const noSender = r.build(r.fork(), BOB, 'm.room.join_rules', '', { join_rule: 'invite' }, { id: '$nosender' });
      delete (noSender as Partial<VectorPdu>).sender;
      a.set(TOPIC, bad.event_id);
      a.set(stateTuple('m.room.name', ''), noKey.event_id);
      a.set(JOIN_RULES, noSender.event_id);
      const resolved = resolveState(version, [a, b], r.source);
      assert.equal(resolved.has(TOPIC), false, `v${version}`);
      assert.equal(resolved.has(stateTuple('m.room.name', '')), false, `v${version}`);
      assert.equal(resolved.get(JOIN_RULES), b.get(JOIN_RULES), `v${version}`);
    }
  });

  it('auth difference: an event every state reaches through its unconflicted events is not in it', () => {
    // x is cited by the unconflicted event u, so it is in every state's auth chain, even though
    // only a1 (conflicted, in the first state) cites it directly; y is only under a1.
    const r = new RoomBuilder('11');
    const ev = (id: string, type: string, auth: string[]): VectorPdu => {
      const e = r.build(r.fork(), ALICE, type, '', {}, { id });
      e.auth_events = auth;
      return e;
    };
    ev('$c', 'm.room.create', []);
    ev('$x', 'm.room.x', ['$c']);
    ev('$y', 'm.room.y', ['$c']);
    ev('$u', 'm.room.u', ['$x']);
    ev('$a1', 'm.room.a', ['$x', '$y']);
    ev('$a2', 'm.room.a', ['$c']);
    const s1 = new Map([[stateTuple('m.room.u', ''), '$u'], [stateTuple('m.room.a', ''), '$a1']]);
    const s2 = new Map([[stateTuple('m.room.u', ''), '$u'], [stateTuple('m.room.a', ''), '$a2']]);
    const graph = new EventGraph('11', stateResRules('11'), r.source);
    const { unconflicted } = splitConflictedV2([s1, s2]);
    assert.deepEqual([...graph.authDifference([s1, s2], unconflicted)].sort(), ['$y']);
    assert.deepEqual([...graph.authDifference([s2, s1], unconflicted)].sort(), ['$y']);
  });

  it('unsupported room versions throw a typed error; zero or one state sets resolve trivially', () => {
    const { r, a } = kickRoom();
    assert.throws(() => resolveState('13', [a, a], r.source), UnsupportedRoomVersionError);
    assert.throws(() => resolveState('org.example.custom', [], r.source), UnsupportedRoomVersionError);
    assert.deepEqual(resolveState('11', [], r.source), new Map());
    const single = resolveState('11', [a], r.source);
    assert.deepEqual(sortedEntries(single), sortedEntries(a));
    assert.notEqual(single, a, 'the result is a new map, not the caller\'s');
  });

  it('does not fetch every event of the room when one key is in conflict (v2 walks chains, not the room)', () => {
    const { r, a, b } = kickRoom();
    r.source.getEventCalls = 0;
    resolveState('11', [a, b], r.source);
    assert.ok(r.source.getEventCalls > 0);
    assert.ok(r.source.getEventCalls <= 4 * r.source.byId.size, `${r.source.getEventCalls} fetches for ${r.source.byId.size} events`);
  });
});
