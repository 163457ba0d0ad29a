// The room-writer fence on the real Cassandra node (src/store/cassandra/room-fence.ts): epochs
// only grow per room, a stale writer is refused with StaleWriterError, two instances racing are
// ordered by the LWT, and fenced writes reach the inner store in the order they were handed over.

import type cassandra from 'cassandra-driver';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { openCassandraStore } from '../../src/store/cassandra/index.js';
import { fencedRooms, RoomFence } from '../../src/store/cassandra/room-fence.js';
import { StaleWriterError, StoreConflictError, type PersistEventInput, type RoomStore } from '../../src/store/types.js';
import type { Pdu } from '../../src/protocol/types.js';

describe('Cassandra room fence (owner epochs)', function () {
  this.timeout(60_000);
  const keyspace = freshKeyspace('fence');
  let addr = '';
  let admin: cassandra.Client;
  let ks: cassandra.Client;
  let fenceA: RoomFence;
  let fenceB: RoomFence;

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    admin = await cassandraClient(addr);
    // Opening a store creates the keyspace and runs the migrations (room_owner_epochs: 0006).
    const s = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace });
    await s.close();
    ks = await cassandraClient(addr, keyspace);
    const execute = (q: string, p: unknown[] = []) => ks.execute(q, p, { prepare: true, consistency: 6, serialConsistency: 9 });
    fenceA = new RoomFence({ execute });
    fenceB = new RoomFence({ execute });
  });

  after(async () => {
    await ks?.shutdown();
    await dropKeyspace(admin, keyspace);
    await admin.shutdown();
  });

  const epochOf = async (room: string) => Number((await ks.execute('SELECT epoch FROM room_owner_epochs WHERE room_id = ?', [room], { prepare: true })).first()?.['epoch']);

  it('records the first epoch, follows higher ones, and refuses a lower one with StaleWriterError', async () => {
    await fenceA.check('!one', 1);
    assert.equal(await epochOf('!one'), 1);
    await fenceA.check('!one', 1); // the same owner again
    await fenceB.check('!one', 2);
    assert.equal(await epochOf('!one'), 2);
    const stale = await fenceA.check('!one', 1).catch((e: unknown) => e);
    assert.ok(stale instanceof StaleWriterError);
    assert.ok(stale instanceof StoreConflictError, 'a conflict to every caller that knows only StoreConflictError');
    assert.match((stale as Error).message, /epoch 1 is older than the room's owner epoch 2/);
    assert.equal(await epochOf('!one'), 2, 'a refused check changes nothing');
  });

  it('two instances racing the first write of a room: the higher epoch wins, the lower passes only if it came first', async () => {
    const results = await Promise.allSettled([fenceA.check('!race', 4), fenceB.check('!race', 5)]);
    assert.equal(results[1]!.status, 'fulfilled');
    assert.equal(await epochOf('!race'), 5);
    const later = await fenceA.check('!race', 4).catch((e: unknown) => e);
    assert.ok(later instanceof StaleWriterError);
  });

  it('fenced writes reach the inner store in the order handed over; a stale one never reaches it', async () => {
    const order: string[] = [];
    const inner = {
      persistEvent: async (input: PersistEventInput) => {
        order.push(input.eventId);
        return { stream: order.length, deduplicated: false };
      },
    } as unknown as RoomStore;
    const rooms = fencedRooms(inner, fenceA);
    const pdu = { room_id: '!order', type: 'm.room.message' } as unknown as Pdu;
    const input = (i: number, epoch: number): PersistEventInput => ({ eventId: `$${i}`, pdu, stateDelta: [], forwardExtremities: [], fence: { epoch } });
    await Promise.all(Array.from({ length: 30 }, (_, i) => rooms.persistEvent(input(i, 3))));
    assert.deepEqual(order, Array.from({ length: 30 }, (_, i) => `$${i}`));
    await fenceB.check('!order', 4);
    const stale = await rooms.persistEvent(input(99, 3)).catch((e: unknown) => e);
    assert.ok(stale instanceof StaleWriterError);
    assert.equal(order.length, 30, 'the stale write was not handed to the store');
    // Unfenced writes (single node) pass unchecked.
    await rooms.persistEvent({ ...input(100, 0), fence: undefined });
    assert.equal(order.at(-1), '$100');
  });
});
