// Stored filters are resolved once per (user, filter ID) and then served compiled from memory
// (filters are immutable): repeated /syncs with a filter ID do not re-read it, still apply it,
// and a filter ID is only ever resolved for the user who stored it.

import { assert } from '../helpers/assert.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
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
