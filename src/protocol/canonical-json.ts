// Matrix canonical JSON (spec appendices, "Canonical JSON") and a strict parser for untrusted input.
import type { JsonObject, JsonValue } from './types.js';

export class CanonicalJsonError extends Error {
  override name = 'CanonicalJsonError';
}

/** Largest magnitude canonical JSON allows; the same as JS safe integers. */
export const MAX_SAFE_JSON_INT = Number.MAX_SAFE_INTEGER;

// Deep enough for any real event, shallow enough that hostile input cannot blow the stack.
const MAX_DEPTH = 512;

// A lone surrogate cannot be encoded as UTF-8, so two servers would hash it differently.
// String.prototype.isWellFormed (ES2024, native in Node 20) is exactly "has no lone surrogate";
// this project's ES2022 lib typings do not declare it.
const wellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();
// Any surrogate at all: a key without one is well-formed and sorts the same by UTF-16 unit as by
// code point (the orders differ only between surrogates and U+E000..U+FFFF).
const ANY_SURROGATE = /[\uD800-\uDFFF]/;

export function hasLoneSurrogate(s: string): boolean {
  return !wellFormed(s);
}

/**
 * Compares two strings by Unicode code point. Plain `<` compares UTF-16 code units, which puts
 * astral characters (surrogate pairs, 0xD800..) before U+E000..U+FFFF; the spec wants code points.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // Move surrogates above U+E000..U+FFFF; everything below 0xD800 already orders correctly.
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

export function isJsonObject(v: unknown): v is JsonObject {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Serialises `value` as canonical JSON. Object properties whose value is `undefined` are skipped
 * (as JSON.stringify does) so optional TS fields may be left unset; anything else that has no
 * canonical form (floats, unsafe integers, NaN, lone surrogates, class instances) throws.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, 0);
}

/**
 * The members of a plain object as canonical JSON `"key":value` strings, in canonical order, for
 * callers that assemble several encodings of overlapping objects (signLocalEvent): joining them
 * with commas inside braces is exactly canonicalJson of the object.
 */
export function canonicalMembers(obj: JsonObject | Record<string, unknown>): Array<{ key: string; json: string }> {
  return sortedKeys(obj, 0).map((key) => ({ key, json: encodeString(key) + ':' + encode(obj[key], 1) }));
}

function encodeString(s: string): string {
  // JSON.stringify already emits the minimal
  // escapes with lowercase \u00xx, as the spec requires.
  if (!wellFormed(s)) throw new CanonicalJsonError('string contains a lone surrogate');
  return JSON.stringify(s);
}

/** The object's keys with a defined value, in canonical order; refuses keys with lone surrogates. */
function sortedKeys(v: Record<string, unknown>, depth: number): string[] {
  if (depth > MAX_DEPTH) throw new CanonicalJsonError('value nested too deeply');
  const keys: string[] = [];
  let surrogates = false;
  for (const k of Object.keys(v)) {
    if (v[k] === undefined) continue;
    if (ANY_SURROGATE.test(k)) {
      if (!wellFormed(k)) throw new CanonicalJsonError('string contains a lone surrogate');
      surrogates = true;
    }
    keys.push(k);
  }
  // Without surrogates the default (UTF-16 unit) order is code point order, and native.
  return surrogates ? keys.sort(compareCodePoints) : keys.sort();
}

function encode(v: unknown, depth: number): string {
  if (depth > MAX_DEPTH) throw new CanonicalJsonError('value nested too deeply');
  switch (typeof v) {
    case 'string':
      return encodeString(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isSafeInteger(v)) {
        throw new CanonicalJsonError(`number ${v} is not an integer in the canonical JSON range`);
      }
      // String(-0) is "0", which is what canonical JSON wants.
      return String(v);
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(`cannot serialise a value of type ${typeof v}`);
  }
  if (v === null) return 'null';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    let out = '[';
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (x === undefined) throw new CanonicalJsonError('array contains undefined');
      out += (i > 0 ? ',' : '') + encode(x, depth + 1);
    }
    return out + ']';
  }
  if (!isJsonObject(v)) throw new CanonicalJsonError('only plain objects can be serialised');
  const keys = sortedKeys(v, depth);
  if (keys.length === 0) return '{}';
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    out += (i > 0 ? ',' : '') + JSON.stringify(k) + ':' + encode(v[k], depth + 1);
  }
  return out + '}';
}

/**
 * Parses JSON from an untrusted source (a client, a peer, the database) into a value that is safe
 * to walk and to index by its own keys:
 * - every object has a null prototype, so `__proto__`, `constructor` and `prototype` are plain
 *   data: a lookup `obj[key]` with a hostile key never reaches Object.prototype, and nothing
 *   inherited can be mistaken for input;
 * - what canonical JSON cannot represent is refused: fractions, exponents and integers past 2^53
 *   (JSON.parse would accept `1.0`/`1e400` and round big integers silently), lone surrogates,
 *   and nesting deeper than MAX_DEPTH (which would overflow the stack of whatever walks it next).
 * JSON.parse itself never invokes the `__proto__` setter: it defines own properties.
 */
