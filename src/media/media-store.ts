// Where media bytes live: the MediaStore seam. The media service (media-service.ts) keeps the
// metadata in the store contract (src/store/media-types.ts) and the bytes here, under keys it
// derives from media IDs (keys.ts). The local filesystem is the one backend today
// (local-store.ts); an object store (S3-compatible, for scale-out: several Hearth processes
// sharing one media repository) implements the same interface.
//
// Contract every backend keeps:
// - put() is all or nothing: until its promise resolves nothing is readable under the key, and
//   when it rejects (source error, client gone, over the limit) nothing is left behind.
// - put() never holds more than a chunk of the body in memory: bodies are streamed.
// - Keys are [A-Za-z0-9._/-] paths built by keys.ts; backends may rely on that and refuse others.
// - delete() of a missing key is not an error.

import type { Readable } from 'node:stream';

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
}
