// Stored filters are resolved once per (user, filter ID) and then served compiled from memory
// (filters are immutable): repeated /syncs with a filter ID do not re-read it, still apply it,
// and a filter ID is only ever resolved for the user who stored it. Inline JSON filters are
// compiled once per distinct text, within their bound.

import { assert } from '../helpers/assert.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { SyncFilterResolver } from '../../src/sync/filter.js';
import { createRoom, expectError, makeUser, ok, roomPath, syncOk, syncPath, V3 } from '../helpers/fixtures.js';

describe('sync: stored filter cache', function () {
  this.timeout(30000);
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => srv?.stop());

  it('reads a stored filter once, applies it on every sync, and keeps filter IDs per user', async function () {
    const alice = await makeUser(srv, 'fca');
    const bob = await makeUser(srv, 'fcb');
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    for (let i = 0; i < 3; i++) await ok(alice.put(roomPath(roomId, `send/m.room.message/fc${i}`), { msgtype: 'm.text', body: `m${i}` }), 'send');
    const { filter_id: id } = await ok(alice.post(`${V3}/user/${encodeURIComponent(alice.userId)}/filter`, { room: { timeline: { limit: 1 } } }), 'filter');
    const resolver = srv.hearth.services.syncFilters;
    const before = resolver.stats();
    for (let i = 0; i < 3; i++) {
      const s = await syncOk(alice, { filter: id });
      const tl = s.rooms.join[roomId].timeline;
      assert.equal(tl.events.length, 1, `sync ${i}: the stored filter's limit applies`);
      assert.equal(tl.limited, true, `sync ${i}: limited`);
    }
    const after = resolver.stats();
    assert.equal(after.misses - before.misses, 1, 'read from the store once');
    assert.equal(after.hits - before.hits, 2, 'then served from memory');
    assert.ok(after.size <= after.bound);
    // Bob has no filter with that ID (cached for alice or not).
    expectError(await bob.get(syncPath({ filter: id })), 404, 'M_NOT_FOUND');
    // An unknown ID is not remembered as missing; it stays 404 without breaking later lookups.
    expectError(await alice.get(syncPath({ filter: '999999' })), 404, 'M_NOT_FOUND');
    assert.equal((await syncOk(alice, { filter: id })).rooms.join[roomId].timeline.events.length, 1);
  });
});

describe('sync: inline filter cache', function () {
  this.timeout(30000);
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => srv?.stop());

  it('compiles an inline filter once per distinct text and applies it on every sync', async function () {
    const alice = await makeUser(srv, 'ifa');
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    for (let i = 0; i < 3; i++) await ok(alice.put(roomPath(roomId, `send/m.room.message/if${i}`), { msgtype: 'm.text', body: `m${i}` }), 'send');
    const resolver = srv.hearth.services.syncFilters;
    const one = JSON.stringify({ room: { timeline: { limit: 1 } } });
    const two = JSON.stringify({ room: { timeline: { limit: 2 } } });
    const before = resolver.inlineStats();
    for (let i = 0; i < 3; i++) {
      assert.equal((await syncOk(alice, { filter: one })).rooms.join[roomId].timeline.events.length, 1, `sync ${i}: limit 1`);
      assert.equal((await syncOk(alice, { filter: two })).rooms.join[roomId].timeline.events.length, 2, `sync ${i}: limit 2`);
    }
    const after = resolver.inlineStats();
    assert.equal(after.misses - before.misses, 2, 'each text compiled once');
    assert.equal(after.hits - before.hits, 4, 'then served from memory');
    // Bad input is still refused every time, and never kept.
    for (let i = 0; i < 2; i++) expectError(await alice.get(syncPath({ filter: '{not json' })), 400, 'M_NOT_JSON');
    assert.equal(resolver.inlineStats().size, after.size);
  });

  it('stays within its bound, compiles evicted texts again, and does not keep overlong texts', async function () {
    const resolver = new SyncFilterResolver(async () => null, 10, undefined, 2);
    const text = (n: number): string => JSON.stringify({ room: { timeline: { limit: n } } });
    assert.equal((await resolver.resolve('@u:x', text(1))).timelineLimit, 1);
    await resolver.resolve('@u:x', text(2));
    await resolver.resolve('@u:x', text(1)); // 1 is now the most recent
    await resolver.resolve('@u:x', text(3)); // evicts 2
    assert.deepEqual(resolver.inlineStats(), { name: 'sync_inline_filters', size: 2, bound: 2, hits: 1, misses: 3 });
    assert.equal((await resolver.resolve('@u:x', text(2))).timelineLimit, 2);
    assert.equal(resolver.inlineStats().misses, 4, 'the evicted text was compiled again');
    const long = JSON.stringify({ room: { timeline: { limit: 4, types: Array.from({ length: 400 }, (_, i) => `com.example.type${i}`) } } });
    assert.ok(long.length > 4096);
    assert.equal((await resolver.resolve('@u:x', long)).timelineLimit, 4);
    assert.equal((await resolver.resolve('@u:x', long)).timelineLimit, 4);
    assert.equal(resolver.inlineStats().size, 2, 'overlong texts are not kept');
  });
});
