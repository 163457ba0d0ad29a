// Loads the shared crypto vectors. CI checks the repo out with shared/ beside it, so the path
// relative to the repo root comes first; /work/shared is the fallback for this workstation.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { decodeBase64 } from '../../src/protocol/base64.js';
import { signingKeyFromSeed } from '../../src/protocol/crypto.js';
import type { SigningKey } from '../../src/protocol/types.js';

export function vectorsDir(): string {
  const candidates = [path.resolve(process.cwd(), '../shared/vectors'), '/work/shared/vectors'];
  const found = candidates.find((d) => existsSync(path.join(d, 'spec-signing-key.json')));
  if (!found) throw new Error(`shared vectors not found in ${candidates.join(' or ')}`);
  return found;
}

export function vectorFiles(): string[] {
  return readdirSync(vectorsDir()).filter((f) => f.endsWith('.json')).sort();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function loadVector(name: string): any {
  return JSON.parse(readFileSync(path.join(vectorsDir(), name), 'utf8'));
}

/** The spec's test key: server `domain`, key `ed25519:1`. */
export function specKey(): { key: SigningKey; serverName: string; publicKeyBase64: string; seedHex: string } {
  const v = loadVector('spec-signing-key.json');
  return {
    key: signingKeyFromSeed(decodeBase64(v.seed_base64), v.key_id),
    serverName: v.server_name,
    publicKeyBase64: v.public_key_base64,
    seedHex: v.seed_hex,
  };
}
