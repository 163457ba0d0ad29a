// What every route shares whatever the transport: the authenticated identity, the handler's
// context type, the JSON body intake rule, and body access for handlers and UIA.

import type { ApiCtx } from './handlers.js';
import { MatrixError } from '../errors.js';
import type { JsonObject } from '../protocol/types.js';
import type { UiaRequest } from '../users/uia.js';
import { dict, hardenParsed, isJsonObject } from '../protocol/canonical-json.js';

export type { AuthInfo } from '../users/auth-info.js';

/** What a handler sees of a request: the transport-neutral context of the handler table. */
export type Ctx = ApiCtx;

// fatal: invalid UTF-8 is refused, never silently turned into U+FFFD and stored.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * The one intake check every endpoint shares, for a body in hand (read by the HTTP adapter under
 * its byte limit). Invalid UTF-8 or non-JSON is M_NOT_JSON; a value canonical JSON cannot carry
 * (fractions unless allowed, integers past 2^53, lone surrogates, nesting past the limit) or a top
 * level that is not an object M_BAD_JSON. Objects come out with null prototypes (see
 * parseStrictJson). An empty body counts as {} because several clients send none on POST.
 */
export function parseJsonBody(raw: Buffer | string, opts: { fractions?: boolean } = {}): JsonObject {
  let text: string;
  try {
    text = typeof raw === 'string' ? raw : utf8.decode(raw);
  } catch {
    throw new MatrixError('M_NOT_JSON', 'Content is not valid UTF-8.');
  }
  if (text.trim() === '') return dict();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new MatrixError('M_NOT_JSON', 'Content not JSON.');
  }
  try {
    parsed = hardenParsed(text, parsed, opts);
  } catch (err) {
    throw new MatrixError('M_BAD_JSON', `Content contains a value Matrix does not allow: ${(err as Error).message}`);
  }
  if (!isJsonObject(parsed)) throw new MatrixError('M_BAD_JSON', 'Request body must be a JSON object');
  return parsed;
}

export function body(ctx: Ctx): JsonObject {
  return (ctx.state.body ?? {}) as JsonObject;
}

/** The request a user-interactive-auth session is bound to. */
export function uiaRequest(ctx: Ctx): UiaRequest {
  return { method: ctx.method, path: ctx.path, body: body(ctx) };
}

export interface ParsedBodyInfo {
  /** The frame's own intake failed (an integer past 2^53, a lone surrogate, nesting too deep). */
  error?: MatrixError;
  /** The frame's text holds a fraction or exponent. */
  fractions: boolean;
  /** The frame's size in bytes: an upper bound of the body's size as sent. */
  frameBytes: number;
  /** The body's size as canonical-ish JSON text, computed only when the frame is over a limit. */
  measure: () => number;
}

/**
 * The same rule as {@link parseJsonBody} for a body that reached the server already parsed,
 * inside a socket frame. The frame's text was scanned (scanNumbers) and its values hardened
 * (hardenValue) on arrival; `fractions` says whether that scan met a fraction or exponent, and
 * `measure` gives the body's size in bytes, asked only when the frame was larger than the limit.
 */
export function intakeParsed(value: unknown, seen: ParsedBodyInfo, rule: { limit: number; fractions: boolean }): JsonObject {
  if (seen.error) throw seen.error;
  if (value === undefined) return dict();
  if (seen.frameBytes > rule.limit && seen.measure() > rule.limit) throw new MatrixError('M_TOO_LARGE', 'Request body too large');
  if (seen.fractions && !rule.fractions) {
    throw new MatrixError('M_BAD_JSON', 'Content contains a value Matrix does not allow: a number that is not an integer (no fractions or exponents)');
  }
  if (!isJsonObject(value)) throw new MatrixError('M_BAD_JSON', 'Request body must be a JSON object');
  return value;
}
