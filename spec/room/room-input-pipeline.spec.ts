// Room input pipelining (src/room/room-input.ts, "Pipelining"): a room's local sends are built
// and authorised while earlier ones commit, share group commits, keep their order and form a
// linear chain; a failed write takes the writes queued on top of it down with it, and the room
// recovers from the store. createRoom's room row and initial events share one transaction.
// Real SQLite.

import { assert } from '../helpers/assert.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey } from '../../src/protocol/crypto.js';
import { prevEventIds } from '../../src/protocol/events.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';
import { LocalNotifier } from '../../src/sync/notifier.js';
import { RoomInput } from '../../src/room/room-input.js';

const SERVER = 'pipe.test';
const alice = `@alice:${SERVER}`;

describe('Room input: pipelined local sends', function () {
  let dir: string;
  let store: SqliteStore;
  let input: RoomInput;
  let roomId: string;

  beforeEach(async function () {
    dir = mkdtempSync(join(tmpdir(), 'hearth-pipe-'));
    store = await openSqliteStore({ path: join(dir, 'h.sqlite') });
    input = new RoomInput({ store, notifier: new LocalNotifier(), serverName: SERVER, signingKey: generateSigningKey('p') });
    const before = store.writeStats().transactions;
    ({ roomId } = await input.createRoom(`!p${Math.random().toString(36).slice(2)}:${SERVER}`, '11', alice, [
      { type: 'm.room.create', stateKey: '', sender: alice, content: { room_version: '11' } },
      { type: 'm.room.member', stateKey: alice, sender: alice, content: { membership: 'join' } },
      { type: 'm.room.power_levels', stateKey: '', sender: alice, content: { users: { [alice]: 100 } } },
      { type: 'm.room.join_rules', stateKey: '', sender: alice, content: { join_rule: 'public' } },
      { type: 'm.room.history_visibility', stateKey: '', sender: alice, content: { history_visibility: 'shared' } },
    ]));
    // One transaction for the rooms row and all five initial events.
    assert.equal(store.writeStats().transactions - before, 1);
  });
  afterEach(async function () {
    await input.drain();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function timeline(): Promise<Array<{ eventId: string; prev: string[]; body?: unknown; stream: number }>> {
    const evs = await store.rooms.getRoomEvents({ roomId, dir: 'f', from: 0, limit: 1000 });
    return evs.map((e) => ({ eventId: e.eventId, prev: prevEventIds(e.pdu), body: e.pdu.content.body, stream: e.stream }));
  }

  it('sends to one room share group commits, keep submit order and chain each event on the one before', async function () {
    const before = store.writeStats().transactions;
    const sent = await Promise.all(
      Array.from({ length: 40 }, (_, i) => input.submit(roomId, { type: 'm.room.message', sender: alice, content: { msgtype: 'm.text', body: `m${i}` } })),
    );
    const used = store.writeStats().transactions - before;
    assert.ok(used < 20, `40 pipelined sends used ${used} transactions`);
    for (let i = 1; i < sent.length; i++) assert.ok(sent[i].stream > sent[i - 1].stream);
    const tl = await timeline();
    const msgs = tl.filter((e) => typeof e.body === 'string');
    assert.deepEqual(
      msgs.map((m) => m.body),
      sent.map((_, i) => `m${i}`),
    );
    for (let i = 0; i < tl.length; i++) if (i > 0) assert.deepEqual(tl[i].prev, [tl[i - 1].eventId], 'linear chain');
    assert.deepEqual(await store.rooms.getForwardExtremities(roomId), [tl[tl.length - 1].eventId]);
  });

  it('a retried transaction still in the pipeline is deduplicated, not written twice', async function () {
    const draft = { type: 'm.room.message', sender: alice, content: { body: 'once' }, txn: { userId: alice, deviceId: 'D', txnId: 't1', scope: 'send' } };
    const [a, b] = await Promise.all([input.submit(roomId, draft), input.submit(roomId, draft)]);
    assert.equal(a.eventId, b.eventId);
    assert.equal(b.deduplicated, true);
    assert.equal((await timeline()).filter((e) => e.body === 'once').length, 1);
  });

  it('createRoom with the ID of a room that exists writes none of its events, and the existing room is untouched', async function () {
    const tlBefore = await timeline();
    const eventsBefore = store.writeStats().writes;
    await assert.rejects(
      input.createRoom(roomId, '11', alice, [
        { type: 'm.room.create', stateKey: '', sender: alice, content: { room_version: '11' } },
        { type: 'm.room.member', stateKey: alice, sender: alice, content: { membership: 'join' } },
      ]),
      /already exists|could not be stored/,
    );
    assert.equal(store.writeStats().writes, eventsBefore, 'nothing committed');
    assert.deepEqual(await timeline(), tlBefore);
    assert.equal((await store.rooms.getCurrentState(roomId)).filter((e) => e.type === 'm.room.create').length, 1);
    // The room's writer reloads its state from the store and carries on after the failure.
    const sent = await input.submit(roomId, { type: 'm.room.message', sender: alice, content: { body: 'after' } });
    const tl = await timeline();
    assert.equal(tl[tl.length - 1].eventId, sent.eventId);
    assert.deepEqual(tl[tl.length - 1].prev, [tlBefore[tlBefore.length - 1].eventId]);
  });

  it('a failed commit fails the sends queued on top of it; the room then continues from the store', async function () {
    const send = (body: string) => input.submit(roomId, { type: 'm.room.message', sender: alice, content: { body } });
    await send('ok');
    store.setBeforeCommitHook(() => {
      store.setBeforeCommitHook(null);
      throw new Error('injected commit failure');
    });
    const failed = await Promise.allSettled([send('x1'), send('x2'), send('x3')]);
    for (const r of failed) assert.equal(r.status, 'rejected');
    const after = await Promise.all([send('y1'), send('y2')]);
    assert.ok(after[1].stream > after[0].stream);
    const tl = await timeline();
    assert.deepEqual(
      tl.map((e) => e.body).filter((b) => typeof b === 'string'),
      ['ok', 'y1', 'y2'],
    );
    const ids = new Set(tl.map((e) => e.eventId));
    for (const e of tl) for (const p of e.prev) assert.ok(ids.has(p), `prev event ${p} of ${e.eventId} is stored`);
  });
});
