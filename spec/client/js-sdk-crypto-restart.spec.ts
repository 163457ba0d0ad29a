// A matrix-js-sdk 43 client with persistent stores restarting against a Hearth test server, as a
// reloaded Element tab does: the Rust crypto store and the sync store live in IndexedDB
// (fake-indexeddb, installed for this suite only), the client is stopped, and a NEW MatrixClient
// for the same user, device and access token opens the same databases and resumes /sync from the
// stored token. The requirement: a client that restarts from its last token does not
// re-upload keys, and its request rate stays flat while idle; it also keeps its Olm/Megolm
// sessions (decrypts bob's next message, bob decrypts its reply).

import { assert } from '../helpers/assert.js';
import type { IndexedDBStore, MatrixClient, MatrixEvent } from 'matrix-js-sdk';
import { installFakeIndexedDB, type FakeIndexedDB } from '../helpers/fake-idb.js';
import { passwordAuth, passwordLogin, V3 } from '../helpers/fixtures.js';
import { loadSdk, MapStorage, printSdkTrailOnFailure, RequestRecorder, sdkClient, stopClients, until, untilPrepared, type Creds, type RecordedRequest, type Sdk } from '../helpers/js-sdk.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

const PASSWORD = 'crypto restart password';
const DEVICE_ID = 'RESTARTING';
const SYNC = `${V3}/sync`;
const KEYS_UPLOAD = `${V3}/keys/upload`;
const KEYS_QUERY = `${V3}/keys/query`;
const CROSS_SIGNING_UPLOADS = [`${V3}/keys/device_signing/upload`, `${V3}/keys/signatures/upload`];

/** What a /sync answered (200s only), read from a clone of the response the SDK got. */
interface SeenSync {
  client: string;
  since: string | null;
  nextBatch: string;
  toDevice: unknown[];
  otkCounts: Record<string, number> | undefined;
  fallbackTypes: string[] | undefined;
}

