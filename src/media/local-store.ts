// The local-filesystem MediaStore (media.path in config). Keys map to files below the root,
// fanned out by their first characters so no directory grows too large.
//
// Invariants:
// - put() writes to a uniquely named file in <root>/tmp, fsyncs it and links it into place
//   (link fails on an existing file, so the first writer of a key wins, also among processes
//   sharing the directory), then unlinks the temporary name: a reader sees the whole file or
//   none, and an interrupted upload (client gone, over the limit, crash) leaves at most a file in
//   tmp/, which is removed at once or, after a crash, by open() on the next start.
// - A key never escapes the root: keys are checked by checkMediaKey and have no `..` segment.

import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { link, mkdir, open, readdir, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BlobTooLargeError, checkMediaKey, type MediaStore, type OpenedBlob, type StoredBlob } from './media-store.js';

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
    checkMediaKey(key);
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
      let result: StoredBlob = { size, sha256: hash.digest('hex') };
      let linked = true;
      try {
        await link(tmpPath, target);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') {
          result = await describe(target); // written first by another: those bytes stay
        } else if (code === 'EPERM' || code === 'ENOTSUP' || code === 'ENOSYS') {
          // A filesystem without hard links: rename, where the last of two racing writers wins.
          await rename(tmpPath, target);
          linked = false;
        } else {
          throw err;
        }
      }
      if (linked) await unlink(tmpPath);
      done = true;
      return result;
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

/** Size and hash of a stored file (a put that found its key taken reports these). */
async function describe(path: string): Promise<StoredBlob> {
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(createReadStream(path), async function* (src: AsyncIterable<Buffer>) {
    for await (const c of src) {
      size += c.length;
      hash.update(c);
    }
  });
  return { size, sha256: hash.digest('hex') };
}
