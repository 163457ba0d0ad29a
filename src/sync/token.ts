// The one parser and serializer of stream tokens. Tokens are opaque to clients but must round-trip
// between /sync (since, next_batch, prev_batch), /messages (from, to), /members?at=, /context and
// /keys/changes, and stay valid across restarts: an error on a stale-but-valid token wedges
// clients, so every version ever issued stays parseable.
//
// v1 format: "h1_<stream>_<ephemeral>".
// - stream: the global durable stream position (events, account data, ...). Position P means
//   "after everything at or below P": /messages dir=b from P returns stream <= P, dir=f > P.
// - ephemeral: position in the in-memory ephemeral stream (typing, presence). It restarts at 0
//   with the process, so a value above the current one is treated as "send everything".

import { MatrixError } from '../errors.js';

/**
 * /messages and /context hand out topological tokens "t<depth>-<stream>": a position in the
 * room's (depth, stream) order, which is what the spec pages /messages by. Backfilled events have
 * negative streams, so the stream part may be negative. Stream tokens stay valid there too: they
 * bound by stream position only (events at or below it), still ordered topologically.
 */
export interface PaginationToken {
  stream: number;
  topo?: { depth: number; stream: number };
}
const TOPOLOGICAL_FULL = /^t(\d{1,15})-(-?\d{1,15})$/;

export function serializeTopoToken(pos: { depth: number; stream: number }): string {
  return `t${pos.depth}-${pos.stream}`;
}

/** Parses a /messages `from`/`to`: a topological token or any stream token. */
export function parsePaginationToken(raw: string, param = 'token'): PaginationToken {
  const m = TOPOLOGICAL_FULL.exec(raw);
  if (m) {
    const topo = { depth: Number(m[1]), stream: Number(m[2]) };
    return { stream: topo.stream, topo };
  }
  return { stream: parseToken(raw, param).stream };
}

export interface StreamToken {
  stream: number;
  ephemeral: number;
}

const V1 = /^h1_(\d{1,15})_(\d{1,15})$/;
// Synapse-style "s123" and topological "t1-123" tokens are accepted so that links and tooling that
// produce those forms still work; only the stream part matters to us.
const LEGACY_STREAM = /^s(\d{1,15})$/;
const TOPOLOGICAL = /^t\d{1,15}-(\d{1,15})$/;

export function serializeToken(token: StreamToken): string {
  return `h1_${token.stream}_${token.ephemeral}`;
}

export function tokenAt(stream: number, ephemeral = 0): string {
  return serializeToken({ stream, ephemeral });
}

/** Parses a token; throws M_INVALID_PARAM (400) for anything that is not a token we issued. */
export function parseToken(raw: string, param = 'token'): StreamToken {
  let m = V1.exec(raw);
  if (m) return { stream: Number(m[1]), ephemeral: Number(m[2]) };
  m = LEGACY_STREAM.exec(raw) ?? TOPOLOGICAL.exec(raw);
  if (m) return { stream: Number(m[1]), ephemeral: 0 };
  throw new MatrixError('M_INVALID_PARAM', `Invalid ${param}: not a stream token`);
}
