// The local-filesystem MediaStore (media.path in config). Keys map to files below the root,
// fanned out by their first characters so no directory grows too large.
//
// Invariants:
// - put() writes to a uniquely named file in <root>/tmp, fsyncs it and renames it into place:
//   a reader sees the whole file or none, and an interrupted upload (client gone, over the
//   limit, crash) leaves at most a file in tmp/, which is removed at once or, after a crash, by
//   open() on the next start.
// - A key never escapes the root: keys are checked against KEY_RE and have no `..` segment.

import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BlobTooLargeError, type MediaStore, type OpenedBlob, type StoredBlob } from './media-store.js';

const KEY_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/;

export class LocalMediaStore implements MediaStore {
  private readonly tmp: string;

  constructor(private readonly root: string) {
    this.tmp = join(root, 'tmp');
  }

  async open(): Promise<void> {
    await mkdir(this.tmp, { recursive: true });
    // Whatever is here was being written when the process stopped: never complete, never seen.
    for (const name of await readdir(this.tmp)) await rm(join(this.tmp, name), { force: true, recursive: true });
  }

  /** The file a key is stored in (tests look at it). */
  pathOf(key: string): string {
    if (!KEY_RE.test(key) || key.split('/').some((s) => s === '..' || s === '.')) throw new Error(`invalid media key ${JSON.stringify(key)}`);
    const [kind, id, ...rest] = key.split('/');
    // content/abcdef... -> content/ab/cd/ef...; the fan-out keeps directories small.
    const fan = id && id.length > 4 ? [id.slice(0, 2), id.slice(2, 4), id.slice(4)] : [id];
    return join(this.root, kind, ...fan.filter((s) => s !== undefined && s !== ''), ...rest);
  }

  async put(key: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, limit: number): Promise<StoredBlob> {
    const target = this.pathOf(key);
    const tmpPath = join(this.tmp, `${randomBytes(12).toString('hex')}.part`);
    const hash = createHash('sha256');
    const fh = await open(tmpPath, 'wx');
    let size = 0;
    let done = false;
    try {
      for await (const chunk of source) {
        size += chunk.length;
        if (size > limit) throw new BlobTooLargeError(limit);
        hash.update(chunk);
        await fh.write(chunk);
      }
      await fh.sync();
      await fh.close();
      await mkdir(dirname(target), { recursive: true });
      await rename(tmpPath, target);
      done = true;
      return { size, sha256: hash.digest('hex') };
    } finally {
      if (!done) {
        await fh.close().catch(() => undefined);
        await unlink(tmpPath).catch(() => undefined);
      }
    }
  }

  async get(key: string): Promise<OpenedBlob | null> {
    const path = this.pathOf(key);
    try {
      const s = await stat(path);
      return { stream: createReadStream(path), size: s.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    await rm(path, { force: true });
    // The directory a thumbnail set lived in goes when its last file does (rmdir refuses a
    // non-empty one, so shared fan-out directories stay).
    await rmdir(dirname(path)).catch(() => undefined);
  }
}
