// URL previews (GET /preview_url): the server fetches a page a user posted and answers its
// OpenGraph data, with og:image stored as media (an mxc:// URI) so clients never fetch the
// third-party image themselves. Off by default (media.url_preview.enabled).
//
// Invariants:
// - Every fetch (the page, each redirect hop, the image) goes through the OutboundHttp of
//   src/net/outbound-guard.ts: the IP policy applies to each address actually dialled, and
//   redirects are followed here, hop by hop, each checked again.
// - Each fetch is bounded in bytes (max_page_bytes, max_image_bytes: longer bodies are cut off)
//   and the whole preview in time (timeout_ms).
// - HTML is read with htmlparser2's streaming tokenizer (no DOM is built); only <title> and
//   <meta> in the page are looked at.

import { LRUCache } from 'lru-cache';
import { Parser } from 'htmlparser2';
import type { Logger } from 'pino';
import { MatrixError } from '../errors.js';
import { isOutboundRefused, type OutboundHttp, type OutboundResponse } from '../net/outbound-guard.js';
import type { MediaService } from './media-service.js';
import { essence } from './headers.js';
import { imageSize } from './thumbnailer.js';

export interface UrlPreviewConfig {
  maxPageBytes: number;
  maxImageBytes: number;
  /** media.max_image_pixels: larger images are stored without their size being read. */
  maxImagePixels: number;
  timeoutMs: number;
  cacheMs: number;
}

type Preview = Record<string, string | number>;

const MAX_REDIRECTS = 5;
const USER_AGENT = 'Hearth URL preview (Matrix homeserver)';

export class UrlPreviewer {
  private readonly cache: LRUCache<string, { at: number; preview: Preview }>;

  constructor(
    private readonly deps: { http: OutboundHttp; media: MediaService; config: UrlPreviewConfig; logger: Logger; now: () => number },
  ) {
    this.cache = new LRUCache({ max: 10_000 });
  }

  async preview(userId: string, url: string, signal: AbortSignal): Promise<Preview> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new MatrixError('M_INVALID_PARAM', 'url is not an absolute URL');
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new MatrixError('M_INVALID_PARAM', 'url must be http(s)');
    parsed.hash = '';
    const key = parsed.href;
    const hit = this.cache.get(key);
    if (hit && this.deps.now() - hit.at < this.deps.config.cacheMs) return { ...hit.preview };
    const deadline = AbortSignal.any([signal, AbortSignal.timeout(this.deps.config.timeoutMs)]);
    const preview = await this.build(userId, parsed, deadline);
    this.cache.set(key, { at: this.deps.now(), preview });
    return { ...preview };
  }

  private async build(userId: string, url: URL, signal: AbortSignal): Promise<Preview> {
    const page = await this.fetch(url, this.deps.config.maxPageBytes, signal);
    const type = essence(header(page.res, 'content-type') ?? 'application/octet-stream');
    if (type.startsWith('image/')) return this.imagePreview(userId, page.url, page.res, type);
    if (type !== 'text/html' && type !== 'application/xhtml+xml') return {};
    const og = parseOpenGraph(decode(page.res.body, header(page.res, 'content-type')), page.url);
    const image = og['og:image'];
    if (typeof image === 'string') {
      delete og['og:image'];
      try {
        const imgUrl = new URL(image);
        const img = await this.fetch(imgUrl, this.deps.config.maxImageBytes, signal);
        const imgType = essence(header(img.res, 'content-type') ?? '');
        if (imgType.startsWith('image/') && !img.res.truncated) Object.assign(og, await this.imagePreview(userId, img.url, img.res, imgType));
      } catch (err) {
        // The page's preview stands without its image.
        this.deps.logger.debug({ err, url: image }, 'url preview: og:image not fetched');
      }
    }
    return og;
  }

  private async imagePreview(userId: string, url: URL, res: OutboundResponse, type: string): Promise<Preview> {
    if (res.truncated) return {};
    const name = decodeURIComponent(url.pathname.split('/').pop() ?? '') || null;
    const mediaId = await this.deps.media.upload(userId, { contentType: type, filename: name, length: res.body.length, body: [res.body] });
    const out: Preview = { 'og:image': this.deps.media.mxc(mediaId), 'og:image:type': type, 'matrix:image:size': res.body.length };
    // OpenGraph's og:image:width/height, measured on the image actually stored (they replace
    // whatever the page claimed, which described the page's image, not necessarily this one).
    const size = await imageSize(res.body, this.deps.config.maxImagePixels);
    if (size) Object.assign(out, { 'og:image:width': size.width, 'og:image:height': size.height });
    return out;
  }

  /** GET with redirects followed by hand (each hop through the guard). */
  private async fetch(start: URL, maxBytes: number, signal: AbortSignal): Promise<{ url: URL; res: OutboundResponse }> {
    let url = start;
    for (let hop = 0; ; hop++) {
      let res: OutboundResponse;
      try {
        res = await this.deps.http.request(url, { headers: { 'user-agent': USER_AGENT, accept: 'text/html,image/*;q=0.9,*/*;q=0.5' }, signal, maxResponseBytes: maxBytes });
      } catch (err) {
        if (isOutboundRefused(err)) throw new MatrixError('M_FORBIDDEN', 'This URL may not be previewed (its address is refused by the server\'s outbound policy)');
        if (signal.aborted) throw new MatrixError('M_UNKNOWN', 'Timed out fetching the URL', {}, 504);
        this.deps.logger.debug({ err, url: url.href }, 'url preview: fetch failed');
        throw new MatrixError('M_UNKNOWN', 'Could not fetch the URL', {}, 502);
      }
      const location = header(res, 'location');
      if (res.status >= 300 && res.status < 400 && location) {
        if (hop >= MAX_REDIRECTS) throw new MatrixError('M_UNKNOWN', 'Too many redirects', {}, 502);
        url = new URL(location, url);
        continue;
      }
      if (res.status !== 200) throw new MatrixError('M_UNKNOWN', `The URL answered ${res.status}`, {}, 502);
      return { url, res };
    }
  }
}

