import { assert } from '../helpers/assert.js';
import nacl from 'tweetnacl';
import { decodeBase64, encodeBase64 } from '../../src/protocol/base64.js';
import { canonicalJson } from '../../src/protocol/canonical-json.js';
import { jsonSigningInput } from '../../src/protocol/crypto.js';
import {
  authEventIds,
  prevEventIds,
  addContentHash,
  addEventSignature,
  checkContentHash,
  computeEventId,
  contentHash,
  MAX_PDU_BYTES,
  pduLimitViolation,
  pduSize,
  requiredSignatureServers,
  signEvent,
  verifyEventSignature,
} from '../../src/protocol/events.js';
import { redactEvent } from '../../src/protocol/redaction.js';
import type { JsonObject, Pdu } from '../../src/protocol/types.js';
import { loadVector, specKey } from './vectors.js';

describe('protocol/events', () => {
  const { key, serverName } = specKey();

  describe('spec event signing vectors (pre-v11 redaction)', () => {
    const v = loadVector('spec-event-signing.json');
    for (const c of v.cases) {
      for (const version of ['1', '10']) {
        it(`${c.name}, room v${version} rules`, () => {
          const signed = signEvent(c.input as JsonObject, serverName, key, version);
          assert.equal(canonicalJson(signed), canonicalJson(c.expected_signed));
          assert.ok(checkContentHash(c.expected_signed));
          assert.ok(verifyEventSignature(c.expected_signed, serverName, key.keyId, key.publicKey, version));
        });
      }
      it(`${c.name}: v11 rules give the same hash but a different signature`, () => {
        const signed = signEvent(c.input as JsonObject, serverName, key, '11');
        assert.deepEqual(signed.hashes, c.expected_signed.hashes);
        assert.notDeepEqual(signed.signatures, c.expected_signed.signatures);
        assert.ok(!verifyEventSignature(c.expected_signed, serverName, key.keyId, key.publicKey, '11'));
      });
    }
  });

  describe('synapse event signing vectors (room v1)', () => {
    const v = loadVector('synapse-event-signing.json');
    for (const c of v.cases) {
      it(c.name, () => {
        assert.equal(contentHash(c.input), c.expected.hashes.sha256);
        const signed = signEvent(c.input as JsonObject, serverName, key, '1');
        assert.deepEqual(signed.hashes, c.expected.hashes);
        assert.equal((signed.signatures as JsonObject)[serverName] && ((signed.signatures as JsonObject)[serverName] as JsonObject)[key.keyId], c.expected.signature);
        assert.ok(verifyEventSignature(signed, serverName, key.keyId, key.publicKey, '1'));
        // The redacted copy carries content {} even when the input has none.
        assert.deepEqual(redactEvent(c.input, '1').content, {});
      });
    }
  });

  describe('gmsl event ID vectors', () => {
    const v = loadVector('gmsl-event-id.json');
    for (const c of v.cases) {
      it(c.name, () => {
        assert.equal(computeEventId(c.input, c.room_version), c.expected_event_id);
        assert.ok(checkContentHash(c.input));
      });
    }
    it('v3 and v5-v12 share the v4 digest; v1/v2 IDs are not computed but read from event_id', () => {
      const input = v.cases[0].input;
      for (const version of ['5', '6', '7', '8', '9', '10']) assert.equal(computeEventId(input, version), v.cases[1].expected_event_id);
      assert.throws(() => computeEventId(input, '1'), /lacks a valid event_id/);
      assert.throws(() => computeEventId(input, '2'), /lacks a valid event_id/);
      assert.equal(computeEventId({ ...input, event_id: '$abc:jki.re' }, '1'), '$abc:jki.re');
      assert.throws(() => computeEventId({ ...input, event_id: '$nodomain' }, '2'));
    });
  });

  describe('room v11 chain', () => {
    const chain = loadVector('room-v11-chain.json');
    const version: string = chain.room_version;
    const events: Array<{ event_id: string; pdu: Pdu }> = chain.events;

    for (const [i, { event_id: eventId, pdu }] of events.entries()) {
      describe(`${i}: ${pdu.type}`, () => {
        it('content hash', () => {
          assert.equal(contentHash(pdu), pdu.hashes.sha256);
          assert.ok(checkContentHash(pdu));
        });
        it('signature', () => {
          assert.ok(verifyEventSignature(pdu, serverName, key.keyId, key.publicKey, version));
          const { hashes: _h, signatures: _s, ...unsignedPdu } = pdu;
          const resigned = signEvent(unsignedPdu as JsonObject, serverName, key, version);
          assert.equal(canonicalJson(resigned), canonicalJson(pdu));
        });
        it('signature verifies with tweetnacl', () => {
          const msg = new TextEncoder().encode(jsonSigningInput(redactEvent(pdu, version)));
          const sig = decodeBase64(pdu.signatures[serverName][key.keyId]);
          assert.ok(nacl.sign.detached.verify(msg, sig, key.publicKey));
        });
        it('event ID', () => {
          assert.equal(computeEventId(pdu, version), eventId);
          assert.ok(!('event_id' in pdu));
        });
        it('references earlier events only', () => {
          const earlier = events.slice(0, i).map((e) => e.event_id);
          for (const ref of [...authEventIds(pdu), ...prevEventIds(pdu)]) assert.ok(earlier.includes(ref), ref);
          if (i > 0) assert.deepEqual(pdu.prev_events, [events[i - 1].event_id]);
          assert.equal(pdu.depth, i + 1);
        });
      });
    }

    it('unsigned is ignored by hash, signature and ID', () => {
      const msg = events[3].pdu;
      const changed = { ...msg, unsigned: { age: 123456, other: 'x' } };
      assert.ok(checkContentHash(changed));
      assert.ok(verifyEventSignature(changed, serverName, key.keyId, key.publicKey, version));
      assert.equal(computeEventId(changed, version), events[3].event_id);
    });

    it('an event_id inside the PDU does not change the ID', () => {
      const msg = events[3].pdu;
      assert.equal(computeEventId({ ...msg, event_id: events[3].event_id }, version), events[3].event_id);
    });

    it('a content change breaks the hash but not the signature nor the ID', () => {
      const msg = events[3].pdu;
      const edited = { ...msg, content: { ...msg.content, body: 'evil' } };
      assert.ok(!checkContentHash(edited));
      assert.ok(verifyEventSignature(edited, serverName, key.keyId, key.publicKey, version));
      assert.equal(computeEventId(edited, version), events[3].event_id);
    });

    it('a change to a protected field breaks the signature and the ID', () => {
      const msg = events[3].pdu;
      const moved = { ...msg, depth: 99 };
      assert.ok(!verifyEventSignature(moved, serverName, key.keyId, key.publicKey, version));
      assert.notEqual(computeEventId(moved, version), events[3].event_id);
    });

    it('tweetnacl-signed event verifies with node:crypto', () => {
      const kp = nacl.sign.keyPair();
      const { hashes: _h, signatures: _s, ...base } = events[3].pdu;
      const hashed = addContentHash({ ...base, sender: '@bob:remote' } as JsonObject);
      const msg = new TextEncoder().encode(jsonSigningInput(redactEvent(hashed, version)));
      const signed = { ...hashed, signatures: { remote: { 'ed25519:k': encodeBase64(nacl.sign.detached(msg, kp.secretKey)) } } };
      assert.ok(verifyEventSignature(signed, 'remote', 'ed25519:k', kp.publicKey, version));
      assert.ok(!verifyEventSignature(signed, 'remote', 'ed25519:k', key.publicKey, version));
    });
  });

  describe('helpers', () => {
    const base: Pdu = {
      room_id: '!r:a',
      sender: '@u:a',
      type: 'm.room.member',
      state_key: '@u:a',
      content: { membership: 'join', join_authorised_via_users_server: '@mod:b' },
      origin_server_ts: 1,
      depth: 3,
      prev_events: [],
      auth_events: [],
      hashes: { sha256: '' },
      signatures: {},
    };

    it('checkContentHash accepts padded hashes and rejects missing or malformed ones', () => {
      const hashed = addContentHash(base);
      assert.ok(checkContentHash(hashed));
      assert.ok(checkContentHash({ ...hashed, hashes: { sha256: hashed.hashes.sha256 + '=' } }));
      assert.ok(!checkContentHash({ ...hashed, hashes: { sha256: 'AAAA' } }));
      assert.ok(!checkContentHash({ ...hashed, hashes: {} } as unknown as JsonObject));
      assert.ok(!checkContentHash({ ...base, hashes: undefined } as unknown as JsonObject));
    });

    it('addEventSignature countersigns without touching hashes', () => {
      const signed = signEvent(base, 'a', key, '11');
      const other = { ...key, keyId: 'ed25519:1' };
      const counter = addEventSignature(signed, 'b', other, '11');
      assert.deepEqual(counter.hashes, signed.hashes);
      assert.ok(verifyEventSignature(counter, 'a', key.keyId, key.publicKey, '11'));
      assert.ok(verifyEventSignature(counter, 'b', key.keyId, key.publicKey, '11'));
      assert.equal(computeEventId(counter, '11'), computeEventId(signed, '11'), 'signatures are not part of the ID');
    });

    it('requiredSignatureServers includes the authorising server for restricted joins', () => {
      assert.deepEqual(requiredSignatureServers(base, '11'), ['a', 'b']);
      assert.deepEqual(requiredSignatureServers(base, '7'), ['a']);
      assert.deepEqual(requiredSignatureServers({ ...base, content: { membership: 'leave' } }, '11'), ['a']);
    });

    it('pduSize counts UTF-8 bytes of canonical JSON', () => {
      const small = { ...base, content: { body: '😀' } };
      assert.equal(pduSize(small), Buffer.byteLength(canonicalJson(small)));
      assert.equal(pduLimitViolation(small), undefined);
      const big = { ...base, content: { body: 'x'.repeat(MAX_PDU_BYTES) } };
      assert.match(pduLimitViolation(big) ?? '', /limit/);
      assert.match(pduLimitViolation({ ...base, type: 't'.repeat(256) }) ?? '', /type/);
      assert.match(pduLimitViolation({ ...base, state_key: 'é'.repeat(128) }) ?? '', /state_key/);
      assert.match(pduLimitViolation({ ...base, prev_events: Array(21).fill('$x') }) ?? '', /prev_events/);
      assert.match(pduLimitViolation({ ...base, auth_events: Array(11).fill('$x') }) ?? '', /auth_events/);
      assert.match(pduLimitViolation({ ...base, depth: 1.5 }) ?? '', /canonical/);
    });
  });
});
