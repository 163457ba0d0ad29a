// Measures (does not assert) what the Cassandra RoomStore costs on the test node
// (scripts/cassandra.sh): persistEvent one at a time in one room and across 20 rooms at once,
// timeline pages in stream and topological order, and the largest state delta (member keys
// named by one resolving event) that one logged batch takes. Uses a throwaway keyspace, dropped
// at the end. No EventWriteHooks run unless the derived modules are composed in.
//
//   npm run build && node dist/bench/cassandra-rooms.js [events=300]

import cassandra from 'cassandra-driver';
import { startCassandra } from '../spec/helpers/cassandra.js';
import { FakeRoom } from '../spec/store/fixtures.js';
import { openCassandraStore } from '../src/store/cassandra/index.js';
import type { PersistEventInput, Store } from '../src/store/types.js';

/** `store` whose persistEvent carries an owner epoch, as a cluster's room writer does. */
function withFence(store: Store, epoch: number): Store {
  const rooms = new Proxy(store.rooms, {
    get(target, prop) {
      if (prop === 'persistEvent') return (input: PersistEventInput) => target.persistEvent({ ...input, fence: { epoch } });
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return new Proxy(store, { get: (target, prop) => (prop === 'rooms' ? rooms : Reflect.get(target, prop, target)) });
}

const N = Number(process.argv[2] ?? 300);
const ALICE = '@bench:hearth.test';

const addr = await startCassandra();
const keyspace = `t_bench_rooms_${Date.now()}`;
const store = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace });
const ms = (t: number) => performance.now() - t;

try {
  const room = new FakeRoom();
  await room.create(store, ALICE);
  let t = performance.now();
  for (let i = 0; i < N; i++) await room.message(store, ALICE, `m${i}`);
  console.log(`persistEvent, one room, sequential: ${(ms(t) / N).toFixed(1)} ms/event`);

  const rooms = Array.from({ length: 20 }, () => new FakeRoom());
  t = performance.now();
  await Promise.all(rooms.map(async (r) => { for (let i = 0; i < 30; i++) await r.message(store, ALICE, `x${i}`); }));
  console.log(`persistEvent, 20 rooms x 30 at once: ${(600_000 / ms(t)).toFixed(0)} events/s`);

  // The same with a room-owner fence on every write (a cluster's writes: src/cluster/room-owner.ts).
  const fenced = withFence(store, 1);
  const froom = new FakeRoom();
  await froom.create(fenced, ALICE);
  t = performance.now();
  for (let i = 0; i < N; i++) await froom.message(fenced, ALICE, `f${i}`);
  console.log(`persistEvent fenced, one room, sequential: ${(ms(t) / N).toFixed(1)} ms/event`);
  const frooms = Array.from({ length: 20 }, () => new FakeRoom());
  t = performance.now();
  await Promise.all(frooms.map(async (r) => { for (let i = 0; i < 30; i++) await r.message(fenced, ALICE, `x${i}`); }));
  console.log(`persistEvent fenced, 20 rooms x 30 at once: ${(600_000 / ms(t)).toFixed(0)} events/s`);

  for (const order of ['stream', 'topological'] as const) {
    t = performance.now();
    for (let i = 0; i < 50; i++) await store.rooms.getRoomEvents({ roomId: room.roomId, dir: 'b', from: store.currentPosition(), limit: 20, order });
    console.log(`getRoomEvents ${order}, 20 newest: ${(ms(t) / 50).toFixed(1)} ms/page`);
  }

  // Members stored as outliers, then one message whose resolution names n of them.
  const members: string[] = [];
  for (let i = 0; i < 2000; i++) {
    const ev = room.build('m.room.member', `@u${i}:hearth.test`, { membership: 'join' }, `@u${i}:hearth.test`);
    await store.rooms.persistEvent({ eventId: ev.eventId, pdu: ev.pdu, stateDelta: [], forwardExtremities: [], outlier: true });
    members.push(ev.eventId);
  }
  for (const n of [250, 500, 1000, 1500, 2000]) {
    const msg = room.build('m.room.message', ALICE, { body: `resolve ${n}` });
    const delta = members.slice(0, n).map((eventId, i) => ({ type: 'm.room.member', stateKey: `@u${i}:hearth.test`, eventId }));
    t = performance.now();
    try {
      await store.rooms.persistEvent({ eventId: msg.eventId, pdu: msg.pdu, stateDelta: delta, forwardExtremities: [msg.eventId] });
      console.log(`state delta of ${n} member keys: written in ${ms(t).toFixed(0)} ms`);
    } catch (err) {
      console.log(`state delta of ${n} member keys: refused (${(err as Error).message.slice(0, 60)})`);
    }
  }
} finally {
  await store.close();
  const admin = new cassandra.Client({ contactPoints: [addr], localDataCenter: 'datacenter1', socketOptions: { readTimeout: 60_000 } });
  await admin.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  await admin.shutdown();
}
