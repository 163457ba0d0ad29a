// Matrix uses unpadded base64 everywhere. Decoding is lenient (padding optional, non-zero
// trailing bits accepted) because real peers and the spec's own test seed rely on it.

export class Base64Error extends Error {
  override name = 'Base64Error';
}

const STANDARD = /^[A-Za-z0-9+/]*={0,2}$/;
const URL_SAFE = /^[A-Za-z0-9_-]*={0,2}$/;

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replace(/=+$/, '');
}

export function encodeBase64Url(bytes: Uint8Array): string {
  // Node's base64url output is already unpadded.
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

function decodeWith(s: string, pattern: RegExp, encoding: 'base64' | 'base64url'): Uint8Array {
  // Node's decoder silently skips invalid characters; validate first so garbage is an error.
  if (!pattern.test(s)) throw new Base64Error('invalid base64 characters');
  const body = s.replace(/=+$/, '');
  if (body.length % 4 === 1) throw new Base64Error('invalid base64 length');
  if (s.length !== body.length && s.length % 4 !== 0) throw new Base64Error('invalid base64 padding');
  const buf = Buffer.from(body, encoding);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Decodes standard-alphabet base64, padded or not. Throws {@link Base64Error}. */
export function decodeBase64(s: string): Uint8Array {
  return decodeWith(s, STANDARD, 'base64');
}

/** Decodes URL-safe base64, padded or not. Throws {@link Base64Error}. */
export function decodeBase64Url(s: string): Uint8Array {
  return decodeWith(s, URL_SAFE, 'base64url');
}

/** Accepts either alphabet (some clients and third-party-invite keys use URL-safe). */
export function decodeBase64Any(s: string): Uint8Array {
  return /[-_]/.test(s) ? decodeBase64Url(s) : decodeBase64(s);
}

/** Like decodeBase64Any but returns undefined instead of throwing. */
export function tryDecodeBase64(s: unknown): Uint8Array | undefined {
  if (typeof s !== 'string') return undefined;
  try {
    return decodeBase64Any(s);
  } catch {
    return undefined;
  }
}
