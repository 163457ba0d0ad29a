// Property test of the sync read model: random streams of sends, state changes, joins and
// leaves, receipts, account data, ignore lists, to-device messages, edits, thread replies and redactions by
// several users in several rooms (named, unnamed, renamed: room summaries), driven over HTTP against a real server. At random points every
// user's incremental sync from a random earlier position is built twice over the same store
// range: once as a delta from the read model, once rebuilt from the store alone. They must be
// equal (up to `unsigned.age` and presence `last_active_ago`, which are wall-clock). A second run uses tiny cache bounds, so
// most answers come from evicted, rebuilt or missing entries, and must still be equal.

import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { compileFilter, type SyncFilter } from '../../src/sync/filter.js';
import { tokenAt } from '../../src/sync/token.js';
import type { SyncService } from '../../src/sync/sync-service.js';
import { TestDevice } from '../api/keys-helpers.js';

type User = Awaited<ReturnType<Api['register']>>;

/** Deterministic PRNG (mulberry32): a failing seed reproduces. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function withoutAge(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutAge);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (k !== 'age' && k !== 'last_active_ago') out[k] = withoutAge(x);
  return out;
}

const FILTERS: Array<[string, SyncFilter]> = [
  ['default', compileFilter(undefined)],
  ['limit 2, lazy members', compileFilter({ room: { timeline: { limit: 2 }, state: { lazy_load_members: true } } })],
  ['messages only, no presence', compileFilter({ room: { timeline: { limit: 5, types: ['m.room.message'] } }, presence: { types: [] } })],
  ['thread counts', compileFilter({ room: { timeline: { limit: 10, unread_thread_notifications: true } } })],
];

interface World {
  srv: TestServer;
  users: User[];
  rooms: string[];
  /** Event IDs sent per room (for receipts, edits, threads, redactions). */
  sent: Map<string, Array<{ id: string; sender: string }>>;
  joined: Map<string, Set<string>>;
  /** Each user's E2EE device, once its device keys are uploaded. */
  devices: Map<string, TestDevice>;
}

