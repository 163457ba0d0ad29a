// Third-party invites over HTTP (src/identity/third-party-invites.ts) against an in-process
// identity server (spec/helpers/fake-identity-server.ts): the spec's C-S "Third-party invites"
// flow (lookup, store-invite, m.room.third_party_invite), the identity server's 3pid/onbind,
// /join with third_party_signed, createRoom's invite_3pid, and the outbound guard on id_server.

import { createHash } from 'node:crypto';
import { assert } from '../helpers/assert.js';
import { createRoom, expectError, makeUser, ok, roomPath, V3, type User } from '../helpers/fixtures.js';
import { FakeIdentityServer, ID_ACCESS_TOKEN } from '../helpers/fake-identity-server.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

const ONBIND = '/_matrix/federation/v1/3pid/onbind';

describe('identity: third-party invites', function () {
  let srv: TestServer;
  let is: FakeIdentityServer;
  let alice: User;

  before(async function () {
    is = await FakeIdentityServer.start();
    // The fake identity server is on loopback with a self-signed certificate: allowed for this test only.
    srv = await startTestServer({ identity: { verify_tls: false }, outbound: { ip_range_whitelist: ['127.0.0.0/8'] } });
    alice = await makeUser(srv, 'alice');
  });
  after(async function () {
    await srv?.stop();
    await is?.stop();
  });

  const invite3pid = (who: Api, roomId: string, address: string, extra: Record<string, unknown> = {}) =>
    who.post(roomPath(roomId, 'invite'), { id_server: is.name, id_access_token: ID_ACCESS_TOKEN, medium: 'email', address, ...extra });
  const member = (who: Api, roomId: string, userId: string) => who.get(roomPath(roomId, `state/m.room.member/${enc(userId)}`));
  const thirdPartyInvites = async (roomId: string) => ((await ok(alice.get(roomPath(roomId, 'state')), 'state')) as any[]).filter((e) => e.type === 'm.room.third_party_invite');
  const onBind = (body: unknown) => new Api(srv.url).post(ONBIND, body);

  it('invites the user an address is bound to, looked up by hash with the access token', async function () {
    const bob = await makeUser(srv, 'bob');
    is.bind('email', 'bob@example.org', bob.userId);
    const roomId = await createRoom(alice, { preset: 'private_chat' });
    await ok(invite3pid(alice, roomId, 'Bob@Example.ORG'), '3pid invite');
    const m = await ok(member(alice, roomId, bob.userId), 'member');
    assert.equal(m.membership, 'invite');
    assert.equal(m.third_party_invite, undefined);
    const lookup = is.requests.filter((r) => r.path === '/_matrix/identity/v2/lookup').at(-1)!;
    assert.equal(lookup.authorization, `Bearer ${ID_ACCESS_TOKEN}`);
    assert.equal(lookup.body.algorithm, 'sha256');
    // Email addresses are compared lower-cased; only the hash leaves the server.
    const hash = createHash('sha256').update('bob@example.org email matrixrocks').digest('base64url');
    assert.deepEqual(lookup.body.addresses, [hash]);
    assert.equal((await thirdPartyInvites(roomId)).length, 0);
  });

  it('an unbound address: store-invite and m.room.third_party_invite; onbind issues the invite and the invitee joins', async function () {
    const roomId = await createRoom(alice, { preset: 'private_chat', name: 'Lemurs' });
    await ok(invite3pid(alice, roomId, 'carol@example.org'), '3pid invite');
    const stored = is.invites.at(-1)!;
    assert.equal(stored.room_id, roomId);
    assert.equal(stored.sender, alice.userId);
    assert.equal(stored.body.room_name, 'Lemurs');
    assert.equal(stored.body.room_join_rules, 'invite');
    const [tpi] = await thirdPartyInvites(roomId);
    assert.equal(tpi.state_key, stored.token);
    assert.equal(tpi.sender, alice.userId);
    assert.equal(tpi.content.display_name, 'Bob');
    assert.equal(tpi.content.public_key, is.publicKey);
    assert.equal(tpi.content.public_keys.length, 2);
    assert.match(tpi.content.key_validity_url, /^https:\/\/127\.0\.0\.1:\d+\/_matrix\/identity\/v2\/pubkey\/isvalid$/);

    const carol = await makeUser(srv, 'carol');
    const before = is.count('/_matrix/identity/v2/pubkey/isvalid');
    await ok(onBind(is.onBindBody('email', 'carol@example.org', carol.userId)), 'onbind');
    assert.ok(is.count('/_matrix/identity/v2/pubkey/isvalid') > before, 'the key was checked with the identity server');
    const m = await ok(member(alice, roomId, carol.userId), 'member');
    assert.equal(m.membership, 'invite');
    assert.equal(m.third_party_invite.display_name, 'Bob');
    assert.equal(m.third_party_invite.signed.mxid, carol.userId);
    assert.equal(m.third_party_invite.signed.token, stored.token);
    await ok(carol.post(roomPath(roomId, 'join'), {}), 'join');
    assert.equal((await ok(member(alice, roomId, carol.userId), 'member')).membership, 'join');
  });

  it('the invite is issued even after its sender left the room', async function () {
    const other = await makeUser(srv, 'other');
    const roomId = await createRoom(alice, { preset: 'public_chat' });
    await ok(other.post(roomPath(roomId, 'join'), {}), 'join');
    await ok(invite3pid(alice, roomId, 'leaver@example.org'), '3pid invite');
    await ok(alice.post(roomPath(roomId, 'leave'), {}), 'leave');
    const ivy = await makeUser(srv, 'ivy');
    await ok(onBind(is.onBindBody('email', 'leaver@example.org', ivy.userId)), 'onbind');
    const m = await ok(member(other, roomId, ivy.userId), 'member');
    assert.equal(m.membership, 'invite');
  });

  it('a signature the room\'s keys do not verify is refused: onbind answers 403, no invite', async function () {
    const roomId = await createRoom(alice, { preset: 'private_chat' });
    await ok(invite3pid(alice, roomId, 'dave@example.org'), '3pid invite');
    is.rotateKeys();
    const dave = await makeUser(srv, 'dave');
    expectError(await onBind(is.onBindBody('email', 'dave@example.org', dave.userId)), 403, 'M_FORBIDDEN');
    expectError(await member(alice, roomId, dave.userId), 404, 'M_NOT_FOUND');
  });

  it('a key the identity server no longer vouches for is refused', async function () {
    const roomId = await createRoom(alice, { preset: 'private_chat' });
    await ok(invite3pid(alice, roomId, 'erin@example.org'), '3pid invite');
    is.revokeMainKey();
    const erin = await makeUser(srv, 'erin');
    expectError(await onBind(is.onBindBody('email', 'erin@example.org', erin.userId)), 403, 'M_FORBIDDEN');
    expectError(await member(alice, roomId, erin.userId), 404, 'M_NOT_FOUND');
    is.rotateKeys(); // fresh, unrevoked keys for the tests after this one
  });

  it('/join with third_party_signed redeems the invite (signed with another of the listed keys)', async function () {
    const roomId = await createRoom(alice, { preset: 'private_chat' });
    await ok(invite3pid(alice, roomId, 'frank@example.org'), '3pid invite');
    const [tpi] = await thirdPartyInvites(roomId);
    const frank = await makeUser(srv, 'frank');
    // Someone else's signed block is no way in.
    const forOther = is.sign({ mxid: alice.userId, sender: alice.userId, token: tpi.state_key }, 'ephemeral');
    expectError(await frank.post(roomPath(roomId, 'join'), { third_party_signed: forOther }), 403, 'M_FORBIDDEN');
    const signed = is.sign({ mxid: frank.userId, sender: alice.userId, token: tpi.state_key }, 'ephemeral');
    await ok(frank.post(`${V3}/join/${enc(roomId)}`, { third_party_signed: signed }), 'join');
    assert.equal((await ok(member(alice, roomId, frank.userId), 'member')).membership, 'join');
    // Joining again with the same block is the idempotent join it would be without it.
    await ok(frank.post(`${V3}/join/${enc(roomId)}`, { third_party_signed: signed }), 'join again');
  });

  it('createRoom with invite_3pid invites through the identity server', async function () {
    const grace = await makeUser(srv, 'grace');
    is.bind('email', 'grace@example.org', grace.userId);
    const roomId = await createRoom(alice, {
      preset: 'private_chat',
      invite_3pid: [{ id_server: is.name, id_access_token: ID_ACCESS_TOKEN, medium: 'email', address: 'grace@example.org' }],
    });
    assert.equal((await ok(member(alice, roomId, grace.userId), 'member')).membership, 'invite');
  });

  it('a member who may not invite gets 403 and no event is sent', async function () {
    const hank = await makeUser(srv, 'hank');
    const roomId = await createRoom(alice, { preset: 'public_chat', power_level_content_override: { invite: 50 } });
    await ok(hank.post(roomPath(roomId, 'join'), {}), 'join');
    expectError(await invite3pid(hank, roomId, 'nobody@example.org'), 403, 'M_FORBIDDEN');
    assert.equal((await thirdPartyInvites(roomId)).length, 0);
  });

  it('refuses a malformed request, an id_server that is not a server name, and onbind for others\' users', async function () {
    const roomId = await createRoom(alice, { preset: 'private_chat' });
    expectError(await alice.post(roomPath(roomId, 'invite'), { medium: 'email', address: 'x@example.org' }), 400, 'M_MISSING_PARAM');
    const seen = is.requests.length;
    expectError(await invite3pid(alice, roomId, 'x@example.org', { id_server: 'is.example.org/evil?' }), 400, 'M_INVALID_PARAM');
    expectError(await invite3pid(alice, roomId, 'x@example.org', { medium: 'carrier-pigeon' }), 400, 'M_INVALID_PARAM');
    assert.equal(is.requests.length, seen, 'nothing reached the identity server');
    expectError(await onBind({ medium: 'email', address: 'x@example.org', mxid: '@x:elsewhere.example', invites: [] }), 403, 'M_FORBIDDEN');
    expectError(await onBind({ medium: 'email', address: 'x@example.org', mxid: alice.userId, invites: 'many' }), 400, 'M_BAD_JSON');
    expectError(await onBind([1, 2]), 400, 'M_BAD_JSON');
  });
});

