// Room key backup versions accept only the algorithm the spec defines
// (m.megolm_backup.v1.curve25519-aes-sha2): creating or updating a version with any other
// string is 400 M_INVALID_PARAM and stores nothing.

import { strict as assert } from 'node:assert';
import { expectError, V3 } from '../helpers/fixtures.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';

const ALG = 'm.megolm_backup.v1.curve25519-aes-sha2';
const UNKNOWN = ['m.megolm_backup.v1', 'org.example.plaintext', 'M.MEGOLM_BACKUP.V1.CURVE25519-AES-SHA2', ` ${ALG}`, `${ALG}x`];

describe('room key backup algorithms', function () {
  this.timeout(20000);
  let srv: TestServer;
  let alice: Api;

  before(async () => {
    srv = await startTestServer();
    alice = await new Api(srv.url).register('alice');
  });
  after(async () => srv.stop());

  it('refuses to create a version with an unknown algorithm', async () => {
    for (const algorithm of UNKNOWN) {
      expectError(await alice.post(`${V3}/room_keys/version`, { algorithm, auth_data: { public_key: 'pk' } }), 400, 'M_INVALID_PARAM');
    }
    expectError(await alice.get(`${V3}/room_keys/version`), 404, 'M_NOT_FOUND');
  });

  it('creates a version with the spec algorithm, and refuses to update it to another', async () => {
    const created = await alice.post(`${V3}/room_keys/version`, { algorithm: ALG, auth_data: { public_key: 'pk1' } });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const version: string = created.body.version;
    for (const algorithm of UNKNOWN) {
      expectError(await alice.put(`${V3}/room_keys/version/${version}`, { algorithm, auth_data: { public_key: 'pk2' }, version }), 400, 'M_INVALID_PARAM');
    }
    const info = await alice.get(`${V3}/room_keys/version/${version}`);
    assert.equal(info.body.algorithm, ALG);
    assert.deepEqual(info.body.auth_data, { public_key: 'pk1' });
    const updated = await alice.put(`${V3}/room_keys/version/${version}`, { algorithm: ALG, auth_data: { public_key: 'pk3' }, version });
    assert.equal(updated.status, 200, JSON.stringify(updated.body));
  });
});