function header(res: OutboundResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function decode(body: Buffer, contentType: string | undefined): string {
  const charset = /charset=["']?([\w-]+)/i.exec(contentType ?? '')?.[1] ?? 'utf-8';
  try {
    return new TextDecoder(charset).decode(body);
  } catch {
    return new TextDecoder('utf-8').decode(body);
  }
}

const MAX_VALUE_LENGTH = 1000;

/**
 * OpenGraph properties of a page: every <meta property="og:..."> (first wins), with <title> and
 * <meta name="description"> as fallbacks for og:title and og:description, and og:image made
 * absolute against the page URL.
 */
export function parseOpenGraph(html: string, base: URL): Preview {
  const og: Preview = Object.create(null) as Preview;
  let title = '';
  let inTitle = false;
  let description: string | undefined;
  const parser = new Parser(
    {
      onopentag(name, attrs) {
        if (name === 'title') inTitle = true;
        if (name !== 'meta') return;
        const prop = (attrs.property ?? attrs.name ?? '').trim();
        const content = attrs.content;
        if (content === undefined) return;
        if (prop.startsWith('og:') && !(prop in og)) og[prop] = content.slice(0, MAX_VALUE_LENGTH);
        if (prop.toLowerCase() === 'description' && description === undefined) description = content.slice(0, MAX_VALUE_LENGTH);
      },
      ontext(text) {
        if (inTitle) title += text;
      },
      onclosetag(name) {
        if (name === 'title') inTitle = false;
      },
    },
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true },
  );
  parser.write(html);
  parser.end();
  if (!('og:title' in og) && title.trim()) og['og:title'] = title.trim().slice(0, MAX_VALUE_LENGTH);
  if (!('og:description' in og) && description) og['og:description'] = description;
  for (const k of ['og:image:width', 'og:image:height']) {
    if (typeof og[k] === 'string' && /^\d{1,9}$/.test(og[k])) og[k] = Number(og[k]);
  }
  if (typeof og['og:image'] === 'string') {
    try {
      og['og:image'] = new URL(og['og:image'], base).href;
    } catch {
      delete og['og:image'];
    }
  }
  return { ...og };
}
