// Signing key rotation across real servers: B signs with K1, rotates to K2 (K1 listed in
// old_signing_keys with an expired_ts), and a server that never saw K1 (C) must still accept
// B's events signed with K1 before expired_ts, through B's old_verify_keys, and refuse one
// signed with K1 after it.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { Api, enc, type TestServer } from '../helpers/server.js';
import { fedRequest, freePort, reattach, serverName, signedRequest, startFederated, waitFor, type User } from '../helpers/federation.js';
import { encodeBase64 } from '../../src/protocol/base64.js';
import { generateSigningKey } from '../../src/protocol/crypto.js';
import { signEvent } from '../../src/protocol/events.js';
import { formatSigningKeyLine, readSigningKeyFile } from '../../src/protocol/keyfile.js';
import type { JsonObject, SigningKey } from '../../src/protocol/types.js';

describe('federation: signing key rotation (old_verify_keys)', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let c: TestServer;
  let alice: User;
  let bob: User;
  let roomId: string;
  let k1: SigningKey;
  let k2: SigningKey;
  let expiredTs: number;
  let oldMessage: string;

  before(async () => {
    a = await startFederated(await freePort());
    b = await startFederated(await freePort());
    alice = await new Api(a.url).register('alice');
    bob = await new Api(b.url).register('bob');
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
  });

  it('B\'s events signed with K1 reach A; B restarts with K2 and serves K1 as an old verify key', async () => {
    const created = await alice.post('/_matrix/client/v3/createRoom', { preset: 'public_chat' });
    roomId = created.body.room_id;
    assert.equal((await bob.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(serverName(a))}`, {})).status, 200);
    const sent = await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/k1`, { msgtype: 'm.text', body: 'signed with K1' });
    assert.equal(sent.status, 200);
    oldMessage = sent.body.event_id;
    await waitFor(async () => (await a.hearth.store.rooms.getEvent(oldMessage)) !== null, 10_000, 'A to get the message');

    k1 = (await readSigningKeyFile(b.hearth.config.signing_key_path))[0];
    k2 = generateSigningKey('rotated');
    const port = Number(serverName(b).split(':')[1]);
    const dir = b.dataDir;
    const keyPath = b.hearth.config.signing_key_path;
    await b.hearth.stop();
    writeFileSync(keyPath, `${formatSigningKeyLine(k2)}\n`);
    expiredTs = Date.now();
    b = await startFederated(port, dir, { old_signing_keys: { [k1.keyId]: { key: encodeBase64(k1.publicKey), expired_ts: expiredTs } } });
    bob = reattach(bob, b);

    const doc = await fedRequest(b.hearth.federation!.url, 'GET', '/_matrix/key/v2/server', {});
    assert.deepEqual(Object.keys(doc.body.verify_keys), [k2.keyId]);
    assert.deepEqual(doc.body.old_verify_keys, { [k1.keyId]: { key: encodeBase64(k1.publicKey), expired_ts: expiredTs } });
    assert.deepEqual(Object.keys(doc.body.signatures[serverName(b)]), [k2.keyId], 'the document is signed with the current key only');
  });

  it('a new server C joins and accepts B\'s K1-signed events (before expired_ts) through old_verify_keys', async () => {
    c = await startFederated(await freePort());
    const carol = await new Api(c.url).register('carol');
    const j = await carol.post(`/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(serverName(a))}`, {});
    assert.equal(j.status, 200, JSON.stringify(j.body));
    // bob's join (signed with K1) passed C's signature check, so bob is in C's state.
    const m = await carol.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`);
    assert.equal(m.status, 200, JSON.stringify(m.body));
    assert.equal(m.body.membership, 'join');
    const ring = c.hearth.federation!.core.keyRing;
    assert.ok(await ring.verifyKey(serverName(b), k1.keyId, expiredTs - 1), 'K1 vouches for events before expired_ts');
    assert.equal(await ring.verifyKey(serverName(b), k1.keyId, expiredTs + 1), null, 'and not after');
    // bob's message after the rotation (K2) reaches C as well.
    const sent = await bob.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/k2`, { msgtype: 'm.text', body: 'signed with K2' });
    assert.equal(sent.status, 200);
    await waitFor(async () => (await c.hearth.store.rooms.getEvent(sent.body.event_id))?.outlier === false, 10_000, 'C to accept the K2 message');
  });

  it('C refuses a PDU signed with K1 dated after expired_ts', async () => {
    const t = await c.hearth.roomInput.template(roomId, { type: 'm.room.message', sender: bob.userId, content: { msgtype: 'm.text', body: 'late K1' } });
    assert.ok(t && t.pdu.origin_server_ts > expiredTs);
    const pdu = signEvent(t.pdu, serverName(b), k1, t.version) as unknown as JsonObject;
    const txn = { origin: serverName(b), origin_server_ts: Date.now(), pdus: [pdu], edus: [] };
    const res = await signedRequest(serverName(b), k2, c, 'PUT', '/_matrix/federation/v1/send/late-k1', txn);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const [result] = Object.values(res.body.pdus) as any[];
    assert.match(result.error, /signature/i);
  });
});
