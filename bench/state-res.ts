// Micro-benchmark: state resolution of two forks of a 10,000-member room (issue 11 asks for
// ≤ 50 ms). Pure CPU, no I/O: the events live in a Map that the resolver reads through its
// source interface, and the auth chain difference is computed by the resolver itself (no index).
//
//   npx tsc -p tsconfig.json && node dist/bench/state-res.js [members=10000] [runs=30] [versions=1,2,10,11,12]
//
// The room: create, the creator's join, power levels, public join rules, a name and topic, five
// earlier power-levels changes (a mainline to walk), then `members` joins. Then two forks of about
// 200 events each from the same point:
//  - alice (admin): promotes carol, then demotes dave; carol sets the topic and kicks 50 members,
//    alice bans 50, and 100 members change their display names;
//  - bob (moderator): changes power levels too (gives a member 25), sets the topic, kicks 50
//    other members, 100 other members leave, 48 new users join.
// So the power_levels, topic and 400 member keys are conflicted and each side's auth chain holds
// events the other's lacks. Each run resolves [forkA, forkB] from scratch (no memo across runs).
import { checkEventAuth } from '../src/protocol/auth-rules.js';
import { resolveState } from '../src/protocol/state-res/index.js';
import type { JsonObject, Pdu, RoomVersion, StateKeyTuple } from '../src/protocol/types.js';
import { stateTuple } from '../src/protocol/types.js';

const members = Number(process.argv[2] ?? 10_000);
const runs = Number(process.argv[3] ?? 30);
const versions = (process.argv[4] ?? '1,2,10,11,12').split(',');
const WARMUP = 5;

type State = Map<StateKeyTuple, string>;
interface Fork {
  state: State;
  head: string;
  depth: number;
}

const ALICE = '@alice:example.com';
const BOB = '@bob:example.com';
const CAROL = '@carol:example.com';
const DAVE = '@dave:example.com';
const user = (i: number): string => `@user${i}:server${i % 97}.org`;