describe('identity: identity servers are behind the outbound guard', function () {
  let srv: TestServer;
  let is: FakeIdentityServer;
  before(async function () {
    is = await FakeIdentityServer.start();
    srv = await startTestServer({ identity: { verify_tls: false } }); // loopback refused, as by default
  });
  after(async function () {
    await srv?.stop();
    await is?.stop();
  });

  it('an id_server on a refused address gets an error and no request', async function () {
    const alice = await makeUser(srv, 'alice');
    const roomId = await createRoom(alice, { preset: 'private_chat' });
    const r = await alice.post(roomPath(roomId, 'invite'), { id_server: is.name, id_access_token: ID_ACCESS_TOKEN, medium: 'email', address: 'a@example.org' });
    // The named server cannot be used: the request's fault (400 M_SERVER_NOT_TRUSTED), not a 5xx.
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.errcode, 'M_SERVER_NOT_TRUSTED');
    assert.equal(is.requests.length, 0);
    // The guard's reason (which address the name resolved to) is not handed to the user.
    assert.doesNotMatch(r.body.error, /127\.0\.0\.1|outbound|policy/);
    assert.match(r.body.error, /not reachable/);
  });

  it('an id_server whose name does not resolve is 400 M_SERVER_NOT_TRUSTED, not a 5xx', async function () {
    const alice = await makeUser(srv, 'carol');
    const roomId = await createRoom(alice, { preset: 'private_chat' });
    const r = await alice.post(roomPath(roomId, 'invite'), { id_server: 'identity.does-not-exist.invalid', id_access_token: ID_ACCESS_TOKEN, medium: 'email', address: 'c@example.org' });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.errcode, 'M_SERVER_NOT_TRUSTED');
  });
});

describe('identity: 3pid/onbind is rate-limited per address', function () {
  let srv: TestServer;
  before(async function () {
    srv = await startTestServer({ limits: { rate_limits: { enabled: true, write: { per_second: 0.01, burst: 2 } } } });
  });
  after(async function () {
    await srv?.stop();
  });

  it('answers 429 past the write budget', async function () {
    const body = { medium: 'email', address: 'a@example.org', mxid: '@nobody:localhost', invites: [] };
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await new Api(srv.url).post(ONBIND, body)).status);
    assert.deepEqual(statuses, [200, 200, 429]);
  });
});
