// Device-list change tracking: /keys/changes between two /sync tokens (key uploads by users who
// share a room, users starting and stopping to share a room) and /sync `device_lists`.

import { assert } from '../helpers/assert.js';
import { V3 } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { CrossSigning, expectError, newKey, PASSWORD, passwordAuth, pub, sign, syncToken, TestDevice, uploadDevice, type User } from './keys-helpers.js';


describe('E2EE device-list changes', function () {
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let carol: User;
  let dave: User;
  let roomId: string;

  const changes = async (u: Api, from: string, to: string) => {
    const r = await u.get(`${V3}/keys/changes?from=${enc(from)}&to=${enc(to)}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as { changed: string[]; left: string[] };
  };

  before(async () => {
    srv = await startTestServer();
    const api = new Api(srv.url);
    [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((n) => api.register(n, PASSWORD)));
    const r = await alice.post(`${V3}/createRoom`, { preset: 'public_chat', invite: [bob.userId] });
    roomId = r.body.room_id;
    assert.equal((await bob.post(`${V3}/join/${enc(roomId)}`)).status, 200);
  });
  after(async () => srv.stop());

  it('reports key uploads by room-mates and by the user, not by strangers', async () => {
    const t0 = await syncToken(alice);
    const bobDev = new TestDevice(bob.userId, bob.deviceId);
    await uploadDevice(bob, bobDev, 1);
    await uploadDevice(dave, new TestDevice(dave.userId, dave.deviceId), 1);
    const t1 = await syncToken(alice);
    assert.deepEqual(await changes(alice, t0, t1), { changed: [bob.userId], left: [] });
    await uploadDevice(alice, new TestDevice(alice.userId, alice.deviceId), 0);
    const t2 = await syncToken(alice);
    assert.deepEqual(await changes(alice, t1, t2), { changed: [alice.userId], left: [] });
    // Nothing in an empty range, and an inverted range is empty too.
    assert.deepEqual(await changes(alice, t2, t2), { changed: [], left: [] });
    assert.deepEqual(await changes(alice, t2, t0), { changed: [], left: [] });
    // One-time key uploads alone are not device-list changes.
    assert.equal((await bob.post(`${V3}/keys/upload`, { one_time_keys: bobDev.otks(2) })).body.one_time_key_counts.signed_curve25519, 3);
    assert.deepEqual(await changes(alice, t2, await syncToken(alice)), { changed: [], left: [] });
  });

  it('reports cross-signing key uploads', async () => {
    const t0 = await syncToken(alice);
    assert.equal((await bob.post(`${V3}/keys/device_signing/upload`, new CrossSigning(bob.userId).all())).status, 200);
    assert.deepEqual((await changes(alice, t0, await syncToken(alice))).changed, [bob.userId]);
  });

  it('a new user-signing key alone is a change for its owner only (nobody else can read it)', async () => {
    const cs = new CrossSigning(alice.userId);
    assert.equal((await alice.post(`${V3}/keys/device_signing/upload`, cs.all())).status, 200);
    const [a0, b0] = [await syncToken(alice), await syncToken(bob)];
    const usk = newKey();
    const next = sign({ user_id: alice.userId, usage: ['user_signing'], keys: { [`ed25519:${pub(usk)}`]: pub(usk) } }, alice.userId, cs.id(cs.master), cs.master);
    const challenge = await alice.post(`${V3}/keys/device_signing/upload`, { user_signing_key: next });
    assert.equal(challenge.status, 401, JSON.stringify(challenge.body));
    const ok = await alice.post(`${V3}/keys/device_signing/upload`, { user_signing_key: next, auth: passwordAuth(alice, challenge.body.session) });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const [a1, b1] = [await syncToken(alice), await syncToken(bob)];
    assert.deepEqual((await changes(alice, a0, a1)).changed, [alice.userId], 'the owner re-fetches their keys');
    assert.deepEqual((await changes(bob, b0, b1)).changed, [], 'a room-mate is not told');
    const sync = await bob.get(`${V3}/sync?timeout=0&since=${enc(b0)}`);
    assert.ok(!(sync.body.device_lists?.changed ?? []).includes(alice.userId), JSON.stringify(sync.body.device_lists));
    // A new master key (with its self-signing key) is everyone's business again.
    const fresh = new CrossSigning(alice.userId);
    const c2 = await alice.post(`${V3}/keys/device_signing/upload`, { master_key: fresh.masterKey(), self_signing_key: fresh.selfSigningKey() });
    const ok2 = await alice.post(`${V3}/keys/device_signing/upload`, { master_key: fresh.masterKey(), self_signing_key: fresh.selfSigningKey(), auth: passwordAuth(alice, c2.body.session) });
    assert.equal(ok2.status, 200, JSON.stringify(ok2.body));
    assert.deepEqual((await changes(bob, b1, await syncToken(bob))).changed, [alice.userId]);
  });

  it('a user joining a shared room is changed; leaving every shared room is left', async () => {
    const t0 = await syncToken(alice);
    assert.equal((await carol.post(`${V3}/join/${enc(roomId)}`)).status, 200);
    const t1 = await syncToken(alice);
    assert.deepEqual(await changes(alice, t0, t1), { changed: [carol.userId], left: [] });
    // A profile change (join -> join) is not a new join.
    await carol.put(`${V3}/profile/${enc(carol.userId)}/displayname`, { displayname: 'Carol C' });
    const t2 = await syncToken(alice);
    assert.deepEqual(await changes(alice, t1, t2), { changed: [], left: [] });
    assert.equal((await carol.post(`${V3}/rooms/${enc(roomId)}/leave`)).status, 200);
    const t3 = await syncToken(alice);
    assert.deepEqual(await changes(alice, t2, t3), { changed: [], left: [carol.userId] });
    // Seen from carol's side: she left the only room she shared with alice and bob.
    assert.deepEqual(await changes(carol, t2, t3), { changed: [], left: [alice.userId, bob.userId] });
  });

  it('an invited user is changed at the invite and again when they join (a remote user\'s server sends updates only to rooms they are a member of)', async () => {
    const room = (await alice.post(`${V3}/createRoom`, { preset: 'private_chat' })).body.room_id;
    const t0 = await syncToken(alice);
    assert.equal((await alice.post(`${V3}/rooms/${enc(room)}/invite`, { user_id: carol.userId })).status, 200);
    const t1 = await syncToken(alice);
    assert.ok((await changes(alice, t0, t1)).changed.includes(carol.userId), 'changed at the invite');
    assert.equal((await carol.post(`${V3}/join/${enc(room)}`)).status, 200);
    try {
      const t2 = await syncToken(alice);
      assert.ok((await changes(alice, t1, t2)).changed.includes(carol.userId), 'changed again at the join');
    } finally {
      // carol is a stranger to alice in the tests below
      assert.equal((await carol.post(`${V3}/rooms/${enc(room)}/leave`)).status, 200);
    }
  });

  it('joining a room makes its members changed for the joiner', async () => {
    const t0 = await syncToken(dave);
    assert.equal((await dave.post(`${V3}/join/${enc(roomId)}`)).status, 200);
    const t1 = await syncToken(dave);
    assert.deepEqual(await changes(dave, t0, t1), { changed: [alice.userId, bob.userId], left: [] });
  });

  it('someone still sharing another room is not left', async () => {
    const other = (await alice.post(`${V3}/createRoom`, { preset: 'public_chat' })).body.room_id;
    assert.equal((await dave.post(`${V3}/join/${enc(other)}`)).status, 200);
    const t0 = await syncToken(alice);
    assert.equal((await dave.post(`${V3}/rooms/${enc(roomId)}/leave`)).status, 200);
    assert.deepEqual(await changes(alice, t0, await syncToken(alice)), { changed: [], left: [] });
  });

  it('validates its tokens', async () => {
    const t = await syncToken(alice);
    expectError(await alice.get(`${V3}/keys/changes?to=${enc(t)}`), 400, 'M_MISSING_PARAM');
    expectError(await alice.get(`${V3}/keys/changes?from=garbage&to=${enc(t)}`), 400, 'M_INVALID_PARAM');
    expectError(await alice.get(`${V3}/keys/changes?from=${enc(t)}&to=garbage`), 400, 'M_INVALID_PARAM');
  });

  it('/sync device_lists carries the same changes on an incremental sync', async () => {
    const since = await syncToken(alice);
    const bob2 = await new Api(srv.url).post(`${V3}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'bob' }, password: PASSWORD });
    const bobPhone = Object.assign(new Api(srv.url, bob2.body.access_token), { userId: bob.userId, deviceId: bob2.body.device_id as string });
    await uploadDevice(bobPhone, new TestDevice(bob.userId, bobPhone.deviceId), 0);
    const s = await alice.get(`${V3}/sync?timeout=0&since=${enc(since)}`);
    assert.equal(s.status, 200);
    assert.deepEqual(s.body.device_lists, { changed: [bob.userId], left: [] });
  });

  const loginAgain = async (user: string) => {
    const r = await new Api(srv.url).post(`${V3}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password: PASSWORD });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return new Api(srv.url, r.body.access_token);
  };

  it('a new login of a room-mate is changed, in /sync and /keys/changes; a stranger\'s is not', async () => {
    const since = await syncToken(alice);
    await loginAgain('bob');
    await loginAgain('carol'); // carol left the shared room earlier
    const s = await alice.get(`${V3}/sync?timeout=0&since=${enc(since)}`);
    assert.equal(s.status, 200);
    assert.deepEqual(s.body.device_lists, { changed: [bob.userId], left: [] });
    assert.deepEqual(await changes(alice, since, s.body.next_batch), { changed: [bob.userId], left: [] });
  });

  it('a device rename is changed for room-mates; renaming an unknown device changes nothing', async () => {
    const since = await syncToken(alice);
    assert.equal((await bob.put(`${V3}/devices/${enc(bob.deviceId)}`, { display_name: 'wibble' })).status, 200);
    const s = await alice.get(`${V3}/sync?timeout=0&since=${enc(since)}`);
    assert.deepEqual(s.body.device_lists, { changed: [bob.userId], left: [] });
    const t1 = s.body.next_batch;
    expectError(await bob.put(`${V3}/devices/NOSUCHDEVICE`, { display_name: 'x' }), 404, 'M_NOT_FOUND');
    assert.deepEqual(await changes(alice, t1, await syncToken(alice)), { changed: [], left: [] });
  });

  it('a user hears of their own new devices, even sharing no room with anyone', async () => {
    const erin = await new Api(srv.url).register('erin', PASSWORD);
    const since = await syncToken(erin);
    await loginAgain('erin');
    const s = await erin.get(`${V3}/sync?timeout=0&since=${enc(since)}`);
    assert.deepEqual(s.body.device_lists, { changed: [erin.userId], left: [] });
  });

  it('a parked long-poll wakes for a room-mate\'s new login and for a logout', async () => {
    const since = await syncToken(alice);
    // The poll's timeout (60 s) outlasts the test (20 s): any answer was a wake, which the content below shows; no wall-clock bound for a loaded machine to overrun.
    const parked = alice.get(`${V3}/sync?timeout=60000&since=${enc(since)}`);
    await new Promise((r) => setTimeout(r, 200));
    const phone = await loginAgain('bob');
    const s = await parked;
    assert.deepEqual(s.body.device_lists.changed, [bob.userId]);
    const parked2 = alice.get(`${V3}/sync?timeout=60000&since=${enc(s.body.next_batch)}`);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await phone.post(`${V3}/logout`)).status, 200);
    const s2 = await parked2;
    assert.deepEqual(s2.body.device_lists.changed, [bob.userId]);
  });
});