export function parseStrictJson(text: string): JsonValue {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new CanonicalJsonError(`invalid JSON: ${(e as Error).message}`);
  }
  return hardenParsed(text, value);
}

/**
 * The checks of {@link parseStrictJson} for a `value` the caller already got from JSON.parse(text).
 * With `fractions`, finite fractional numbers pass (account data and room tags: the spec's tag
 * `order` is one, and nothing there is signed); integers past 2^53 and overflowing numbers such
 * as 1e400 never do, since JSON.parse would round them or turn them into Infinity.
 */
export function hardenParsed(text: string, value: unknown, opts: { fractions?: boolean } = {}): JsonValue {
  checkNumberTokens(text, opts.fractions === true);
  return harden(value, 0) as JsonValue;
}

/**
 * For a JSON text that carries a value among other fields (a socket frame around a request body):
 * refuses what no route accepts (integers past 2^53, overflowing numbers) and reports whether a
 * fraction or exponent occurs, so the route's own rule can be applied to the value later.
 */
export function scanNumbers(text: string): { fractions: boolean } {
  return { fractions: checkNumberTokens(text, true) };
}

/** The structural checks of {@link hardenParsed} (prototypes, surrogates, depth) for one value. */
export function hardenValue(value: unknown): JsonValue {
  return harden(value, 0) as JsonValue;
}

/** As {@link parseStrictJson} but the top level must be an object. */
export function parseStrictJsonObject(text: string): JsonObject {
  const v = parseStrictJson(text);
  if (!isJsonObject(v)) throw new CanonicalJsonError('expected a JSON object');
  return v;
}

/**
 * JSON that this server wrote itself (stored rows): already checked on the way in, so only the
 * prototype is changed. Costs about a microsecond for a typical event.
 */
export function parseTrustedJson<T>(text: string): T {
  return nullPrototypes(JSON.parse(text)) as T;
}

function nullPrototypes(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    for (const x of v) nullPrototypes(x);
    return v;
  }
  Object.setPrototypeOf(v, null);
  for (const k in v) nullPrototypes((v as Record<string, unknown>)[k]);
  return v;
}

const NUMBER_CHAR = /[-+0-9.eE]/;

// Runs after JSON.parse succeeded, so the text is well-formed and only strings need skipping.
/** Returns whether a fraction or exponent was let through (only possible with `fractions`). */
function checkNumberTokens(text: string, fractions = false): boolean {
  let sawFraction = false;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === '"') {
      i++;
      while (i < n && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
      continue;
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      const start = i;
      while (i < n && NUMBER_CHAR.test(text[i])) i++;
      if (checkNumberToken(text.slice(start, i), fractions)) sawFraction = true;
      continue;
    }
    i++;
  }
  return sawFraction;
}

function checkNumberToken(tok: string, fractions: boolean): boolean {
  if (!/^-?(0|[1-9][0-9]*)$/.test(tok)) {
    if (fractions && Number.isFinite(Number(tok))) return true;
    throw new CanonicalJsonError(`number ${tok} is not an integer (no fractions or exponents)`);
  }
  if (tok.length > 15) {
    const big = BigInt(tok);
    if (big > BigInt(MAX_SAFE_JSON_INT) || big < -BigInt(MAX_SAFE_JSON_INT)) {
      throw new CanonicalJsonError(`integer ${tok} is outside the canonical JSON range`);
    }
  }
  return false;
}

function harden(v: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new CanonicalJsonError('value nested too deeply');
  if (typeof v === 'string') {
    if (hasLoneSurrogate(v)) throw new CanonicalJsonError('string contains a lone surrogate');
  } else if (Array.isArray(v)) {
    for (const x of v) harden(x, depth + 1);
  } else if (typeof v === 'object' && v !== null) {
    Object.setPrototypeOf(v, null);
    for (const k in v) {
      if (hasLoneSurrogate(k)) throw new CanonicalJsonError('key contains a lone surrogate');
      harden((v as Record<string, unknown>)[k], depth + 1);
    }
  }
  return v;
}

/** An empty object for keys taken from input: nothing inherited, `__proto__` is an ordinary key. */
export function dict<V>(): Record<string, V> {
  return Object.create(null) as Record<string, V>;
}

/** Deep copy of a JSON value; the copy shares nothing with the input. */
export function cloneJson<T extends JsonValue>(v: T): T {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => cloneJson(x)) as T;
  const out: JsonObject = dict();
  for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = cloneJson(x);
  return out as T;
}
