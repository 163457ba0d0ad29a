// Server signing keys over federation: the document this server publishes
// (GET /_matrix/key/v2/server), and RemoteKeyRing, the KeyRing that room input and the X-Matrix
// check use to find other servers' keys.
//
// Invariants:
// - A key document is believed only when `server_name` equals the server asked about (byte for
//   byte, port included) and it is signed by one of its own verify_keys; a notary's answer must
//   also carry the notary's signature (with a configured key when one is given).
// - valid_until_ts is capped at now + 7 days (the spec's limit for receivers). A current key
//   vouches for events up to its valid_until_ts; an old key for events before its expired_ts.
// - Keys are cached in memory and, when a path is given, in a JSON file rewritten atomically, so
//   a restart does not refetch every peer's keys.
// - Failed fetches are held back per server (a negative cache), so a flood of events signed by a
//   server we cannot get keys from is not a flood of fetches. One that did not answer
//   (unreachable, timed out) is not asked again for `retryAfterMs`, doubling per further failure;
//   one that answered with an error or a bad document for `errorBackoffMs`, doubling likewise;
//   both capped at `maxBackoffMs` and forgotten on the first success. While an answering server
//   is held back, a key ID not yet asked for since it began failing may still be fetched (a
//   rotated key must not wait out the hold-off), at most one such fetch per `newKeyMinMs`, and
//   the set of IDs remembered is bounded. At most one fetch per server is in flight.
// - verifyKey never throws (KeyRing contract): any failure is null.
// - Notary (notaryDocuments): for each key ID, the believed document listing it with the latest
//   valid_until_ts is kept, expired or not, and a later document that no longer lists the key
//   (or lists it with an earlier validity) never replaces it. When what is kept does not reach
//   the asker's minimum_valid_until_ts the origin is asked again; whatever is kept is then
//   served, even expired (the spec: keys are left out only when none are cached).

import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { isJsonObject } from '../protocol/canonical-json.js';
import { publicKeyBase64, publicKeyObject, signatureKeyIds, signJson, verifyJsonSignature, type VerifyKey } from '../protocol/crypto.js';
import { tryDecodeBase64 } from '../protocol/base64.js';
import type { JsonObject, SigningKey } from '../protocol/types.js';
import type { KeyRing } from '../room/key-ring.js';

export const MAX_KEY_VALIDITY_MS = 7 * 24 * 3600_000;

export interface OldKey {
  key: SigningKey | { keyId: string; publicKey: Uint8Array };
  expiredTs: number;
}

/** This server's key document, freshly signed on each request. */
export function ownKeyDocument(serverName: string, key: SigningKey, oldKeys: readonly OldKey[], now: number, validityMs = 24 * 3600_000): JsonObject {
  const old: JsonObject = {};
  for (const o of oldKeys) old[o.key.keyId] = { key: publicKeyBase64(o.key as SigningKey), expired_ts: o.expiredTs };
  return signJson(
    { server_name: serverName, valid_until_ts: now + validityMs, verify_keys: { [key.keyId]: { key: publicKeyBase64(key) } }, old_verify_keys: old },
    serverName,
    key,
  );
}

interface CachedKey {
  key: VerifyKey;
  /** Current key: trusted for events up to here. */
  validUntil?: number;
  /** Old key: trusted for events before here. */
  expiredTs?: number;
}

interface CachedServer {
  keys: Map<string, CachedKey>;
  /** The last document believed (served again by our notary endpoint). */
  document: JsonObject;
  validUntil: number;
}

