// Unit tests for the federation building blocks: the X-Matrix check on the listener (against the
// shared vectors, over the raw URI), server discovery (with a fake resolver), the key ring's
// caching, expiry, old keys, notaries and persistence, the generated certificate, and which
// EDUs the outbound queue keeps across a restart.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import pino from 'pino';
import { MatrixError } from '../../src/errors.js';
import { generateSigningKey, publicKeyBase64, signBytes, signJson, verifyBytes } from '../../src/protocol/crypto.js';
import type { JsonObject, SigningKey } from '../../src/protocol/types.js';
import { ServerDiscovery, type DiscoveryDeps } from '../../src/federation/discovery.js';
import { MAX_KEY_VALIDITY_MS, ownKeyDocument, RemoteKeyRing, type KeyFetcher } from '../../src/federation/keys.js';
import { createFederationApp, createFederationServer } from '../../src/federation/listener.js';
import { generateSelfSignedCertificate } from '../../src/federation/self-signed.js';
import { serverAclAllows } from '../../src/federation/acl.js';
import type { FederationInbound } from '../../src/federation/inbound.js';
import { StaticKeyRing } from '../../src/room/key-ring.js';
import { loadVector, specKey } from '../protocol/vectors.js';

const silent = pino({ level: 'silent' });

describe('federation/listener: X-Matrix over the raw request URI (shared vectors)', () => {
  const { key } = specKey();
  const v = loadVector('x-matrix-request-example.json');
  const [getCase, putCase] = v.cases;
  const origin = getCase.signed_object.origin as string;
  const me = getCase.signed_object.destination as string;
  let server: Server;
  let base: string;
  const seen: Array<{ what: string; origin: string }> = [];
  const contacts: string[] = [];

  before(async () => {
    // The handlers record what reached them: this suite is about what the auth layer lets through.
    const inbound = {
      async queryProfile(userId: string) {
        seen.push({ what: `profile ${userId}`, origin: '' });
        throw new MatrixError('M_NOT_FOUND', 'No such user');
      },
      async send(o: string, txnId: string) {
        seen.push({ what: `send ${txnId}`, origin: o });
        return { pdus: {} };
      },
    } as unknown as FederationInbound;
    const sender = { contact: (s: string) => contacts.push(s) } as unknown as import('../../src/federation/sender.js').FederationSender;
    const app = createFederationApp({
      serverName: me,
      signingKey: generateSigningKey('own'),
      oldKeys: [],
      keyRing: Object.assign(new StaticKeyRing([{ serverName: origin, keyId: key.keyId, publicKey: key.publicKey }]), { notaryDocuments: async () => [] }),
      inbound,
      sender,
      logger: silent,
      maxBodyBytes: 1 << 20,
      now: Date.now,
    });
    server = createFederationServer(app, null) as Server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('accepts the GET vector exactly as signed (percent-encoded query)', async () => {
    const res = await fetch(base + getCase.signed_object.uri, { headers: { authorization: getCase.expected_authorization_header } });
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as JsonObject).errcode, 'M_NOT_FOUND');
    assert.deepEqual(seen.pop(), { what: 'profile @alice:127.0.0.1:18448', origin: '' });
    assert.ok(contacts.includes(origin));
  });

  it('accepts the PUT /send vector with its body as content', async () => {
    const res = await fetch(base + putCase.signed_object.uri, {
      method: 'PUT',
      headers: { authorization: putCase.expected_authorization_header, 'content-type': 'application/json' },
      body: JSON.stringify(putCase.signed_object.content),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(seen.pop(), { what: 'send 1700000000000', origin });
  });

  it('refuses the same signature over a decoded URI, another body, or no header (401 M_UNAUTHORIZED)', async () => {
    const decoded = getCase.signed_object.uri.replace('%40', '@').replace(/%3A/g, ':');
    for (const [path, init] of [
      [decoded, { headers: { authorization: getCase.expected_authorization_header } }],
      [putCase.signed_object.uri, { method: 'PUT', headers: { authorization: putCase.expected_authorization_header }, body: JSON.stringify({ ...putCase.signed_object.content, pdus: [{}] }) }],
      [getCase.signed_object.uri, {}],
    ] as const) {
      const before = seen.length;
      const res = await fetch(base + path, init as RequestInit);
      assert.equal(res.status, 401, path);
      assert.equal(((await res.json()) as JsonObject).errcode, 'M_UNAUTHORIZED');
      assert.equal(seen.length, before, 'no handler ran');
    }
  });

  it('refuses a header naming another destination even with a valid signature for it', async () => {
    const header = getCase.expected_authorization_header.replace(`destination="${me}"`, 'destination="elsewhere.example"');
    const res = await fetch(base + getCase.signed_object.uri, { headers: { authorization: header } });
    assert.equal(res.status, 401);
  });

  it('answers GET /_matrix/federation/v1/version without authentication, with the package version', async () => {
    const res = await fetch(`${base}/_matrix/federation/v1/version`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { server: { name: string; version: string } };
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.deepEqual(body, { server: { name: 'Hearth', version: pkg.version } });
  });

  it('answers unknown endpoints 404 M_UNRECOGNIZED and a wrong method 405', async () => {
    const res = await fetch(`${base}/_matrix/federation/v1/nope`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as JsonObject).errcode, 'M_UNRECOGNIZED');
    const wrong = await fetch(`${base}/_matrix/federation/v1/send/x`, { method: 'GET' });
    assert.equal(wrong.status, 405);
  });
});

describe('federation/discovery', () => {
  function fake(srv: Record<string, Array<{ name: string; port: number; priority: number; weight: number }>>, wellKnown: Record<string, unknown>) {
    const calls: string[] = [];
    let clock = 0;
    const deps: DiscoveryDeps = {
      async resolveSrv(name) {
        calls.push(`srv ${name}`);
        if (srv[name]) return srv[name];
        throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
      },
      async fetchWellKnown(name) {
        calls.push(`wk ${name}`);
        return wellKnown[name];
      },
      now: () => clock,
      cacheMs: 1000,
    };
    return { d: new ServerDiscovery(deps), calls, tick: (ms: number) => (clock += ms) };
  }

  it('IP literals and explicit ports need no lookup', async () => {
    const { d, calls } = fake({}, {});
    assert.deepEqual(await d.resolve('1.2.3.4'), { host: '1.2.3.4', port: 8448, hostHeader: '1.2.3.4', tlsServername: '1.2.3.4' });
    assert.deepEqual(await d.resolve('1.2.3.4:99'), { host: '1.2.3.4', port: 99, hostHeader: '1.2.3.4:99', tlsServername: '1.2.3.4' });
    assert.deepEqual(await d.resolve('[::1]:8449'), { host: '::1', port: 8449, hostHeader: '[::1]:8449', tlsServername: '::1' });
    assert.deepEqual(await d.resolve('example.org:8000'), { host: 'example.org', port: 8000, hostHeader: 'example.org:8000', tlsServername: 'example.org' });
    assert.deepEqual(calls, []);
  });

  it('.well-known delegation, then SRV on the delegated name', async () => {
    const { d } = fake({ '_matrix-fed._tcp.matrix.example.org': [{ name: 'fed.example.net.', port: 443, priority: 0, weight: 0 }] }, {
      'example.org': { 'm.server': 'matrix.example.org' },
      'port.example': { 'm.server': 'matrix.port.example:1234' },
    });
    assert.deepEqual(await d.resolve('example.org'), { host: 'fed.example.net', port: 443, hostHeader: 'matrix.example.org', tlsServername: 'matrix.example.org' });
    assert.deepEqual(await d.resolve('port.example'), { host: 'matrix.port.example', port: 1234, hostHeader: 'matrix.port.example:1234', tlsServername: 'matrix.port.example' });
  });

  it('SRV _matrix-fed._tcp first, then _matrix._tcp, then port 8448; results are cached', async () => {
    const { d, calls, tick } = fake(
      {
        '_matrix-fed._tcp.a.example': [
          { name: 'slow.a.example', port: 1, priority: 10, weight: 0 },
          { name: 'fast.a.example', port: 2, priority: 1, weight: 0 },
        ],
        '_matrix._tcp.b.example': [{ name: 'old.b.example', port: 3, priority: 0, weight: 0 }],
      },
      {},
    );
    assert.equal((await d.resolve('a.example')).host, 'fast.a.example');
    assert.deepEqual(await d.resolve('b.example'), { host: 'old.b.example', port: 3, hostHeader: 'b.example', tlsServername: 'b.example' });
    assert.deepEqual(await d.resolve('c.example'), { host: 'c.example', port: 8448, hostHeader: 'c.example', tlsServername: 'c.example' });
    const n = calls.length;
    await d.resolve('c.example');
    assert.equal(calls.length, n, 'cached');
    tick(1001);
    await d.resolve('c.example');
    assert.ok(calls.length > n, 'looked up again after the cache time');
  });

  it('refuses an invalid server name', async () => {
    const { d } = fake({}, {});
    await assert.rejects(d.resolve('not a name'));
  });
});

describe('federation/keys: RemoteKeyRing', () => {
  const peer = 'peer.example';
  let clock = 1_000_000;
  const now = () => clock;
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'hearth-keys-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function fetcher(docs: { direct?: () => unknown; notary?: (n: string) => unknown[] }): KeyFetcher & { calls: string[] } {
    const calls: string[] = [];
    return {
      calls,
      async fetchDirect(name) {
        calls.push(`direct ${name}`);
        if (!docs.direct) throw new Error('unreachable');
        return docs.direct();
      },
      async fetchFromNotary(n, name) {
        calls.push(`notary ${n} ${name}`);
        return docs.notary?.(n) ?? [];
      },
    };
  }

  it('fetches once, serves from cache until valid_until_ts, then fetches again', async () => {
    const key = generateSigningKey('k1');
    const f = fetcher({ direct: () => ownKeyDocument(peer, key, [], clock, 60_000) });
    const ring = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [], fetcher: f, now, logger: silent });
    const k = await ring.verifyKey(peer, key.keyId, clock);
    assert.ok(k && verifyBytes(k, 'x', signBytesB64(key, 'x')));
    await ring.verifyKey(peer, key.keyId, clock + 1000);
    assert.equal(f.calls.length, 1);
    clock += 120_000; // past valid_until_ts: an event from now needs a fresh document
    assert.ok(await ring.verifyKey(peer, key.keyId, clock));
    assert.equal(f.calls.length, 2);
    assert.equal(await ring.verifyKey(peer, 'ed25519:unknown', clock), null);
  });

  it('caps valid_until_ts at 7 days', async () => {
    const key = generateSigningKey('k1');
    const f = fetcher({ direct: () => ownKeyDocument(peer, key, [], clock, 365 * 86400_000) });
    const ring = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [], fetcher: f, now, logger: silent, retryAfterMs: 0 });
    assert.ok(await ring.verifyKey(peer, key.keyId, clock));
    assert.ok(await ring.verifyKey(peer, key.keyId, clock + MAX_KEY_VALIDITY_MS - 1));
    assert.equal(f.calls.length, 1);
    // An event claiming a time past the cap forces a refetch, which still caps: not vouched for.
    assert.equal(await ring.verifyKey(peer, key.keyId, clock + MAX_KEY_VALIDITY_MS + 1000), null);
  });

  it('honours old_verify_keys for events before expired_ts only', async () => {
    const current = generateSigningKey('new');
    const old = generateSigningKey('old');
    const f = fetcher({ direct: () => ownKeyDocument(peer, current, [{ key: old, expiredTs: clock - 10 }], clock) });
    const ring = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [], fetcher: f, now, logger: silent, retryAfterMs: 0 });
    assert.ok(await ring.verifyKey(peer, old.keyId, clock - 100));
    assert.equal(await ring.verifyKey(peer, old.keyId, clock), null);
  });

  it('refuses a document for another server or signed by a key it does not list', async () => {
    const key = generateSigningKey('k1');
    const other = generateSigningKey('k2');
    for (const doc of [
      ownKeyDocument('someone.else', key, [], clock),
      signJson({ server_name: peer, valid_until_ts: clock + 1000, verify_keys: { [key.keyId]: { key: publicKeyBase64(key) } } }, peer, other),
    ]) {
      const ring = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [], fetcher: fetcher({ direct: () => doc }), now, logger: silent });
      assert.equal(await ring.verifyKey(peer, key.keyId, clock), null);
    }
  });

  it('notary: serves an expired document when the origin has nothing newer, asking the origin again each time the minimum is not reached', async () => {
    const key = generateSigningKey('key_0');
    const expired = ownKeyDocument(peer, key, [], clock - 86_400_000, 0); // valid_until_ts 24 h ago
    let answer: () => unknown = () => expired;
    const f = fetcher({ direct: () => answer() });
    const ring = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [], fetcher: f, now, logger: silent, retryAfterMs: 0 });
    const atExpiry = () => expired.valid_until_ts as number;
    const min0 = await ring.notaryDocuments(peer, [key.keyId], atExpiry);
    assert.deepEqual(min0.map((d) => d.valid_until_ts), [expired.valid_until_ts]);
    assert.equal(f.calls.length, 1);
    // Kept, and enough for the same minimum: no new fetch.
    await ring.notaryDocuments(peer, [key.keyId], atExpiry);
    assert.equal(f.calls.length, 1);
    // A later minimum: the origin is asked again; it has nothing newer, so the expired one is served.
    const later = await ring.notaryDocuments(peer, [key.keyId], () => (expired.valid_until_ts as number) + 1000);
    assert.equal(f.calls.length, 2);
    assert.deepEqual(later.map((d) => Object.keys(d.verify_keys as object)), [[key.keyId]]);
    // The origin now fails: still the kept document.
    answer = () => { throw new Error('400'); };
    const failing = await ring.notaryDocuments(peer, [key.keyId], () => (expired.valid_until_ts as number) + 1000);
    assert.equal(f.calls.length, 3);
    assert.equal(failing[0]?.valid_until_ts, expired.valid_until_ts);
    // Nothing kept for a server never reached: an empty answer.
    assert.deepEqual(await ring.notaryDocuments('nobody.example', [], () => clock), []);
  });

  it('notary: a later document without a key (or with a shorter validity) does not replace the one kept for it', async () => {
    const key1 = generateSigningKey('key_1');
    const key2 = generateSigningKey('key_2');
    const doc1 = ownKeyDocument(peer, key1, [], clock - 86_400_000, 0);
    let answer: unknown = doc1;
    const f = fetcher({ direct: () => answer });
    const ring = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [], fetcher: f, now, logger: silent, retryAfterMs: 0 });
    assert.equal((await ring.notaryDocuments(peer, [key1.keyId], () => doc1.valid_until_ts as number))[0]?.server_name, peer);
    // The origin forgets key_1 and answers with key_2 only.
    answer = ownKeyDocument(peer, key2, [], (doc1.valid_until_ts as number) + 1000, 0);
    await ring.notaryDocuments(peer, [key1.keyId], () => clock);
    assert.equal(f.calls.length, 2);
    const again = await ring.notaryDocuments(peer, [key1.keyId], () => doc1.valid_until_ts as number);
    assert.deepEqual(again.map((d) => Object.keys(d.verify_keys as object)), [[key1.keyId]]);
    // Without key IDs: every document kept (key_1's and key_2's).
    const all = await ring.notaryDocuments(peer, [], () => Number.MIN_SAFE_INTEGER);
    assert.deepEqual(all.map((d) => Object.keys(d.verify_keys as object)[0]).sort(), [key1.keyId, key2.keyId].sort());
  });

  it('falls back to a configured notary, whose signature is required', async () => {
    const key = generateSigningKey('k1');
    const notaryKey = generateSigningKey('n1');
    const doc = ownKeyDocument(peer, key, [], clock);
    const good = fetcher({ notary: () => [signJson(doc, 'notary.example', notaryKey)] });
    const notaries = [{ server_name: 'notary.example', verify_keys: { [notaryKey.keyId]: publicKeyBase64(notaryKey) } }];
    const ring = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [], fetcher: good, notaries, now, logger: silent });
    assert.ok(await ring.verifyKey(peer, key.keyId, clock));
    assert.deepEqual(good.calls, [`direct ${peer}`, `notary notary.example ${peer}`]);
    const unsignedByNotary = fetcher({ notary: () => [doc] });
    const ring2 = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [], fetcher: unsignedByNotary, notaries, now, logger: silent });
    assert.equal(await ring2.verifyKey(peer, key.keyId, clock), null);
  });

  it('persists what it learnt: a new ring on the same file does not fetch; a failed server is not hammered', async () => {
    const key = generateSigningKey('k1');
    const path = join(dir, 'keys.json');
    const f = fetcher({ direct: () => ownKeyDocument(peer, key, [], clock) });
    const ring = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [], fetcher: f, now, logger: silent, cachePath: path });
    assert.ok(await ring.verifyKey(peer, key.keyId, clock));
    await ring.flush();
    const f2 = fetcher({});
    const ring2 = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [], fetcher: f2, now, logger: silent, cachePath: path });
    assert.ok(await ring2.verifyKey(peer, key.keyId, clock));
    assert.deepEqual(f2.calls, []);
    assert.equal(await ring2.verifyKey('down.example', 'ed25519:x', clock), null);
    assert.equal(await ring2.verifyKey('down.example', 'ed25519:x', clock), null);
    assert.equal((f2.calls as string[]).filter((c) => c.includes('down.example')).length, 1);
  });

  it('holds back a server whose key fetches fail, but lets a never-tried key ID through (at most one per minimum)', async () => {
    const key1 = generateSigningKey('key_1');
    let answer: () => unknown = () => {
      throw Object.assign(new Error('GET /_matrix/key/v2/server: 400'), { status: 400 });
    };
    const f = fetcher({ direct: () => answer() });
    const ring = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [], fetcher: f, now, logger: silent, errorBackoffMs: 10_000, newKeyMinMs: 1_000 });
    // A flood of events signed with the key of a server that answers errors: one fetch.
    for (let i = 0; i < 50; i++) assert.equal(await ring.verifyKey(peer, key1.keyId, clock), null);
    assert.equal(f.calls.length, 1);
    // A key ID never asked for (the server may have rotated): fetched at once. SyTest's notary
    // tests rely on this: one test ends on an origin's 400, the next asks for another key ID.
    assert.deepEqual(await ring.notaryDocuments(peer, ['ed25519:key_2'], () => 0), []);
    assert.equal(f.calls.length, 2);
    // Another new ID within the minimum: held back; after it, fetched; then it is no longer new.
    assert.equal(await ring.verifyKey(peer, 'ed25519:key_3', clock), null);
    assert.equal(f.calls.length, 2);
    clock += 1_000;
    assert.equal(await ring.verifyKey(peer, 'ed25519:key_3', clock), null);
    assert.equal(f.calls.length, 3);
    clock += 1_000;
    assert.equal(await ring.verifyKey(peer, 'ed25519:key_3', clock), null);
    assert.equal(await ring.verifyKey(peer, key1.keyId, clock), null);
    assert.equal(f.calls.length, 3);
    // Three failures: held back 10 s doubled twice (40 s from the last one), then asked again.
    clock += 38_999;
    assert.equal(await ring.verifyKey(peer, key1.keyId, clock), null);
    assert.equal(f.calls.length, 3);
    clock += 1;
    answer = () => ownKeyDocument(peer, key1, [], clock);
    assert.ok(await ring.verifyKey(peer, key1.keyId, clock));
    assert.equal(f.calls.length, 4);
  });

  it('a failed key fetch is logged with the error object, not only its message', async () => {
    const records: Array<Record<string, any>> = [];
    const sink = new Writable({ write: (chunk, _e, cb) => (records.push(JSON.parse(String(chunk))), cb()) });
    const thrown = Object.assign(new Error('GET /_matrix/key/v2/server: 502'), { status: 502 });
    const f = fetcher({ direct: () => { throw thrown; } });
    const ring = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [], fetcher: f, now, logger: pino({ level: 'warn' }, sink) });
    assert.equal(await ring.verifyKey(peer, 'ed25519:k', clock), null);
    const r = records.find((x) => x.msg === 'could not fetch server keys');
    assert.ok(r, JSON.stringify(records));
    assert.equal(r.err?.message, thrown.message);
    assert.equal(typeof r.err?.stack, 'string');
    assert.deepEqual(r.errors, [`direct: ${thrown.message}`]);
  });

  it('key fetch hold-off: doubles per failure up to the cap, and starts over after a success', async () => {
    const key = generateSigningKey('key_1');
    const failing = () => {
      throw Object.assign(new Error('GET /_matrix/key/v2/server: 500'), { status: 500 });
    };
    let answer: () => unknown = failing;
    const f = fetcher({ direct: () => answer() });
    const ring = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [], fetcher: f, now, logger: silent, errorBackoffMs: 1_000, maxBackoffMs: 4_000 });
    const ask = () => ring.verifyKey(peer, key.keyId, clock);
    /** Asks just before and at the end of a hold-off of `ms`: only the second may fetch. */
    const holds = async (ms: number) => {
      const n = f.calls.length;
      clock += ms - 1;
      await ask();
      assert.equal(f.calls.length, n, `fetched before ${ms} ms`);
      clock += 1;
      await ask();
      assert.equal(f.calls.length, n + 1, `not fetched after ${ms} ms`);
    };
    await ask();
    assert.equal(f.calls.length, 1);
    await holds(1_000);
    await holds(2_000);
    await holds(4_000);
    await holds(4_000); // capped
    answer = () => ownKeyDocument(peer, key, [], clock, 1_000);
    clock += 4_000;
    assert.ok(await ask());
    // The key expires; the server fails again: the hold-off starts over at 1 s.
    answer = failing;
    clock += 2_000;
    assert.equal(await ask(), null);
    const n = f.calls.length;
    await holds(1_000);
    assert.equal(f.calls.length, n + 1);
  });

  it('an unreachable key server is held back for retryAfterMs, whatever key ID is asked', async () => {
    const down = fetcher({});
    const ring = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [], fetcher: down, now, logger: silent, retryAfterMs: 60_000 });
    await ring.notaryDocuments(peer, ['ed25519:a'], () => 0);
    await ring.notaryDocuments(peer, ['ed25519:a'], () => 0);
    clock += 5_000;
    assert.equal(await ring.verifyKey(peer, 'ed25519:b', clock), null);
    assert.equal(down.calls.length, 1);
    clock += 55_000;
    assert.equal(await ring.verifyKey(peer, 'ed25519:b', clock), null);
    assert.equal(down.calls.length, 2);
  });

  it('answers its own keys without fetching', async () => {
    const own: SigningKey = generateSigningKey('me');
    const f = fetcher({});
    const ring = new RemoteKeyRing({ serverName: 'me.example', ownKeys: [own], fetcher: f, now, logger: silent });
    assert.ok(await ring.verifyKey('me.example', own.keyId, clock));
    assert.deepEqual(f.calls, []);
  });
});

