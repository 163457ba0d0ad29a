// Helpers for the media specs: real images made with sharp, and raw (non-JSON) requests.

import sharp from 'sharp';

/** A w x h PNG: a red left half and a blue right half (so a crop's centre is checkable). */
export async function twoTonePng(w: number, h: number): Promise<Buffer> {
  const left = await sharp({ create: { width: Math.ceil(w / 2), height: h, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toBuffer();
  return sharp({ create: { width: w, height: h, channels: 3, background: { r: 0, g: 0, b: 255 } } })
    .composite([{ input: left, left: 0, top: 0 }])
    .png()
    .toBuffer();
}

export async function solidJpeg(w: number, h: number, rgb: [number, number, number] = [0, 160, 0]): Promise<Buffer> {
  return sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).jpeg().toBuffer();
}

/** An animated GIF of `frames` frames of w x h. */
export async function animatedGif(w: number, h: number, frames: number): Promise<Buffer> {
  const parts = await Promise.all(
    Array.from({ length: frames }, (_, i) => sharp({ create: { width: w, height: h, channels: 3, background: { r: (i * 80) % 256, g: 0, b: 0 } } }).png().toBuffer()),
  );
  return sharp(parts, { join: { animated: true } }).gif().toBuffer();
}

export async function dimensions(bytes: Buffer): Promise<{ width: number; height: number; format: string; pages: number }> {
  const m = await sharp(bytes, { animated: true }).metadata();
  return { width: m.width!, height: m.pageHeight ?? m.height!, format: m.format!, pages: m.pages ?? 1 };
}

export interface RawResponse {
  status: number;
  headers: Headers;
  bytes: Buffer;
  json: any;
}

export async function raw(base: string, method: string, path: string, opts: { token?: string; body?: Buffer | string; contentType?: string; headers?: Record<string, string> } = {}): Promise<RawResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.contentType) headers['content-type'] = opts.contentType;
  const res = await fetch(base + path, { method, headers, body: opts.body as BodyInit | undefined });
  const bytes = Buffer.from(await res.arrayBuffer());
  let json: any;
  if ((res.headers.get('content-type') ?? '').startsWith('application/json')) json = JSON.parse(bytes.toString('utf8'));
  return { status: res.status, headers: res.headers, bytes, json };
}

export function mediaIdOf(mxc: string): string {
  const m = /^mxc:\/\/localhost\/([A-Za-z0-9_-]+)$/.exec(mxc);
  if (!m) throw new Error(`not a local mxc URI: ${mxc}`);
  return m[1];
}