/** Checks a key document for `serverName`; returns its keys or a reason. */
export function parseKeyDocument(doc: unknown, serverName: string, now: number): { server: CachedServer } | { error: string } {
  if (!isJsonObject(doc)) return { error: 'not an object' };
  if (doc.server_name !== serverName) return { error: `server_name ${String(doc.server_name)} is not ${serverName}` };
  if (typeof doc.valid_until_ts !== 'number') return { error: 'no valid_until_ts' };
  const keys = new Map<string, CachedKey>();
  const validUntil = Math.min(doc.valid_until_ts, now + MAX_KEY_VALIDITY_MS);
  const raw = new Map<string, Uint8Array>();
  if (isJsonObject(doc.verify_keys)) {
    for (const [id, v] of Object.entries(doc.verify_keys)) {
      const bytes = isJsonObject(v) ? tryDecodeBase64(v.key) : undefined;
      if (!id.startsWith('ed25519:') || bytes?.length !== 32) continue;
      raw.set(id, bytes);
      keys.set(id, { key: publicKeyObject(bytes), validUntil });
    }
  }
  const selfSigned = signatureKeyIds(doc, serverName).some((id) => raw.has(id) && verifyJsonSignature(doc, serverName, id, raw.get(id) as Uint8Array));
  if (!selfSigned) return { error: 'not signed by one of its own verify_keys' };
  if (isJsonObject(doc.old_verify_keys)) {
    for (const [id, v] of Object.entries(doc.old_verify_keys)) {
      const bytes = isJsonObject(v) ? tryDecodeBase64(v.key) : undefined;
      if (!id.startsWith('ed25519:') || bytes?.length !== 32 || !isJsonObject(v) || typeof v.expired_ts !== 'number' || keys.has(id)) continue;
      keys.set(id, { key: publicKeyObject(bytes), expiredTs: v.expired_ts });
    }
  }
  return { server: { keys, document: doc, validUntil } };
}

/** What RemoteKeyRing needs to reach other servers (FederationClient provides it). */
export interface KeyFetcher {
  /** GET /_matrix/key/v2/server from the server itself. */
  fetchDirect(serverName: string): Promise<unknown>;
  /** POST /_matrix/key/v2/query to a notary; the `server_keys` list. */
  fetchFromNotary(notary: string, serverName: string): Promise<unknown[]>;
}

export interface TrustedKeyServer {
  server_name: string;
  verify_keys: Record<string, string>;
}

export interface RemoteKeyRingOptions {
  serverName: string;
  /** This server's keys: the current one and rotated-out ones (old_signing_keys). */
  ownKeys: ReadonlyArray<{ keyId: string; publicKey: Uint8Array }>;
  fetcher: KeyFetcher;
  notaries?: readonly TrustedKeyServer[];
  cachePath?: string;
  logger?: Logger;
  now?: () => number;
  /** Hold-off after a server did not answer; doubles per consecutive failure. */
  retryAfterMs?: number;
  /** Hold-off after a server answered with an error or no usable keys; doubles likewise. */
  errorBackoffMs?: number;
  /** Cap of both hold-offs. */
  maxBackoffMs?: number;
  /** Spacing of fetches for never-tried key IDs while an answering server is held back. */
  newKeyMinMs?: number;
}

/** Per server, while its key fetches fail; dropped on the first success. */
interface Failing {
  failures: number;
  /** No fetch before this (except for a never-tried key ID, when the server answered). */
  until: number;
  answered: boolean;
  /** Key IDs asked for since the failures began (bounded: past the bound, none are new). */
  tried: Set<string>;
  /** When the last fetch for a never-tried key ID went out during the hold-off. */
  lastNewKeyAt: number;
}

const MAX_TRIED_KEY_IDS = 256;

export class RemoteKeyRing implements KeyRing {
  private readonly servers = new Map<string, CachedServer>();
  /** Notary cache: per server, per key ID, the document listing it with the latest validity. */
  private readonly byKey = new Map<string, Map<string, JsonObject>>();
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly failing = new Map<string, Failing>();
  private readonly own = new Map<string, VerifyKey>();
  private readonly now: () => number;
  private writing: Promise<void> = Promise.resolve();
  /** Fetches made (direct or through a notary): for tests and metrics. */
  fetches = 0;

  constructor(private readonly opts: RemoteKeyRingOptions) {
    this.now = opts.now ?? Date.now;
    for (const k of opts.ownKeys) this.own.set(k.keyId, publicKeyObject(k.publicKey));
    if (opts.cachePath) this.loadCache(opts.cachePath);
  }

  async verifyKey(serverName: string, keyId: string, atTs: number): Promise<VerifyKey | null> {
    try {
      if (serverName === this.opts.serverName) return this.own.get(keyId) ?? null;
      const hit = this.lookup(serverName, keyId, atTs);
      if (hit !== undefined) return hit;
      // A current key whose validity ended before atTs may have been renewed: fetch again.
      await this.refresh(serverName, [keyId]);
      return this.lookup(serverName, keyId, atTs) ?? null;
    } catch (err) {
      this.opts.logger?.warn({ err, serverName, keyId }, 'key lookup failed');
      return null;
    }
  }

