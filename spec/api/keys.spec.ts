// /keys/upload, /keys/query and /keys/claim over real HTTP with real ed25519 signatures (spec
// "End-to-end encryption"; data/api/client-server/keys.yaml), plus device deletion removing keys.

import { assert } from '../helpers/assert.js';
import { V3 } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { expectError, login, passwordAuth, PASSWORD, syncToken, TestDevice, uploadDevice, type User } from './keys-helpers.js';


describe('E2EE keys: upload, query, claim', function () {
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let aliceDev: TestDevice;
  /** IDs of alice's first stored one-time keys, oldest first. */
  let stored: string[] = [];
  let storedKeys: Record<string, unknown> = {};

  const query = async (u: Api, device_keys: Record<string, string[]>) => {
    const r = await u.post(`${V3}/keys/query`, { device_keys });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body;
  };
  const claim = (u: Api, one_time_keys: Record<string, Record<string, string>>) => u.post(`${V3}/keys/claim`, { one_time_keys });

  before(async () => {
    srv = await startTestServer();
    const api = new Api(srv.url);
    alice = await api.register('alice', PASSWORD);
    bob = await api.register('bob', PASSWORD);
    aliceDev = new TestDevice(alice.userId, alice.deviceId);
  });
  after(async () => srv.stop());

  it('an empty upload reports signed_curve25519: 0', async () => {
    const r = await bob.post(`${V3}/keys/upload`, {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { one_time_key_counts: { signed_curve25519: 0 } });
  });

  it('rejects device keys for another user or device, or not of the DeviceKeys shape, and stores none of them', async () => {
    const other = new TestDevice(alice.userId, 'NOTMYDEVICE');
    expectError(await alice.post(`${V3}/keys/upload`, { device_keys: other.deviceKeys() }), 400, 'M_INVALID_PARAM');
    const wrongUser = new TestDevice(bob.userId, alice.deviceId);
    expectError(await alice.post(`${V3}/keys/upload`, { device_keys: wrongUser.deviceKeys() }), 400, 'M_INVALID_PARAM');
    const keys = aliceDev.deviceKeys();
    const { signatures: _s, ...unsigned } = keys;
    // A field the DeviceKeys schema requires is missing: the spec's M_BAD_JSON.
    expectError(await alice.post(`${V3}/keys/upload`, { device_keys: unsigned }), 400, 'M_BAD_JSON');
    const { algorithms: _a, keys: _k, signatures: _s2, ...bare } = keys as any;
    expectError(await alice.post(`${V3}/keys/upload`, { device_keys: bare }), 400, 'M_BAD_JSON');
    expectError(await alice.post(`${V3}/keys/upload`, { device_keys: { ...keys, keys: 'nope' } }), 400, 'M_BAD_JSON');
    expectError(await alice.post(`${V3}/keys/upload`, { device_keys: { ...keys, keys: { [`ed25519:${alice.deviceId}`]: 5 } } }), 400, 'M_BAD_JSON');
    expectError(await alice.post(`${V3}/keys/upload`, { device_keys: { ...keys, algorithms: 'm.megolm.v1.aes-sha2' } }), 400, 'M_BAD_JSON');
    expectError(await alice.post(`${V3}/keys/upload`, { device_keys: { ...keys, signatures: { [alice.userId]: 'sig' } } }), 400, 'M_BAD_JSON');
    expectError(await alice.post(`${V3}/keys/upload`, { device_keys: { ...keys, signatures: { [alice.userId]: { [`ed25519:${alice.deviceId}`]: 1 } } } }), 400, 'M_BAD_JSON');
    // A valid device key with one bad one-time key: nothing at all is stored.
    const badOtk = { 'signed_curve25519:BAD': { ...aliceDev.signedKey(), key: 'tampered' } };
    expectError(await alice.post(`${V3}/keys/upload`, { device_keys: keys, one_time_keys: { ...aliceDev.otks(2), ...badOtk } }), 400, 'M_INVALID_SIGNATURE');
    const q = await query(bob, { [alice.userId]: [] });
    assert.deepEqual(q.device_keys[alice.userId], {});
    assert.deepEqual((await alice.post(`${V3}/keys/upload`, {})).body.one_time_key_counts, { signed_curve25519: 0 });
  });

  it('signed one-time keys need device keys first', async () => {
    const carol = await new Api(srv.url).register('carol', PASSWORD);
    const dev = new TestDevice(carol.userId, carol.deviceId);
    expectError(await carol.post(`${V3}/keys/upload`, { one_time_keys: dev.otks(1) }), 400, 'M_INVALID_PARAM');
  });

  it('stores device keys whose self-signature does not verify, as given: clients verify them (docs/api.md)', async () => {
    const erin = await new Api(srv.url).register('erin-placeholder', PASSWORD);
    // What SyTest uploads: placeholder key strings, no curve25519 key, a made-up signature.
    const placeholder = {
      user_id: erin.userId,
      device_id: erin.deviceId,
      algorithms: ['m.olm.curve25519-aes-sha256', 'm.megolm.v1.aes-sha'],
      keys: { [`ed25519:${erin.deviceId}`]: 'ed25519+key' },
      signatures: { [erin.userId]: { [`ed25519:${erin.deviceId}`]: 'self+signature' } },
    };
    const r = await erin.post(`${V3}/keys/upload`, { device_keys: placeholder });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const q = await query(bob, { [erin.userId]: [] });
    const { unsigned, ...served } = q.device_keys[erin.userId][erin.deviceId];
    assert.deepEqual(served, placeholder, 'served exactly as uploaded');
    assert.deepEqual(unsigned, {}, 'unsigned is there without a display name (as Synapse)');
    // Signed one-time keys still need a device ed25519 key that signed them: this device has none.
    const dev = new TestDevice(erin.userId, erin.deviceId);
    expectError(await erin.post(`${V3}/keys/upload`, { one_time_keys: dev.otks(1) }), 400, 'M_INVALID_SIGNATURE');
    // A device with a real key whose signature does not verify is stored too.
    const frank = await new Api(srv.url).register('frank-unverified', PASSWORD);
    const frankDev = new TestDevice(frank.userId, frank.deviceId);
    const tampered = { ...frankDev.deviceKeys(), algorithms: ['m.megolm.v1.aes-sha2'] };
    assert.equal((await frank.post(`${V3}/keys/upload`, { device_keys: tampered })).status, 200);
    assert.deepEqual((await query(bob, { [frank.userId]: [] })).device_keys[frank.userId][frank.deviceId].algorithms, ['m.megolm.v1.aes-sha2']);
  });

  it('stores device keys and one-time keys and counts them per algorithm', async () => {
    const first = aliceDev.otks(5);
    stored = Object.keys(first);
    storedKeys = first;
    const body = await uploadDevice(alice, aliceDev, 0, { one_time_keys: { ...first, 'curve25519:PLAIN': 'cGxhaW4' } });
    assert.deepEqual(body.one_time_key_counts, { signed_curve25519: 5, curve25519: 1 });
    // More keys later (device keys may be omitted) add up.
    const r = await alice.post(`${V3}/keys/upload`, { one_time_keys: aliceDev.otks(3) });
    assert.deepEqual(r.body.one_time_key_counts, { signed_curve25519: 8, curve25519: 1 });
  });

  it('an identical device-key re-upload changes nothing; different keys replace them and mark the list changed (as Synapse)', async () => {
    const edOf = async () => (await query(bob, { [alice.userId]: [] })).device_keys[alice.userId][alice.deviceId].keys[`ed25519:${alice.deviceId}`];
    const changedSince = async (since: string) => (await alice.get(`${V3}/keys/changes?from=${enc(since)}&to=${enc(await syncToken(alice))}`)).body.changed as string[];
    const s0 = await syncToken(alice);
    const same = await alice.post(`${V3}/keys/upload`, { device_keys: aliceDev.deviceKeys() });
    assert.equal(same.status, 200, JSON.stringify(same.body));
    assert.deepEqual(await changedSince(s0), [], 'an identical upload is no change');

    const replacement = new TestDevice(alice.userId, alice.deviceId);
    const r = await alice.post(`${V3}/keys/upload`, { device_keys: replacement.deviceKeys() });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(await edOf(), replacement.deviceKeys().keys![`ed25519:${alice.deviceId}` as never]);
    assert.deepEqual(await changedSince(s0), [alice.userId], "the user's own devices are told");
    // A signed one-time key is now checked against the new ed25519 key.
    expectError(await alice.post(`${V3}/keys/upload`, { one_time_keys: aliceDev.otks(1) }), 400, 'M_INVALID_SIGNATURE');

    // A replacement gets the same checks as a first upload.
    const other = new TestDevice(bob.userId, alice.deviceId);
    expectError(await alice.post(`${V3}/keys/upload`, { device_keys: other.deviceKeys() }), 400, 'M_INVALID_PARAM');
    expectError(await alice.post(`${V3}/keys/upload`, { device_keys: { ...replacement.deviceKeys(), algorithms: 'x' } }), 400, 'M_BAD_JSON');
    assert.equal(await edOf(), replacement.deviceKeys().keys![`ed25519:${alice.deviceId}` as never], 'a refused upload leaves the keys alone');

    // Back to the first keys (the later tests sign with them).
    assert.equal((await alice.post(`${V3}/keys/upload`, { device_keys: aliceDev.deviceKeys() })).status, 200);
    assert.equal(await edOf(), aliceDev.deviceKeys().keys![`ed25519:${alice.deviceId}` as never]);
    assert.equal((await alice.post(`${V3}/keys/upload`, {})).body.one_time_key_counts.signed_curve25519, 8, 'no key of the refused requests was stored');
  });

  it('a used one-time key ID with other content is 400 and nothing of that request is stored; same content is ignored', async () => {
    const existing = { [stored[0]]: aliceDev.signedKey() };
    expectError(await alice.post(`${V3}/keys/upload`, { one_time_keys: { ...aliceDev.otks(2), ...existing } }), 400, 'M_INVALID_PARAM');
    assert.equal((await alice.post(`${V3}/keys/upload`, {})).body.one_time_key_counts.signed_curve25519, 8);
    const same = await alice.post(`${V3}/keys/upload`, { one_time_keys: { [stored[1]]: storedKeys[stored[1]] } });
    assert.equal(same.status, 200, JSON.stringify(same.body));
    assert.equal(same.body.one_time_key_counts.signed_curve25519, 8, 'a retried upload adds nothing');
    expectError(await alice.post(`${V3}/keys/upload`, { one_time_keys: { 'signed_curve25519:X': { key: 'no-signature' } } }), 400, 'M_INVALID_SIGNATURE');
    expectError(await alice.post(`${V3}/keys/upload`, { one_time_keys: { nocolon: 'x' } }), 400, 'M_INVALID_PARAM');
  });

  it('/keys/query lists every requested user, device keys with display names, and remote users as failures', async () => {
    await new Api(alice.base, alice.token).put(`${V3}/devices/${enc(alice.deviceId)}`, { display_name: 'Alice phone' });
    const q = await query(bob, { [alice.userId]: [], '@nobody:localhost': [], [bob.userId]: [], '@far:remote.example': [] });
    assert.deepEqual(Object.keys(q.device_keys).sort(), ['@alice:localhost', '@bob:localhost', '@nobody:localhost']);
    assert.deepEqual(q.device_keys['@nobody:localhost'], {});
    assert.deepEqual(q.device_keys[bob.userId], {}, 'bob has a device but no keys');
    const k = q.device_keys[alice.userId][alice.deviceId];
    assert.equal(k.user_id, alice.userId);
    assert.equal(k.device_id, alice.deviceId);
    assert.deepEqual(k.unsigned, { device_display_name: 'Alice phone' });
    assert.ok(k.signatures[alice.userId][`ed25519:${alice.deviceId}`], 'the self-signature is kept');
    assert.ok(q.failures['remote.example'], JSON.stringify(q.failures));
    assert.deepEqual(q.master_keys, {});
    // A device list narrows the answer; an unknown device is simply absent.
    const phone = await login(srv.url, 'alice', { device_id: 'PHONE2' });
    const phoneDev = new TestDevice(alice.userId, 'PHONE2');
    await uploadDevice(phone, phoneDev, 1);
    const narrow = await query(bob, { [alice.userId]: ['PHONE2', 'GHOST'] });
    assert.deepEqual(Object.keys(narrow.device_keys[alice.userId]), ['PHONE2']);
    const all = await query(bob, { [alice.userId]: [] });
    assert.deepEqual(Object.keys(all.device_keys[alice.userId]).sort(), [alice.deviceId, 'PHONE2'].sort());
    expectError(await bob.post(`${V3}/keys/query`, { device_keys: { [alice.userId]: 'all' } }), 400, 'M_BAD_JSON');
  });

  it('/keys/claim hands out the oldest key once; unknown users and devices are absent, remote ones failures', async () => {
    const r = await claim(bob, {
      [alice.userId]: { [alice.deviceId]: 'signed_curve25519', NODEVICE: 'signed_curve25519' },
      '@nobody:localhost': { X: 'signed_curve25519' },
      '@far:remote.example': { X: 'signed_curve25519' },
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(Object.keys(r.body.one_time_keys), [alice.userId]);
    assert.deepEqual(Object.keys(r.body.one_time_keys[alice.userId]), [alice.deviceId]);
    const [[keyId, key]] = Object.entries(r.body.one_time_keys[alice.userId][alice.deviceId]) as [string, any][];
    assert.equal(keyId, stored[0]);
    assert.ok(key.signatures[alice.userId][`ed25519:${alice.deviceId}`]);
    assert.ok(r.body.failures['remote.example']);
    const counts = (await alice.post(`${V3}/keys/upload`, {})).body.one_time_key_counts;
    assert.equal(counts.signed_curve25519, 7);
    // A claimed key ID cannot come back with other content.
    expectError(await alice.post(`${V3}/keys/upload`, { one_time_keys: { [stored[0]]: aliceDev.signedKey() } }), 400, 'M_INVALID_PARAM');
  });

  it('20 concurrent claims for 10 one-time keys get 10 distinct keys, then the fallback key', async () => {
    const dave = await new Api(srv.url).register('dave', PASSWORD);
    const dev = new TestDevice(dave.userId, dave.deviceId);
    const fb1 = dev.fallback('FB1');
    await uploadDevice(dave, dev, 10, { fallback_keys: fb1 });
    const claimers = await Promise.all(Array.from({ length: 4 }, (_, i) => new Api(srv.url).register(`claimer${i}`, PASSWORD)));
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => claim(claimers[i % 4], { [dave.userId]: { [dave.deviceId]: 'signed_curve25519' } })),
    );
    const ids = results.map((r) => {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return Object.keys(r.body.one_time_keys[dave.userId][dave.deviceId])[0];
    });
    const otkIds = ids.filter((id) => id !== 'signed_curve25519:FB1');
    assert.equal(otkIds.length, 10, ids.join(','));
    assert.equal(new Set(otkIds).size, 10, 'no one-time key handed out twice');
    assert.equal(ids.filter((id) => id === 'signed_curve25519:FB1').length, 10);
    const store = srv.hearth.store.e2ee;
    assert.deepEqual(await store.getUnusedFallbackKeyTypes(dave.userId, dave.deviceId), [], 'the fallback key is marked used');
    // A retried upload of that same key does not make it unused again.
    assert.equal((await dave.post(`${V3}/keys/upload`, { fallback_keys: fb1 })).status, 200);
    assert.deepEqual(await store.getUnusedFallbackKeyTypes(dave.userId, dave.deviceId), []);
    // A new fallback key replaces the used one and is unused.
    const up = await dave.post(`${V3}/keys/upload`, { fallback_keys: dev.fallback('FB2') });
    assert.deepEqual(up.body.one_time_key_counts, { signed_curve25519: 0 });
    assert.deepEqual(await store.getUnusedFallbackKeyTypes(dave.userId, dave.deviceId), ['signed_curve25519']);
    const again = await claim(bob, { [dave.userId]: { [dave.deviceId]: 'signed_curve25519' } });
    assert.deepEqual(Object.keys(again.body.one_time_keys[dave.userId][dave.deviceId]), ['signed_curve25519:FB2']);
    expectError(await dave.post(`${V3}/keys/upload`, { fallback_keys: { 'signed_curve25519:F': { key: 'x', fallback: true } } }), 400, 'M_INVALID_SIGNATURE');
  });

  it('/sync reports device_one_time_keys_count and device_unused_fallback_key_types', async () => {
    const erin = await new Api(srv.url).register('erin', PASSWORD);
    const dev = new TestDevice(erin.userId, erin.deviceId);
    await uploadDevice(erin, dev, 3, { fallback_keys: dev.fallback('F') });
    const s = await erin.get(`${V3}/sync?timeout=0`);
    assert.equal(s.status, 200);
    assert.deepEqual(s.body.device_one_time_keys_count, { signed_curve25519: 3 });
    assert.deepEqual(s.body.device_unused_fallback_key_types, ['signed_curve25519']);
    // Four claims: three one-time keys, then the fallback key, which /sync then reports as used.
    for (let i = 0; i < 4; i++) await claim(bob, { [erin.userId]: { [erin.deviceId]: 'signed_curve25519' } });
    const s2 = await erin.get(`${V3}/sync?timeout=0&since=${enc(s.body.next_batch)}`);
    assert.deepEqual(s2.body.device_one_time_keys_count, { signed_curve25519: 0 }, 'present even when zero');
    assert.deepEqual(s2.body.device_unused_fallback_key_types, []);
  });

  it('deleting a device removes its keys, one-time keys and pending to-device messages', async () => {
    const tablet = await login(srv.url, 'alice', { device_id: 'TABLET' });
    await uploadDevice(tablet, new TestDevice(alice.userId, 'TABLET'), 4);
    const sent = await bob.put(`${V3}/sendToDevice/m.test/${Date.now()}`, { messages: { [alice.userId]: { TABLET: { n: 1 } } } });
    assert.equal(sent.status, 200);
    const store = srv.hearth.store;
    assert.equal((await store.e2ee.getToDevice(alice.userId, 'TABLET', store.currentPosition(), 10)).length, 1);
    const path = `${V3}/devices/TABLET`;
    const first = await alice.req('DELETE', path, {});
    assert.equal(first.status, 401);
    const del = await alice.req('DELETE', path, { auth: passwordAuth(alice, first.body.session) });
    assert.equal(del.status, 200, JSON.stringify(del.body));
    const q = await query(bob, { [alice.userId]: [] });
    assert.ok(!('TABLET' in q.device_keys[alice.userId]), JSON.stringify(Object.keys(q.device_keys[alice.userId])));
    const c = await claim(bob, { [alice.userId]: { TABLET: 'signed_curve25519' } });
    assert.deepEqual(c.body.one_time_keys, {});
    // The store itself no longer holds anything for the device (not just hidden by the API).
    assert.equal((await store.e2ee.getDeviceKeys([alice.userId])).get(alice.userId)?.has('TABLET') ?? false, false);
    assert.deepEqual(await store.e2ee.countOneTimeKeys(alice.userId, 'TABLET'), {});
    assert.equal((await store.e2ee.getToDevice(alice.userId, 'TABLET', store.currentPosition(), 10)).length, 0);
  });
});