function buildRoom(version: string): { events: Map<string, Pdu>; forks: [Fork, Fork]; rejected: number } {
  const events = new Map<string, Pdu>();
  const v12 = Number(version) >= 12;
  // Rooms 1 and 2: server-assigned event IDs, and references are [event_id, hashes] pairs.
  const oldFormat = Number(version) <= 2;
  const ref = (id: string): unknown => (oldFormat ? [id, { sha256: '' }] : id);
  let n = 0;
  let ts = 1_700_000_000_000;
  let roomId = '!bench:example.com';
  let rejected = 0;

  const send = (fork: Fork, sender: string, type: string, stateKey: string, content: JsonObject): void => {
    const id = oldFormat ? `$ev${n++}:example.com` : `$ev${n++}`;
    if (type === 'm.room.create' && v12) roomId = `!${id.slice(1)}`;
    const keys = type === 'm.room.create' ? [] : [['m.room.power_levels', ''], ['m.room.member', sender]];
    if (type !== 'm.room.create' && !v12) keys.unshift(['m.room.create', '']);
    if (type === 'm.room.member') {
      keys.push(['m.room.member', stateKey]);
      if (content.membership === 'join' || content.membership === 'invite') keys.push(['m.room.join_rules', '']);
    }
    const auth = [...new Set(keys.map(([t, k]) => fork.state.get(stateTuple(t, k))).filter((x): x is string => x !== undefined))];
    const pdu = {
      room_id: roomId,
      sender,
      type,
      state_key: stateKey,
      content,
      origin_server_ts: ts++,
      depth: fork.depth + 1,
      prev_events: fork.head ? [ref(fork.head)] : [],
      auth_events: auth.map(ref),
      hashes: { sha256: '' },
      signatures: {},
      event_id: id,
    } as unknown as Pdu;
    if (type === 'm.room.create' && v12) delete (pdu as Partial<Pdu>).room_id;
    events.set(id, pdu);
    // Every event of the bench must be one a server would have accepted.
    const lookup = (t: string, k: string): Pdu | undefined => {
      const sid = fork.state.get(stateTuple(t, k));
      return sid === undefined ? undefined : events.get(sid);
    };
    try {
      checkEventAuth(pdu, version as RoomVersion, lookup, { eventIdOf: (p) => p.event_id as string });
    } catch (err) {
      if (rejected === 0 && process.env.BENCH_DEBUG) console.log(`first failure: ${type}/${stateKey} by ${sender}: ${String(err)}`);
      rejected++;
      return;
    }
    fork.state.set(stateTuple(type, stateKey), id);
    fork.head = id;
    fork.depth++;
  };

  const trunk: Fork = { state: new Map(), head: '', depth: 0 };
  send(trunk, ALICE, 'm.room.create', '', Number(version) <= 10 ? { creator: ALICE, room_version: version } : { room_version: version });
  send(trunk, ALICE, 'm.room.member', ALICE, { membership: 'join', displayname: 'alice' });
  const pl = (extra: Record<string, number>): JsonObject => {
    // (Rooms 1–9 would also accept these levels as strings; integers are valid everywhere.)
    const users: Record<string, number> = { [BOB]: 50, [CAROL]: 0, [DAVE]: 50, ...extra };
    if (!v12) users[ALICE] = 100;
    return { users, state_default: 50, events_default: 0, ban: 50, kick: 50, redact: 50, invite: 0 };
  };
  send(trunk, ALICE, 'm.room.power_levels', '', pl({}));
  send(trunk, ALICE, 'm.room.join_rules', '', { join_rule: 'public' });
  send(trunk, ALICE, 'm.room.history_visibility', '', { history_visibility: 'shared' });
  send(trunk, ALICE, 'm.room.name', '', { name: 'Bench room' });
  for (const u of [BOB, CAROL, DAVE]) send(trunk, u, 'm.room.member', u, { membership: 'join' });
  for (let i = 0; i < 5; i++) send(trunk, ALICE, 'm.room.power_levels', '', pl({ [user(i)]: i }));
  send(trunk, BOB, 'm.room.topic', '', { topic: 'before the fork' });
  for (let i = 0; i < members; i++) send(trunk, user(i), 'm.room.member', user(i), { membership: 'join', displayname: `user ${i}` });

  const a: Fork = { state: new Map(trunk.state), head: trunk.head, depth: trunk.depth };
  const b: Fork = { state: new Map(trunk.state), head: trunk.head, depth: trunk.depth };
  send(a, ALICE, 'm.room.power_levels', '', pl({ [CAROL]: 50 }));
  send(a, ALICE, 'm.room.power_levels', '', pl({ [CAROL]: 50, [DAVE]: 0 }));
  send(a, CAROL, 'm.room.topic', '', { topic: 'fork A' });
  for (let i = 0; i < 50; i++) send(a, CAROL, 'm.room.member', user(100 + i), { membership: 'leave' });
  for (let i = 0; i < 50; i++) send(a, ALICE, 'm.room.member', user(200 + i), { membership: 'ban' });
  for (let i = 0; i < 100; i++) send(a, user(300 + i), 'm.room.member', user(300 + i), { membership: 'join', displayname: `renamed ${i}` });
  send(b, BOB, 'm.room.power_levels', '', pl({ [user(7)]: 25 }));
  send(b, BOB, 'm.room.topic', '', { topic: 'fork B' });
  for (let i = 0; i < 50; i++) send(b, BOB, 'm.room.member', user(500 + i), { membership: 'leave' });
  for (let i = 0; i < 100; i++) send(b, user(600 + i), 'm.room.member', user(600 + i), { membership: 'leave' });
  for (let i = 0; i < 48; i++) send(b, user(members + i), 'm.room.member', user(members + i), { membership: 'join' });
  return { events, forks: [a, b], rejected };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

for (const version of versions) {
  const t0 = performance.now();
  const { events, forks, rejected } = buildRoom(version);
  const built = performance.now() - t0;
  if (rejected > 0) {
    console.log(`room v${version}: ${rejected} bench events failed auth (is v${version} auth implemented?); skipped`);
    continue;
  }
  let getEventCalls = 0;
  const source = {
    getEvent: (id: string) => {
      getEventCalls++;
      const pdu = events.get(id);
      return pdu ? { eventId: id, pdu } : undefined;
    },
  };
  const sets = forks.map((f) => f.state);
  const times: number[] = [];
  const cpuTimes: number[] = [];
  let result: Map<StateKeyTuple, string> = new Map();
  for (let i = 0; i < WARMUP + runs; i++) {
    getEventCalls = 0;
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    result = resolveState(version, sets, source);
    const ms = performance.now() - start;
    const cpu = process.cpuUsage(cpu0);
    if (i >= WARMUP) {
      times.push(ms);
      cpuTimes.push((cpu.user + cpu.system) / 1000);
    }
  }
  const first = times[0];
  // Sanity: both forks' uncontested changes survive and the room still has its members.
  const memberCount = [...result.keys()].filter((k) => k.startsWith('m.room.member\u0000')).length;
  const kickedA = result.get(stateTuple('m.room.member', user(100))) === forks[0].state.get(stateTuple('m.room.member', user(100)));
  const leftB = result.get(stateTuple('m.room.member', user(600))) === forks[1].state.get(stateTuple('m.room.member', user(600)));
  if (memberCount < members || !kickedA || !leftB) throw new Error(`v${version}: implausible resolution (${memberCount} members)`);
  const s = [...times].sort((x, y) => x - y);
  const c = [...cpuTimes].sort((x, y) => x - y);
  const mean = times.reduce((x, y) => x + y, 0) / times.length;
  console.log(
    `room v${version}: ${members} members, ${events.size} events (built in ${built.toFixed(0)} ms), ` +
      `state sizes ${sets[0].size}/${sets[1].size}, resolved ${result.size} entries, ${getEventCalls} getEvent calls per run\n` +
      `  resolveState over ${runs} runs: first ${first.toFixed(2)} ms, p50 ${pct(s, 50).toFixed(2)} ms, ` +
      `p90 ${pct(s, 90).toFixed(2)} ms, max ${s[s.length - 1].toFixed(2)} ms, mean ${mean.toFixed(2)} ms (wall clock)\n` +
      `  process CPU time per run: p50 ${pct(c, 50).toFixed(2)} ms, p90 ${pct(c, 90).toFixed(2)} ms, max ${c[c.length - 1].toFixed(2)} ms`,
  );
}
