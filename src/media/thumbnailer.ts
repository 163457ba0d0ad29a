// Thumbnails by sharp (libvips). Pure functions of the bytes and the request: the service
// caches what they make.
//
// The spec's semantics (Client-Server API, "Thumbnails"):
// - scale: keeps the image's aspect ratio, as large as fits in width x height.
// - crop: the aspect ratio of width:height, filled from the image's centre.
// - Never larger than the original: where the request is larger, scale returns the original's
//   size and crop the largest width:height box the original holds.
// - animated=true on an animated GIF/WebP gives an animated WebP; otherwise the first frame, as
//   JPEG for JPEG sources and PNG for the rest (both in the spec's inline list).

import sharp, { type Metadata } from 'sharp';
import { MatrixError } from '../errors.js';

/** Source types we thumbnail; anything else is refused with 400 (as the spec's example). */
export const THUMBNAILABLE = new Set(['image/jpeg', 'image/jpg', 'image/png', 'image/apng', 'image/gif', 'image/webp', 'image/avif']);
const ANIMATABLE = new Set(['image/gif', 'image/webp', 'image/apng', 'image/png']);

export interface ThumbnailRequest {
  width: number;
  height: number;
  method: 'crop' | 'scale';
  animated: boolean;
}

export interface Thumbnail {
  bytes: Buffer;
  width: number;
  height: number;
  contentType: string;
}

export class ThumbnailError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ThumbnailError';
  }
}

/** The size a thumbnail of a `sw` x `sh` image comes out at. */
export function thumbnailSize(sw: number, sh: number, req: Pick<ThumbnailRequest, 'width' | 'height' | 'method'>): { width: number; height: number } {
  const { width: w, height: h } = req;
  if (req.method === 'scale') {
    const r = Math.min(w / sw, h / sh, 1);
    return { width: Math.max(1, Math.round(sw * r)), height: Math.max(1, Math.round(sh * r)) };
  }
  if (w <= sw && h <= sh) return { width: w, height: h };
  // The largest w:h box inside the original.
  if (sw * h > sh * w) return { width: Math.max(1, Math.round((sh * w) / h)), height: sh };
  return { width: sw, height: Math.max(1, Math.round((sw * h) / w)) };
}

/**
 * The displayed size of an image (EXIF quarter turns applied), or null when it cannot be read.
 * Reads the header only; `maxPixels` bounds what sharp accepts, as for thumbnails.
 */
export async function imageSize(source: Buffer, maxPixels: number): Promise<{ width: number; height: number } | null> {
  let meta: Metadata;
  try {
    meta = await sharp(source, { limitInputPixels: maxPixels }).metadata();
  } catch {
    return null;
  }
  if (!meta.width || !meta.height) return null;
  return (meta.orientation ?? 1) >= 5 ? { width: meta.height, height: meta.width } : { width: meta.width, height: meta.height };
}

export async function makeThumbnail(source: Buffer, sourceType: string, req: ThumbnailRequest, maxPixels: number): Promise<Thumbnail> {
  const wantAnimated = req.animated && ANIMATABLE.has(sourceType);
  let meta: Metadata;
  try {
    meta = await sharp(source, { animated: wantAnimated, limitInputPixels: maxPixels }).metadata();
  } catch (err) {
    throw new ThumbnailError(`cannot read the image: ${(err as Error).message}`);
  }
  const pages = wantAnimated ? meta.pages ?? 1 : 1;
  const animated = wantAnimated && pages > 1;
  let sw = meta.width;
  let sh = animated ? meta.pageHeight ?? meta.height : meta.height;
  if (!sw || !sh) throw new ThumbnailError('cannot read the image size');
  // EXIF orientations 5-8 turn the image a quarter: rotate() below applies them.
  if (!animated && (meta.orientation ?? 1) >= 5) [sw, sh] = [sh, sw];
  const size = thumbnailSize(sw, sh, req);
  try {
    let img = sharp(source, { animated, limitInputPixels: maxPixels });
    if (!animated) img = img.rotate();
    img = img.resize(size.width, size.height, { fit: req.method === 'crop' ? 'cover' : 'fill', position: 'centre' });
    let contentType: string;
    if (animated) {
      img = img.webp({ quality: 80 });
      contentType = 'image/webp';
    } else if (sourceType === 'image/jpeg' || sourceType === 'image/jpg') {
      img = img.jpeg({ quality: 80 });
      contentType = 'image/jpeg';
    } else {
      img = img.png();
      contentType = 'image/png';
    }
    const bytes = await img.toBuffer();
    return { bytes, width: size.width, height: size.height, contentType };
  } catch (err) {
    throw new ThumbnailError(`cannot thumbnail the image: ${(err as Error).message}`);
  }
}

/** width, height, method and animated from a thumbnail request's query (client or federation). */
export function parseThumbnailQuery(get: (name: string) => string | undefined): ThumbnailRequest {
  const dim = (name: string): number => {
    const v = get(name);
    if (v === undefined || v === '') throw new MatrixError('M_MISSING_PARAM', `Missing ${name}`);
    if (!/^\d{1,9}$/.test(v) || Number(v) < 1) throw new MatrixError('M_INVALID_PARAM', `${name} must be a positive integer`);
    return Number(v);
  };
  const width = dim('width');
  const height = dim('height');
  const method = get('method') ?? 'scale';
  if (method !== 'scale' && method !== 'crop') throw new MatrixError('M_INVALID_PARAM', 'method must be crop or scale');
  const animated = get('animated');
  if (animated !== undefined && animated !== 'true' && animated !== 'false') throw new MatrixError('M_INVALID_PARAM', 'animated must be true or false');
  return { width, height, method, animated: animated === 'true' };
}
