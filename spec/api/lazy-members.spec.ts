// Lazy-loading room members over real HTTP (spec: Client-Server API "Lazy-loading room members",
// GET /sync and GET /rooms/{roomId}/context): which member events a lazy-loading client gets,
// redundancy across incremental syncs and include_redundant_members, the room summary of named
// rooms. The scenarios are the ones SyTest's tests/31sync/15lazy-members.pl and
// 16room-summary.pl check.

import { assert } from '../helpers/assert.js';
import { createRoom, ok, roomPath as room, syncOk, type User, serverPerSuite } from '../helpers/fixtures.js';
import { enc } from '../helpers/server.js';

describe('lazy-loaded members', function () {
  this.timeout(30_000);
  const { users, send } = serverPerSuite('ll');
  const fill = async (who: User, roomId: string, k: number) => {
    for (let i = 0; i < k; i++) await send(who, roomId, `filler ${i}`);
  };
  const filter = (extra: Record<string, unknown> = {}) => ({ room: { state: { lazy_load_members: true, ...extra }, timeline: { limit: 10 } } });
  const members = (r: any) => (r?.state?.events ?? []).filter((e: any) => e.type === 'm.room.member').map((e: any) => e.state_key as string).sort();

  /** A named public room created by `owner` that the others join. */
  async function namedRoom(owner: User, ...joiners: User[]): Promise<string> {
    const roomId = await createRoom(owner, { preset: 'public_chat' });
    await ok(owner.put(room(roomId, 'state/m.room.name'), { name: 'A room name' }), 'name');
    for (const u of joiners) await ok(u.post(room(roomId, 'join'), {}), 'join');
    return roomId;
  }

  it('an initial sync carries only the senders in the timeline and the user itself, not the heroes of a named room', async () => {
    const [alice, bob, charlie] = await users(3);
    const roomId = await namedRoom(alice, bob, charlie);
    await fill(bob, roomId, 10);
    await fill(charlie, roomId, 10);
    const s = await syncOk(alice, { filter: filter() });
    assert.deepEqual(members(s.rooms.join[roomId]), [alice.userId, charlie.userId].sort());
  });

  it('an incremental sync carries only new senders, and a quiet one carries nothing', async () => {
    const [alice, bob, charlie] = await users(3);
    const roomId = await namedRoom(alice, bob, charlie);
    await fill(bob, roomId, 10);
    const s0 = await syncOk(alice, { filter: filter() });
    assert.deepEqual(members(s0.rooms.join[roomId]), [alice.userId, bob.userId].sort());
    await send(charlie, roomId, 'from charlie');
    const s1 = await syncOk(alice, { since: s0.next_batch, filter: filter() });
    assert.deepEqual(members(s1.rooms.join[roomId]), [charlie.userId]);
    const s2 = await syncOk(alice, { since: s1.next_batch, filter: filter() });
    assert.equal(s2.rooms?.join?.[roomId], undefined, 'nothing new: no room section');
  });

  it('redundant member events are not resent by default, and are with include_redundant_members', async () => {
    const [alice, bob, charlie] = await users(3);
    const roomId = await namedRoom(alice, bob, charlie);
    await fill(bob, roomId, 10);
    await fill(charlie, roomId, 5);
    for (const [extra, expect] of [
      [{}, []],
      [{ include_redundant_members: true }, [bob.userId, charlie.userId].sort()],
    ] as const) {
      const s0 = await syncOk(alice, { filter: filter(extra) });
      assert.deepEqual(members(s0.rooms.join[roomId]), [alice.userId, bob.userId, charlie.userId].sort());
      await send(bob, roomId, 'new from bob');
      await send(charlie, roomId, 'new from charlie');
      const s1 = await syncOk(alice, { since: s0.next_batch, filter: filter(extra) });
      assert.deepEqual(members(s1.rooms.join[roomId]), expect, JSON.stringify(extra));
    }
  });

  it('a retry from the older token gets the member event again (unacknowledged responses are not counted)', async () => {
    const [alice, bob] = await users(2);
    const roomId = await namedRoom(alice, bob);
    await fill(alice, roomId, 10); // bob's join is out of the initial timeline
    const s0 = await syncOk(alice, { filter: filter() });
    assert.deepEqual(members(s0.rooms.join[roomId]), [alice.userId]);
    await send(bob, roomId, 'hello');
    const first = await syncOk(alice, { since: s0.next_batch, filter: filter() });
    assert.deepEqual(members(first.rooms.join[roomId]), [bob.userId]);
    // The client never saw `first` and retries from s0.
    const retry = await syncOk(alice, { since: s0.next_batch, filter: filter() });
    assert.deepEqual(members(retry.rooms.join[roomId]), [bob.userId]);
  });

  it('a gappy sync carries the gap members and old members who start speaking, and later a leave from the gap', async () => {
    const [alice, bob, charlie, dave] = await users(4);
    const roomId = await namedRoom(alice, bob, charlie);
    await fill(bob, roomId, 10);
    const s0 = await syncOk(alice, { filter: filter() });
    assert.deepEqual(members(s0.rooms.join[roomId]), [alice.userId, bob.userId].sort());
    await ok(dave.post(room(roomId, 'join'), {}), 'dave joins in the gap');
    await fill(charlie, roomId, 20);
    const s1 = await syncOk(alice, { since: s0.next_batch, filter: filter() });
    assert.equal(s1.rooms.join[roomId].timeline.limited, true);
    assert.deepEqual(members(s1.rooms.join[roomId]), [charlie.userId, dave.userId].sort());
    await ok(dave.post(room(roomId, 'leave'), {}), 'dave leaves');
    await fill(charlie, roomId, 20);
    const s2 = await syncOk(alice, { since: s1.next_batch, filter: filter() });
    const st = s2.rooms.join[roomId].state.events.filter((e: any) => e.type === 'm.room.member');
    assert.deepEqual(st.map((e: any) => [e.state_key, e.content.membership]), [[dave.userId, 'leave']]);
  });

  it('room summary: a named room has counts and no heroes; an unnamed one has heroes', async () => {
    const [alice, bob, charlie] = await users(3);
    const named = await namedRoom(alice, bob, charlie);
    const unnamed = await createRoom(alice, { preset: 'public_chat' });
    for (const u of [bob, charlie]) await ok(u.post(room(unnamed, 'join'), {}), 'join');
    const s = await syncOk(alice, { filter: filter() });
    assert.deepEqual(s.rooms.join[named].summary, { 'm.joined_member_count': 3, 'm.invited_member_count': 0 });
    assert.deepEqual(s.rooms.join[unnamed].summary, {
      'm.heroes': [bob.userId, charlie.userId],
      'm.joined_member_count': 3,
      'm.invited_member_count': 0,
    });
  });

  it('/context with lazy_load_members returns only the member events of the returned events\' senders', async () => {
    const [alice, bob, charlie, dave] = await users(4);
    const roomId = await namedRoom(alice, bob, charlie, dave);
    await fill(bob, roomId, 3);
    const mid = await send(charlie, roomId, 'middle');
    await fill(bob, roomId, 3);
    const f = enc(JSON.stringify({ lazy_load_members: true }));
    const c = await ok(alice.get(room(roomId, `context/${enc(mid)}?limit=4&filter=${f}`)), 'context');
    const got = (c.state as any[]).filter((e) => e.type === 'm.room.member').map((e) => e.state_key).sort();
    assert.deepEqual(got, [bob.userId, charlie.userId].sort());
    assert.ok((c.state as any[]).some((e) => e.type === 'm.room.create'), 'other state stays');
    const all = await ok(alice.get(room(roomId, `context/${enc(mid)}?limit=4`)), 'context');
    assert.equal((all.state as any[]).filter((e) => e.type === 'm.room.member').length, 4, 'without the filter: every member');
  });
});