async function setup(overrides: Parameters<typeof startTestServer>[0]): Promise<World> {
  const srv = await startTestServer(overrides);
  const api = new Api(srv.url);
  const users: User[] = [];
  for (let i = 0; i < 4; i++) users.push(await api.register(`u${i}`));
  const rooms: string[] = [];
  const joined = new Map<string, Set<string>>();
  for (let i = 0; i < 3; i++) {
    // The last room starts without a name: its summaries carry heroes.
    const r = await users[0].post('/_matrix/client/v3/createRoom', { preset: 'public_chat', ...(i < 2 ? { name: `room ${i}` } : {}) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    rooms.push(r.body.room_id);
    joined.set(r.body.room_id, new Set([users[0].userId]));
  }
  return { srv, users, rooms, sent: new Map(rooms.map((r) => [r, []])), joined, devices: new Map() };
}

/** One random operation; returns a label for failure messages. */
async function step(w: World, rand: () => number, n: number): Promise<string> {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  const u = pick(w.users);
  const roomId = pick(w.rooms);
  const members = w.joined.get(roomId)!;
  const isMember = members.has(u.userId);
  const sent = w.sent.get(roomId)!;
  const kind = rand();
  const path = `/_matrix/client/v3/rooms/${enc(roomId)}`;
  const ok = (r: { status: number; body: unknown }, what: string): void => assert.equal(r.status, 200, `${what}: ${JSON.stringify(r.body)}`);
  if (!isMember) {
    if (u === w.users[0] || kind < 0.5) {
      ok(await u.post(`${path}/join`, {}), 'join');
      members.add(u.userId);
      return `${u.userId} joins ${roomId}`;
    }
    ok(await u.put(`/_matrix/client/v3/user/${enc(u.userId)}/account_data/org.example.n${n % 3}`, { n }), 'account data');
    return `${u.userId} sets account data`;
  }
  if (kind < 0.3) {
    // Some messages mention another user (a highlight in their unread counts).
    const mention = rand() < 0.3 ? pick(w.users).userId : undefined;
    const r = await u.put(`${path}/send/m.room.message/t${n}`, {
      msgtype: 'm.text',
      body: `m${n}`,
      ...(mention ? { 'm.mentions': { user_ids: [mention] } } : {}),
    });
    ok(r, 'send');
    sent.push({ id: r.body.event_id, sender: u.userId });
    return `${u.userId} sends in ${roomId}`;
  }
  if (kind < 0.38 && u === w.users[0]) {
    // The name decides whether summaries carry heroes; an empty name is no name.
    if (rand() < 0.4) {
      const name = rand() < 0.5 ? '' : `name ${n}`;
      ok(await u.put(`${path}/state/m.room.name/`, { name }), 'name');
      return `name of ${roomId}: ${JSON.stringify(name)}`;
    }
    ok(await u.put(`${path}/state/m.room.topic/`, { topic: `topic ${n}` }), 'topic');
    return `topic of ${roomId}`;
  }
  if (kind < 0.46 && u !== w.users[0]) {
    ok(await u.post(`${path}/leave`, {}), 'leave');
    members.delete(u.userId);
    return `${u.userId} leaves ${roomId}`;
  }
  if (kind < 0.54 && sent.length > 0) {
    const target = pick(sent);
    ok(await u.post(`${path}/receipt/m.read/${enc(target.id)}`, {}), 'receipt');
    return `${u.userId} reads in ${roomId}`;
  }
  if (kind < 0.62) {
    const room = rand() < 0.5;
    const p = room
      ? `/_matrix/client/v3/user/${enc(u.userId)}/rooms/${enc(roomId)}/account_data/org.example.r`
      : `/_matrix/client/v3/user/${enc(u.userId)}/account_data/org.example.g`;
    ok(await u.put(p, { n }), 'account data');
    return `${u.userId} account data`;
  }
  if (kind < 0.67) {
    const other = pick(w.users.filter((x) => x !== u));
    const list = rand() < 0.6 ? { [other.userId]: {} } : {};
    ok(await u.put(`/_matrix/client/v3/user/${enc(u.userId)}/account_data/m.ignored_user_list`, { ignored_users: list }), 'ignore');
    return `${u.userId} ignores ${JSON.stringify(Object.keys(list))}`;
  }
  if (kind < 0.73) {
    const to = pick(w.users);
    ok(await u.put(`/_matrix/client/v3/sendToDevice/org.example.ping/d${n}`, { messages: { [to.userId]: { [to.deviceId]: { n } } } }), 'to-device');
    return `${u.userId} to-device ${to.userId}`;
  }
  if (kind < 0.76) {
    // A member event loses its displayname (lazy-loaded members must show the redacted copy).
    const state = await u.get(`${path}/state`);
    ok(state, 'state');
    const member = pick((state.body as Array<{ type: string; event_id: string }>).filter((e) => e.type === 'm.room.member'));
    ok(await w.users[0].put(`${path}/redact/${enc(member.event_id)}/xm${n}`, {}), 'redact member');
    return `member event redaction in ${roomId}`;
  }
  if (kind < 0.78 && sent.length > 0) {
    const target = pick(sent);
    const r = await w.users[0].put(`${path}/redact/${enc(target.id)}/x${n}`, { reason: 'property' });
    ok(r, 'redact');
    return `redaction in ${roomId}`;
  }
  const own = sent.filter((s) => s.sender === u.userId);
  if (kind < 0.86 && own.length > 0) {
    const target = pick(own);
    const r = await u.put(`${path}/send/m.room.message/e${n}`, {
      msgtype: 'm.text',
      body: `* edit ${n}`,
      'm.new_content': { msgtype: 'm.text', body: `edit ${n}` },
      'm.relates_to': { rel_type: 'm.replace', event_id: target.id },
    });
    ok(r, 'edit');
    sent.push({ id: r.body.event_id, sender: u.userId });
    return `edit in ${roomId}`;
  }
  if (kind < 0.94 && sent.length > 0) {
    const root = pick(sent);
    const r = await u.put(`${path}/send/m.room.message/th${n}`, {
      msgtype: 'm.text',
      body: `thread ${n}`,
      'm.relates_to': { rel_type: 'm.thread', event_id: root.id },
    });
    // A root that is itself in a thread or redacted may be refused; both outcomes are fine.
    if (r.status === 200) sent.push({ id: r.body.event_id, sender: u.userId });
    return `thread reply in ${roomId}`;
  }
  if (kind < 0.97) {
    // One-time and fallback key uploads and claims move device_one_time_keys_count and
    // device_unused_fallback_key_types (writes outside the stream).
    let dev = w.devices.get(u.userId);
    if (!dev) {
      dev = new TestDevice(u.userId, u.deviceId);
      ok(await u.post('/_matrix/client/v3/keys/upload', { device_keys: dev.deviceKeys(), one_time_keys: dev.otks(2) }), 'keys');
      w.devices.set(u.userId, dev);
      return `${u.userId} uploads device keys`;
    }
    if (rand() < 0.5) {
      const body = rand() < 0.5 ? { one_time_keys: dev.otks(1) } : { fallback_keys: dev.fallback(`F${n}`) };
      ok(await u.post('/_matrix/client/v3/keys/upload', body), 'keys upload');
      return `${u.userId} uploads keys`;
    }
    const [owner, target] = pick([...w.devices.entries()]);
    ok(await u.post('/_matrix/client/v3/keys/claim', { one_time_keys: { [owner]: { [target.deviceId]: 'signed_curve25519' } } }), 'claim');
    return `${u.userId} claims a key of ${owner}`;
  }
  const r = await u.put(`${path}/send/m.room.message/s${n}`, { msgtype: 'm.notice', body: `n${n}` });
  ok(r, 'notice');
  sent.push({ id: r.body.event_id, sender: u.userId });
  return `${u.userId} notice in ${roomId}`;
}

/** Responses compared that carried room summaries with heroes (unnamed rooms). */
let heroesCompared = 0;

async function compareAll(w: World, rand: () => number, since: number[], label: string): Promise<number> {
  const withModel = w.srv.hearth.services.sync as SyncService;
  const fromStore = withModel.withoutModel();
  let nonEmpty = 0;
  for (const u of w.users) {
    const current = w.srv.hearth.store.currentPosition();
    const positions = [...since, Math.floor(rand() * current), current - 1 - Math.floor(rand() * 5)];
    for (const pos of positions) {
      if (pos < 0) continue;
      for (const [name, filter] of FILTERS) {
        const req = { userId: u.userId, deviceId: u.deviceId, since: tokenAt(pos), filter, timeoutMs: 0, fullState: false, acknowledgeSince: false };
        const a = await withModel.sync(req);
        const b = await fromStore.sync(req);
        assert.deepEqual(withoutAge(a), withoutAge(b), `${label}: ${u.userId} since ${pos} (${name})`);
        if (!withModel.isEmpty(a)) nonEmpty++;
        if (JSON.stringify(a).includes('"m.heroes"')) heroesCompared++;
      }
    }
  }
  return nonEmpty;
}

async function run(w: World, seed: number, steps: number): Promise<number> {
  const rand = rng(seed);
  const marks: number[] = [w.srv.hearth.store.currentPosition()];
  let nonEmpty = 0;
  const log: string[] = [];
  for (let n = 0; n < steps; n++) {
    log.push(await step(w, rand, n));
    if (n % 10 === 9) {
      nonEmpty += await compareAll(w, rand, marks.slice(-3), `seed ${seed} after ${log.slice(-10).join('; ')}`);
      marks.push(w.srv.hearth.store.currentPosition());
    }
  }
  nonEmpty += await compareAll(w, rand, marks, `seed ${seed} at the end`);
  return nonEmpty;
}

describe('sync read model: deltas equal store rebuilds', function () {
  this.timeout(120_000);

  it('random streams, default bounds: every incremental sync from the model equals the store rebuild', async () => {
    const w = await setup({});
    try {
      const nonEmpty = await run(w, 1234, 60);
      // The comparison must have compared something: most ranges carry changes.
      assert.ok(nonEmpty > 50, `only ${nonEmpty} non-empty syncs compared`);
      const stats = new Map((w.srv.hearth.services.sync as SyncService).modelStats().map((s) => [s.name, s]));
      assert.ok(stats.get('timelines')!.hits > 0, 'timelines served from the ring buffers');
      assert.ok(stats.get('rooms')!.hits > 0, 'room changes answered from memory');
      assert.ok(stats.get('unread_counters')!.hits > 0, 'unread counts served by the counters');
      assert.ok(stats.get('room_summaries')!.hits > 0, 'room summaries served from memory');
      assert.ok(heroesCompared > 0, 'summaries with heroes were compared');
    } finally {
      await w.srv.stop();
    }
  });

  it('tiny bounds (constant eviction and rebuild): still equal, and every cache stays within its bound', async () => {
    const w = await setup({
      sync: { read_model: { change_cache_entries: 2, membership_users: 1, timeline_rooms: 1, timeline_events: 2 } },
    });
    try {
      await run(w, 99, 50);
      const stats = (w.srv.hearth.services.sync as SyncService).modelStats();
      for (const s of stats) assert.ok(s.size <= s.bound, `${s.name}: ${s.size} > ${s.bound}`);
      const byName = new Map(stats.map((s) => [s.name, s]));
      assert.ok(byName.get('memberships')!.misses > 1, 'evicted users were rebuilt from the store');
      assert.ok(byName.get('rooms')!.misses > 0, 'evicted rooms sent syncs to the store');
      assert.ok(byName.get('room_summaries')!.misses > 1, 'evicted room summaries were rebuilt from the store');
    } finally {
      await w.srv.stop();
    }
  });
});

describe('sync read model: unread counters from bulk push results', function () {
  this.timeout(120_000);

  it('a room past the bulk threshold counts the same from the counters as from the store', async () => {
    const srv = await startTestServer({});
    try {
      const api = new Api(srv.url);
      const users: User[] = [];
      for (let i = 0; i < 34; i++) users.push(await api.register(`b${i}`));
      const room = (await users[0].post('/_matrix/client/v3/createRoom', { preset: 'public_chat' })).body.room_id as string;
      for (const u of users.slice(1)) assert.equal((await u.post(`/_matrix/client/v3/rooms/${enc(room)}/join`, {})).status, 200);
      const sync = srv.hearth.services.sync as SyncService;
      const fromStore = sync.withoutModel();
      const since = tokenAt(srv.hearth.store.currentPosition());
      const check = async (label: string): Promise<void> => {
        for (const u of users.slice(1, 4)) {
          for (const [name, filter] of FILTERS) {
            const req = { userId: u.userId, deviceId: u.deviceId, since, filter, timeoutMs: 0, fullState: false, acknowledgeSince: false };
            const a = await sync.sync(req);
            assert.deepEqual(withoutAge(a), withoutAge(await fromStore.sync(req)), `${label}: ${u.userId} (${name})`);
          }
        }
      };
      const send = async (u: User, txn: string, extra: object = {}): Promise<void> => {
        const r = await u.put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/${txn}`, { msgtype: 'm.text', body: txn, ...extra });
        assert.equal(r.status, 200, JSON.stringify(r.body));
      };
      await send(users[0], 'one');
      await check('first message (counters start from the store)');
      await send(users[0], 'two');
      await send(users[5], 'three', { 'm.mentions': { user_ids: [users[1].userId] } });
      await check('bulk results and a mention');
      const root = (await users[0].put(`/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/root`, { msgtype: 'm.text', body: 'root' })).body.event_id;
      await send(users[6], 'reply', { 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
      await check('a thread reply');
      await send(users[1], 'own');
      await send(users[0], 'after own');
      await check("after the user's own message");
      const unread = new Map(sync.modelStats().map((s) => [s.name, s])).get('unread_counters')!;
      assert.ok(unread.hits > 0, 'the counters answered');
      const body = (await sync.sync({ userId: users[2].userId, deviceId: users[2].deviceId, since, filter: FILTERS[0][1], timeoutMs: 0, fullState: false })) as any;
      assert.ok(body.rooms.join[room].unread_notifications.notification_count >= 6, 'bulk messages notify the other members');
    } finally {
      await srv.stop();
    }
  });
});
