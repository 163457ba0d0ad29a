// signLocalEvent (a local send's hash, signature, event ID and size from one canonical JSON pass
// each for hash and signature) must equal the separate functions it replaces on the send path:
// signEvent, computeEventId and pduSize, for every room version, and reproduce the vectors.

import { assert } from '../helpers/assert.js';
import { canonicalJson } from '../../src/protocol/canonical-json.js';
import { computeEventId, newServerEventId, pduSize, signEvent, signLocalEvent } from '../../src/protocol/events.js';
import { roomVersionRules } from '../../src/protocol/room-versions.js';
import type { Pdu } from '../../src/protocol/types.js';
import { loadVector, specKey } from './vectors.js';

const VERSIONS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12'];

function drafts(version: string): Pdu[] {
  const base = {
    room_id: '!r:domain',
    sender: '@a:domain',
    origin_server_ts: 1_700_000_000_000,
    depth: 7,
    prev_events: [],
    auth_events: [],
  };
  const out: Pdu[] = [
    { ...base, type: 'm.room.message', content: { msgtype: 'm.text', body: 'héllo 😀 \u2028 "q" \\ end' } } as unknown as Pdu,
    { ...base, type: 'm.room.member', state_key: '@b:domain', content: { membership: 'join', displayname: 'Bé' } } as unknown as Pdu,
    { ...base, type: 'm.room.power_levels', state_key: '', content: { users: { '@a:domain': 100 }, events_default: 0, ban: 50 } } as unknown as Pdu,
    { ...base, type: 'm.room.redaction', content: { redacts: '$t', reason: 'x' }, redacts: '$t' } as unknown as Pdu,
    // A PDU that already carries unsigned (counted in the size) and another server's hash.
    { ...base, type: 'x.y', content: { n: 1, nested: { b: [1, 2, { c: null }], a: true } }, unsigned: { age_ts: 5 }, hashes: { other: 'abc' } } as unknown as Pdu,
  ];
  if (roomVersionRules(version).eventIdFormat === 'server') for (const p of out) (p as Pdu & { event_id: string }).event_id = newServerEventId('domain');
  return out;
}

describe('protocol/signLocalEvent', () => {
  const { key, serverName } = specKey();

  for (const version of VERSIONS) {
    it(`room v${version}: equals signEvent, computeEventId and pduSize`, () => {
      for (const d of drafts(version)) {
        const fast = signLocalEvent(structuredClone(d), serverName, key, version);
        const slow = signEvent(structuredClone(d), serverName, key, version);
        assert.equal(canonicalJson(fast.pdu), canonicalJson(slow), `${d.type}: same signed PDU`);
        assert.equal(fast.eventId, computeEventId(slow, version), `${d.type}: same event ID`);
        assert.equal(fast.size, pduSize(slow), `${d.type}: same canonical size`);
      }
    });
  }

  it('reproduces the spec event signing vectors (v10 rules)', () => {
    const v = loadVector('spec-event-signing.json');
    for (const c of v.cases) {
      const { pdu, size } = signLocalEvent(structuredClone(c.input), serverName, key, '10');
      assert.equal(canonicalJson(pdu), canonicalJson(c.expected_signed), c.name);
      assert.equal(size, pduSize(c.expected_signed), c.name);
    }
  });

  it('reproduces the room v11 chain: PDUs and event IDs', () => {
    const chain = loadVector('room-v11-chain.json');
    for (const { event_id: eventId, pdu } of chain.events as Array<{ event_id: string; pdu: Pdu }>) {
      const { hashes: _h, signatures: _s, ...bare } = pdu;
      const out = signLocalEvent(bare as Pdu, serverName, key, chain.room_version);
      assert.equal(canonicalJson(out.pdu), canonicalJson(pdu), pdu.type);
      assert.equal(out.eventId, eventId, pdu.type);
      assert.equal(out.size, Buffer.byteLength(canonicalJson(pdu)), pdu.type);
    }
  });
});
