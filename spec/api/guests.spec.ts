// Guest access over real HTTP (Client-Server API v1.12 "Guest Access" module and
// registration.yaml `kind=guest`): guest registration behind registration.allow_guests, the
// spec's list of endpoints guests may use (403 M_GUEST_ACCESS_FORBIDDEN for the rest), joins
// only where m.room.guest_access is can_join, removal when that is revoked, history visibility
// for guests, and upgrading a guest to a full account with its guest_access_token.

import { assert } from '../helpers/assert.js';
import { createRoom, expectError, loginClient, makeUser, ok, PASSWORD, roomPath, sendEvent, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { GUEST_ROUTES } from '../../src/api/routing.js';

describe('guest access', function () {
  this.timeout(20000);
  let srv: TestServer;
  let api: Api;
  let owner: User;
  let txn = 0;

  before(async () => {
    srv = await startTestServer({ registration: { allow_guests: true } });
    api = new Api(srv.url);
    owner = await makeUser(srv, 'owner');
  });
  after(async () => srv.stop());

  const guest = async (): Promise<User> => {
    const r = await api.post(`${V3}/register?kind=guest`, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(typeof r.body.access_token, 'string');
    assert.equal(typeof r.body.device_id, 'string');
    return Object.assign(new Api(srv.url, r.body.access_token), { userId: r.body.user_id as string, deviceId: r.body.device_id as string });
  };
  const setGuestAccess = (roomId: string, value: string) => ok(owner.put(roomPath(roomId, 'state/m.room.guest_access'), { guest_access: value }), 'guest_access');
  const membershipOf = async (roomId: string, userId: string) => {
    const r = await owner.get(roomPath(roomId, `state/m.room.member/${enc(userId)}`));
    return r.status === 200 ? r.body.membership : undefined;
  };

  it('POST /register?kind=guest gives a logged-in guest; whoami says is_guest', async () => {
    const g = await guest();
    assert.match(g.userId, /^@[a-z0-9._=\-/+]+:localhost$/);
    assert.deepEqual(await ok(g.get(`${V3}/account/whoami`), 'whoami'), { user_id: g.userId, device_id: g.deviceId, is_guest: true });
    const other = await guest();
    assert.notEqual(other.userId, g.userId);
    assert.equal((await ok(owner.get(`${V3}/account/whoami`), 'whoami')).is_guest, false);
  });

  it('every entry of the guest list names a declared route (a renamed route would silently lock guests out)', () => {
    const declared = new Set(srv.hearth.routes.list().map((r) => `${r.method.toLowerCase()} ${r.path}`));
    for (const entry of GUEST_ROUTES) {
      const [method, path] = entry.split(' ');
      assert.ok(declared.has(`${method} /_matrix/client/v3${path}`), `${entry} is not a declared route`);
    }
  });

  it('guests get 403 M_GUEST_ACCESS_FORBIDDEN outside the spec\'s list, and may use what it lists', async () => {
    const g = await guest();
    const forbidden = [
      g.post(`${V3}/createRoom`, {}),
      g.put(`${V3}/user/${enc(g.userId)}/account_data/m.test`, { a: 1 }),
      g.post(`${V3}/user/${enc(g.userId)}/filter`, {}),
      g.put(`${V3}/profile/${enc(g.userId)}/avatar_url`, { avatar_url: 'mxc://localhost/x' }),
      g.get(`${V3}/joined_rooms`),
      g.post(`${V3}/keys/device_signing/upload`, {}),
      g.get(`${V3}/pushrules/`),
      g.post(`${V3}/account/password`, { new_password: 'x' }),
    ];
    for (const r of await Promise.all(forbidden)) expectError(r, 403, 'M_GUEST_ACCESS_FORBIDDEN');
    await ok(g.get(`${V3}/sync?timeout=0`), 'sync');
    // A guest starts with its localpart as display name, as other accounts do.
    assert.equal((await ok(api.get(`${V3}/profile/${enc(g.userId)}/displayname`), 'initial displayname')).displayname, g.userId.slice(1, g.userId.indexOf(':')));
    await ok(g.put(`${V3}/profile/${enc(g.userId)}/displayname`, { displayname: 'creeper' }), 'displayname');
    assert.equal((await ok(api.get(`${V3}/profile/${enc(g.userId)}/displayname`), 'get displayname')).displayname, 'creeper');
    assert.deepEqual((await ok(g.get(`${V3}/devices`), 'devices')).devices.map((d: any) => d.device_id), [g.deviceId]);
    await ok(g.put(`${V3}/devices/${enc(g.deviceId)}`, { display_name: 'guest phone' }), 'rename device');
    await ok(g.post(`${V3}/keys/query`, { device_keys: { [owner.userId]: [] } }), 'keys/query');
  });

  it('joins only rooms whose m.room.guest_access is can_join, by room ID or alias', async () => {
    // public_chat creates no m.room.guest_access event: absent means forbidden.
    const roomId = await createRoom(owner, { preset: 'public_chat', room_alias_name: 'guestroom' });
    const g = await guest();
    expectError(await g.post(roomPath(roomId, 'join'), {}), 403, 'M_GUEST_ACCESS_FORBIDDEN');
    await setGuestAccess(roomId, 'forbidden');
    expectError(await g.post(`${V3}/join/${enc('#guestroom:localhost')}`, {}), 403, 'M_GUEST_ACCESS_FORBIDDEN');
    expectError(await g.post(roomPath(roomId, 'join'), {}), 403, 'M_GUEST_ACCESS_FORBIDDEN');
    // The same rule holds for a join written as the guest's own member state event.
    expectError(await g.put(roomPath(roomId, `state/m.room.member/${enc(g.userId)}`), { membership: 'join' }), 403, 'M_GUEST_ACCESS_FORBIDDEN');
    assert.equal(await membershipOf(roomId, g.userId), undefined);
    await setGuestAccess(roomId, 'can_join');
    await ok(g.post(`${V3}/join/${enc('#guestroom:localhost')}`, {}), 'join by alias');
    assert.equal(await membershipOf(roomId, g.userId), 'join');
    // A real user needs no guest access.
    const real = await makeUser(srv, 'realjoiner');
    await setGuestAccess(roomId, 'forbidden');
    await ok(real.post(roomPath(roomId, 'join'), {}), 'real user joins');
  });

  it('a joined guest sends messages others see; an unjoined one gets 403', async () => {
    const roomId = await createRoom(owner, { preset: 'public_chat' });
    await setGuestAccess(roomId, 'can_join');
    const g = await guest();
    expectError(await g.put(roomPath(roomId, `send/m.room.message/g${++txn}`), { msgtype: 'm.text', body: 'early' }), 403, 'M_FORBIDDEN');
    await ok(g.post(roomPath(roomId, 'join'), {}), 'join');
    const id = await sendEvent(g, roomId, 'm.room.message', `g${++txn}`, { msgtype: 'm.text', body: 'sup' }, 'guest send');
    const msgs = await ok(owner.get(roomPath(roomId, 'messages?dir=b&limit=1')), 'messages');
    assert.equal(msgs.chunk[0].event_id, id);
    assert.equal(msgs.chunk[0].sender, g.userId);
    // State events are on the guest list since v1.2 (the power levels decide, as for anyone).
    expectError(await g.put(roomPath(roomId, 'state/m.room.topic'), { topic: 'x' }), 403, 'M_FORBIDDEN');
    await ok(g.post(roomPath(roomId, 'leave'), {}), 'leave');
    assert.equal(await membershipOf(roomId, g.userId), 'leave');
  });

  it('revoking guest access turns joined guests\' membership to leave, and only theirs', async () => {
    const roomId = await createRoom(owner, { preset: 'public_chat' });
    await setGuestAccess(roomId, 'can_join');
    const [g1, g2] = [await guest(), await guest()];
    const real = await makeUser(srv, 'stays');
    for (const u of [g1, g2, real]) await ok(u.post(roomPath(roomId, 'join'), {}), 'join');
    await setGuestAccess(roomId, 'forbidden');
    assert.equal(await membershipOf(roomId, g1.userId), 'leave');
    assert.equal(await membershipOf(roomId, g2.userId), 'leave');
    assert.equal(await membershipOf(roomId, real.userId), 'join');
    assert.equal(await membershipOf(roomId, owner.userId), 'join');
    const leave = await ok(owner.get(roomPath(roomId, `state/m.room.member/${enc(g1.userId)}?format=event`)), 'member event');
    assert.equal(leave.sender, g1.userId, 'the guest leaves by itself');
  });

  it('history visibility: guests read world_readable rooms without joining, not others', async () => {
    const open = await createRoom(owner, { preset: 'public_chat', initial_state: [{ type: 'm.room.history_visibility', content: { history_visibility: 'world_readable' } }] });
    const closed = await createRoom(owner, { preset: 'public_chat' });
    for (const r of [open, closed]) await sendEvent(owner, r, 'm.room.message', `h${++txn}`, { msgtype: 'm.text', body: 'hello' }, 'send');
    const g = await guest();
    const msgs = await ok(g.get(roomPath(open, 'messages?dir=b&limit=10')), 'world_readable messages');
    assert.ok(msgs.chunk.some((e: any) => e.content.body === 'hello'));
    await ok(g.get(roomPath(open, 'state')), 'world_readable state');
    await ok(g.get(roomPath(open, `state/m.room.member/${enc(owner.userId)}`)), 'world_readable state event');
    expectError(await g.get(roomPath(closed, 'messages?dir=b&limit=10')), 403, 'M_FORBIDDEN');
    expectError(await g.get(roomPath(closed, 'state')), 403, 'M_FORBIDDEN');
  });

  it('a guest upgrades itself to a full account with guest_access_token, not anyone else', async () => {
    const g = await guest();
    const other = await guest();
    const localpart = g.userId.slice(1, g.userId.indexOf(':'));
    expectError(await api.post(`${V3}/register`, { username: localpart, password: PASSWORD, guest_access_token: other.token }), 403, 'M_FORBIDDEN');
    expectError(await api.post(`${V3}/register`, { username: localpart, password: PASSWORD, guest_access_token: owner.token }), 403, 'M_FORBIDDEN');
    const first = await api.post(`${V3}/register`, { username: localpart, password: PASSWORD, guest_access_token: g.token });
    assert.equal(first.status, 401, JSON.stringify(first.body));
    const r = await api.post(`${V3}/register`, { username: localpart, password: PASSWORD, guest_access_token: g.token, auth: { type: 'm.login.dummy', session: first.body.session } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.user_id, g.userId);
    const full = new Api(srv.url, r.body.access_token);
    assert.equal((await ok(full.get(`${V3}/account/whoami`), 'whoami')).is_guest, false);
    await ok(full.post(`${V3}/createRoom`, {}), 'createRoom as a full account');
    // The old guest token now belongs to a full account too; the password works.
    await ok(g.post(`${V3}/createRoom`, {}), 'createRoom with the former guest token');
    await loginClient(srv.url, localpart, PASSWORD);
    // A second upgrade of the same (no longer guest) account is refused.
    expectError(await api.post(`${V3}/register`, { username: localpart, password: PASSWORD, guest_access_token: g.token, auth: { type: 'm.login.dummy' } }), 403, 'M_FORBIDDEN');
  });
});

describe('guest access disabled (the default)', function () {
  it('kind=guest is refused with 403 and no token; an unknown kind is 400', async () => {
    const srv = await startTestServer();
    try {
      const api = new Api(srv.url);
      const r = await api.post(`${V3}/register?kind=guest`, {});
      expectError(r, 403, 'M_FORBIDDEN');
      assert.equal(r.body.access_token, undefined);
      expectError(await api.post(`${V3}/register?kind=robot`, {}), 400, 'M_INVALID_PARAM');
    } finally {
      await srv.stop();
    }
  });
});
