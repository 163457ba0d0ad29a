// Cross-signing over real HTTP: /keys/device_signing/upload (UIA only when replacing keys,
// signature checks) and /keys/signatures/upload (per-key failures, visibility in /keys/query).

import { assert } from '../helpers/assert.js';
import { V3 } from '../helpers/fixtures.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';
import { CrossSigning, expectError, PASSWORD, passwordAuth, pub, sign, TestDevice, uploadDevice, type User } from './keys-helpers.js';

const UPLOAD = `${V3}/keys/device_signing/upload`;
const SIGS = `${V3}/keys/signatures/upload`;

describe('E2EE cross-signing', function () {
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let carol: User;
  let aliceDev: TestDevice;
  let aliceCs: CrossSigning;
  let bobCs: CrossSigning;

  const query = async (u: Api, users: string[]) => {
    const r = await u.post(`${V3}/keys/query`, { device_keys: Object.fromEntries(users.map((x) => [x, []])) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };

  before(async () => {
    srv = await startTestServer();
    const api = new Api(srv.url);
    [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((n) => api.register(n, PASSWORD)));
    aliceDev = new TestDevice(alice.userId, alice.deviceId);
    await uploadDevice(alice, aliceDev, 1);
    aliceCs = new CrossSigning(alice.userId);
    bobCs = new CrossSigning(bob.userId);
  });
  after(async () => srv.stop());

  it('rejects malformed keys and keys not signed by the master key, storing nothing', async () => {
    const cs = aliceCs;
    expectError(await alice.post(UPLOAD, { self_signing_key: cs.selfSigningKey() }), 400, 'M_MISSING_PARAM');
    expectError(await alice.post(UPLOAD, { master_key: { ...cs.masterKey(), usage: ['self_signing'] } }), 400, 'M_INVALID_PARAM');
    expectError(await alice.post(UPLOAD, { master_key: { ...cs.masterKey(), user_id: bob.userId } }), 400, 'M_INVALID_PARAM');
    expectError(await alice.post(UPLOAD, { master_key: { ...cs.masterKey(), keys: { 'ed25519:abc': 'abc' } } }), 400, 'M_INVALID_PARAM');
    const forged = cs.selfSigningKey(cs.userSigning); // signed under the master's ID by another key
    expectError(await alice.post(UPLOAD, { master_key: cs.masterKey(), self_signing_key: forged }), 400, 'M_INVALID_SIGNATURE');
    const { signatures: _s, ...unsignedUsk } = cs.userSigningKey();
    expectError(await alice.post(UPLOAD, { master_key: cs.masterKey(), user_signing_key: unsignedUsk }), 400, 'M_INVALID_SIGNATURE');
    assert.deepEqual((await query(bob, [alice.userId])).master_keys, {});
  });

  it('the first upload needs no UIA; others see master and self-signing keys, only the owner the user-signing key', async () => {
    const r = await alice.post(UPLOAD, aliceCs.all());
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const byBob = await query(bob, [alice.userId]);
    // Signatures are optional on a master key: one uploaded without any and never signed since
    // comes back as uploaded, with no empty `signatures` object added.
    assert.deepEqual(byBob.master_keys[alice.userId], aliceCs.masterKey());
    assert.deepEqual(byBob.self_signing_keys[alice.userId].usage, ['self_signing']);
    assert.deepEqual(byBob.user_signing_keys, {});
    const byAlice = await query(alice, [alice.userId]);
    assert.deepEqual(byAlice.user_signing_keys[alice.userId].usage, ['user_signing']);
  });

  it('an identical re-upload needs no UIA; a different one answers 401 and then succeeds with the password', async () => {
    const same = await alice.post(UPLOAD, aliceCs.all());
    assert.equal(same.status, 200, JSON.stringify(same.body));
    const next = new CrossSigning(alice.userId);
    const challenge = await alice.post(UPLOAD, next.all());
    assert.equal(challenge.status, 401, JSON.stringify(challenge.body));
    assert.deepEqual(challenge.body.flows, [{ stages: ['m.login.password'] }]);
    assert.equal((await query(bob, [alice.userId])).master_keys[alice.userId].keys[aliceCs.id(aliceCs.master)], pub(aliceCs.master), 'unchanged');
    const wrong = await alice.post(UPLOAD, { ...next.all(), auth: { ...passwordAuth(alice, challenge.body.session), password: 'wrong' } });
    assert.equal(wrong.status, 401);
    const ok = await alice.post(UPLOAD, { ...next.all(), auth: passwordAuth(alice, challenge.body.session) });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal((await query(bob, [alice.userId])).master_keys[alice.userId].keys[next.id(next.master)], pub(next.master));
    aliceCs = next;
    // A self-signing key alone must be signed by the stored master key.
    expectError(await alice.post(UPLOAD, { self_signing_key: new CrossSigning(alice.userId).selfSigningKey() }), 400, 'M_INVALID_SIGNATURE');
  });

  it('a cross-signing key whose public key is a device ID is refused', async () => {
    const cs = new CrossSigning(carol.userId);
    const devId = pub(cs.master);
    const login = await new Api(srv.url).post(`${V3}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'carol' }, password: PASSWORD, device_id: devId });
    assert.equal(login.status, 200);
    expectError(await carol.post(UPLOAD, { master_key: cs.masterKey() }), 403, 'M_FORBIDDEN');
  });

  it('signatures/upload: a device signed by the self-signing key shows up in /keys/query', async () => {
    const dk = aliceDev.deviceKeys();
    const signed = sign(dk, alice.userId, aliceCs.id(aliceCs.selfSigning), aliceCs.selfSigning);
    const r = await alice.post(SIGS, { [alice.userId]: { [alice.deviceId]: signed } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.failures, {});
    const q = await query(bob, [alice.userId]);
    const sigs = q.device_keys[alice.userId][alice.deviceId].signatures[alice.userId];
    assert.ok(sigs[aliceCs.id(aliceCs.selfSigning)], JSON.stringify(sigs));
    assert.ok(sigs[`ed25519:${alice.deviceId}`], 'the self-signature is still there');
  });

  it('signatures/upload: the master key signed by a device of the user', async () => {
    const signed = sign(aliceCs.masterKey(), alice.userId, `ed25519:${alice.deviceId}`, aliceDev.ed);
    const r = await alice.post(SIGS, { [alice.userId]: { [pub(aliceCs.master)]: signed } });
    assert.deepEqual(r.body.failures, {});
    const q = await query(bob, [alice.userId]);
    assert.ok(q.master_keys[alice.userId].signatures[alice.userId][`ed25519:${alice.deviceId}`]);
  });

  it('signatures/upload: per-key failures for bad signatures, unknown keys, wrong signers and mismatched objects', async () => {
    const dk = aliceDev.deviceKeys();
    const badSig = sign(dk, alice.userId, aliceCs.id(aliceCs.selfSigning), aliceCs.userSigning);
    const wrongSigner = sign(dk, alice.userId, aliceCs.id(aliceCs.userSigning), aliceCs.userSigning);
    const altered = sign({ ...dk, algorithms: ['x'] }, alice.userId, aliceCs.id(aliceCs.selfSigning), aliceCs.selfSigning);
    const r = await alice.post(SIGS, {
      [alice.userId]: { [alice.deviceId]: badSig, NODEVICE: { ...dk, device_id: 'NODEVICE' } },
      [carol.userId]: { [alice.deviceId]: wrongSigner },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.failures[alice.userId][alice.deviceId].errcode, 'M_INVALID_SIGNATURE');
    assert.equal(r.body.failures[alice.userId].NODEVICE.errcode, 'M_NOT_FOUND');
    assert.equal(r.body.failures[carol.userId][alice.deviceId].errcode, 'M_NOT_FOUND');
    const r2 = await alice.post(SIGS, { [alice.userId]: { [alice.deviceId]: wrongSigner } });
    assert.equal(r2.body.failures[alice.userId][alice.deviceId].errcode, 'M_INVALID_SIGNATURE');
    const r3 = await alice.post(SIGS, { [alice.userId]: { [alice.deviceId]: altered } });
    assert.equal(r3.body.failures[alice.userId][alice.deviceId].errcode, 'M_INVALID_SIGNATURE');
    const sigs = (await query(bob, [alice.userId])).device_keys[alice.userId][alice.deviceId].signatures[alice.userId];
    assert.deepEqual(Object.keys(sigs).sort(), [aliceCs.id(aliceCs.selfSigning), `ed25519:${alice.deviceId}`].sort(), 'nothing bad was stored');
  });

  it("signatures/upload: another user's master key signed with the user-signing key is shown only to the signer", async () => {
    assert.equal((await bob.post(UPLOAD, bobCs.all())).status, 200);
    const signed = sign(bobCs.masterKey(), alice.userId, aliceCs.id(aliceCs.userSigning), aliceCs.userSigning);
    const r = await alice.post(SIGS, { [bob.userId]: { [pub(bobCs.master)]: signed } });
    assert.deepEqual(r.body.failures, {});
    const seenByAlice = (await query(alice, [bob.userId])).master_keys[bob.userId].signatures;
    assert.ok(seenByAlice[alice.userId]?.[aliceCs.id(aliceCs.userSigning)], JSON.stringify(seenByAlice));
    const seenByCarol = (await query(carol, [bob.userId])).master_keys[bob.userId].signatures ?? {};
    assert.equal(seenByCarol[alice.userId], undefined, JSON.stringify(seenByCarol));
    // Signing with the self-signing key instead is refused.
    const wrong = sign(bobCs.masterKey(), alice.userId, aliceCs.id(aliceCs.selfSigning), aliceCs.selfSigning);
    const r2 = await alice.post(SIGS, { [bob.userId]: { [pub(bobCs.master)]: wrong } });
    assert.equal(r2.body.failures[bob.userId][pub(bobCs.master)].errcode, 'M_INVALID_SIGNATURE');
  });
});
