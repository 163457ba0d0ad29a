// State resolution v1 (room version 1), hand-made cases from the spec's rooms/v1 text: power
// levels, then join rules, then members are replayed by ascending depth (ties: descending
// sha1(event_id)) until one fails auth; other keys take the highest-depth, lowest-sha1 candidate
// that passes auth. Where v1 and v2 differ, the same script is also resolved as room version 2.
import { createHash } from 'node:crypto';
import { assert } from '../helpers/assert.js';
import { resolveState } from '../../src/protocol/state-res/index.js';
import { stateTuple } from '../../src/protocol/types.js';
import { type Fork, RoomBuilder } from './state-res-harness.js';

const ALICE = '@alice:example.com';
const BOB = '@bob:example.com';
const CAROL = '@carol:example.com';
const DAVE = '@dave:example.com';

const PL = stateTuple('m.room.power_levels', '');
const TOPIC = stateTuple('m.room.topic', '');
const member = (u: string): string => stateTuple('m.room.member', u);
const sha1 = (s: string): string => createHash('sha1').update(s).digest('hex');

/** alice (100) and bob (50) run a public room that carol and dave joined. */
function room(version = '1'): { r: RoomBuilder; trunk: Fork } {
  const r = new RoomBuilder(version);
  const trunk = r.bootstrap(ALICE, { [ALICE]: 100, [BOB]: 50 });
  for (const u of [BOB, CAROL, DAVE]) r.must(trunk, u, 'm.room.member', u, { membership: 'join' });
  return { r, trunk };
}

const PLS = (extra: Record<string, number>) => ({ users: { [ALICE]: 100, [BOB]: 50, ...extra } });