describe('federation/acl', () => {
  it('allow and deny globs, ports ignored, IP literals, no ACL', () => {
    const acl = { allow: ['*.example.org', 'good.?et'], deny: ['evil.example.org'], allow_ip_literals: false };
    assert.equal(serverAclAllows(undefined, 'anything'), true);
    assert.equal(serverAclAllows(acl, 'matrix.example.org:8448'), true);
    assert.equal(serverAclAllows(acl, 'MATRIX.Example.org'), true);
    assert.equal(serverAclAllows(acl, 'evil.example.org'), false);
    assert.equal(serverAclAllows(acl, 'good.net'), true);
    assert.equal(serverAclAllows(acl, 'good.network'), false);
    assert.equal(serverAclAllows(acl, 'example.com'), false);
    assert.equal(serverAclAllows(acl, '1.2.3.4'), false);
    assert.equal(serverAclAllows({ allow: ['*'] }, '[::1]:8448'), true);
    assert.equal(serverAclAllows({ allow: ['*'], deny: ['127.0.0.1'] }, '127.0.0.1:8448'), false);
    assert.equal(serverAclAllows({ deny: [] }, 'x.org'), false);
  });
});

describe('federation/self-signed', () => {
  it('issues a certificate node parses and verifies, for an IP or a name', async () => {
    const ip = new X509Certificate((await generateSelfSignedCertificate('127.0.0.1')).cert);
    assert.ok(ip.verify(ip.publicKey));
    assert.equal(ip.checkIP('127.0.0.1'), '127.0.0.1');
    assert.ok(new Date(ip.validTo).getTime() > Date.now() + 300 * 86400_000);
    const v6 = new X509Certificate((await generateSelfSignedCertificate('::1')).cert);
    assert.equal(v6.checkIP('::1'), '::1');
    const name = new X509Certificate((await generateSelfSignedCertificate('hearth.example')).cert);
    assert.equal(name.checkHost('hearth.example'), 'hearth.example');
    assert.equal(name.checkHost('other.example'), undefined);
  });
});

