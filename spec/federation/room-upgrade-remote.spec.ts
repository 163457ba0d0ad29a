// A room upgraded on another server (SyTest tests/30rooms/60version_upgrade.pl): when a user of
// ours joins the replacement room, our aliases of the old room and its place in our public
// directory move to the new room, as the upgrading server moved its own. A room that merely
// claims a predecessor (no tombstone in that room names it) takes nothing.

import assert from 'node:assert/strict';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, startPair, syncUntil, waitFor, type User } from '../helpers/federation.js';

const V3 = '/_matrix/client/v3';

describe('federation: a room upgraded on another server', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let nameA: string;
  let nameB: string;
  let alice: User;
  let bob: User;

  before(async () => {
    ({ a, b, nameA, nameB } = await startPair());
    alice = await new Api(a.url).register('alice');
    bob = await new Api(b.url).register('bob');
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
  });

  /** A public room of alice@A that bob@B has joined, aliased and listed on B. */
  async function sharedRoom(alias: string, body: Record<string, unknown> = {}): Promise<string> {
    // bob is a moderator (B lets only moderators publish a room in its directory).
    const levels = { power_level_content_override: { users: { [alice.userId]: 100, [bob.userId]: 50 } } };
    const created = await alice.post(`${V3}/createRoom`, { preset: 'public_chat', room_version: '10', ...levels, ...body });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const roomId: string = created.body.room_id;
    assert.equal((await bob.post(`${V3}/join/${enc(roomId)}?server_name=${enc(nameA)}`, {})).status, 200);
    const put = await bob.put(`${V3}/directory/room/${enc(`#${alias}:${nameB}`)}`, { room_id: roomId });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const listed = await bob.put(`${V3}/directory/list/room/${enc(roomId)}`, { visibility: 'public' });
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    return roomId;
  }
  const aliasAtB = async (alias: string) => (await bob.get(`${V3}/directory/room/${enc(`#${alias}:${nameB}`)}`)).body.room_id;
  const listedAtB = async () => ((await bob.get(`${V3}/publicRooms`)).body.chunk as Array<{ room_id: string }>).map((r) => r.room_id);

  it('our aliases and directory entry move when our user joins the replacement room', async () => {
    const oldId = await sharedRoom('upgraded');
    assert.ok((await listedAtB()).includes(oldId));
    const up = await alice.post(`${V3}/rooms/${enc(oldId)}/upgrade`, { new_version: '11' });
    assert.equal(up.status, 200, JSON.stringify(up.body));
    const newId: string = up.body.replacement_room;
    // B holds the tombstone before bob follows it.
    await syncUntil(bob, (body) => body.rooms?.join?.[oldId]?.timeline?.events?.find((e: any) => e.type === 'm.room.tombstone'));
    assert.equal(await aliasAtB('upgraded'), oldId, 'nothing moves before one of B\'s users joins');
    assert.equal((await bob.post(`${V3}/join/${enc(newId)}?server_name=${enc(nameA)}`, {})).status, 200);
    assert.equal(await aliasAtB('upgraded'), newId);
    await waitFor(async () => {
      const listed = await listedAtB();
      return listed.includes(newId) && !listed.includes(oldId);
    }, 15_000, 'B lists the new room instead of the old one');
  });

  it('a room that only claims a predecessor (no tombstone names it) takes nothing', async () => {
    const oldId = await sharedRoom('claimed');
    const fake = await alice.post(`${V3}/createRoom`, { preset: 'public_chat', room_version: '10', creation_content: { predecessor: { room_id: oldId } } });
    assert.equal(fake.status, 200, JSON.stringify(fake.body));
    const fakeId: string = fake.body.room_id;
    const create = await alice.get(`${V3}/rooms/${enc(fakeId)}/state/m.room.create/`);
    assert.deepEqual(create.body.predecessor, { room_id: oldId }, 'the claim is in the create event');
    assert.equal((await bob.post(`${V3}/join/${enc(fakeId)}?server_name=${enc(nameA)}`, {})).status, 200);
    assert.equal(await aliasAtB('claimed'), oldId);
    const listed = await listedAtB();
    assert.ok(listed.includes(oldId) && !listed.includes(fakeId), JSON.stringify(listed));
  });
});
