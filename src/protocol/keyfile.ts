// Signing key files in Synapse's format, one key per line: `ed25519 <version> <base64 seed>`.
// The only module in src/protocol that touches the file system.
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { decodeBase64, encodeBase64 } from './base64.js';
import { generateSigningKey, KEY_VERSION_PATTERN, signingKeyFromSeed } from './crypto.js';
import { randomString } from './ids.js';
import type { SigningKey } from './types.js';

export class KeyFileError extends Error {
  override name = 'KeyFileError';
}

/** Parses a key file's text. The first key is the one to sign with. */
export function parseSigningKeyFile(text: string): SigningKey[] {
  const keys: SigningKey[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const parts = line.split(/\s+/);
    if (parts.length !== 3 || parts[0] !== 'ed25519' || !KEY_VERSION_PATTERN.test(parts[1])) {
      throw new KeyFileError(`line ${index + 1}: expected "ed25519 <version> <base64 seed>"`);
    }
    let seed: Uint8Array;
    try {
      seed = decodeBase64(parts[2]);
    } catch {
      throw new KeyFileError(`line ${index + 1}: seed is not base64`);
    }
    if (seed.length !== 32) throw new KeyFileError(`line ${index + 1}: seed must be 32 bytes`);
    keys.push(signingKeyFromSeed(seed, `ed25519:${parts[1]}`));
  });
  return keys;
}

export function formatSigningKeyLine(key: SigningKey): string {
  return `ed25519 ${key.keyId.slice('ed25519:'.length)} ${encodeBase64(key.seed)}`;
}

/** A fresh key version like Synapse's (`a_` + 4 random letters). */
export function newKeyVersion(): string {
  return `a_${randomString(4, 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ')}`;
}

export async function readSigningKeyFile(path: string): Promise<SigningKey[]> {
  return parseSigningKeyFile(await readFile(path, 'utf8'));
}

/** Loads the first key from `path`, or creates the file (mode 0600) with a new key. */
export async function loadOrCreateSigningKey(path: string, version: string = newKeyVersion()): Promise<SigningKey> {
  try {
    return firstKey(await readSigningKeyFile(path), path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const key = generateSigningKey(version);
  await mkdir(dirname(path), { recursive: true });
  // Write a complete temporary file, then hard-link it into place: link() fails if the target
  // exists, so a concurrent creator never sees a half-written file nor loses its key.
  const tmp = `${path}.${process.pid}.${randomString(8)}.tmp`;
  await writeFile(tmp, formatSigningKeyLine(key) + '\n', { flag: 'wx', mode: 0o600 });
  try {
    await link(tmp, path);
    return key;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return firstKey(await readSigningKeyFile(path), path);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

function firstKey(keys: SigningKey[], path: string): SigningKey {
  if (keys.length === 0) throw new KeyFileError(`${path} contains no signing key`);
  return keys[0];
}
