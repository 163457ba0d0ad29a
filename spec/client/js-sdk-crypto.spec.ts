// Real matrix-js-sdk 43 clients with the Rust crypto stack (matrix-sdk-crypto-wasm) against a
// Hearth test server: key upload, cross-signing bootstrap through UIA, an encrypted DM decrypted
// on both sides, a later device of the same user decrypting what is sent after it appeared, and
// no key upload/query loops while idle. Every request is recorded; failures print the tail.

import { assert } from '../helpers/assert.js';
import type { MatrixClient, MatrixEvent } from 'matrix-js-sdk';
import { loadSdk, printSdkTrailOnFailure, RequestRecorder, sdkClient, stopClients, until, untilPrepared, type Creds, type Sdk } from '../helpers/js-sdk.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

const PASSWORD = 'crypto test password';
const KEYS_UPLOAD = '/_matrix/client/v3/keys/upload';
const KEYS_QUERY = '/_matrix/client/v3/keys/query';

describe('matrix-js-sdk 43 Rust crypto against Hearth', function () {
  this.timeout(30000);

  let sdk: Sdk;
  let srv: TestServer;
  const rec = new RequestRecorder();
  const running: MatrixClient[] = [];
  let aliceCreds: Creds;
  let bobCreds: Creds;
  let alice: MatrixClient;
  let bob: MatrixClient;
  let alice2: MatrixClient | undefined;
  let roomId: string;

  async function register(name: string): Promise<Creds> {
    const u = await new Api(srv.url).register(name, PASSWORD);
    return { userId: u.userId, accessToken: u.token!, deviceId: u.deviceId };
  }

  /** Creates a client, loads the Rust crypto (in memory) and waits for its first sync. */
  async function startCryptoClient(name: string, creds: Creds): Promise<MatrixClient> {
    const c = sdkClient(sdk, srv.url, rec, name, creds);
    running.push(c);
    await c.initRustCrypto({ useIndexedDB: false });
    await c.startClient({ initialSyncLimit: 20 });
    await untilPrepared(sdk, c, name);
    return c;
  }

  /** The first timeline event of the room that decrypts to `body` (failing fast on a decryption failure). */
  function decrypted(c: MatrixClient, body: string, what: string): Promise<MatrixEvent> {
    return until(
      c as any,
      [sdk.MatrixEventEvent.Decrypted, sdk.RoomEvent.Timeline],
      () => {
        const events = c.getRoom(roomId)?.getLiveTimeline().getEvents() ?? [];
        return events.find((e) => e.isEncrypted() && !e.isBeingDecrypted() && !e.isDecryptionFailure() && e.getContent().body === body);
      },
      what,
      15000,
    );
  }

  async function pollUntil(cond: () => Promise<boolean | undefined>, what: string, timeoutMs = 10000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const authUpload = (creds: Creds) => async (makeRequest: (auth: Record<string, unknown> | null) => Promise<unknown>) => {
    await makeRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: creds.userId }, password: PASSWORD });
  };

  before(async function () {
    sdk = await loadSdk();
    srv = await startTestServer();
    [aliceCreds, bobCreds] = await Promise.all([register('alice'), register('bob')]);
  });

  afterEach(function () {
    printSdkTrailOnFailure(this, rec, 60, 30, (l) => /warn|error/i.test(l.slice(0, 12)));
  });

  after(async () => {
    await stopClients(running, rec);
    await srv?.stop();
  });

  it('loads the Rust crypto on Node 20 and uploads device keys and one-time keys', async () => {
    [alice, bob] = await Promise.all([startCryptoClient('alice', aliceCreds), startCryptoClient('bob', bobCreds)]);
    const store = srv.hearth.store.e2ee;
    for (const c of [aliceCreds, bobCreds]) {
      await until(null, [], () => rec.requests.some((r) => r.path === KEYS_UPLOAD && r.status === 200 && r.body?.device_keys?.user_id === c.userId), `${c.userId} to upload device keys`);
      const keys = (await store.getDeviceKeys([c.userId])).get(c.userId)?.get(c.deviceId);
      assert.ok(keys, 'device keys stored');
      const counts = await store.countOneTimeKeys(c.userId, c.deviceId);
      assert.ok((counts.signed_curve25519 ?? 0) > 0, JSON.stringify(counts));
    }
    const own = await alice.getCrypto()!.getUserDeviceInfo([aliceCreds.userId], true);
    assert.ok(own.get(aliceCreds.userId)?.has(aliceCreds.deviceId), 'the SDK sees its own device through /keys/query');
  });

  it('bootstraps cross-signing through UIA; the device ends up signed by the self-signing key', async () => {
    for (const [c, creds] of [[alice, aliceCreds], [bob, bobCreds]] as const) {
      await c.getCrypto()!.bootstrapCrossSigning({ authUploadDeviceSigningKeys: authUpload(creds) });
      assert.equal(await c.getCrypto()!.isCrossSigningReady(), true, `${creds.userId} cross-signing ready`);
      const cs = await srv.hearth.store.e2ee.getCrossSigningKeys(creds.userId);
      assert.ok(cs.master && cs.self_signing && cs.user_signing, JSON.stringify(Object.keys(cs)));
      // The Rust SDK uploads the master key already signed by the device, and the device's
      // signature by the self-signing key through /keys/signatures/upload.
      const masterSigs = (cs.master!.signatures as Record<string, Record<string, string>>)[creds.userId];
      assert.ok(masterSigs[`ed25519:${creds.deviceId}`], `the master key signed by the device: ${JSON.stringify(masterSigs)}`);
      const signatures = await srv.hearth.store.e2ee.getSignatures([creds.userId]);
      const sskPub = Object.values(cs.self_signing!.keys as Record<string, string>)[0];
      assert.ok(
        signatures.some((x) => x.targetKeyId === creds.deviceId && x.signerKeyId === `ed25519:${sskPub}`),
        `the device signed by the self-signing key: ${JSON.stringify(signatures)}`,
      );
      // The SDK sees its device's new signature once device_lists.changed makes it re-query.
      await pollUntil(async () => (await c.getCrypto()!.getDeviceVerificationStatus(creds.userId, creds.deviceId))?.crossSigningVerified, `${creds.userId}'s device to be cross-signed`);
    }
    const bad = rec.requests.filter((r) => r.path.includes('/keys/') && r.status >= 400 && r.status !== 401);
    assert.deepEqual(bad, [], rec.describe(bad));
    const sigs = rec.requests.filter((r) => r.path === '/_matrix/client/v3/keys/signatures/upload');
    assert.ok(sigs.length > 0 && sigs.every((r) => r.status === 200), rec.describe(sigs));
  });

  it('resetting cross-signing goes through the UIA 401 and succeeds with the password (as Element does it)', async () => {
    const store = srv.hearth.store.e2ee;
    const before = (await store.getCrossSigningKeys(aliceCreds.userId)).master;
    const from = rec.requests.length;
    await alice.getCrypto()!.bootstrapCrossSigning({
      setupNewCrossSigning: true,
      // Element first sends no auth, then answers the 401 with the user's password.
      authUploadDeviceSigningKeys: async (makeRequest) => {
        try {
          await makeRequest(null);
        } catch (err: any) {
          assert.equal(err.httpStatus, 401, String(err));
          assert.deepEqual(err.data.flows, [{ stages: ['m.login.password'] }]);
          await makeRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: aliceCreds.userId }, password: PASSWORD, session: err.data.session });
        }
      },
    });
    const uploads = rec.requests.slice(from).filter((r) => r.path === '/_matrix/client/v3/keys/device_signing/upload');
    assert.deepEqual(uploads.map((r) => r.status), [401, 200], rec.describe(uploads));
    const after = (await store.getCrossSigningKeys(aliceCreds.userId)).master;
    assert.notDeepEqual(after?.keys, before?.keys, 'a new master key');
    await pollUntil(async () => (await alice.getCrypto()!.getDeviceVerificationStatus(aliceCreds.userId, aliceCreds.deviceId))?.crossSigningVerified, 'the device to be signed by the new identity');
  });

  it('an encrypted DM: each side decrypts the other', async () => {
    const res = await alice.createRoom({
      is_direct: true,
      invite: [bobCreds.userId],
      preset: sdk.Preset.TrustedPrivateChat,
      initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
    });
    roomId = res.room_id;
    await until(bob as any, [sdk.ClientEvent.Room, sdk.RoomMemberEvent.Membership], () => bob.getRoom(roomId)?.getMyMembership() === 'invite', 'bob to see the invite');
    await bob.joinRoom(roomId);
    await until(alice as any, [sdk.RoomMemberEvent.Membership], () => alice.getRoom(roomId)?.getMember(bobCreds.userId)?.membership === 'join', 'alice to see bob join');
    assert.equal(await alice.getCrypto()!.isEncryptionEnabledInRoom(roomId), true);

    await alice.sendTextMessage(roomId, 'hello bob, secretly');
    const atBob = await decrypted(bob, 'hello bob, secretly', 'bob to decrypt alice');
    assert.equal(atBob.getSender(), aliceCreds.userId);
    assert.equal(atBob.getWireType(), 'm.room.encrypted', 'the server relayed ciphertext');

    await bob.sendTextMessage(roomId, 'hi alice, secretly');
    await decrypted(alice, 'hi alice, secretly', 'alice to decrypt bob');

    // The server only ever saw ciphertext.
    const page = await new Api(srv.url, aliceCreds.accessToken).get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
    const bodies = JSON.stringify(page.body.chunk);
    assert.ok(!bodies.includes('secretly'), 'no plaintext on the server');
    // Room keys travelled as to-device messages.
    assert.ok(rec.requests.some((r) => r.path.startsWith('/_matrix/client/v3/sendToDevice/m.room.encrypted/') && r.status === 200));
    assert.ok(rec.requests.some((r) => r.path === '/_matrix/client/v3/keys/claim' && r.status === 200));
  });

  it('a new device of alice, logged in later, decrypts what is sent after it appeared', async () => {
    const login = await new Api(srv.url).post('/_matrix/client/v3/login', {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: 'alice' },
      password: PASSWORD,
    });
    assert.equal(login.status, 200);
    const creds: Creds = { userId: login.body.user_id, accessToken: login.body.access_token, deviceId: login.body.device_id };
    alice2 = await startCryptoClient('alice2', creds);
    const a2 = alice2;
    await until(null, [], () => a2.getRoom(roomId)?.getMyMembership() === 'join', 'alice2 to see the room');
    // Bob learns about the new device through device_lists.changed in his /sync.
    await pollUntil(
      async () => (await bob.getCrypto()!.getUserDeviceInfo([aliceCreds.userId])).get(aliceCreds.userId)?.has(creds.deviceId),
      "bob's client to learn alice's new device",
    );

    await bob.sendTextMessage(roomId, 'for every alice device');
    await Promise.all([decrypted(a2, 'for every alice device', 'alice2 to decrypt bob'), decrypted(alice, 'for every alice device', 'alice to decrypt bob')]);
    await alice.sendTextMessage(roomId, 'from the old device');
    await Promise.all([decrypted(a2, 'from the old device', 'alice2 to decrypt alice'), decrypted(bob, 'from the old device', 'bob to decrypt alice')]);
  });

  it('stays quiet when idle: no /keys/upload or /keys/query loops, no failed key requests', async () => {
    // Let pending key traffic (the new device's upload, the others' queries) settle first.
    await new Promise((r) => setTimeout(r, 500));
    const start = rec.requests.length;
    await new Promise((r) => setTimeout(r, 3000));
    const idle = rec.requests.slice(start);
    const uploads = idle.filter((r) => r.path === KEYS_UPLOAD);
    const queries = idle.filter((r) => r.path === KEYS_QUERY);
    assert.ok(uploads.length <= 1, `uploads while idle:\n${rec.describe(uploads)}`);
    assert.ok(queries.length <= 1, `queries while idle:\n${rec.describe(queries)}`);
    assert.ok(idle.length <= 12, `requests while idle (3 clients, long-polling):\n${rec.describe(idle)}`);
    // Expected refusals: no backup yet (404 M_NOT_FOUND), the MSC4143 probe (404 M_UNRECOGNIZED).
    const failed = rec.requests.filter((r) => r.settled && r.status >= 400 && r.status !== 401 && r.errcode !== 'M_NOT_FOUND' && !r.path.includes('/unstable/org.matrix.msc4143/'));
    assert.deepEqual(failed, [], rec.describe(failed));
    const serverErrors = rec.requests.filter((r) => r.status >= 500);
    assert.deepEqual(serverErrors, [], rec.describe(serverErrors));
  });
});
