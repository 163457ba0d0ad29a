// multipart/mixed as the federation media endpoints use it (S-S API, "Content repository"): a
// JSON metadata part, then a part that is either the bytes (with their Content-Type and
// Content-Disposition) or empty with a Location header. Both directions: encoding our answer,
// and reading a peer's answer as a stream.
//
// Invariants: reading never buffers more than a part's headers / the metadata part (each capped)
// plus one chunk of the bytes; the bytes end at the first CRLF + "--" + boundary (RFC 2046),
// and a body that ends before it is an error (a cut-off download must not be stored).

import { randomBytes } from 'node:crypto';

export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MultipartError';
  }
}

const CRLF = Buffer.from('\r\n');
const HEADERS_END = Buffer.from('\r\n\r\n');
const MAX_HEADERS = 16 * 1024;
const MAX_METADATA = 64 * 1024;

/** The boundary of a multipart/mixed Content-Type, or null when it is something else. */
export function multipartBoundary(contentType: string | undefined): string | null {
  if (!contentType || !/^\s*multipart\/mixed\s*(;|$)/i.test(contentType)) return null;
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : null;
}

export interface MultipartMedia {
  /** The metadata part (parsed by the caller; the spec defines no fields yet). */
  metadata: Buffer;
  /** The second part's headers, names lower case. */
  headers: Record<string, string>;
  /** The second part's bytes (empty for a redirect): consume once. */
  body: AsyncIterable<Buffer>;
}

/** Reads the two parts of a federation media answer from `source` as it arrives. */
export async function readMultipartMedia(source: AsyncIterable<Uint8Array>, boundary: string): Promise<MultipartMedia> {
  const r = new Reader(source[Symbol.asyncIterator]());
  const delim = Buffer.from(`\r\n--${boundary}`);
  await r.until(delim, MAX_METADATA); // preamble (normally none)
  await r.partStart();
  await r.headers();
  const metadata = await r.until(delim, MAX_METADATA);
  await r.partStart();
  const headers = await r.headers();
  return { metadata, headers, body: r.streamUntil(delim) };
}

class Reader {
  // A CRLF in front, so that a body starting with the first delimiter matches "\r\n--b" too.
  private buf: Buffer = Buffer.from(CRLF);
  private ended = false;

  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  private async more(): Promise<void> {
    if (!this.ended) {
      const next = await this.it.next();
      if (!next.done) {
        this.buf = this.buf.length === 0 ? Buffer.from(next.value) : Buffer.concat([this.buf, next.value]);
        return;
      }
      this.ended = true;
    }
    throw new MultipartError('the multipart body ended early');
  }

  async until(delim: Buffer, max: number): Promise<Buffer> {
    for (;;) {
      const i = this.buf.indexOf(delim);
      if (i >= 0) {
        const out = this.buf.subarray(0, i);
        this.buf = this.buf.subarray(i + delim.length);
        return out;
      }
      if (this.buf.length > max + delim.length) throw new MultipartError('a multipart part is too long');
      await this.more();
    }
  }

  /** After a delimiter: the rest of its line; a close delimiter ("--") here means a part is missing. */
  async partStart(): Promise<void> {
    while (this.buf.length < 2) await this.more();
    if (this.buf[0] === 0x2d && this.buf[1] === 0x2d) throw new MultipartError('the multipart body has too few parts');
    await this.until(CRLF, 1024); // transport padding
  }

  async headers(): Promise<Record<string, string>> {
    while (this.buf.length < 2) await this.more();
    const out: Record<string, string> = Object.create(null) as Record<string, string>;
    if (this.buf[0] === 0x0d && this.buf[1] === 0x0a) {
      this.buf = this.buf.subarray(2);
      return out;
    }
    const block = (await this.until(HEADERS_END, MAX_HEADERS)).toString('latin1');
    for (const line of block.split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new MultipartError('a malformed part header');
      out[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    return out;
  }

  async *streamUntil(delim: Buffer): AsyncGenerator<Buffer> {
    const keep = delim.length - 1;
    for (;;) {
      const i = this.buf.indexOf(delim);
      if (i >= 0) {
        const out = this.buf.subarray(0, i);
        this.buf = this.buf.subarray(i + delim.length);
        if (out.length > 0) yield out;
        return;
      }
      if (this.buf.length > keep) {
        // All but a tail that might be the start of the delimiter.
        const out = this.buf.subarray(0, this.buf.length - keep);
        this.buf = Buffer.from(this.buf.subarray(this.buf.length - keep));
        yield out;
      }
      await this.more();
    }
  }
}

/** Our answer: metadata `{}`, then the bytes with their headers. */
export function multipartMediaParts(contentType: string, disposition: string): { contentType: string; head: Buffer; tail: Buffer } {
  const boundary = randomBytes(16).toString('hex');
  const head = Buffer.from(
    `--${boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n` +
      `--${boundary}\r\nContent-Type: ${contentType}\r\nContent-Disposition: ${disposition}\r\n\r\n`,
    'latin1',
  );
  return { contentType: `multipart/mixed; boundary=${boundary}`, head, tail: Buffer.from(`\r\n--${boundary}--\r\n`) };
}
