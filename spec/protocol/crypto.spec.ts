import { assert } from '../helpers/assert.js';
import nacl from 'tweetnacl';
import { decodeBase64, encodeBase64 } from '../../src/protocol/base64.js';
import { canonicalJson } from '../../src/protocol/canonical-json.js';
import {
  generateSigningKey,
  jsonSigningInput,
  publicKeyBase64,
  publicKeyObject,
  sha256Base64,
  signatureKeyIds,
  signBytes,
  signingKeyFromSeed,
  signJson,
  verifyBytes,
  verifyJsonSignature,
} from '../../src/protocol/crypto.js';
import type { JsonObject } from '../../src/protocol/types.js';
import { loadVector, specKey } from './vectors.js';

describe('protocol/crypto', () => {
  const { key, serverName, publicKeyBase64: expectedPub, seedHex } = specKey();

  describe('spec signing key', () => {
    it('derives the published public key from the seed', () => {
      assert.equal(Buffer.from(key.seed).toString('hex'), seedHex);
      assert.equal(publicKeyBase64(key), expectedPub);
    });

    it('matches tweetnacl key derivation', () => {
      const kp = nacl.sign.keyPair.fromSeed(key.seed);
      assert.equal(encodeBase64(kp.publicKey), expectedPub);
    });

    it('keeps the cached KeyObject out of JSON and enumeration', () => {
      assert.deepEqual(Object.keys(key).sort(), ['keyId', 'publicKey', 'seed']);
      assert.ok(!JSON.stringify(key).includes('KeyObject'));
    });

    it('signs with a plain SigningKey object (no cache) too', () => {
      const plain = { keyId: key.keyId, seed: key.seed, publicKey: key.publicKey };
      assert.deepEqual(signBytes(plain, 'x'), signBytes(key, 'x'));
      assert.deepEqual(signBytes(Object.freeze({ ...plain }), 'x'), signBytes(key, 'x'));
    });

    it('rejects bad seeds and key ids', () => {
      assert.throws(() => signingKeyFromSeed(new Uint8Array(31), 'ed25519:1'));
      assert.throws(() => signingKeyFromSeed(key.seed, 'ed25519:a-b'));
      assert.throws(() => signingKeyFromSeed(key.seed, 'curve25519:1'));
    });
  });

  describe('spec JSON signing vectors', () => {
    const v = loadVector('spec-json-signing.json');
    for (const c of v.cases) {
      it(c.name, () => {
        const signed = signJson(c.input as JsonObject, serverName, key);
        assert.equal(canonicalJson(signed), canonicalJson(c.expected_signed));
        assert.ok(verifyJsonSignature(c.expected_signed, serverName, key.keyId, key.publicKey));
        assert.ok(verifyJsonSignature(c.expected_signed, serverName, key.keyId, expectedPub));
        assert.ok(verifyJsonSignature(c.expected_signed, serverName, key.keyId, publicKeyObject(key.publicKey)));
      });
    }
  });

  describe('signJson / verifyJsonSignature', () => {
    const obj: JsonObject = { a: 1, unsigned: { age: 5 }, signatures: { other: { 'ed25519:x': 'abc' } } };

    it('ignores unsigned and keeps other signatures', () => {
      const signed = signJson(obj, serverName, key);
      assert.deepEqual((signed.signatures as JsonObject).other, { 'ed25519:x': 'abc' });
      assert.deepEqual(signed.unsigned, { age: 5 });
      const changedUnsigned = { ...signed, unsigned: { age: 999 } };
      assert.ok(verifyJsonSignature(changedUnsigned, serverName, key.keyId, key.publicKey));
      assert.deepEqual(signatureKeyIds(signed, serverName), ['ed25519:1']);
      assert.equal(obj.signatures && (obj.signatures as JsonObject).domain, undefined, 'input not mutated');
    });

    it('adds a second key for the same server', () => {
      const other = generateSigningKey('two');
      const both = signJson(signJson({ a: 1 }, serverName, key), serverName, other);
      assert.deepEqual(signatureKeyIds(both, serverName).sort(), ['ed25519:1', 'ed25519:two']);
      assert.ok(verifyJsonSignature(both, serverName, 'ed25519:1', key.publicKey));
      assert.ok(verifyJsonSignature(both, serverName, 'ed25519:two', other.publicKey));
    });

    it('fails on tampering, wrong key, missing or malformed signatures', () => {
      const signed = signJson({ a: 1 }, serverName, key);
      assert.ok(!verifyJsonSignature({ ...signed, a: 2 }, serverName, key.keyId, key.publicKey));
      assert.ok(!verifyJsonSignature(signed, serverName, key.keyId, generateSigningKey('z').publicKey));
      assert.ok(!verifyJsonSignature(signed, 'other', key.keyId, key.publicKey));
      assert.ok(!verifyJsonSignature(signed, serverName, 'ed25519:nope', key.publicKey));
      assert.ok(!verifyJsonSignature({ a: 1 }, serverName, key.keyId, key.publicKey));
      assert.ok(!verifyJsonSignature({ a: 1, signatures: { domain: { 'ed25519:1': '!!' } } }, serverName, key.keyId, key.publicKey));
      assert.ok(!verifyJsonSignature(signed, serverName, key.keyId, 'short'));
      assert.ok(!verifyJsonSignature({ ...signed, f: 1.5 } as JsonObject, serverName, key.keyId, key.publicKey));
    });

    it('jsonSigningInput drops signatures and unsigned only', () => {
      assert.equal(jsonSigningInput({ b: 1, signatures: {}, unsigned: {}, a: { signatures: 1 } }), '{"a":{"signatures":1},"b":1}');
    });
  });

  describe('tweetnacl cross-check', () => {
    const samples: JsonObject[] = [
      { type: 'm.room.message', content: { body: 'hello 日本語 😀' }, depth: 7 },
      { server_name: 'example.org', verify_keys: { 'ed25519:1': { key: expectedPub } }, valid_until_ts: 1700000000000 },
      {},
    ];

    for (const [i, obj] of samples.entries()) {
      it(`sample ${i}: node:crypto signs, tweetnacl verifies`, () => {
        const signed = signJson(obj, serverName, key);
        const sig = decodeBase64((signed.signatures as Record<string, Record<string, string>>)[serverName][key.keyId]);
        const msg = new TextEncoder().encode(canonicalJson(obj));
        assert.ok(nacl.sign.detached.verify(msg, sig, key.publicKey));
      });

      it(`sample ${i}: tweetnacl signs, node:crypto verifies`, () => {
        const fresh = nacl.sign.keyPair();
        const msg = new TextEncoder().encode(jsonSigningInput(obj));
        const sig = encodeBase64(nacl.sign.detached(msg, fresh.secretKey));
        const signed = { ...obj, signatures: { remote: { 'ed25519:n': sig } } };
        assert.ok(verifyJsonSignature(signed, 'remote', 'ed25519:n', fresh.publicKey));
        assert.ok(verifyBytes(fresh.publicKey, msg, sig));
      });
    }

    it('a generated key agrees with tweetnacl', () => {
      const k = generateSigningKey('gen');
      const kp = nacl.sign.keyPair.fromSeed(k.seed);
      assert.deepEqual(Buffer.from(kp.publicKey), Buffer.from(k.publicKey));
      const sig = signBytes(k, 'payload');
      assert.deepEqual(Buffer.from(sig), Buffer.from(nacl.sign.detached(Buffer.from('payload'), kp.secretKey)));
    });
  });

  it('sha256Base64 is unpadded standard base64', () => {
    assert.equal(sha256Base64(''), '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU');
    assert.equal(sha256Base64(new Uint8Array()), '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU');
  });
});