  /**
   * What a notary answers about `serverName`: the documents kept for the key IDs asked (all kept
   * ones when `keyIds` is empty), after asking the origin again when some asked key is unknown or
   * its document's valid_until_ts is before `minValidUntil` (per key ID). Expired documents are
   * served when nothing better is had; the caller re-signs them.
   */
  async notaryDocuments(serverName: string, keyIds: readonly string[], minValidUntil: (keyId: string) => number): Promise<JsonObject[]> {
    const kept = () => this.byKey.get(serverName) ?? new Map<string, JsonObject>();
    const good = (id: string) => {
      const doc = kept().get(id);
      return doc !== undefined && (doc.valid_until_ts as number) >= minValidUntil(id);
    };
    const wanted = () => (keyIds.length > 0 ? keyIds : [...kept().keys()]);
    if (wanted().length === 0 || !wanted().every(good)) {
      // The failure backoff still applies: askers cannot make us hammer an unreachable origin.
      await this.refresh(serverName, wanted());
    }
    const out = new Set<JsonObject>();
    for (const id of wanted()) {
      const doc = kept().get(id);
      if (doc) out.add(doc);
    }
    return [...out];
  }

  private lookup(serverName: string, keyId: string, atTs: number): VerifyKey | undefined {
    const k = this.servers.get(serverName)?.keys.get(keyId);
    if (!k) return undefined;
    if (k.expiredTs !== undefined) return atTs < k.expiredTs ? k.key : undefined;
    return atTs <= (k.validUntil ?? 0) ? k.key : undefined;
  }

  private refresh(serverName: string, keyIds: readonly string[]): Promise<void> {
    let p = this.inflight.get(serverName);
    if (p) return p;
    if (!this.mayFetch(serverName, keyIds)) return Promise.resolve();
    p = this.fetch(serverName, keyIds).finally(() => this.inflight.delete(serverName));
    this.inflight.set(serverName, p);
    return p;
  }

  /** The negative cache: whether a fetch may go out now (see the header). Records the key IDs. */
  private mayFetch(serverName: string, keyIds: readonly string[]): boolean {
    const f = this.failing.get(serverName);
    if (!f) return true;
    const now = this.now();
    const fresh = keyIds.filter((id) => !f.tried.has(id));
    const remember = () => {
      for (const id of fresh) if (f.tried.size < MAX_TRIED_KEY_IDS) f.tried.add(id);
    };
    if (now >= f.until) {
      remember();
      return true;
    }
    // An unreachable server is not asked sooner for any key: each ask would wait out a timeout.
    if (!f.answered || fresh.length === 0 || f.tried.size >= MAX_TRIED_KEY_IDS) return false;
    if (now - f.lastNewKeyAt < (this.opts.newKeyMinMs ?? 1_000)) return false;
    f.lastNewKeyAt = now;
    remember();
    return true;
  }

  private recordFailure(serverName: string, answered: boolean, keyIds: readonly string[]): void {
    const f = this.failing.get(serverName) ?? { failures: 0, until: 0, answered, tried: new Set<string>(), lastNewKeyAt: Number.NEGATIVE_INFINITY };
    for (const id of keyIds) if (f.tried.size < MAX_TRIED_KEY_IDS) f.tried.add(id);
    f.failures++;
    f.answered = answered;
    const base = answered ? (this.opts.errorBackoffMs ?? 10_000) : (this.opts.retryAfterMs ?? 60_000);
    const cap = Math.max(base, this.opts.maxBackoffMs ?? 3_600_000);
    f.until = this.now() + Math.min(cap, base * 2 ** Math.min(f.failures - 1, 30));
    this.failing.set(serverName, f);
  }

