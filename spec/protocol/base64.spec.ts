import { assert } from '../helpers/assert.js';
import {
  Base64Error,
  decodeBase64,
  decodeBase64Any,
  decodeBase64Url,
  encodeBase64,
  encodeBase64Url,
  tryDecodeBase64,
} from '../../src/protocol/base64.js';
import { loadVector } from './vectors.js';

describe('protocol/base64', () => {
  const bytes = (...b: number[]) => new Uint8Array(b);

  it('encodes unpadded standard and URL-safe', () => {
    assert.equal(encodeBase64(bytes(0xfb, 0xff)), '+/8');
    assert.equal(encodeBase64Url(bytes(0xfb, 0xff)), '-_8');
    assert.equal(encodeBase64(bytes()), '');
    assert.equal(encodeBase64(bytes(1, 2, 3)), 'AQID');
  });

  it('encodes a subarray view correctly', () => {
    const buf = bytes(9, 9, 1, 2, 3, 9);
    assert.equal(encodeBase64(buf.subarray(2, 5)), 'AQID');
  });

  it('decodes padded and unpadded', () => {
    assert.deepEqual([...decodeBase64('+/8')], [0xfb, 0xff]);
    assert.deepEqual([...decodeBase64('+/8=')], [0xfb, 0xff]);
    assert.deepEqual([...decodeBase64Url('-_8')], [0xfb, 0xff]);
    assert.deepEqual([...decodeBase64Any('-_8')], [0xfb, 0xff]);
    assert.deepEqual([...decodeBase64Any('+/8')], [0xfb, 0xff]);
  });

  it('decodes the spec seed with non-zero trailing bits', () => {
    const v = loadVector('spec-signing-key.json');
    assert.equal(Buffer.from(decodeBase64(v.seed_base64)).toString('hex'), v.seed_hex);
  });

  it('rejects invalid input', () => {
    for (const s of ['a', 'ab$c', 'ab=c', '-_8', 'abc==', 'ab===']) assert.throws(() => decodeBase64(s), Base64Error, s);
    assert.throws(() => decodeBase64Url('+/8'), Base64Error);
    assert.equal(tryDecodeBase64('!!'), undefined);
    assert.equal(tryDecodeBase64(42), undefined);
  });
});
