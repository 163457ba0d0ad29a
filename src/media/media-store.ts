// Where media bytes live: the MediaStore seam. The media service (media-service.ts) keeps the
// metadata in the store contract (src/store/media-types.ts) and the bytes here, under keys it
// derives from media IDs (contentKey/thumbnailKey in media-service.ts). Backends: the local
// filesystem (local-store.ts, media.store: local) and the Cassandra keyspace
// (src/store/cassandra/media-blobs.ts, media.store: cassandra), which every worker of a cluster
// shares.
//
// Contract every backend keeps:
// - put() is all or nothing: until its promise resolves nothing is readable under the key, and
//   when it rejects (source error, client gone, over the limit) nothing is left behind.
// - put() never holds more than a chunk of the body in memory: bodies are streamed.
// - A key is written once: put() on a key that already holds bytes leaves them and resolves with
//   their size and hash, so what a caller records always matches what readers get, whichever of
//   two racing writers (two processes) came first.
// - Keys are [A-Za-z0-9._/-] paths (checkMediaKey); backends refuse others.
// - delete() of a missing key is not an error.

import type { Readable } from 'node:stream';

const KEY_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/;

/** Throws unless `key` is a media key (no `.`/`..` segment, nothing outside [A-Za-z0-9._/-]). */
export function checkMediaKey(key: string): void {
  if (!KEY_RE.test(key) || key.split('/').some((s) => s === '..' || s === '.')) throw new Error(`invalid media key ${JSON.stringify(key)}`);
}

export interface StoredBlob {
  size: number;
  /** Hex SHA-256 of the bytes. */
  sha256: string;
}

export interface OpenedBlob {
  stream: Readable;
  size: number;
}

/** Thrown by put() when the source is longer than the limit it was given. */
export class BlobTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`body longer than ${limit} bytes`);
    this.name = 'BlobTooLargeError';
  }
}

export interface MediaStore {
  /** Creates whatever the backend needs (directories, a bucket check) and clears leftovers. */
  open(): Promise<void>;
  /** Streams `source` under `key`; rejects with BlobTooLargeError past `limit` bytes. */
  put(key: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, limit: number): Promise<StoredBlob>;
  /** The bytes under `key`, or null when there are none. */
  get(key: string): Promise<OpenedBlob | null>;
  delete(key: string): Promise<void>;
  /** Stops background work (a sweep timer); optional. */
  close?(): void;
}
