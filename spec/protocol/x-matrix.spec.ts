import { assert } from '../helpers/assert.js';
import { canonicalJson } from '../../src/protocol/canonical-json.js';
import { jsonSigningInput, signJson, verifyJsonSignature } from '../../src/protocol/crypto.js';
import type { JsonObject } from '../../src/protocol/types.js';
import {
  buildXMatrixAuthorization,
  parseXMatrixHeader,
  signXMatrixRequest,
  verifyXMatrixRequest,
  xMatrixSignedObject,
  xMatrixSigningInput,
  type XMatrixRequest,
} from '../../src/protocol/x-matrix.js';
import { loadVector, specKey } from './vectors.js';

describe('protocol/x-matrix', () => {
  const { key } = specKey();
  const v = loadVector('x-matrix-request-example.json');

  for (const c of v.cases) {
    describe(c.name, () => {
      const req = c.signed_object as XMatrixRequest;

      it('signing input', () => {
        assert.equal(xMatrixSigningInput(req), c.canonical_signing_input);
        assert.equal(jsonSigningInput(c.signed_object), c.canonical_signing_input);
        assert.equal('content' in xMatrixSignedObject(req), 'content' in c.signed_object);
      });

      it('signature via signJson and via signXMatrixRequest', () => {
        const signed = signJson(c.signed_object as JsonObject, req.origin, key);
        assert.equal(((signed.signatures as JsonObject)[req.origin] as JsonObject)[key.keyId], c.expected_sig);
        assert.equal(signXMatrixRequest(req, key), c.expected_sig);
      });

      it('authorization header', () => {
        assert.equal(buildXMatrixAuthorization(req, key), c.expected_authorization_header);
      });

      it('parse and verify', () => {
        const parsed = parseXMatrixHeader(c.expected_authorization_header);
        assert.deepEqual(parsed, { origin: req.origin, destination: req.destination, key: key.keyId, sig: c.expected_sig });
        const received = { method: req.method, uri: req.uri, content: req.content };
        assert.ok(verifyXMatrixRequest(parsed!, received, req.destination, key.publicKey));
        assert.ok(!verifyXMatrixRequest(parsed!, received, 'someone.else', key.publicKey), 'wrong destination');
        assert.ok(!verifyXMatrixRequest(parsed!, { ...received, uri: req.uri + 'x' }, req.destination, key.publicKey));
        assert.ok(!verifyXMatrixRequest({ ...parsed!, origin: 'evil' }, received, req.destination, key.publicKey));
        // Same check through the generic JSON verifier.
        const asSigned = { ...c.signed_object, signatures: { [req.origin]: { [key.keyId]: c.expected_sig } } };
        assert.ok(verifyJsonSignature(asSigned, req.origin, key.keyId, key.publicKey));
      });
    });
  }

  it('an empty-object body is different from no body', () => {
    const base: XMatrixRequest = { method: 'PUT', uri: '/x', origin: 'a', destination: 'b' };
    assert.notEqual(xMatrixSigningInput(base), xMatrixSigningInput({ ...base, content: {} }));
    assert.equal(xMatrixSigningInput(base), canonicalJson({ method: 'PUT', uri: '/x', origin: 'a', destination: 'b' }));
  });

  describe('lenient header parsing', () => {
    const want = { origin: 'o.org', destination: 'd.org', key: 'ed25519:1', sig: 'ab+/c' };
    const headers = [
      'X-Matrix origin="o.org",destination="d.org",key="ed25519:1",sig="ab+/c"',
      'X-Matrix origin=o.org,destination=d.org,key=ed25519:1,sig=ab+/c',
      'x-matrix  origin="o.org" , destination="d.org",\tkey="ed25519:1",  sig="ab+/c"',
      'X-Matrix sig="ab+/c",key="ed25519:1",ORIGIN="o.org",Destination="d.org"',
      'X-Matrix origin="o.org",destination="d.org",key="ed25519:1",signature="ab+/c"',
      'X-Matrix origin="o\\.org",destination="d.org",key="ed25519:1",sig="ab+/c"',
    ];
    for (const h of headers) it(h, () => assert.deepEqual(parseXMatrixHeader(h), want));

    it('destination is optional', () => {
      assert.deepEqual(parseXMatrixHeader('X-Matrix origin=o.org,key="ed25519:1",sig="s"'), { origin: 'o.org', key: 'ed25519:1', sig: 's' });
    });

    it('quoted values may contain commas and escaped quotes', () => {
      assert.equal(parseXMatrixHeader('X-Matrix origin="a,b\\"c",key=k,sig=s')?.origin, 'a,b"c');
    });

    for (const h of ['Bearer abc', 'X-Matrix', 'X-Matrixorigin=a,key=k,sig=s', 'X-Matrix origin=a,key=k', 'X-Matrix key=k,sig=s', 'X-Matrix origin="",key=k,sig=s']) {
      it(`rejects ${JSON.stringify(h)}`, () => assert.equal(parseXMatrixHeader(h), undefined));
    }

    it('builder quotes and escapes awkward values', () => {
      const h = buildXMatrixAuthorization({ method: 'GET', uri: '/', origin: 'a"b', destination: 'c\\d' }, key);
      const p = parseXMatrixHeader(h);
      assert.equal(p?.origin, 'a"b');
      assert.equal(p?.destination, 'c\\d');
    });
  });
});
