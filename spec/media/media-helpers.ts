// Helpers for the media specs that build a MediaService by hand over a store (no server): its
// config with the limits those specs do not exercise set generously and remote fetching on, and
// a logger whose warnings and errors the spec can assert on (none, usually).

import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { MediaConfig } from '../../src/media/media-service.js';

/** A media config that fetches remote media, with remote items living `remoteMediaLifetimeMs` (null: kept). */
export function remoteMediaConfig(remoteMediaLifetimeMs: number | null): MediaConfig {
  return {
    maxUploadBytes: 1_000_000,
    maxUserBytes: null,
    unusedExpirationMs: 60_000,
    maxPendingUploads: 5,
    maxWaitMs: 1000,
    maxImagePixels: 1_000_000,
    maxThumbnailsPerMedia: 5,
    fetchRemote: true,
    remoteMediaLifetimeMs,
    maxRemoteMediaBytes: null,
  };
}

/** A logger at level warn that appends each line it writes to `lines`. */
export function warnLogger(lines: string[]): Logger {
  return pino(
    { level: 'warn' },
    new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    }),
  );
}
