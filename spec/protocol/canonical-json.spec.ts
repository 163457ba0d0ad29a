import { assert } from '../helpers/assert.js';
import {
  CanonicalJsonError,
  canonicalJson,
  cloneJson,
  compareCodePoints,
  parseStrictJson,
  parseStrictJsonObject,
} from '../../src/protocol/canonical-json.js';
import { loadVector } from './vectors.js';

describe('protocol/canonical-json', () => {
  const vectors = loadVector('spec-canonical-json.json');

  describe('spec vectors', () => {
    for (const c of vectors.cases) {
      it(c.name, () => assert.equal(canonicalJson(JSON.parse(c.input_json_text)), c.expected));
    }
  });

  describe('derived vectors', () => {
    for (const c of vectors.derived_cases.cases) {
      it(c.name, () => assert.equal(canonicalJson(JSON.parse(c.input_json_text)), c.expected));
    }
  });

  describe('canonicalJson', () => {
    it('sorts keys by code point, not UTF-16 unit', () => {
      const keys = ['\u{1F600}', '\uFB01', 'z', '\uE000', 'a', '\u{10000}'];
      const sorted = [...keys].sort(compareCodePoints);
      assert.deepEqual(sorted, ['a', 'z', '\uE000', '\uFB01', '\u{10000}', '\u{1F600}']);
    });

    it('nested sort and escapes', () => {
      assert.equal(canonicalJson({ b: [{ d: 1, c: '\n"\\' }], a: true, c: null }), '{"a":true,"b":[{"c":"\\n\\"\\\\","d":1}],"c":null}');
    });

    it('keeps U+2028, DEL and non-ASCII unescaped', () => {
      assert.equal(canonicalJson('\u2028\u007f\u00e9'), '"\u2028\u007f\u00e9"');
    });

    it('outputs -0 as 0 and accepts the integer range bounds', () => {
      assert.equal(canonicalJson([-0, 2 ** 53 - 1, -(2 ** 53) + 1]), '[0,9007199254740991,-9007199254740991]');
    });

    it('skips undefined properties', () => {
      assert.equal(canonicalJson({ a: undefined, b: 1 }), '{"b":1}');
    });

    for (const [name, value] of [
      ['a float', 1.5],
      ['NaN', NaN],
      ['Infinity', Infinity],
      ['2^53', 2 ** 53],
      ['-(2^53)', -(2 ** 53)],
      ['a bigint', 1n],
      ['a lone high surrogate', '\uD800'],
      ['a lone low surrogate key', { '\uDC00': 1 }],
      ['a Date', new Date(0)],
      ['a Map', new Map()],
      ['a function', () => 1],
      ['undefined in an array', [undefined]],
    ] as Array<[string, unknown]>) {
      it(`rejects ${name}`, () => assert.throws(() => canonicalJson(value), CanonicalJsonError));
    }

    it('treats __proto__ as an ordinary key', () => {
      const v = JSON.parse('{"__proto__":{"x":1},"a":2}');
      assert.equal(canonicalJson(v), '{"__proto__":{"x":1},"a":2}');
    });

    it('rejects absurd nesting', () => {
      let v: unknown = 1;
      for (let i = 0; i < 1000; i++) v = [v];
      assert.throws(() => canonicalJson(v), CanonicalJsonError);
    });
  });

  describe('parseStrictJson', () => {
    it('parses plain JSON', () => {
      assert.deepEqual(parseStrictJson('{"a":[1,-2,0,"x\\u0041"],"b":{"c":null,"d":true}}'), {
        a: [1, -2, 0, 'xA'],
        b: { c: null, d: true },
      });
    });

    it('accepts the range bounds and -0', () => {
      assert.deepEqual(parseStrictJson('[9007199254740991,-9007199254740991,-0]'), [9007199254740991, -9007199254740991, -0]);
    });

    it('ignores number-like text inside strings', () => {
      assert.deepEqual(parseStrictJson('{"1.5e3":"2.5","q":"\\"1.0"}'), { '1.5e3': '2.5', q: '"1.0' });
    });

    for (const text of ['1.0', '{"a":1e3}', '[1E2]', '[0.5]', '[9007199254740992]', '[-9007199254740992]', '[12345678901234567890]', '{"a":-1.0e-5}']) {
      it(`rejects ${text}`, () => assert.throws(() => parseStrictJson(text), CanonicalJsonError));
    }

    it('rejects lone surrogates in values and keys', () => {
      assert.throws(() => parseStrictJson('["\\ud800"]'), CanonicalJsonError);
      assert.throws(() => parseStrictJson('{"\\udc00":1}'), CanonicalJsonError);
      assert.deepEqual(parseStrictJson('["\\ud83d\\ude00"]'), ['\u{1F600}']);
    });

    it('rejects malformed JSON with CanonicalJsonError', () => {
      assert.throws(() => parseStrictJson('{"a":'), CanonicalJsonError);
      assert.throws(() => parseStrictJson(''), CanonicalJsonError);
    });

    it('parses into null-prototype objects: __proto__, constructor and prototype are plain data', () => {
      const v = parseStrictJsonObject('{"__proto__":{"polluted":true},"constructor":{"prototype":{"p":1}},"a":{"b":{}}}') as Record<string, any>;
      assert.equal(Object.getPrototypeOf(v), null);
      assert.equal(Object.getPrototypeOf(v.a), null);
      assert.equal(Object.getPrototypeOf(v.a.b), null);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      assert.equal(({} as Record<string, unknown>).p, undefined);
      assert.deepEqual(Object.keys(v), ['__proto__', 'constructor', 'a']);
      assert.equal(v.__proto__.polluted, true);
      // A lookup by an absent hostile key finds nothing inherited.
      assert.equal(v.a.toString, undefined);
      assert.equal(v.a.hasOwnProperty, undefined);
      const copy = cloneJson(v as never) as Record<string, any>;
      assert.ok(Object.prototype.hasOwnProperty.call(copy, '__proto__'));
      assert.equal(Object.getPrototypeOf(copy), null);
      assert.equal(copy.__proto__.polluted, true);
    });

    it('refuses nesting past the limit without overflowing the stack', () => {
      const deep = '['.repeat(10000) + ']'.repeat(10000);
      assert.throws(() => parseStrictJson(deep), CanonicalJsonError);
      const deepObj = '{"a":'.repeat(10000) + '1' + '}'.repeat(10000);
      assert.throws(() => parseStrictJson(deepObj), CanonicalJsonError);
    });

    it('refuses 1e400 and integers past 2^53 instead of rounding them', () => {
      assert.throws(() => parseStrictJson('{"a":1e400}'), CanonicalJsonError);
      assert.throws(() => parseStrictJson('{"a":9007199254740993}'), CanonicalJsonError);
      assert.throws(() => parseStrictJson('{"a":-9007199254740992}'), CanonicalJsonError);
      assert.throws(() => parseStrictJson('{"a":0.5}'), CanonicalJsonError);
    });

    it('parseStrictJsonObject rejects non-objects', () => {
      assert.throws(() => parseStrictJsonObject('[1]'), CanonicalJsonError);
    });
  });
});
