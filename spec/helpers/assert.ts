// node:assert's strict mode, except that deep equality treats a null-prototype object like a
// plain one. The server parses every JSON body and stored row into null-prototype objects (so
// hostile keys such as "__proto__" are plain data); tests compare values, not prototypes.
// Everything else stays strict: types, keys, array order, Maps and Sets.

import { strict as strictAssert } from 'node:assert';

function plain(v: unknown, seen = new Map<object, unknown>()): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (seen.has(v)) return seen.get(v);
  if (Array.isArray(v)) {
    const out: unknown[] = [];
    seen.set(v, out);
    for (const x of v) out.push(plain(x, seen));
    return out;
  }
  if (v instanceof Map) {
    const out = new Map<unknown, unknown>();
    seen.set(v, out);
    for (const [k, x] of v) out.set(k, plain(x, seen));
    return out;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== null && proto !== Object.prototype) return v;
  const out: Record<string, unknown> = {};
  seen.set(v, out);
  for (const k of Object.keys(v)) {
    Object.defineProperty(out, k, { value: plain((v as Record<string, unknown>)[k], seen), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

type Strict = typeof strictAssert;

const deepEqual: Strict['deepEqual'] = (actual, expected, message) => strictAssert.deepEqual(plain(actual), plain(expected), message);
const notDeepEqual: Strict['notDeepEqual'] = (actual, expected, message) => strictAssert.notDeepEqual(plain(actual), plain(expected), message);

export const assert: Strict = Object.assign(
  ((value: unknown, message?: string | Error) => strictAssert(value, message)) as Strict,
  strictAssert,
  { deepEqual, deepStrictEqual: deepEqual, notDeepEqual, notDeepStrictEqual: notDeepEqual, strict: undefined as unknown as Strict },
);
assert.strict = assert;
export default assert;
