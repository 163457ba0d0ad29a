// Which receipts leave as m.receipt EDUs, now that each is queued in the receipt's own write
// (src/federation/index.ts `receipts.outbound`, src/receipts/receipt-service.ts): a local user's
// public receipt goes to the room's other servers, queued at the receipt's stream position; a
// private one, and one for a server the room's ACL bans, goes nowhere.

import { assert } from '../helpers/assert.js';
import { closeFedRequests, startPair, syncUntil, waitFor } from '../helpers/federation.js';
import { Api, enc, type TestServer } from '../helpers/server.js';
import type { JsonObject, JsonValue } from '../../src/protocol/types.js';

const V3 = '/_matrix/client/v3';

describe('federation: receipts queued with their write', function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  let nameA: string;
  let nameB: string;
  let alice: Api & { userId: string };
  let roomId = '';
  const receipts: JsonObject[] = [];

  before(async () => {
    ({ a, b, nameA, nameB } = await startPair());
    const inbound = b.hearth.federation!.inbound;
    const send = inbound.send.bind(inbound);
    const txns = new Set<string>();
    inbound.send = (origin: string, txnId: string, body: JsonValue | undefined) => {
      if (origin === nameA && !txns.has(txnId)) {
        txns.add(txnId);
        for (const e of (body as { edus?: JsonObject[] } | undefined)?.edus ?? []) if (e.edu_type === 'm.receipt') receipts.push(e.content as JsonObject);
      }
      return send(origin, txnId, body);
    };
    alice = await new Api(a.url).register('alice');
    const bob = await new Api(b.url).register('bob');
    const created = await alice.post(`${V3}/createRoom`, { preset: 'public_chat' });
    roomId = created.body.room_id;
    assert.equal((await bob.post(`${V3}/join/${enc(roomId)}?server_name=${enc(nameA)}`, {})).status, 200);
    await syncUntil(alice, (body) => (body.rooms?.join?.[roomId]?.timeline?.events ?? []).some((e: any) => e.state_key === bob.userId));
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await closeFedRequests();
  });

  const send = async (body: string) => (await alice.put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/${body}`, { msgtype: 'm.text', body })).body.event_id as string;
  const readBy = (eventId: string) => receipts.filter((c: any) => c[roomId]?.['m.read']?.[alice.userId]?.event_ids?.[0] === eventId);

  it("a public receipt is queued for the room's other server at the receipt's position and arrives once", async () => {
    const eventId = await send('one');
    const before = a.hearth.store.currentPosition();
    assert.equal((await alice.post(`${V3}/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, { thread_id: 'main' })).status, 200);
    const state = await a.hearth.store.federationQueue.getDestinationQueue(nameB);
    const stored = await a.hearth.store.receipts.getUserReceipts(roomId, alice.userId);
    const rec = stored.find((r) => r.type === 'm.read' && r.eventId === eventId)!;
    assert.ok(rec && rec.stream > before);
    assert.ok(state.queuedUpto >= rec.stream, `queued for ${nameB} by the time the request was answered (${state.queuedUpto} >= ${rec.stream})`);
    await waitFor(async () => readBy(eventId).length > 0, 15_000, 'B to get the receipt');
    const data = (readBy(eventId)[0] as any)[roomId]['m.read'][alice.userId].data;
    assert.equal(data.thread_id, 'main');
    assert.ok(data.ts > 0);
    // Sent again: it does not move, nothing is queued.
    assert.equal((await alice.post(`${V3}/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, { thread_id: 'main' })).status, 200);
    assert.equal((await a.hearth.store.federationQueue.getDestinationQueue(nameB)).queuedUpto, state.queuedUpto);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(readBy(eventId).length, 1);
  });

  it('a private receipt, and a public one once the ACL bans B, are queued for nobody', async () => {
    const eventId = await send('two');
    const queued = (await a.hearth.store.federationQueue.getDestinationQueue(nameB)).queuedUpto;
    assert.equal((await alice.post(`${V3}/rooms/${enc(roomId)}/receipt/m.read.private/${enc(eventId)}`, {})).status, 200);
    assert.equal((await a.hearth.store.federationQueue.getDestinationQueue(nameB)).queuedUpto, queued, 'a private receipt stays home');

    const acl = await alice.put(`${V3}/rooms/${enc(roomId)}/state/m.room.server_acl/`, { allow: ['*'], deny: ['127.0.0.1'], allow_ip_literals: true });
    assert.equal(acl.status, 200);
    const after = await send('three');
    const aclQueued = (await a.hearth.store.federationQueue.getDestinationQueue(nameB)).queuedUpto;
    assert.equal((await alice.post(`${V3}/rooms/${enc(roomId)}/receipt/m.read/${enc(after)}`, {})).status, 200);
    assert.equal((await a.hearth.store.federationQueue.getDestinationQueue(nameB)).queuedUpto, aclQueued, 'nothing queued for a banned server');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(readBy(eventId).length + readBy(after).length, 0);
  });
});
