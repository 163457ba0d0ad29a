// FederationInbound.send on a real SQLite store and room input, without HTTP: a remote server
// (its key in a static key ring) pushes transactions into a room of this server. Checks the
// per-PDU answers (accepted, dropped at a gap, invalid, refused by ACL, unknown room) and that a chain of PDUs
// inside one transaction skips the gap filler (its format check and store lookup) for PDUs whose
// prev events the transaction itself just stored, while a real gap still goes to it.

import { assert } from '../helpers/assert.js';
import { buildPdu } from '../helpers/pdu-builder.js';
import { alice, openInboundRoom, REMOTE, rob, type InboundRoom } from '../helpers/inbound-room.js';
import type { JsonObject, JsonValue } from '../../src/protocol/types.js';

describe('federation/inbound: /send on a real store', () => {
  let r: InboundRoom;

  beforeEach(async () => {
    r = await openInboundRoom();
  });

  afterEach(async () => {
    await r.close();
  });

  it('a chain of 50 PDUs: every one accepted under its event ID; only the first goes through the gap filler', async () => {
    const chain = [];
    for (let i = 0; i < 50; i++) chain.push(await r.message(`m${i}`));
    r.stateGroupLookups.length = 0;
    const pdus = await r.send('t1', chain);
    assert.deepEqual(Object.keys(pdus).sort(), chain.map((m) => m.eventId).sort());
    for (const m of chain) assert.deepEqual(pdus[m.eventId], {});
    // Only the first PDU cites an event from outside the transaction (rob's join, stored earlier).
    assert.deepEqual(r.stateGroupLookups, [[chain[0].eventId, chain[0].pdu.prev_events[0] as string]]);
    assert.deepEqual(r.requests, []);
    const stored = await r.store.rooms.getEvents(chain.map((m) => m.eventId));
    assert.equal(stored.size, 50);
    assert.ok([...stored.values()].every((e) => !e.outlier && e.rejected === null));
  });

  it('a PDU citing an unknown event still goes to the gap filler, which asks the origin; unfilled, it is dropped and answered {} (as Synapse)', async () => {
    const first = await r.message('before the gap');
    const gap = await r.message('after the gap', { eventId: '$unknownunknownunknownunknownunknownunknown0', depth: first.pdu.depth });
    const pdus = await r.send('t2', [first, gap]);
    assert.deepEqual(pdus[first.eventId], {});
    assert.deepEqual(pdus[gap.eventId], {}, 'nothing the sender could fix: no error');
    assert.equal(r.requests[0], 'POST /_matrix/federation/v1/get_missing_events');
    assert.ok(!(await r.store.rooms.getEvent(gap.eventId)), 'not stored');
  });

  it('answers under the right event IDs when room input cannot name the event: forged signature, bad format, ACL', async () => {
    const good = await r.message('fine');
    const forged = await r.message('forged');
    const sig = forged.pdu.signatures[REMOTE] as Record<string, string>;
    const keyId = Object.keys(sig)[0];
    sig[keyId] = sig[keyId].replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
    const noSender = { ...((await r.message('no sender', { eventId: good.eventId, depth: good.pdu.depth })).pdu as unknown as JsonObject) };
    delete noSender.sender;
    const pdus = await r.send('t3', [good, forged, noSender as JsonValue]);
    assert.deepEqual(pdus[good.eventId], {});
    assert.match(pdus[forged.eventId].error ?? '', /signature/);
    // A PDU room input refuses before naming it (format) is reported under the ID we compute.
    const { computeEventId } = await import('../../src/protocol/events.js');
    assert.match(pdus[computeEventId(noSender, '12')].error ?? '', /sender/);
    assert.equal(Object.keys(pdus).length, 3);

    // A server ACL banning the origin: refused under the event's ID, never stored.
    await r.input.submit(r.roomId, { type: 'm.room.server_acl', stateKey: '', sender: alice, content: { allow: ['*'], deny: [REMOTE] } });
    const banned = await r.send('t4', [await r.message('banned', { eventId: good.eventId, depth: good.pdu.depth })]);
    const [[id, answer]] = Object.entries(banned);
    assert.match(answer.error ?? '', /ACL/);
    assert.ok(!(await r.store.rooms.getEvent(id)));
  });

  it('PDUs for a room this server is not in are dropped without an answer', async () => {
    const other = buildPdu({ roomId: '!nowhere:remote.test', sender: rob, type: 'm.room.message', content: { body: 'x' }, prevEvents: [r.tip.eventId], authEvents: r.auth, depth: 9 }, REMOTE, r.remoteKey, '12');
    assert.deepEqual(await r.send('t5', [other]), {});
  });
});