function signBytesB64(key: SigningKey, data: string): string {
  return Buffer.from(signBytes(key, data)).toString('base64');
}

// The sender's durable queue (restart, same txnId, EDU shape): spec/federation/sender.spec.ts.

describe('federation/remote-rooms: invite v2 body', () => {
  it('carries the room state as full PDUs (create event included, unsigned dropped) and keeps the invitee server signature', async () => {
    const { RemoteRooms } = await import('../../src/federation/remote-rooms.js');
    const { signEvent, addEventSignature, computeEventId } = await import('../../src/protocol/events.js');
    type Pdu = import('../../src/protocol/types.js').Pdu;
    const keyA = generateSigningKey('a1');
    const keyB = generateSigningKey('b1');
    const roomId = '!room:a.example';
    const base = { room_id: roomId, prev_events: [], auth_events: [], depth: 1, origin_server_ts: 1 };
    const create = signEvent({ ...base, type: 'm.room.create', state_key: '', sender: '@alice:a.example', content: { room_version: '10' } } as unknown as Pdu, 'a.example', keyA, '10');
    const withUnsigned = { ...create, unsigned: { age: 5 } } as Pdu;
    const invite = signEvent({ ...base, depth: 2, type: 'm.room.member', state_key: '@bob:b.example', sender: '@alice:a.example', content: { membership: 'invite' } } as unknown as Pdu, 'a.example', keyA, '10');
    const sent: JsonObject[] = [];
    const rooms = new RemoteRooms({
      serverName: 'a.example',
      signingKey: keyA,
      keyRing: new StaticKeyRing([
        { serverName: 'a.example', keyId: keyA.keyId, publicKey: keyA.publicKey },
        { serverName: 'b.example', keyId: keyB.keyId, publicKey: keyB.publicKey },
      ]),
      client: {
        async request(_dest: string, req: { body?: JsonObject }) {
          sent.push(req.body as JsonObject);
          return { event: addEventSignature(structuredClone(req.body!.event as JsonObject), 'b.example', keyB, '10') };
        },
      } as never,
      roomInput: {} as never,
      logger: silent,
    });
    const out = await rooms.invite(roomId, '10', computeEventId(invite, '10'), invite, 'b.example', [withUnsigned]);
    assert.ok(out.signatures['b.example'], "the invitee server's signature is kept");
    const state = sent[0].invite_room_state as JsonObject[];
    assert.equal(state.length, 1);
    assert.equal(state[0].type, 'm.room.create');
    assert.deepEqual(state[0].signatures, create.signatures, 'a full PDU, signatures and all');
    assert.equal(state[0].unsigned, undefined);
    assert.equal(sent[0].room_version, '10');
  });
});