describe('matrix-js-sdk 43 Rust crypto in IndexedDB: a client restarting from its last sync token', function () {
  this.timeout(30000);

  let sdk: Sdk;
  let srv: TestServer;
  let idb: FakeIndexedDB;
  const rec = new RequestRecorder();
  const running: MatrixClient[] = [];
  const syncs: SeenSync[] = [];
  /** `one_time_key_counts` of every 200 /keys/upload, by client. */
  const uploadReplies: { client: string; counts: Record<string, number> }[] = [];
  /** Unique per run, so no database name can collide with anything else in the process. */
  const prefix = `hearth-restart-${process.pid}-${Date.now()}`;
  const cryptoPrefix = `${prefix}-crypto`;
  const syncDbName = `${prefix}-sync`;
  /** alice's "localStorage" (filter ids), kept across the restart like the browser's. */
  const aliceStorage = new MapStorage();
  let aliceCreds: Creds;
  let bobCreds: Creds;
  let alice: MatrixClient;
  let aliceStore: IndexedDBStore;
  let bob: MatrixClient;
  let restarted: MatrixClient;
  let roomId: string;
  /** Index in rec.requests where the restarted client's traffic begins. */
  let restartFrom = 0;
  let lastNextBatch: string;
  let deviceKeysBefore: unknown;
  let ownKeysBefore: { ed25519: string; curve25519: string };

  const from = (client: string, start = 0) => rec.requests.slice(start).filter((r) => r.client === client);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  /** A client whose sync store and Rust crypto store are both in (fake) IndexedDB. */
  async function startPersistentClient(name: string): Promise<{ client: MatrixClient; store: IndexedDBStore }> {
    const store = new sdk.IndexedDBStore({ indexedDB: idb.indexedDB, localStorage: aliceStorage as unknown as Storage, dbName: syncDbName });
    const client = sdkClient(sdk, srv.url, rec, name, aliceCreds, { store });
    await store.startup(); // loads the saved sync (if any); must follow createClient
    running.push(client);
    await client.initRustCrypto({ useIndexedDB: true, cryptoDatabasePrefix: cryptoPrefix });
    await client.startClient({ initialSyncLimit: 20 });
    await untilPrepared(sdk, client, name);
    return { client, store };
  }

  /** The first timeline event of the room that decrypts to `body`. */
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
      await sleep(100);
    }
  }

  /**
   * Waits until none of `clients` has sent anything but a still-pending long-poll /sync for
   * `quietMs` (every other request settled), or fails after `timeoutMs`.
   */
  async function settle(clients: string[], quietMs: number, timeoutMs = 10000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const busy = () => rec.requests.filter((r) => clients.includes(r.client) && !r.settled && r.path !== SYNC).length;
    let count = rec.requests.length;
    let since = Date.now();
    for (;;) {
      await sleep(50);
      if (rec.requests.length !== count || busy() > 0) {
        count = rec.requests.length;
        since = Date.now();
      } else if (Date.now() - since >= quietMs) return;
      if (Date.now() > deadline) throw new Error(`clients never went quiet:\n${rec.describe(rec.requests.slice(-20))}`);
    }
  }

  /** Requests that failed other than expectedly: UIA 401s, no backup (404 M_NOT_FOUND), the MSC4143 probe (404 M_UNRECOGNIZED). */
  const unexpectedFailures = (list: RecordedRequest[]) =>
    list.filter((r) => r.settled && r.status >= 400 && r.status !== 401 && r.errcode !== 'M_NOT_FOUND' && !r.path.includes('/unstable/org.matrix.msc4143/'));

  before(async function () {
    idb = installFakeIndexedDB();
    sdk = await loadSdk();
    srv = await startTestServer();
    rec.hook = async (req, res) => {
      if (res.status !== 200 || (req.path !== SYNC && req.path !== KEYS_UPLOAD)) return;
      const body = (await res.clone().json()) as any;
      if (req.path === KEYS_UPLOAD) {
        uploadReplies.push({ client: req.client, counts: body.one_time_key_counts });
        return;
      }
      syncs.push({
        client: req.client,
        since: new URLSearchParams(req.query).get('since'),
        nextBatch: body.next_batch,
        toDevice: body.to_device?.events ?? [],
        otkCounts: body.device_one_time_keys_count,
        fallbackTypes: body.device_unused_fallback_key_types,
      });
    };
    const api = new Api(srv.url);
    await api.register('alice', PASSWORD);
    const b = await api.register('bob', PASSWORD);
    bobCreds = { userId: b.userId, accessToken: b.token!, deviceId: b.deviceId };
    // alice's restarting device: a password login with a fixed device_id.
    const login = await passwordLogin(api, 'alice', PASSWORD, { device_id: DEVICE_ID });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    assert.equal(login.body.device_id, DEVICE_ID);
    aliceCreds = { userId: login.body.user_id, accessToken: login.body.access_token, deviceId: DEVICE_ID };
  });

  afterEach(function () {
    printSdkTrailOnFailure(this, rec, 60, 30, (l) => /warn|error/i.test(l.slice(0, 12)));
  });

  after(async () => {
    await stopClients(running, rec);
    await srv?.stop();
    // Let the closed OlmMachines drop their IndexedDB connections before the globals go away.
    await sleep(50);
    idb?.uninstall();
  });

  it('alice (crypto + sync store in IndexedDB) uploads device keys and one-time keys, and sets up cross-signing', async () => {
    const bobClient = sdkClient(sdk, srv.url, rec, 'bob', bobCreds);
    running.push(bobClient);
    await bobClient.initRustCrypto({ useIndexedDB: false });
    await bobClient.startClient({ initialSyncLimit: 20 });
    bob = bobClient;
    ({ client: alice, store: aliceStore } = await startPersistentClient('alice'));
    await untilPrepared(sdk, bob, 'bob');

    const e2ee = srv.hearth.store.e2ee;
    for (const c of [aliceCreds, bobCreds]) {
      await until(null, [], () => rec.requests.some((r) => r.path === KEYS_UPLOAD && r.status === 200 && r.body?.device_keys?.device_id === c.deviceId), `${c.userId} to upload device keys`);
      assert.ok((await e2ee.getDeviceKeys([c.userId])).get(c.userId)?.get(c.deviceId), `${c.userId}'s device keys stored`);
      assert.ok(((await e2ee.countOneTimeKeys(c.userId, c.deviceId)).signed_curve25519 ?? 0) > 0, `${c.userId} has one-time keys`);
    }
    // The Rust store really is in IndexedDB: its databases exist in this suite's factory.
    const names = (await idb.indexedDB.databases()).map((d) => d.name);
    assert.ok(names.includes(`${cryptoPrefix}::matrix-sdk-crypto`), JSON.stringify(names));
    assert.ok(names.includes(`matrix-js-sdk:${syncDbName}`), JSON.stringify(names));

    await alice.getCrypto()!.bootstrapCrossSigning({
      authUploadDeviceSigningKeys: async (makeRequest) => {
        await makeRequest(passwordAuth(aliceCreds.userId, PASSWORD));
      },
    });
    assert.equal(await alice.getCrypto()!.isCrossSigningReady(), true);
    await pollUntil(async () => (await alice.getCrypto()!.getDeviceVerificationStatus(aliceCreds.userId, DEVICE_ID))?.crossSigningVerified, "alice's device to be cross-signed");
  });

  it('an encrypted DM between alice and bob: each side decrypts the other (Olm and Megolm sessions exist)', async () => {
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

    await alice.sendTextMessage(roomId, 'before the restart, from alice');
    await decrypted(bob, 'before the restart, from alice', 'bob to decrypt alice');
    await bob.sendTextMessage(roomId, 'before the restart, from bob');
    await decrypted(alice, 'before the restart, from bob', 'alice to decrypt bob');
    assert.ok(rec.requests.some((r) => r.client === 'bob' && r.path.startsWith(`${V3}/sendToDevice/m.room.encrypted/`) && r.status === 200), 'bob shared his room key over Olm');
  });

  it('a new MatrixClient for the same device resumes /sync from the stored token with the stored crypto identity', async () => {
    await settle(['alice', 'bob'], 800);
    ownKeysBefore = (await alice.getCrypto()!.getOwnDeviceKeys()) as { ed25519: string; curve25519: string };
    deviceKeysBefore = (await srv.hearth.store.e2ee.getDeviceKeys([aliceCreds.userId])).get(aliceCreds.userId)?.get(DEVICE_ID);
    const aliceSyncs = syncs.filter((s) => s.client === 'alice');
    lastNextBatch = aliceSyncs[aliceSyncs.length - 1].nextBatch;

    alice.stopClient();
    running.splice(running.indexOf(alice), 1);
    // IndexedDBStore writes the sync accumulator at most every 5 minutes; an app that is about to
    // go away forces the write (as on page unload).
    await aliceStore.save(true);
    assert.equal(await aliceStore.getSavedSyncToken(), lastNextBatch, 'the sync store saved the last next_batch alice processed');
    await aliceStore.destroy(); // closes its database connection, as a closed tab would
    await sleep(100);

    restartFrom = rec.requests.length;
    ({ client: restarted } = await startPersistentClient('alice-restarted'));
    assert.equal(restarted.getDeviceId(), DEVICE_ID);
    // PREPARED comes from the cached sync already; the first network /sync follows.
    const firstSync = await until(null, [], () => from('alice-restarted', restartFrom).find((r) => r.path === SYNC), 'the first /sync after the restart');
    const own = from('alice-restarted', restartFrom);
    assert.equal(new URLSearchParams(firstSync.query).get('since'), lastNextBatch, `the first /sync after the restart: ${firstSync.query}`);
    // Same filter id (from the kept localStorage), so no POST /filter either.
    assert.ok(!own.some((r) => r.method === 'POST' && r.path.endsWith('/filter')), rec.describe(own));

    const ownKeysAfter = await restarted.getCrypto()!.getOwnDeviceKeys();
    assert.deepEqual(ownKeysAfter, ownKeysBefore, 'the same identity keys: the Olm account came from the store');
    assert.equal(await restarted.getCrypto()!.isCrossSigningReady(), true, 'cross-signing private keys came from the store');
  });

  it('after the restart: no device-key re-upload, no key upload/query loop, and only the long-poll while idle', async () => {
    await settle(['alice-restarted', 'bob'], 1000);
    const e2ee = srv.hearth.store.e2ee;
    const afterRestart = from('alice-restarted', restartFrom);

    // Keys: the device keys were not uploaded again; at most one top-up of one-time keys.
    const uploads = afterRestart.filter((r) => r.path === KEYS_UPLOAD);
    assert.deepEqual(uploads.filter((r) => r.body && 'device_keys' in r.body), [], `device keys re-uploaded:\n${rec.describe(uploads)}`);
    assert.ok(uploads.length <= 1, `key uploads after the restart:\n${rec.describe(uploads)}\n${JSON.stringify(uploads.map((u) => Object.keys(u.body ?? {})))}`);
    const crossSigning = afterRestart.filter((r) => CROSS_SIGNING_UPLOADS.includes(r.path));
    assert.deepEqual(crossSigning, [], rec.describe(crossSigning));
    assert.deepEqual((await e2ee.getDeviceKeys([aliceCreds.userId])).get(aliceCreds.userId)?.get(DEVICE_ID), deviceKeysBefore, 'the stored device keys are unchanged');

    // The count the server reports is the count it holds, in every /sync and /keys/upload reply.
    const held = (await e2ee.countOneTimeKeys(aliceCreds.userId, DEVICE_ID)).signed_curve25519 ?? 0;
    const restartedSyncs = syncs.filter((s) => s.client === 'alice-restarted');
    assert.ok(restartedSyncs.length > 0);
    for (const s of restartedSyncs) {
      assert.ok(s.otkCounts, `device_one_time_keys_count missing in a /sync (since=${s.since})`);
      assert.ok(Array.isArray(s.fallbackTypes), `device_unused_fallback_key_types missing in a /sync (since=${s.since})`);
    }
    const lastCount = restartedSyncs[restartedSyncs.length - 1].otkCounts!.signed_curve25519 ?? 0;
    assert.equal(lastCount, held, 'the last reported signed_curve25519 count is what the server holds');
    for (const u of uploadReplies.filter((x) => x.client === 'alice-restarted')) assert.equal(u.counts.signed_curve25519 ?? 0, held, JSON.stringify(u));

    // Idle: over 3 s, alice sends nothing but (at most) a long-poll /sync; bob likewise.
    const start = rec.requests.length;
    const syncsAt = syncs.length;
    await sleep(3000);
    const idle = rec.requests.slice(start);
    for (const who of ['alice-restarted', 'bob']) {
      const mine = idle.filter((r) => r.client === who);
      assert.deepEqual(mine.filter((r) => r.path !== SYNC), [], `${who} while idle:\n${rec.describe(mine)}`);
      assert.ok(mine.length <= 2, `${who} sent ${mine.length} requests in 3 s idle:\n${rec.describe(mine)}`);
    }
    assert.ok(!idle.some((r) => r.path === KEYS_UPLOAD || r.path === KEYS_QUERY), rec.describe(idle));
    // Any /sync answered while idle was a timed-out long-poll, not an early return with content.
    for (const s of syncs.slice(syncsAt)) assert.deepEqual(s.toDevice, [], `to-device while idle: ${JSON.stringify(s)}`);
    // The query from the restart (if any) was a single one, not a loop.
    const queries = afterRestart.filter((r) => r.path === KEYS_QUERY);
    assert.ok(queries.length <= 2, `key queries after the restart:\n${rec.describe(queries)}`);
  });

  it('the restarted client decrypts history and a new message from bob; bob decrypts its reply', async () => {
    // The cached timeline (from the sync store) decrypts with the Megolm session from the crypto store.
    await decrypted(restarted, 'before the restart, from bob', 'the restarted client to decrypt the cached history');

    const claimsBefore = rec.requests.filter((r) => r.path === `${V3}/keys/claim`).length;
    await bob.sendTextMessage(roomId, 'after the restart, from bob');
    const ev = await decrypted(restarted, 'after the restart, from bob', 'the restarted client to decrypt bob');
    assert.equal(ev.getSender(), bobCreds.userId);
    await restarted.sendTextMessage(roomId, 'after the restart, from alice');
    await decrypted(bob, 'after the restart, from alice', 'bob to decrypt the restarted client');
    // Both sides kept their sessions: no new one-time key claimed to re-establish Olm.
    assert.equal(rec.requests.filter((r) => r.path === `${V3}/keys/claim`).length, claimsBefore, 'no /keys/claim after the restart');

    const page = await new Api(srv.url, aliceCreds.accessToken).get(`${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
    assert.ok(!JSON.stringify(page.body.chunk).includes('the restart'), 'no plaintext on the server');
  });

  it('no unexpected failures, no server errors, and no to-device message delivered twice to the restarted device', async () => {
    const failed = unexpectedFailures(rec.requests);
    assert.deepEqual(failed, [], rec.describe(failed));
    const serverErrors = rec.requests.filter((r) => r.status >= 500);
    assert.deepEqual(serverErrors, [], rec.describe(serverErrors));
    // alice's device, across both client objects: every to-device event at most once.
    const delivered = syncs.filter((s) => s.client === 'alice' || s.client === 'alice-restarted').flatMap((s) => s.toDevice.map((e) => JSON.stringify(e)));
    const dupes = delivered.filter((e, i) => delivered.indexOf(e) !== i);
    assert.deepEqual(dupes, [], 'a to-device message delivered again after its ack');
  });
});