  private async fetch(serverName: string, keyIds: readonly string[]): Promise<void> {
    this.fetches++;
    const errors: string[] = [];
    // The first error thrown (the origin's, usually), logged whole; `errors` sums up every source.
    let err0: unknown;
    // Whether the origin answered at all (keys or not, an HTTP error or not).
    let answered = false;
    try {
      const parsed = parseKeyDocument(await this.opts.fetcher.fetchDirect(serverName), serverName, this.now());
      answered = true;
      if ('server' in parsed) return this.remember(serverName, parsed.server);
      errors.push(`direct: ${parsed.error}`);
    } catch (err) {
      answered = typeof (err as { status?: unknown }).status === 'number';
      err0 = err;
      errors.push(`direct: ${(err as Error).message}`);
    }
    for (const notary of this.opts.notaries ?? []) {
      try {
        for (const doc of await this.opts.fetcher.fetchFromNotary(notary.server_name, serverName)) {
          if (!(await this.notarySigned(doc, notary))) {
            errors.push(`${notary.server_name}: answer not signed by the notary`);
            continue;
          }
          const parsed = parseKeyDocument(doc, serverName, this.now());
          if ('server' in parsed) return this.remember(serverName, parsed.server);
          errors.push(`${notary.server_name}: ${parsed.error}`);
        }
      } catch (err) {
        err0 ??= err;
        errors.push(`${notary.server_name}: ${(err as Error).message}`);
      }
    }
    this.recordFailure(serverName, answered, keyIds);
    this.opts.logger?.warn({ err: err0, serverName, errors, failures: this.failing.get(serverName)?.failures }, 'could not fetch server keys');
  }

  private async notarySigned(doc: unknown, notary: TrustedKeyServer): Promise<boolean> {
    if (!isJsonObject(doc)) return false;
    const configured = Object.entries(notary.verify_keys);
    if (configured.length > 0) {
      return configured.some(([id, b64]) => {
        const bytes = tryDecodeBase64(b64);
        return bytes?.length === 32 && verifyJsonSignature(doc, notary.server_name, id, bytes);
      });
    }
    for (const id of signatureKeyIds(doc, notary.server_name)) {
      const key = await this.verifyKey(notary.server_name, id, this.now());
      if (key && verifyJsonSignature(doc, notary.server_name, id, key)) return true;
    }
    return false;
  }

  private remember(serverName: string, server: CachedServer): void {
    const previous = this.servers.get(serverName);
    // Old keys learnt earlier stay: a later document may no longer list them.
    if (previous) for (const [id, k] of previous.keys) if (!server.keys.has(id) && k.expiredTs !== undefined) server.keys.set(id, k);
    this.servers.set(serverName, server);
    this.keep(serverName, server.document);
    this.failing.delete(serverName);
    if (this.opts.cachePath) this.saveCache(this.opts.cachePath);
  }

  /** Notary cache: `doc` (already believed) for each key it lists, unless one kept lasts longer. */
  private keep(serverName: string, doc: JsonObject): void {
    let perKey = this.byKey.get(serverName);
    if (!perKey) this.byKey.set(serverName, (perKey = new Map()));
    for (const id of isJsonObject(doc.verify_keys) ? Object.keys(doc.verify_keys) : []) {
      const had = perKey.get(id);
      if (!had || (had.valid_until_ts as number) <= (doc.valid_until_ts as number)) perKey.set(id, doc);
    }
  }

  private loadCache(path: string): void {
    let docs: unknown;
    try {
      docs = JSON.parse(readFileSync(path, 'utf8'));
    } catch {
      return; // no cache yet, or unreadable: keys are fetched again
    }
    if (!isJsonObject(docs)) return;
    for (const [name, doc] of Object.entries(docs)) {
      // Stored documents are checked again: the file is not more trusted than the network.
      const parsed = parseKeyDocument(doc, name, Math.min(this.now(), isJsonObject(doc) && typeof doc.valid_until_ts === 'number' ? doc.valid_until_ts : 0));
      if ('server' in parsed) {
        this.servers.set(name, parsed.server);
        this.keep(name, parsed.server.document);
      }
    }
  }

  private saveCache(path: string): void {
    const docs: JsonObject = {};
    for (const [name, s] of this.servers) docs[name] = s.document;
    const text = JSON.stringify(docs);
    this.writing = this.writing.then(async () => {
      try {
        const tmp = `${path}.tmp`;
        await writeFile(tmp, text, { mode: 0o600 });
        await rename(tmp, path);
      } catch (err) {
        this.opts.logger?.warn({ err, path }, 'could not persist the server key cache');
      }
    });
  }

  /** Waits for pending cache writes (shutdown, tests). */
  flush(): Promise<void> {
    return this.writing;
  }
}
