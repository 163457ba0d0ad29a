// An encrypted DM between a Hearth user and a Synapse user, with real matrix-js-sdk clients and
// the Rust crypto stack (one client per server, each talking only to its own server): device
// and one-time keys are queried and claimed across federation (user/keys/query,
// user/keys/claim), room keys travel as m.direct_to_device, and each side decrypts the other,
// in a DM created on either side.
// Synapse is started through bench/peers/synapse/ctl as in synapse.spec.ts (never skipped: a
// Synapse that cannot be installed or started fails the before-hook with the reason).

import { assert } from '../helpers/assert.js';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MatrixClient, MatrixEvent } from 'matrix-js-sdk';
import { loadSdk, printSdkTrailOnFailure, RequestRecorder, sdkClient, stopClients, until, untilPrepared, type Creds, type Sdk } from '../helpers/js-sdk.js';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { ctl, freePort, startHearth } from '../helpers/synapse.js';
import { PASSWORD } from '../api/keys-helpers.js';

const V3 = '/_matrix/client/v3';

describe('federation: an E2EE DM between alice@Hearth and sam@Synapse (matrix-js-sdk, Rust crypto)', function () {
  this.timeout(90_000);
  let sdk: Sdk;
  let runDir: string;
  let synEnv: Record<string, string> | undefined;
  let synapseUrl: string;
  let hearth: TestServer;
  const rec = new RequestRecorder();
  const running: MatrixClient[] = [];
  let aliceCreds: Creds;
  let samCreds: Creds;
  let alice: MatrixClient;
  let sam: MatrixClient;
  let roomId: string;

  const register = async (base: string, name: string): Promise<Creds> => {
    const u = await new Api(base).register(name, PASSWORD);
    return { userId: u.userId, accessToken: u.token!, deviceId: u.deviceId };
  };
  const startCryptoClient = async (base: string, name: string, creds: Creds): Promise<MatrixClient> => {
    const c = sdkClient(sdk, base, rec, name, creds);
    running.push(c);
    await c.initRustCrypto({ useIndexedDB: false });
    await c.startClient({ initialSyncLimit: 20 });
    await untilPrepared(sdk, c, name);
    return c;
  };
  const decrypted = (c: MatrixClient, body: string, what: string): Promise<MatrixEvent> =>
    until(
      c as any,
      [sdk.MatrixEventEvent.Decrypted, sdk.RoomEvent.Timeline],
      () => (c.getRoom(roomId)?.getLiveTimeline().getEvents() ?? []).find((e) => e.isEncrypted() && !e.isBeingDecrypted() && !e.isDecryptionFailure() && e.getContent().body === body),
      what,
      40_000,
    );
  const authUpload = (creds: Creds) => async (makeRequest: (auth: Record<string, unknown> | null) => Promise<unknown>) => {
    await makeRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: creds.userId }, password: PASSWORD });
  };

  before(async function () {
    this.timeout(15 * 60_000); // the first run installs matrix-synapse into the venv
    sdk = await loadSdk();
    const [clientPort, fedPort, hearthPort] = [await freePort(), await freePort(), await freePort()];
    runDir = mkdtempSync(join(tmpdir(), 'hearth-synapse-e2ee-'));
    synEnv = { SYNAPSE_RUN_DIR: runDir, SYNAPSE_PORT: String(clientPort), SYNAPSE_FEDERATION_PORT: String(fedPort), SYNAPSE_START_TIMEOUT: '180' };
    await ctl('install', synEnv, 14 * 60_000);
    await ctl('start', synEnv, 200_000);
    synapseUrl = `http://127.0.0.1:${clientPort}`;
    hearth = await startHearth(hearthPort);
    [aliceCreds, samCreds] = await Promise.all([register(hearth.url, 'alice'), register(synapseUrl, 'sam')]);
  });

  afterEach(function () {
    printSdkTrailOnFailure(this, rec, 60, 40, (l) => /warn|error/i.test(l.slice(0, 12)));
  });

  after(async function () {
    this.timeout(60_000);
    await stopClients(running, rec);
    await hearth?.stop();
    if (synEnv) await ctl('stop', synEnv, 30_000).catch((err: unknown) => console.error(err));
    if (runDir && process.env.HEARTH_KEEP_SYNAPSE_RUN === undefined) rmSync(runDir, { recursive: true, force: true });
  });

  it('both clients upload keys and bootstrap cross-signing on their own server', async () => {
    [alice, sam] = await Promise.all([startCryptoClient(hearth.url, 'alice', aliceCreds), startCryptoClient(synapseUrl, 'sam', samCreds)]);
    for (const [c, creds] of [[alice, aliceCreds], [sam, samCreds]] as const) {
      await until(null, [], () => rec.requests.some((r) => r.path === `${V3}/keys/upload` && r.status === 200 && r.body?.device_keys?.user_id === creds.userId), `${creds.userId} to upload device keys`);
      await c.getCrypto()!.bootstrapCrossSigning({ authUploadDeviceSigningKeys: authUpload(creds) });
      assert.equal(await c.getCrypto()!.isCrossSigningReady(), true);
    }
  });

  it('an encrypted DM created on Hearth with sam invited: each side decrypts the other', async () => {
    const res = await alice.createRoom({
      is_direct: true,
      invite: [samCreds.userId],
      preset: sdk.Preset.TrustedPrivateChat,
      initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
    });
    roomId = res.room_id;
    await until(sam as any, [sdk.ClientEvent.Room, sdk.RoomMemberEvent.Membership], () => sam.getRoom(roomId)?.getMyMembership() === 'invite', 'sam to see the invite', 30_000);
    await sam.joinRoom(roomId, { viaServers: [aliceCreds.userId.split(':').slice(1).join(':')] });
    await until(alice as any, [sdk.RoomMemberEvent.Membership], () => alice.getRoom(roomId)?.getMember(samCreds.userId)?.membership === 'join', 'alice to see sam join', 30_000);
    assert.equal(await sam.getCrypto()!.isEncryptionEnabledInRoom(roomId), true);

    await alice.sendTextMessage(roomId, 'hello sam, from Hearth');
    const atSam = await decrypted(sam, 'hello sam, from Hearth', 'sam to decrypt alice');
    assert.equal(atSam.getSender(), aliceCreds.userId);
    assert.equal(atSam.getWireType(), 'm.room.encrypted');
    await sam.sendTextMessage(roomId, 'hi alice, from Synapse');
    await decrypted(alice, 'hi alice, from Synapse', 'alice to decrypt sam');

    // Neither server saw plaintext.
    for (const [base, creds] of [[hearth.url, aliceCreds], [synapseUrl, samCreds]] as const) {
      const page = await new Api(base, creds.accessToken).get(`${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
      assert.equal(page.status, 200);
      assert.ok(!JSON.stringify(page.body.chunk).includes('from Hearth') && !JSON.stringify(page.body.chunk).includes('from Synapse'), 'no plaintext on the server');
    }
    // Hearth answered alice's key query for sam from Synapse (cross-signing keys included).
    const q = await new Api(hearth.url, aliceCreds.accessToken).post(`${V3}/keys/query`, { device_keys: { [samCreds.userId]: [] } });
    assert.deepEqual(q.body.failures, {});
    assert.ok(q.body.device_keys[samCreds.userId]?.[samCreds.deviceId], JSON.stringify(q.body));
    assert.ok(q.body.master_keys[samCreds.userId]);
    // Room keys went as to-device messages across servers, both ways.
    for (const [who, to] of [['alice', samCreds.userId], ['sam', aliceCreds.userId]]) {
      assert.ok(rec.requests.some((r) => r.client === who && r.path.startsWith(`${V3}/sendToDevice/m.room.encrypted/`) && r.status === 200 && r.body?.messages?.[to]), `${who} sent room keys to ${to}`);
    }
  });

  it('an encrypted DM created on Synapse with alice invited: each side decrypts the other', async () => {
    const res = await sam.createRoom({
      is_direct: true,
      invite: [aliceCreds.userId],
      preset: sdk.Preset.TrustedPrivateChat,
      initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
    });
    roomId = res.room_id;
    await until(alice as any, [sdk.ClientEvent.Room, sdk.RoomMemberEvent.Membership], () => alice.getRoom(roomId)?.getMyMembership() === 'invite', 'alice to see the invite', 30_000);
    await alice.joinRoom(roomId);
    await until(sam as any, [sdk.RoomMemberEvent.Membership], () => sam.getRoom(roomId)?.getMember(aliceCreds.userId)?.membership === 'join', 'sam to see alice join', 30_000);
    assert.equal(await alice.getCrypto()!.isEncryptionEnabledInRoom(roomId), true);
    await sam.sendTextMessage(roomId, 'second room, from Synapse');
    await decrypted(alice, 'second room, from Synapse', 'alice to decrypt sam');
    await alice.sendTextMessage(roomId, 'second room, from Hearth');
    await decrypted(sam, 'second room, from Hearth', 'sam to decrypt alice');
  });

  it("Synapse's log holds no complaint about Hearth's events or EDUs", async () => {
    const logPath = join(runDir, 'homeserver.log');
    assert.ok(existsSync(logPath));
    const lines = readFileSync(logPath, 'utf8').split('\n');
    const bad = lines.filter((l) => /Signature check failed|Ignoring PDU|Ignoring received event|denied|Failed to verify|failed auth|Rejecting|failed to validate/i.test(l));
    assert.deepEqual(bad, []);
    const warned = lines.filter((l) => / - (WARNING|ERROR|CRITICAL) - /.test(l) && /synapse\.(federation|handlers\.(federation|device|e2e)|crypto|event_auth|http\.matrixfederationclient|state)/.test(l));
    assert.deepEqual(warned, []);
  });
});
