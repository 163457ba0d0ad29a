// Clients see one Matrix: real matrix-js-sdk clients with the Rust crypto stack, alice on server A
// and bob on server B (two real Hearth servers federating on loopback). An encrypted DM created
// with bob invited decrypts both ways; a device bob adds later decrypts what is sent after it
// appeared (its room key came as a to-device message across servers); presence crosses both ways;
// a change of bob's devices shows in alice's /sync device_lists.changed, his leaving in
// device_lists.left. Raw /sync checks use separate devices, so that they never acknowledge
// to-device messages meant for the SDK clients.

import { assert } from '../helpers/assert.js';
import type { MatrixClient, MatrixEvent } from 'matrix-js-sdk';
import { loadSdk, printSdkTrailOnFailure, RequestRecorder, sdkClient, stopClients, until, untilPrepared, type Creds, type Sdk } from '../helpers/js-sdk.js';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { closeFedRequests, startPair, syncUntil } from '../helpers/federation.js';
import { login, PASSWORD, syncToken, TestDevice, uploadDevice, type User } from '../api/keys-helpers.js';

const V3 = '/_matrix/client/v3';

describe('federation: an E2EE DM between alice@A and bob@B (matrix-js-sdk, Rust crypto)', function () {
  this.timeout(90_000);

  let sdk: Sdk;
  let a: TestServer;
  let b: TestServer;
  const rec = new RequestRecorder();
  const running: MatrixClient[] = [];
  let aliceCreds: Creds;
  let bobCreds: Creds;
  let alice: MatrixClient;
  let bob: MatrixClient;
  let roomId: string;
  /** Extra devices for raw /sync checks (they never take the SDK clients' to-device messages). */
  let aliceRaw: User;
  let bobRaw: User;

  async function register(srv: TestServer, name: string): Promise<Creds> {
    const u = await new Api(srv.url).register(name, PASSWORD);
    return { userId: u.userId, accessToken: u.token!, deviceId: u.deviceId };
  }

  async function startCryptoClient(srv: TestServer, name: string, creds: Creds): Promise<MatrixClient> {
    const c = sdkClient(sdk, srv.url, rec, name, creds);
    running.push(c);
    await c.initRustCrypto({ useIndexedDB: false });
    await c.startClient({ initialSyncLimit: 20 });
    await untilPrepared(sdk, c, name);
    return c;
  }

  function decrypted(c: MatrixClient, body: string, what: string): Promise<MatrixEvent> {
    return until(
      c as any,
      [sdk.MatrixEventEvent.Decrypted, sdk.RoomEvent.Timeline],
      () => (c.getRoom(roomId)?.getLiveTimeline().getEvents() ?? []).find((e) => e.isEncrypted() && !e.isBeingDecrypted() && !e.isDecryptionFailure() && e.getContent().body === body),
      what,
      30_000,
    );
  }

  async function pollUntil(cond: () => Promise<boolean | undefined>, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const authUpload = (creds: Creds) => async (makeRequest: (auth: Record<string, unknown> | null) => Promise<unknown>) => {
    await makeRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: creds.userId }, password: PASSWORD });
  };

  before(async () => {
    sdk = await loadSdk();
    ({ a, b } = await startPair());
    [aliceCreds, bobCreds] = await Promise.all([register(a, 'alice'), register(b, 'bob')]);
  });

  afterEach(function () {
    printSdkTrailOnFailure(this, rec, 60, 40, (l) => /warn|error/i.test(l.slice(0, 12)));
  });

  after(async () => {
    await stopClients(running, rec);
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
  });

  it('both clients upload keys and bootstrap cross-signing on their own server', async () => {
    [alice, bob] = await Promise.all([startCryptoClient(a, 'alice', aliceCreds), startCryptoClient(b, 'bob', bobCreds)]);
    for (const [c, creds] of [[alice, aliceCreds], [bob, bobCreds]] as const) {
      await until(null, [], () => rec.requests.some((r) => r.path === `${V3}/keys/upload` && r.status === 200 && r.body?.device_keys?.user_id === creds.userId), `${creds.userId} to upload device keys`);
      await c.getCrypto()!.bootstrapCrossSigning({ authUploadDeviceSigningKeys: authUpload(creds) });
      assert.equal(await c.getCrypto()!.isCrossSigningReady(), true);
    }
    assert.ok((await a.hearth.store.e2ee.getCrossSigningKeys(aliceCreds.userId)).master);
    assert.ok((await b.hearth.store.e2ee.getCrossSigningKeys(bobCreds.userId)).master);
  });

  it('an encrypted DM with bob invited at creation: each side decrypts the other', async () => {
    const res = await alice.createRoom({
      is_direct: true,
      invite: [bobCreds.userId],
      preset: sdk.Preset.TrustedPrivateChat,
      initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
    });
    roomId = res.room_id;
    await until(bob as any, [sdk.ClientEvent.Room, sdk.RoomMemberEvent.Membership], () => bob.getRoom(roomId)?.getMyMembership() === 'invite', 'bob to see the invite', 20_000);
    await bob.joinRoom(roomId);
    await until(alice as any, [sdk.RoomMemberEvent.Membership], () => alice.getRoom(roomId)?.getMember(bobCreds.userId)?.membership === 'join', 'alice to see bob join', 20_000);

    assert.equal(await bob.getCrypto()!.isEncryptionEnabledInRoom(roomId), true, "the room's state reached bob's client through B's /sync");
    await alice.sendTextMessage(roomId, 'hello bob, across servers');
    const atBob = await decrypted(bob, 'hello bob, across servers', 'bob to decrypt alice');
    assert.equal(atBob.getSender(), aliceCreds.userId);
    assert.equal(atBob.getWireType(), 'm.room.encrypted');
    await bob.sendTextMessage(roomId, 'hi alice, across servers');
    await decrypted(alice, 'hi alice, across servers', 'alice to decrypt bob');

    // Neither server saw plaintext.
    for (const [srv, creds] of [[a, aliceCreds], [b, bobCreds]] as const) {
      const page = await new Api(srv.url, creds.accessToken).get(`${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
      assert.equal(page.status, 200);
      assert.ok(!JSON.stringify(page.body.chunk).includes('across servers'), 'no plaintext on the server');
    }
    // Each client asked its own server for the other's keys, which asked the other server.
    const claims = rec.requests.filter((r) => r.path === `${V3}/keys/claim` && r.status === 200);
    assert.ok(claims.some((r) => r.client === 'alice' && r.body?.one_time_keys?.[bobCreds.userId]), rec.describe(claims));
    // Room keys went as to-device messages across servers, both ways (bob may reuse the Olm
    // session alice's message opened, so only alice necessarily claimed a one-time key).
    for (const [who, to] of [['alice', bobCreds.userId], ['bob', aliceCreds.userId]]) {
      assert.ok(rec.requests.some((r) => r.client === who && r.path.startsWith(`${V3}/sendToDevice/m.room.encrypted/`) && r.status === 200 && r.body?.messages?.[to]), `${who} sent room keys to ${to}`);
    }
    // Bob's cross-signing keys (public parts) are served by A, fetched from B.
    const q = await new Api(a.url, aliceCreds.accessToken).post(`${V3}/keys/query`, { device_keys: { [bobCreds.userId]: [] } });
    assert.deepEqual(q.body.failures, {});
    const bobMaster = (await b.hearth.store.e2ee.getCrossSigningKeys(bobCreds.userId)).master!;
    assert.deepEqual(q.body.master_keys[bobCreds.userId].keys, bobMaster.keys);
    assert.ok(q.body.self_signing_keys[bobCreds.userId]);
    assert.equal(q.body.user_signing_keys[bobCreds.userId], undefined, "another user's user-signing key stays private");
  });

  it('a device bob adds later decrypts what is sent after it appeared: its room key crossed as a to-device message', async () => {
    const login2 = await new Api(b.url).post(`${V3}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'bob' }, password: PASSWORD });
    assert.equal(login2.status, 200);
    const creds: Creds = { userId: login2.body.user_id, accessToken: login2.body.access_token, deviceId: login2.body.device_id };
    const bob2 = await startCryptoClient(b, 'bob2', creds);
    await until(null, [], () => bob2.getRoom(roomId)?.getMyMembership() === 'join', 'bob2 to see the room', 20_000);
    // Alice learns the new device through device_lists.changed in her /sync (an EDU from B).
    await pollUntil(async () => (await alice.getCrypto()!.getUserDeviceInfo([bobCreds.userId])).get(bobCreds.userId)?.has(creds.deviceId), "alice's client to learn bob's new device");

    await alice.sendTextMessage(roomId, 'for every bob device');
    await Promise.all([decrypted(bob2, 'for every bob device', 'bob2 to decrypt alice'), decrypted(bob, 'for every bob device', 'bob to decrypt alice')]);
    assert.ok(rec.requests.some((r) => r.client === 'alice' && r.path.startsWith(`${V3}/sendToDevice/`) && r.body?.messages?.[bobCreds.userId]?.[creds.deviceId]), 'alice sent bob2 a to-device message');
    await bob2.sendTextMessage(roomId, 'from bob\'s new device');
    await decrypted(alice, 'from bob\'s new device', 'alice to decrypt bob2');
  });

  it('no key request failed and no server error, on either side', async () => {
    const failed = rec.requests.filter((r) => r.settled && r.status >= 400 && r.status !== 401 && r.errcode !== 'M_NOT_FOUND' && !r.path.includes('/unstable/org.matrix.msc4143/'));
    assert.deepEqual(failed, [], rec.describe(failed));
  });

  it('presence crosses both ways', async () => {
    aliceRaw = await login(a.url, 'alice');
    bobRaw = await login(b.url, 'bob');
    const set = await aliceRaw.put(`${V3}/presence/${enc(aliceCreds.userId)}/status`, { presence: 'unavailable', status_msg: 'in a meeting at A' });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const atB = await syncUntil(bobRaw, (body) => (body.presence?.events ?? []).find((e: any) => e.sender === aliceCreds.userId && e.content.status_msg === 'in a meeting at A'));
    assert.equal(atB.content.presence, 'unavailable');
    const set2 = await bobRaw.put(`${V3}/presence/${enc(bobCreds.userId)}/status`, { presence: 'online', status_msg: 'back at B' });
    assert.equal(set2.status, 200);
    const atA = await syncUntil(aliceRaw, (body) => (body.presence?.events ?? []).find((e: any) => e.sender === bobCreds.userId && e.content.status_msg === 'back at B'));
    assert.equal(atA.content.presence, 'online');
    const get = await aliceRaw.get(`${V3}/presence/${enc(bobCreds.userId)}/status`);
    assert.equal(get.body.status_msg, 'back at B');
  });

  it('a change of bob\'s devices shows in alice\'s /sync device_lists.changed and /keys/changes; his leaving in device_lists.left', async () => {
    const since = await syncToken(aliceRaw);
    const bob3 = await login(b.url, 'bob');
    await uploadDevice(bob3, new TestDevice(bobCreds.userId, bob3.deviceId), 1);
    await syncUntil(aliceRaw, (body) => (body.device_lists?.changed?.includes(bobCreds.userId) ? true : undefined), 15_000, since);
    const kc = await aliceRaw.get(`${V3}/keys/changes?from=${enc(since)}`);
    assert.ok(kc.body.changed.includes(bobCreds.userId), JSON.stringify(kc.body));
    const q = await aliceRaw.post(`${V3}/keys/query`, { device_keys: { [bobCreds.userId]: [] } });
    assert.ok(q.body.device_keys[bobCreds.userId][bob3.deviceId], JSON.stringify(q.body));

    const since2 = await syncToken(aliceRaw);
    assert.equal((await bobRaw.post(`${V3}/rooms/${enc(roomId)}/leave`, {})).status, 200);
    const lists = await syncUntil(aliceRaw, (body) => (body.device_lists?.left?.includes(bobCreds.userId) ? body.device_lists : undefined), 15_000, since2);
    assert.ok(!lists.changed.includes(bobCreds.userId));
  });
});