describe('protocol/state-res v1 (room version 1)', () => {
  it('two allowed power_levels events: the deeper one wins', () => {
    for (const deeperFirst of [false, true]) {
      const { r, trunk } = room();
      const a = r.fork(trunk);
      const b = r.fork(trunk);
      const shallow = r.must(deeperFirst ? b : a, ALICE, 'm.room.power_levels', '', PLS({ [CAROL]: 10 }));
      const other = deeperFirst ? a : b;
      r.must(other, ALICE, 'm.room.topic', '', { topic: 'padding' });
      const deep = r.must(other, ALICE, 'm.room.power_levels', '', PLS({ [CAROL]: 20 }));
      assert.ok(deep.depth > shallow.depth);
      const resolved = resolveState('1', [a.state, b.state], r.source);
      assert.equal(resolved.get(PL), deep.event_id);
    }
  });

  it('the power_levels replay stops at the first event that fails auth, even if it is deeper', () => {
    const { r, trunk } = room();
    const a = r.fork(trunk);
    const b = r.fork(trunk);
    const demote = r.must(a, ALICE, 'm.room.power_levels', '', PLS({ [BOB]: 0 }));
    r.must(b, BOB, 'm.room.topic', '', { topic: 'padding' });
    const bobs = r.must(b, BOB, 'm.room.power_levels', '', PLS({ [DAVE]: 50 }));
    assert.ok(bobs.depth > demote.depth);
    assert.equal(resolveState('1', [a.state, b.state], r.source).get(PL), demote.event_id);
  });

  it('after the first event that fails, later allowed events are not replayed either', () => {
    const { r, trunk } = room();
    const a = r.fork(trunk);
    const b = r.fork(trunk);
    const c = r.fork(trunk);
    const demote = r.must(a, ALICE, 'm.room.power_levels', '', PLS({ [BOB]: 0 }));
    r.must(b, BOB, 'm.room.topic', '', { topic: 'padding' });
    const bobs = r.must(b, BOB, 'm.room.power_levels', '', PLS({ [DAVE]: 50 }));
    r.must(c, ALICE, 'm.room.topic', '', { topic: 'padding' });
    r.must(c, ALICE, 'm.room.name', '', { name: 'padding' });
    const alices = r.must(c, ALICE, 'm.room.power_levels', '', PLS({ [BOB]: 0, [CAROL]: 10 }));
    assert.ok(demote.depth < bobs.depth && bobs.depth < alices.depth);
    assert.equal(resolveState('1', [a.state, b.state, c.state], r.source).get(PL), demote.event_id);
    // Without bob's event in the way, alice's deeper one is replayed and wins.
    assert.equal(resolveState('1', [a.state, c.state], r.source).get(PL), alices.event_id);
  });

  it('equal depths: power levels replay by descending sha1, so the lowest sha1 is applied last and wins', () => {
    const { r, trunk } = room();
    const a = r.fork(trunk);
    const b = r.fork(trunk);
    const x = r.must(a, ALICE, 'm.room.power_levels', '', PLS({ [CAROL]: 10 }));
    const y = r.must(b, ALICE, 'm.room.power_levels', '', PLS({ [CAROL]: 20 }));
    assert.equal(x.depth, y.depth);
    const lowest = sha1(x.event_id) < sha1(y.event_id) ? x : y;
    assert.equal(resolveState('1', [a.state, b.state], r.source).get(PL), lowest.event_id);
    assert.equal(resolveState('1', [b.state, a.state], r.source).get(PL), lowest.event_id);
  });

  it('equal depths on another key: the lowest sha1 wins', () => {
    const { r, trunk } = room();
    const a = r.fork(trunk);
    const b = r.fork(trunk);
    const x = r.must(a, ALICE, 'm.room.topic', '', { topic: 'x' });
    const y = r.must(b, ALICE, 'm.room.topic', '', { topic: 'y' });
    const lowest = sha1(x.event_id) < sha1(y.event_id) ? x : y;
    assert.equal(resolveState('1', [a.state, b.state], r.source).get(TOPIC), lowest.event_id);
  });

  it('a ban replayed first makes the deeper re-join of the banned user fail', () => {
    const { r, trunk } = room();
    const a = r.fork(trunk);
    const b = r.fork(trunk);
    const ban = r.must(a, ALICE, 'm.room.member', DAVE, { membership: 'ban' });
    r.must(b, DAVE, 'm.room.member', DAVE, { membership: 'join', displayname: 'dave' });
    const rename = r.must(b, DAVE, 'm.room.member', DAVE, { membership: 'join', displayname: 'dave!' });
    assert.ok(rename.depth > ban.depth);
    const resolved = resolveState('1', [a.state, b.state], r.source);
    assert.equal(resolved.get(member(DAVE)), ban.event_id);
  });

  it('other keys: the deepest candidate that passes auth after power levels are resolved', () => {
    const { r, trunk } = room();
    const a = r.fork(trunk);
    const b = r.fork(trunk);
    const demote = r.must(a, ALICE, 'm.room.power_levels', '', PLS({ [BOB]: 0 }));
    const alices = r.must(a, ALICE, 'm.room.topic', '', { topic: 'alice' });
    r.must(b, BOB, 'm.room.name', '', { name: 'padding' });
    r.must(b, BOB, 'm.room.name', '', { name: 'padding 2' });
    const bobs = r.must(b, BOB, 'm.room.topic', '', { topic: 'bob' });
    assert.ok(bobs.depth > alices.depth);
    const resolved = resolveState('1', [a.state, b.state], r.source);
    assert.equal(resolved.get(PL), demote.event_id);
    assert.equal(resolved.get(TOPIC), alices.event_id, "bob's deeper topic fails: he was demoted");
  });

  it('other keys: when no candidate passes auth, the shallowest is kept', () => {
    const { r, trunk } = room();
    const a = r.fork(trunk);
    const b = r.fork(trunk);
    const c = r.fork(trunk);
    r.must(a, ALICE, 'm.room.power_levels', '', PLS({ [BOB]: 0 }));
    const first = r.must(b, BOB, 'm.room.topic', '', { topic: 'one' });
    r.must(c, BOB, 'm.room.name', '', { name: 'padding' });
    const second = r.must(c, BOB, 'm.room.topic', '', { topic: 'two' });
    assert.ok(second.depth > first.depth);
    assert.equal(resolveState('1', [a.state, b.state, c.state], r.source).get(TOPIC), first.event_id);
  });

  it('a key held by only some states is not a conflict in v1 (it is in v2)', () => {
    const results: Record<string, string | undefined> = {};
    for (const version of ['1', '2']) {
      const { r, trunk } = room(version);
      const a = r.fork(trunk);
      const b = r.fork(trunk);
      r.must(a, ALICE, 'm.room.power_levels', '', PLS({ [BOB]: 0 }));
      const topic = r.must(b, BOB, 'm.room.topic', '', { topic: 'bob' });
      const resolved = resolveState(version, [a.state, b.state], r.source);
      results[version] = resolved.get(TOPIC);
      assert.equal(resolved.get(member(BOB)), trunk.state.get(member(BOB)));
      if (version === '1') assert.equal(results[version], topic.event_id, 'v1: only one state has a topic, so it stands');
    }
    assert.equal(results['2'], undefined, 'v2: the topic is conflicted and fails auth once bob is demoted');
  });

  it('resolution does not depend on the order of the states', () => {
    const { r, trunk } = room();
    const forks = [r.fork(trunk), r.fork(trunk), r.fork(trunk)];
    r.must(forks[0], ALICE, 'm.room.power_levels', '', PLS({ [CAROL]: 50 }));
    r.must(forks[1], CAROL, 'm.room.member', CAROL, { membership: 'leave' });
    r.must(forks[2], BOB, 'm.room.member', DAVE, { membership: 'ban' });
    r.must(forks[2], BOB, 'm.room.topic', '', { topic: 'b' });
    r.must(forks[0], ALICE, 'm.room.topic', '', { topic: 'a' });
    const orders = [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]];
    const results = orders.map((o) => JSON.stringify([...resolveState('1', o.map((i) => forks[i].state), r.source)].sort()));
    for (const res of results) assert.equal(res, results[0]);
    const resolved = new Map(JSON.parse(results[0]) as Array<[string, string]>);
    assert.equal(resolved.get(member(DAVE)), forks[2].state.get(member(DAVE)), 'the ban stands');
    assert.equal(resolved.get(member(CAROL)), forks[1].state.get(member(CAROL)), 'the leave stands');
  });
});
