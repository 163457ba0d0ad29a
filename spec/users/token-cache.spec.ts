// The access-token cache (src/users/token-cache.ts): answers from memory once a token was read,
// stays within its bound (least recently used evicted, entries expire) and reads evicted tokens
// back from the store; never keeps a token revoked while it was being read, nor a guest token.
// Over HTTP: a device deleted by this process, or by "another worker" (straight through the store,
// whose device-list record reaches this process through the change feed), stops its token at once;
// /metrics shows the cache.

import { assert } from '../helpers/assert.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';
import type { AccessTokenInfo } from '../../src/store/types.js';
import { AccessTokenCache } from '../../src/users/token-cache.js';
import { expectError, loginClient, PASSWORD, V3 } from '../helpers/fixtures.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';

describe('access-token cache', function () {
  let dir: string;
  let store: SqliteStore;
  let reads = 0;
  const load = (h: string): Promise<AccessTokenInfo | null> => {
    reads++;
    return store.devices.lookupAccessToken(h);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hearth-tokens-'));
    store = await openSqliteStore({ path: join(dir, 'db.sqlite') });
    for (const u of ['@a:x', '@b:x', '@c:x']) {
      await store.accounts.createUser({ userId: u, passwordHash: null, admin: false, createdTs: 1, displayname: null });
      await store.devices.upsertDevice({ userId: u, deviceId: 'D', displayName: null, ts: 1, ip: null });
      await store.devices.addAccessToken(`tok${u}`, { userId: u, deviceId: 'D' }, 1);
    }
    await store.accounts.createUser({ userId: '@g:x', passwordHash: null, admin: false, createdTs: 1, displayname: null, isGuest: true });
    await store.devices.upsertDevice({ userId: '@g:x', deviceId: 'G', displayName: null, ts: 1, ip: null });
    await store.devices.addAccessToken('tok@g:x', { userId: '@g:x', deviceId: 'G' }, 1);
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    reads = 0;
  });

  it('reads a token once, then answers from memory; unknown tokens are not kept', async () => {
    const c = new AccessTokenCache(10, 60_000);
    assert.deepEqual(await c.lookup('tok@a:x', load), { userId: '@a:x', deviceId: 'D', isGuest: false });
    assert.deepEqual(await c.lookup('tok@a:x', load), { userId: '@a:x', deviceId: 'D', isGuest: false });
    assert.equal(reads, 1);
    assert.equal(await c.lookup('nope', load), null);
    assert.equal(await c.lookup('nope', load), null);
    assert.equal(reads, 3, 'a miss is asked again (a token may be created later)');
    assert.deepEqual(c.stats(), { name: 'access_tokens', size: 1, bound: 10, hits: 1, misses: 3 });
  });

  it('stays within its bound: the least recently used token is evicted and read back from the store', async () => {
    const c = new AccessTokenCache(2, 60_000);
    await c.lookup('tok@a:x', load);
    await c.lookup('tok@b:x', load);
    await c.lookup('tok@a:x', load); // a is now the most recent
    await c.lookup('tok@c:x', load); // evicts b
    assert.equal(c.size, 2);
    assert.equal(reads, 3);
    assert.deepEqual(await c.lookup('tok@b:x', load), { userId: '@b:x', deviceId: 'D', isGuest: false });
    assert.equal(reads, 4, 'the evicted token came from the store');
    await c.lookup('tok@c:x', load);
    assert.equal(reads, 4, 'c stayed');
    assert.equal(c.size, 2);
  });

  it('entries expire after ttlMs and are read again', async () => {
    const c = new AccessTokenCache(10, 30);
    await c.lookup('tok@a:x', load);
    await c.lookup('tok@a:x', load);
    assert.equal(reads, 1);
    await new Promise((r) => setTimeout(r, 60));
    await c.lookup('tok@a:x', load);
    assert.equal(reads, 2);
  });

  it('dropUsers forgets exactly that user\'s tokens; a deleted token then reads as unknown', async () => {
    const c = new AccessTokenCache(10, 60_000);
    await c.lookup('tok@a:x', load);
    await c.lookup('tok@b:x', load);
    await store.devices.deleteDevice('@a:x', 'D');
    // Without a drop the cache would still answer: that is what the drops are for.
    assert.notEqual(await c.lookup('tok@a:x', load), null);
    c.dropUsers(['@a:x']);
    assert.equal(c.size, 1);
    assert.equal(await c.lookup('tok@a:x', load), null);
    const before = reads;
    assert.notEqual(await c.lookup('tok@b:x', load), null);
    assert.equal(reads, before, 'b was not dropped');
  });

  it('a store answer that overlapped a drop is returned but not kept', async () => {
    const c = new AccessTokenCache(10, 60_000);
    const racing = (h: string): Promise<AccessTokenInfo | null> => {
      const p = load(h);
      c.dropUsers(['@b:x']); // the logout lands while the row is being read
      return p;
    };
    assert.notEqual(await c.lookup('tok@b:x', racing), null);
    assert.equal(c.size, 0);
    await c.lookup('tok@b:x', load);
    assert.equal(c.size, 1);
    c.clear();
    assert.equal(c.size, 0);
  });

  it('does not keep guest tokens (an upgrade changes what they mean)', async () => {
    const c = new AccessTokenCache(10, 60_000);
    assert.deepEqual(await c.lookup('tok@g:x', load), { userId: '@g:x', deviceId: 'G', isGuest: true });
    await c.lookup('tok@g:x', load);
    assert.equal(reads, 2);
    assert.equal(c.size, 0);
  });
});

describe('access-token cache in the server', function () {
  let srv: TestServer;

  before(async () => {
    srv = await startTestServer();
    await new Api(srv.url).register('tina', PASSWORD);
  });
  after(async () => srv.stop());

  it('a device deleted by another worker (through the store and its device-list record) loses its token', async () => {
    const a = await loginClient(srv.url, 'tina', PASSWORD);
    const b = await loginClient(srv.url, 'tina', PASSWORD);
    for (let i = 0; i < 3; i++) assert.equal((await a.get(`${V3}/account/whoami`)).status, 200);
    // What a second worker sharing the storage does on DELETE /devices: this process's
    // AccountService is not involved, only the change feed tells it.
    assert.equal(await srv.hearth.store.devices.deleteDevice('@tina:localhost', a.deviceId), true);
    await srv.hearth.store.e2ee.deleteDeviceE2ee('@tina:localhost', a.deviceId);
    expectError(await a.get(`${V3}/account/whoami`), 401, 'M_UNKNOWN_TOKEN');
    assert.equal((await b.get(`${V3}/account/whoami`)).status, 200);
  });

  it('logout through this process stops the token before the response; /metrics shows the cache', async () => {
    const a = await loginClient(srv.url, 'tina', PASSWORD);
    for (let i = 0; i < 3; i++) assert.equal((await a.get(`${V3}/account/whoami`)).status, 200);
    assert.equal((await a.post(`${V3}/logout`, {})).status, 200);
    expectError(await a.get(`${V3}/account/whoami`), 401, 'M_UNKNOWN_TOKEN');
    const text = await (await fetch(`${srv.metricsUrl}/metrics`)).text();
    assert.match(text, /hearth_read_model_cache_size\{cache="access_tokens"\} \d+/);
    assert.match(text, /hearth_read_model_cache_bound\{cache="access_tokens"\} 100000/);
    assert.match(text, /hearth_read_model_cache_hits\{cache="access_tokens"\} [1-9]/);
    assert.match(text, /hearth_read_model_cache_misses\{cache="access_tokens"\} [1-9]/);
  });
});
