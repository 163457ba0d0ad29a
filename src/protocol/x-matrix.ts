// X-Matrix request authentication (spec server-server API, "Request Authentication").
import { jsonSigningInput, signBytes, verifyBytes, type VerifyKey } from './crypto.js';
import { encodeBase64 } from './base64.js';
import type { JsonObject, JsonValue, SigningKey } from './types.js';

export interface XMatrixRequest {
  method: string;
  /** The exact request target as sent: encoded path plus `?query`. Verify with the raw URL. */
  uri: string;
  origin: string;
  destination: string;
  /** The parsed JSON body; omit when there is no body. */
  content?: JsonValue;
}

export interface XMatrixHeader {
  origin: string;
  /** Older servers omit it; the verifier must then use its own name. */
  destination?: string;
  key: string;
  sig: string;
}

/** The object that is signed: `{method, uri, origin, destination[, content]}`. */
export function xMatrixSignedObject(req: XMatrixRequest): JsonObject {
  const obj: JsonObject = { method: req.method, uri: req.uri, origin: req.origin, destination: req.destination };
  if (req.content !== undefined) obj.content = req.content;
  return obj;
}

/** The exact bytes signed for a request (canonical JSON of the signed object). */
export function xMatrixSigningInput(req: XMatrixRequest): string {
  return jsonSigningInput(xMatrixSignedObject(req));
}

export function signXMatrixRequest(req: XMatrixRequest, key: SigningKey): string {
  return encodeBase64(signBytes(key, xMatrixSigningInput(req)));
}

function quote(v: string): string {
  return `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/**
 * The `Authorization` header value. Uses `sig` (what Synapse and the spec's example send), all
 * values quoted, no spaces after commas: the strictest receivers accept exactly this form.
 */
export function buildXMatrixAuthorization(req: XMatrixRequest, key: SigningKey): string {
  const sig = signXMatrixRequest(req, key);
  return `X-Matrix origin=${quote(req.origin)},destination=${quote(req.destination)},key=${quote(key.keyId)},sig=${quote(sig)}`;
}

/**
 * Parses an `Authorization: X-Matrix ...` header leniently (any parameter order, optional
 * quotes, backslash escapes, case-insensitive names, `signature` as an alias of `sig`).
 * Returns undefined if it is not an X-Matrix header or lacks origin, key or sig.
 */
export function parseXMatrixHeader(header: string): XMatrixHeader | undefined {
  const m = /^X-Matrix[ \t]+/i.exec(header);
  if (!m) return undefined;
  const params = new Map<string, string>();
  const s = header;
  let i = m[0].length;
  while (i < s.length) {
    while (i < s.length && /[ \t,]/.test(s[i])) i++;
    const eq = s.indexOf('=', i);
    if (eq < 0) break;
    const name = s.slice(i, eq).trim().toLowerCase();
    i = eq + 1;
    while (i < s.length && /[ \t]/.test(s[i])) i++;
    let value = '';
    if (s[i] === '"') {
      i++;
      while (i < s.length && s[i] !== '"') {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        value += s[i++];
      }
      i++;
    } else {
      while (i < s.length && !/[ \t,]/.test(s[i])) value += s[i++];
    }
    if (name && !params.has(name)) params.set(name, value);
  }
  const origin = params.get('origin');
  const key = params.get('key');
  const sig = params.get('sig') ?? params.get('signature');
  if (!origin || !key || !sig) return undefined;
  const destination = params.get('destination');
  return destination === undefined ? { origin, key, sig } : { origin, destination, key, sig };
}

/**
 * Verifies a parsed header against the request as received. `ownServerName` is always what goes
 * into the signed object: a header naming another destination fails.
 */
export function verifyXMatrixRequest(
  header: XMatrixHeader,
  request: { method: string; uri: string; content?: JsonValue },
  ownServerName: string,
  publicKey: VerifyKey,
): boolean {
  if (header.destination !== undefined && header.destination !== ownServerName) return false;
  let input: string;
  try {
    input = xMatrixSigningInput({ ...request, origin: header.origin, destination: ownServerName });
  } catch {
    return false;
  }
  return verifyBytes(publicKey, input, header.sig);
}
