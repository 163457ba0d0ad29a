// What the domain modules share: one connection, its statement cache and the write queue.

import type { Statement } from './db.js';
import { parseTrustedJson } from '../../protocol/canonical-json.js';
import type { WriteQueue } from './write-queue.js';

export interface SqliteContext {
  /** Cached prepared statement for `sql`. */
  stmt(sql: string): Statement;
  readonly queue: WriteQueue;
  /** Throws (so the calling async method rejects) once the store is closed. */
  checkOpen(): void;
}

/** Stored JSON comes back with null-prototype objects, like request bodies (see parseTrustedJson). */
export function jsonParse<T>(text: string): T {
  return parseTrustedJson<T>(text);
}
