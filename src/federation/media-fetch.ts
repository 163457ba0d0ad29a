// Fetches another server's media for the media service (the RemoteMedia seam of
// src/media/media-service.ts): GET /_matrix/federation/v1/media/download/{mediaId} (signed), and
// for servers without it (an answer of 404 M_UNRECOGNIZED, 400 or 405, as Synapse falls back) the
// legacy GET /_matrix/media/v3/download/{origin}/{mediaId}?allow_remote=false on the same
// federation address.
//
// Invariants:
// - Every request goes through the federation client and its guarded HTTP client: a peer's
//   address, and the Location it redirects to, are dialled only if the outbound IP policy allows
//   them (no redirects followed otherwise, one hop at most).
// - The bytes are handed over as a stream, never buffered here; a body that is cut off, or a
//   multipart answer that ends before its closing delimiter, fails the stream (the MediaStore's
//   put then stores nothing).
// - The peer's Content-Type and file name are passed on as given; the media service sanitises
//   them before they are stored or served.

import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { RemoteDownload, RemoteMedia } from '../media/remote-cache.js';
import { multipartBoundary, readMultipartMedia } from '../media/multipart.js';
import { FederationError, fedPath, type FederationClient } from './client.js';

/** How long a peer may take to start answering (timeout_ms asked of it, plus a margin). */
const REMOTE_WAIT_MS = 20_000;

type Headers = Record<string, string | string[] | undefined>;

const header = (h: Headers, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/** The file name of a Content-Disposition value (filename* preferred), or null. */
export function dispositionFilename(value: string | undefined): string | null {
  if (!value) return null;
  const star = /;\s*filename\*\s*=\s*([A-Za-z0-9_-]+)'[^']*'([^;\s]+)/i.exec(value);
  if (star && /^utf-8$/i.test(star[1])) {
    try {
      return decodeURIComponent(star[2]);
    } catch {
      // A malformed encoding: fall back to the plain form.
    }
  }
  const plain = /;\s*filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(value);
  if (!plain) return null;
  return plain[1] !== undefined ? plain[1].replace(/\\(.)/g, '$1') : (plain[2] ?? null);
}

function contentLength(h: Headers): number | undefined {
  const v = header(h, 'content-length');
  return v !== undefined && /^\d{1,15}$/.test(v) ? Number(v) : undefined;
}

export class FederationMediaFetcher implements RemoteMedia {
  constructor(
    private readonly client: FederationClient,
    private readonly logger: Logger,
  ) {}

  async fetch(origin: string, mediaId: string, signal: AbortSignal): Promise<RemoteDownload | null> {
    const path = `${fedPath`/_matrix/federation/v1/media/download/${mediaId}`}?timeout_ms=${REMOTE_WAIT_MS}`;
    try {
      const res = await this.client.stream(origin, path, signal);
      return await this.fromMultipart(res.headers, res.body, signal);
    } catch (err) {
      if (!(err instanceof FederationError)) throw err;
      if (err.status === 404 && err.errcode === 'M_NOT_FOUND') return null;
      const unrecognized = (err.status === 404 && err.errcode !== 'M_NOT_FOUND') || err.status === 400 || err.status === 405;
      if (!unrecognized) throw err;
      this.logger.debug({ err, origin }, 'no federation media endpoint: trying the legacy download');
    }
    const legacy = `${fedPath`/_matrix/media/v3/download/${origin}/${mediaId}`}?allow_remote=false&timeout_ms=${REMOTE_WAIT_MS}`;
    try {
      const res = await this.client.stream(origin, legacy, signal);
      return download(res.headers, res.body);
    } catch (err) {
      if (err instanceof FederationError && err.status === 404) return null;
      throw err;
    }
  }

  private async fromMultipart(headers: Headers, body: Readable, signal: AbortSignal): Promise<RemoteDownload> {
    const boundary = multipartBoundary(header(headers, 'content-type'));
    if (!boundary) {
      body.destroy();
      throw new Error('the federation media answer is not multipart/mixed');
    }
    let part;
    try {
      part = await readMultipartMedia(body, boundary);
    } catch (err) {
      body.destroy();
      throw err;
    }
    const location = part.headers['location'];
    if (location === undefined) {
      return {
        contentType: part.headers['content-type'] ?? null,
        filename: dispositionFilename(part.headers['content-disposition']),
        length: undefined,
        body: part.body,
        cancel: () => body.destroy(),
      };
    }
    body.destroy();
    // A redirect to where the bytes are (a CDN): fetched unsigned, through the same guard.
    let url: URL;
    try {
      url = new URL(location);
    } catch {
      throw new Error('the federation media answer redirects to an invalid URL');
    }
    const res = await this.client.outbound.stream(url, { method: 'GET', signal });
    if (res.status !== 200) {
      res.body.destroy();
      throw new Error(`the media redirect answered ${res.status}`);
    }
    return download(res.headers, res.body);
  }
}

function download(headers: Headers, body: Readable): RemoteDownload {
  return {
    contentType: header(headers, 'content-type') ?? null,
    filename: dispositionFilename(header(headers, 'content-disposition')),
    length: contentLength(headers),
    body,
    cancel: () => body.destroy(),
  };
}
