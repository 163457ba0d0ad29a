// Response headers for media bytes, safe against stored XSS: uploads are user-controlled, so a
// file served from the homeserver's origin must never run as a page there.
//
// - Content-Security-Policy: sandbox etc. (Synapse's policy): even an HTML or SVG file opened
//   directly runs no script and loads nothing.
// - X-Content-Type-Options: nosniff: the browser uses the declared type, never a guessed one.
// - Content-Disposition: inline only for the spec's list of types safe to show inline
//   ("Serving inline content"); attachment (a download) for everything else.
// - Cross-Origin-Resource-Policy: cross-origin: web clients on other origins may embed it.

export const MEDIA_CSP = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';";

/** The spec's list of types that may be served with `inline` disposition. */
const INLINE_TYPES = new Set([
  'text/css', 'text/plain', 'text/csv', 'application/json', 'application/ld+json',
  'image/jpeg', 'image/gif', 'image/png', 'image/apng', 'image/webp', 'image/avif',
  'video/mp4', 'video/webm', 'video/ogg', 'video/quicktime',
  'audio/mp4', 'audio/webm', 'audio/aac', 'audio/mpeg', 'audio/ogg', 'audio/wave', 'audio/wav', 'audio/x-wav', 'audio/x-pn-wav', 'audio/flac', 'audio/x-flac',
]);

/** The type without parameters, lower case. */
export function essence(contentType: string): string {
  return contentType.split(';', 1)[0].trim().toLowerCase();
}

export function isInline(contentType: string): boolean {
  return INLINE_TYPES.has(essence(contentType));
}

/**
 * A Content-Disposition value (RFC 6266): a plain `filename` when the name is printable ASCII
 * without quotes or backslashes, else an RFC 5987 `filename*` (UTF-8, percent-encoded).
 */
export function contentDisposition(kind: 'inline' | 'attachment', filename: string | null): string {
  if (!filename) return kind;
  if (/^[\x20-\x7e]*$/.test(filename) && !/["\\%]/.test(filename)) return `${kind}; filename="${filename}"`;
  const encoded = encodeURIComponent(filename).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${kind}; filename*=utf-8''${encoded}`;
}

/** Every header a media response carries, for the bytes' declared type and name. */
export function mediaHeaders(contentType: string, filename: string | null, forceInline = false): Record<string, string> {
  return {
    'Content-Security-Policy': MEDIA_CSP,
    'X-Content-Type-Options': 'nosniff',
    'Cross-Origin-Resource-Policy': 'cross-origin',
    'Content-Disposition': contentDisposition(forceInline || isInline(contentType) ? 'inline' : 'attachment', filename),
    // Bytes under a media ID never change; private: the response needed an access token.
    'Cache-Control': 'private, max-age=31536000, immutable',
  };
}
