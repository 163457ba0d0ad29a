// A local user's receipt, device-list update and cross-signing update reach the other servers
// even when the server dies right after the write's commit (src/receipts/receipt-service.ts
// `outbound`, src/federation/device-list-outbox.ts): server A runs as a child process (SQLite,
// synchronous: full) and is SIGKILLed by the HEARTH_TEST_KILL_AFTER_COMMIT hook, which names a
// user: right after that user's receipt or device-list change is committed, where the EDU used to
// be queued in a separate write. Restarted, A must push the EDU to server B (a real Hearth in
// this process whose /send handler records what arrives) with nothing else happening: B has no
// other way to learn of it.

import { assert } from '../helpers/assert.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { ChildServer, freePort } from '../helpers/child-server.js';
import { closeFedRequests, startFederated, waitFor } from '../helpers/federation.js';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { CrossSigning, PASSWORD, TestDevice, uploadDevice, type User } from '../api/keys-helpers.js';
import type { JsonObject, JsonValue } from '../../src/protocol/types.js';

const V3 = '/_matrix/client/v3';

describe('crash: receipt and device-list EDUs durable with their write reach the other server', function () {
  this.timeout(180_000);
  let a: ChildServer | undefined;
  let b: TestServer | undefined;
  let nameA = '';
  let roomId = '';
  let alice: User;
  let reader: User;
  let keyed: User;
  /** EDUs from A as B's /send received them (retried transactions counted once). */
  const edus: JsonObject[] = [];

  before(async function () {
    this.timeout(120_000);
    const fedA = await freePort();
    nameA = `127.0.0.1:${fedA}`;
    a = await ChildServer.create({
      server_name: nameA,
      federation: { verify_tls: false, ip_range_whitelist: ['127.0.0.1/32'], min_backoff_ms: 100, max_backoff_ms: 500 },
    });
    const cfg = JSON.parse(readFileSync(a.configPath, 'utf8')) as { listeners: Record<string, unknown> };
    cfg.listeners.federation = { enabled: true, host: '127.0.0.1', port: fedA };
    writeFileSync(a.configPath, JSON.stringify(cfg));
    await a.start(30_000);
    b = await startFederated(await freePort());
    const inbound = b.hearth.federation!.inbound;
    const send = inbound.send.bind(inbound);
    const txns = new Set<string>();
    inbound.send = (origin: string, txnId: string, body: JsonValue | undefined) => {
      if (origin === nameA && !txns.has(txnId)) {
        txns.add(txnId);
        for (const e of (body as { edus?: JsonObject[] } | undefined)?.edus ?? []) edus.push(e);
      }
      return send(origin, txnId, body);
    };
    alice = (await new Api(a.url).register('alice', PASSWORD)) as User;
    reader = (await new Api(a.url).register('reader', PASSWORD)) as User;
    keyed = (await new Api(a.url).register('keyed', PASSWORD)) as User;
    const bob = await new Api(b.url).register('bob');
    const created = await alice.post(`${V3}/createRoom`, { preset: 'public_chat' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id as string;
    for (const u of [reader, keyed]) assert.equal((await u.post(`${V3}/join/${enc(roomId)}`, {})).status, 200);
    const joined = await bob.post(`${V3}/join/${enc(roomId)}?server_name=${enc(nameA)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
  });

  after(async () => {
    await a?.dispose();
    await b?.stop().catch(() => undefined);
    await closeFedRequests();
  });

  /** Restarts A (SIGTERM first if running), with the kill hook naming `killUser` if given. */
  async function restart(killUser?: string): Promise<void> {
    if (a!.running) await a!.kill('SIGTERM');
    if (killUser !== undefined) process.env.HEARTH_TEST_KILL_AFTER_COMMIT = killUser;
    try {
      await a!.start(30_000);
    } finally {
      delete process.env.HEARTH_TEST_KILL_AFTER_COMMIT;
    }
    const again = (u: User) => Object.assign(new Api(a!.url, u.token), { userId: u.userId, deviceId: u.deviceId }) as User;
    alice = again(alice);
    reader = again(reader);
    keyed = again(keyed);
  }

  async function expectKilled(what: string): Promise<void> {
    const exit = await a!.waitForExit(10_000);
    assert.equal(exit.signal, 'SIGKILL', `killed by the hook, after ${what} was committed`);
  }

  const waitForEdu = (pick: (e: JsonObject) => boolean, what: string) =>
    waitFor(async () => edus.some(pick), 30_000, what).catch((err: Error) => {
      throw new Error(`${err.message} (got ${JSON.stringify(edus.map((e) => e.edu_type))})\n${a!.output()}`);
    });

  const receiptOf = (userId: string, eventId: string) => (e: JsonObject) =>
    e.edu_type === 'm.receipt' && (e.content as any)?.[roomId]?.['m.read']?.[userId]?.event_ids?.[0] === eventId;

  it('a receipt killed right after its commit: after the restart B still gets the m.receipt', async () => {
    const sent = await alice.put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/r1`, { msgtype: 'm.text', body: 'read me' });
    assert.equal(sent.status, 200);
    const eventId = sent.body.event_id as string;
    // A receipt of another user crosses as before (and shows B's recording works).
    assert.equal((await alice.post(`${V3}/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {})).status, 200);
    await waitForEdu(receiptOf(alice.userId, eventId), "B to receive alice's receipt");

    await restart(reader.userId);
    const dying = await reader.post(`${V3}/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {}).catch((err: Error) => err);
    assert.ok(dying instanceof Error || dying.status !== 200, 'the request dies with the server');
    await expectKilled('the receipt');
    assert.ok(!edus.some(receiptOf(reader.userId, eventId)), 'nothing of it reached B before the kill');

    await restart();
    const stored = await reader.get(`${V3}/sync?timeout=0`);
    assert.equal(stored.status, 200);
    const ephemeral = stored.body.rooms?.join?.[roomId]?.ephemeral?.events ?? [];
    assert.ok(
      ephemeral.some((e: any) => e.type === 'm.receipt' && e.content?.[eventId]?.['m.read']?.[reader.userId]),
      'the receipt was durable at the kill',
    );
    // Nothing else is sent: B can only have it because A pushes what it queued with the receipt.
    await waitForEdu(receiptOf(reader.userId, eventId), "B to receive the reader's receipt committed before the kill");
  });

  it('a device key upload killed right after its commit: after the restart B still gets the m.device_list_update', async () => {
    await restart(keyed.userId);
    const dev = new TestDevice(keyed.userId, keyed.deviceId);
    const dying = await uploadDevice(keyed, dev, 1).catch((err: Error) => err);
    assert.ok(dying instanceof Error, 'the upload dies with the server');
    await expectKilled('the device keys');
    const update = (e: JsonObject) =>
      e.edu_type === 'm.device_list_update' && (e.content as any)?.user_id === keyed.userId && (e.content as any)?.device_id === keyed.deviceId && (e.content as any)?.keys !== undefined;
    assert.ok(!edus.some(update), 'nothing of it reached B before the kill');

    await restart();
    const q = await alice.post(`${V3}/keys/query`, { device_keys: { [keyed.userId]: [] } });
    assert.ok(q.body.device_keys?.[keyed.userId]?.[keyed.deviceId], 'the keys were durable at the kill');
    await waitForEdu(update, 'B to receive the device-list update committed before the kill');
    const got = edus.find(update)!.content as any;
    assert.deepEqual(got.keys.keys, (dev.deviceKeys() as any).keys, 'the update carries the uploaded keys');
  });

  it('a cross-signing key upload killed right after its commit: after the restart B still gets the m.signing_key_update', async () => {
    await restart(keyed.userId);
    const cs = new CrossSigning(keyed.userId);
    const dying = await keyed.post(`${V3}/keys/device_signing/upload`, cs.all()).catch((err: Error) => err);
    assert.ok(dying instanceof Error || dying.status !== 200, 'the upload dies with the server');
    await expectKilled('the cross-signing keys');
    const update = (e: JsonObject) => e.edu_type === 'm.signing_key_update' && (e.content as any)?.user_id === keyed.userId;
    assert.ok(!edus.some(update), 'nothing of it reached B before the kill');

    await restart();
    await waitForEdu(update, 'B to receive the signing-key update committed before the kill');
    const got = edus.find(update)!.content as any;
    assert.deepEqual(got.master_key, cs.masterKey());
    assert.deepEqual(got.self_signing_key?.keys, (cs.selfSigningKey() as any).keys);
  });
});
