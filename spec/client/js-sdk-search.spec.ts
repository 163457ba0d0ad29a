// Search and spaces through matrix-js-sdk 43 (the library Element is built on): searchRoomEvents
// with back-pagination, getRoomHierarchy with paging, and publicRooms with a room_types filter.

import { assert } from '../helpers/assert.js';
import type { MatrixClient } from 'matrix-js-sdk';
import { loadSdk, RequestRecorder, sdkClient, type Creds, type Sdk } from '../helpers/js-sdk.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

describe('matrix-js-sdk 43: search and space hierarchy', function () {
  this.timeout(30000);
  let sdk: Sdk;
  let srv: TestServer;
  const rec = new RequestRecorder();
  let alice: MatrixClient;
  let bob: MatrixClient;

  async function account(localpart: string): Promise<Creds> {
    const accounts = srv.hearth.services.accounts;
    const userId = await accounts.createAccount(localpart, null, false, localpart.toUpperCase());
    const l = await accounts.login(userId, undefined, null, null);
    return { userId, accessToken: l.access_token, deviceId: l.device_id };
  }

  before(async () => {
    sdk = await loadSdk();
    srv = await startTestServer();
    alice = sdkClient(sdk, srv.url, rec, 'alice', await account('alice'));
    bob = sdkClient(sdk, srv.url, rec, 'bob', await account('bob'));
  });
  after(async () => srv?.stop());

  it('searchRoomEvents finds messages with context and profiles, and back-paginates', async () => {
    const { room_id: roomId } = await alice.createRoom({ name: 'Search room', invite: [bob.getUserId()!] });
    await bob.joinRoom(roomId);
    for (let i = 0; i < 12; i++) await alice.sendTextMessage(roomId, `needle number ${i}`);
    await bob.sendTextMessage(roomId, 'haystack only');

    const results = await bob.searchRoomEvents({ term: 'needle', filter: { rooms: [roomId], limit: 5 } as any });
    assert.equal(results.count, 12);
    assert.deepEqual(results.highlights, ['needle']);
    assert.equal(results.results.length, 5);
    const first = results.results[0];
    assert.equal(first.context.getEvent().getContent().body, 'needle number 11');
    assert.equal(first.context.getEvent().getSender(), alice.getUserId());
    assert.equal(first.context.getTimeline().length, 3, 'one event before, the hit, one after (event_context 1/1)');
    assert.ok(results.next_batch, 'more pages');
    let paged = results;
    while (paged.next_batch) paged = await bob.backPaginateRoomEventsSearch(paged);
    const bodies = paged.results.map((r) => r.context.getEvent().getContent().body);
    assert.deepEqual(bodies, Array.from({ length: 12 }, (_, i) => `needle number ${11 - i}`));
  });

  it('getRoomHierarchy walks a space and pages; publicRooms filters by room type', async () => {
    const { room_id: space } = await alice.createRoom({
      name: 'SDK space',
      visibility: 'public' as any,
      preset: 'public_chat' as any,
      creation_content: { type: 'm.space' },
    });
    const children: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { room_id: child } = await alice.createRoom({ name: `child ${i}`, preset: 'public_chat' as any });
      await alice.sendStateEvent(space, 'm.space.child' as any, { via: ['localhost'], order: `${i}` } as any, child);
      children.push(child);
    }
    const all = await bob.getRoomHierarchy(space);
    assert.deepEqual(all.rooms.map((r) => r.room_id), [space, ...children]);
    assert.equal(all.rooms[0].room_type, 'm.space');
    assert.equal(all.rooms[0].children_state.length, 3);

    const page1 = await bob.getRoomHierarchy(space, 2);
    assert.equal(page1.rooms.length, 2);
    assert.ok(page1.next_batch);
    const page2 = await bob.getRoomHierarchy(space, 2, undefined, undefined, page1.next_batch);
    assert.deepEqual([...page1.rooms, ...page2.rooms].map((r) => r.room_id), [space, ...children]);
    assert.equal(page2.next_batch, undefined);

    const spaces = await bob.publicRooms({ filter: { room_types: ['m.space'] } } as any);
    assert.deepEqual(spaces.chunk.map((r) => r.room_id), [space]);
  });
});
