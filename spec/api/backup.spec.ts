// Server-side room key backup over real HTTP (data/api/client-server/key_backup.yaml): versions,
// keys at three levels, the "better key wins" replacement, version checks, etag and count.

import { assert } from '../helpers/assert.js';
import { V3 } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { expectError, PASSWORD, type User } from './keys-helpers.js';

const ALG = 'm.megolm_backup.v1.curve25519-aes-sha2';
const ROOM = '!room:localhost';

const key = (first: number, forwarded: number, verified: boolean, tag: string) => ({
  first_message_index: first,
  forwarded_count: forwarded,
  is_verified: verified,
  session_data: { ephemeral: 'e', ciphertext: tag, mac: 'm' },
});

describe('E2EE room key backup', function () {
  let srv: TestServer;
  let alice: User;
  let bob: User;
  let v1: string;
  let v2: string;

  const keysPath = (version: string, room?: string, session?: string) =>
    `${V3}/room_keys/keys${room ? `/${enc(room)}` : ''}${session ? `/${enc(session)}` : ''}?version=${enc(version)}`;

  before(async () => {
    srv = await startTestServer();
    const api = new Api(srv.url);
    alice = await api.register('alice', PASSWORD);
    bob = await api.register('bob', PASSWORD);
  });
  after(async () => srv.stop());

  it('GET /room_keys/version is 404 M_NOT_FOUND before any backup exists', async () => {
    expectError(await alice.get(`${V3}/room_keys/version`), 404, 'M_NOT_FOUND');
    expectError(await alice.get(`${V3}/room_keys/version/1`), 404, 'M_NOT_FOUND');
  });

  it('creates versions; GET returns the latest with count and etag', async () => {
    const r = await alice.post(`${V3}/room_keys/version`, { algorithm: ALG, auth_data: { public_key: 'pk1' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    v1 = r.body.version;
    assert.equal(typeof v1, 'string');
    const g = await alice.get(`${V3}/room_keys/version`);
    assert.equal(g.status, 200);
    assert.deepEqual({ ...g.body, etag: undefined }, { algorithm: ALG, auth_data: { public_key: 'pk1' }, count: 0, etag: undefined, version: v1 });
    assert.equal(typeof g.body.etag, 'string');
    expectError(await bob.get(`${V3}/room_keys/version`), 404, 'M_NOT_FOUND');
    expectError(await bob.get(`${V3}/room_keys/version/${v1}`), 404, 'M_NOT_FOUND');
    expectError(await alice.post(`${V3}/room_keys/version`, { auth_data: {} }), 400, 'M_MISSING_PARAM');
  });

  it('stores keys at every level and reads them back', async () => {
    const a = await alice.put(keysPath(v1, ROOM, 'S1'), key(5, 1, false, 'one'));
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(a.body.count, 1);
    const b = await alice.put(keysPath(v1, ROOM), { sessions: { S2: key(0, 0, true, 'two') } });
    assert.equal(b.body.count, 2);
    assert.notEqual(b.body.etag, a.body.etag, 'the etag changes with the keys');
    const c = await alice.put(keysPath(v1), { rooms: { '!other:localhost': { sessions: { S3: key(0, 0, false, 'three') } } } });
    assert.equal(c.body.count, 3);
    const all = await alice.get(keysPath(v1));
    assert.deepEqual(Object.keys(all.body.rooms).sort(), ['!other:localhost', ROOM]);
    assert.deepEqual(all.body.rooms[ROOM].sessions.S1, key(5, 1, false, 'one'));
    assert.deepEqual(Object.keys((await alice.get(keysPath(v1, ROOM))).body.sessions).sort(), ['S1', 'S2']);
    assert.deepEqual((await alice.get(keysPath(v1, ROOM, 'S2'))).body, key(0, 0, true, 'two'));
    assert.deepEqual((await alice.get(keysPath(v1, '!empty:localhost'))).body, { sessions: {} });
    expectError(await alice.get(keysPath(v1, ROOM, 'NOPE')), 404, 'M_NOT_FOUND');
    const info = await alice.get(`${V3}/room_keys/version/${v1}`);
    assert.equal(info.body.count, 3);
    assert.equal(info.body.etag, c.body.etag);
  });

  it('replaces a session only with a better copy: verified, then lower first index, then fewer forwards', async () => {
    const put = (d: object) => alice.put(keysPath(v1, ROOM, 'S1'), d);
    const get = async () => (await alice.get(keysPath(v1, ROOM, 'S1'))).body.session_data.ciphertext;
    await put(key(9, 0, false, 'worse-index'));
    assert.equal(await get(), 'one');
    await put(key(5, 0, false, 'fewer-forwards'));
    assert.equal(await get(), 'fewer-forwards');
    await put(key(0, 0, false, 'lower-index'));
    assert.equal(await get(), 'lower-index');
    await put(key(50, 3, true, 'verified'));
    assert.equal(await get(), 'verified');
    await put(key(0, 0, false, 'unverified-best-index'));
    assert.equal(await get(), 'verified');
    assert.equal((await alice.get(`${V3}/room_keys/version/${v1}`)).body.count, 3);
  });

  it('validates key data and requires ?version', async () => {
    expectError(await alice.put(`${V3}/room_keys/keys/${enc(ROOM)}/S9`, key(0, 0, false, 'x')), 400, 'M_MISSING_PARAM');
    expectError(await alice.get(`${V3}/room_keys/keys`), 400, 'M_MISSING_PARAM');
    expectError(await alice.put(keysPath(v1, ROOM, 'S9'), { ...key(0, 0, false, 'x'), first_message_index: -1 }), 400, 'M_BAD_JSON');
    expectError(await alice.put(keysPath(v1, ROOM, 'S9'), { first_message_index: 0 }), 400, 'M_MISSING_PARAM');
    expectError(await alice.put(keysPath(v1), { rooms: { [ROOM]: { sessions: { S9: { ...key(0, 0, false, 'x'), is_verified: 'yes' } } } } }), 400, 'M_BAD_JSON');
  });

  it('updates auth_data; the body version and algorithm must match', async () => {
    const ok = await alice.put(`${V3}/room_keys/version/${v1}`, { algorithm: ALG, auth_data: { public_key: 'pk1b' }, version: v1 });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual((await alice.get(`${V3}/room_keys/version/${v1}`)).body.auth_data, { public_key: 'pk1b' });
    expectError(await alice.put(`${V3}/room_keys/version/${v1}`, { algorithm: ALG, auth_data: {}, version: 'other' }), 400, 'M_INVALID_PARAM');
    expectError(await alice.put(`${V3}/room_keys/version/${v1}`, { algorithm: 'm.other', auth_data: {} }), 400, 'M_INVALID_PARAM');
    expectError(await alice.put(`${V3}/room_keys/version/999999`, { algorithm: ALG, auth_data: {} }), 404, 'M_NOT_FOUND');
  });

  it('writes to an old version are 403 M_WRONG_ROOM_KEYS_VERSION naming the current one; reads still work', async () => {
    v2 = (await alice.post(`${V3}/room_keys/version`, { algorithm: ALG, auth_data: { public_key: 'pk2' } })).body.version;
    assert.notEqual(v2, v1);
    assert.equal((await alice.get(`${V3}/room_keys/version`)).body.version, v2);
    const r = await alice.put(keysPath(v1, ROOM, 'S5'), key(0, 0, false, 'late'));
    expectError(r, 403, 'M_WRONG_ROOM_KEYS_VERSION');
    assert.equal(r.body.current_version, v2);
    expectError(await alice.put(keysPath('424242', ROOM, 'S5'), key(0, 0, false, 'late')), 403, 'M_WRONG_ROOM_KEYS_VERSION');
    assert.equal((await alice.get(keysPath(v1))).status, 200);
    assert.deepEqual((await alice.get(keysPath(v2))).body, { rooms: {} });
    expectError(await alice.get(keysPath('424242')), 404, 'M_NOT_FOUND');
  });

  it('deletes a session, a room, then all keys, reporting count and etag', async () => {
    await alice.put(keysPath(v2), { rooms: { [ROOM]: { sessions: { A: key(0, 0, false, 'a'), B: key(0, 0, false, 'b') } }, '!r2:localhost': { sessions: { C: key(0, 0, false, 'c') } } } });
    const d1 = await alice.req('DELETE', keysPath(v2, ROOM, 'A'));
    assert.equal(d1.status, 200, JSON.stringify(d1.body));
    assert.equal(d1.body.count, 2);
    assert.equal(typeof d1.body.etag, 'string');
    const d2 = await alice.req('DELETE', keysPath(v2, ROOM));
    assert.equal(d2.body.count, 1);
    const d3 = await alice.req('DELETE', keysPath(v2));
    assert.equal(d3.body.count, 0);
    assert.deepEqual((await alice.get(keysPath(v2))).body, { rooms: {} });
    expectError(await alice.req('DELETE', keysPath('424242')), 404, 'M_NOT_FOUND');
  });

  it('deletes a version with its keys; the latest is then the previous one', async () => {
    assert.equal((await alice.req('DELETE', `${V3}/room_keys/version/${v2}`)).status, 200);
    expectError(await alice.get(`${V3}/room_keys/version/${v2}`), 404, 'M_NOT_FOUND');
    expectError(await alice.get(keysPath(v2)), 404, 'M_NOT_FOUND');
    assert.equal((await alice.get(`${V3}/room_keys/version`)).body.version, v1);
    expectError(await bob.req('DELETE', `${V3}/room_keys/version/${v1}`), 404, 'M_NOT_FOUND');
    assert.equal((await alice.req('DELETE', `${V3}/room_keys/version/${v1}`)).status, 200);
    expectError(await alice.get(`${V3}/room_keys/version`), 404, 'M_NOT_FOUND');
  });
});
