// Device management over real HTTP (spec v1.12 data/api/client-server/device_management.yaml):
// list, get, rename, delete with User-Interactive Authentication, bulk delete.

import { assert } from '../helpers/assert.js';
import { expectError, loginClient as passwordClient, passwordAuth, PASSWORD, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

const loginClient = (base: string, user: string, extra: Record<string, unknown> = {}) => passwordClient(base, user, PASSWORD, extra);

const deviceIds = async (c: Api): Promise<string[]> => {
  const r = await c.get(`${V3}/devices`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.devices.map((d: any) => d.device_id).sort();
};

describe('devices', function () {
  let srv: TestServer;
  let api: Api;
  let dev: User;
  let bob: User;
  let laptop: Api & { deviceId: string };

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
    dev = await api.register('dev', PASSWORD);
    bob = await api.register('bob', PASSWORD);
    laptop = await loginClient(srv.url, 'dev', { device_id: 'LAPTOPDEV', initial_device_display_name: 'Laptop' });
  });
  after(async () => srv.stop());

  it('GET /devices lists the user\'s devices (and only theirs)', async () => {
    const r = await dev.get(`${V3}/devices`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(Array.isArray(r.body.devices));
    const ids = r.body.devices.map((d: any) => d.device_id).sort();
    assert.deepEqual(ids, [dev.deviceId, 'LAPTOPDEV'].sort());
    assert.ok(!ids.includes(bob.deviceId));
    const lap = r.body.devices.find((d: any) => d.device_id === 'LAPTOPDEV');
    assert.equal(lap.display_name, 'Laptop');
    for (const d of r.body.devices) {
      if (d.last_seen_ts !== undefined) assert.equal(typeof d.last_seen_ts, 'number');
      if (d.last_seen_ip !== undefined) assert.equal(typeof d.last_seen_ip, 'string');
    }
  });

  it('GET /devices/{id} returns one device', async () => {
    const r = await dev.get(`${V3}/devices/LAPTOPDEV`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.device_id, 'LAPTOPDEV');
    assert.equal(r.body.display_name, 'Laptop');
  });

  it('GET /devices/{id} of an unknown device, or of another user\'s device, is 404 M_NOT_FOUND', async () => {
    expectError(await dev.get(`${V3}/devices/NOSUCHDEVICE`), 404, 'M_NOT_FOUND');
    expectError(await dev.get(`${V3}/devices/${enc(bob.deviceId)}`), 404, 'M_NOT_FOUND');
  });

  it('PUT /devices/{id} updates the display name', async () => {
    const r = await laptop.put(`${V3}/devices/LAPTOPDEV`, { display_name: 'Renamed laptop' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, {});
    assert.equal((await dev.get(`${V3}/devices/LAPTOPDEV`)).body.display_name, 'Renamed laptop');
    // Another device of the same user may rename it too.
    const r2 = await dev.put(`${V3}/devices/LAPTOPDEV`, { display_name: 'Laptop 2' });
    assert.equal(r2.status, 200);
    const list = (await dev.get(`${V3}/devices`)).body.devices;
    assert.equal(list.find((d: any) => d.device_id === 'LAPTOPDEV').display_name, 'Laptop 2');
  });

  it('PUT /devices/{id} of an unknown or foreign device is 404 M_NOT_FOUND and changes nothing', async () => {
    expectError(await dev.put(`${V3}/devices/NOSUCHDEVICE`, { display_name: 'x' }), 404, 'M_NOT_FOUND');
    expectError(await dev.put(`${V3}/devices/${enc(bob.deviceId)}`, { display_name: 'hijacked' }), 404, 'M_NOT_FOUND');
    const own = await bob.get(`${V3}/devices/${enc(bob.deviceId)}`);
    assert.notEqual(own.body.display_name, 'hijacked');
  });

  it('DELETE /devices/{id} needs UIA, then removes the device and its token', async () => {
    const phone = await loginClient(srv.url, 'dev', { device_id: 'PHONEDEV' });
    const first = await dev.req('DELETE', `${V3}/devices/PHONEDEV`, {});
    assert.equal(first.status, 401, JSON.stringify(first.body));
    assert.ok(first.body.flows.some((f: any) => f.stages.includes('m.login.password')), JSON.stringify(first.body));
    assert.equal(typeof first.body.session, 'string');
    assert.equal((await phone.get(`${V3}/account/whoami`)).status, 200, 'nothing deleted by the challenge');

    const wrong = await dev.req('DELETE', `${V3}/devices/PHONEDEV`, { auth: passwordAuth('dev', 'wrong password', first.body.session) });
    assert.equal(wrong.status, 401, JSON.stringify(wrong.body));
    assert.equal(wrong.body.errcode, 'M_FORBIDDEN', 'a wrong password fails the stage with M_FORBIDDEN');
    assert.equal((await phone.get(`${V3}/account/whoami`)).status, 200);

    const r = await dev.req('DELETE', `${V3}/devices/PHONEDEV`, { auth: passwordAuth('dev', PASSWORD, first.body.session) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, {});
    expectError(await dev.get(`${V3}/devices/PHONEDEV`), 404, 'M_NOT_FOUND');
    expectError(await phone.get(`${V3}/account/whoami`), 401, 'M_UNKNOWN_TOKEN');
    assert.equal((await dev.get(`${V3}/account/whoami`)).status, 200, 'the caller keeps working');
  });

  it('DELETE /devices/{id} of an unknown device is 404 M_NOT_FOUND', async () => {
    expectError(await dev.req('DELETE', `${V3}/devices/NOSUCHDEVICE`, {}), 404, 'M_NOT_FOUND');
  });

  it('POST /delete_devices needs UIA, then removes the listed devices and their tokens', async () => {
    const a = await loginClient(srv.url, 'dev', { device_id: 'BULKA' });
    const b = await loginClient(srv.url, 'dev', { device_id: 'BULKB' });
    const keep = await loginClient(srv.url, 'dev', { device_id: 'BULKKEEP' });
    const first = await dev.post(`${V3}/delete_devices`, { devices: ['BULKA', 'BULKB'] });
    assert.equal(first.status, 401, JSON.stringify(first.body));
    assert.ok(first.body.flows.some((f: any) => f.stages.includes('m.login.password')), JSON.stringify(first.body));
    assert.equal(first.body.errcode, undefined);
    assert.ok((await deviceIds(dev)).includes('BULKA'), 'nothing deleted by the challenge');

    const r = await dev.post(`${V3}/delete_devices`, { devices: ['BULKA', 'BULKB'], auth: passwordAuth('@dev:localhost', PASSWORD, first.body.session) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const ids = await deviceIds(dev);
    assert.ok(!ids.includes('BULKA') && !ids.includes('BULKB'), JSON.stringify(ids));
    assert.ok(ids.includes('BULKKEEP') && ids.includes(dev.deviceId));
    expectError(await a.get(`${V3}/account/whoami`), 401, 'M_UNKNOWN_TOKEN');
    expectError(await b.get(`${V3}/account/whoami`), 401, 'M_UNKNOWN_TOKEN');
    assert.equal((await keep.get(`${V3}/account/whoami`)).status, 200);

    // A completed UIA session cannot be replayed to authorise another deletion.
    const replay = await dev.post(`${V3}/delete_devices`, { devices: ['BULKKEEP'], auth: { session: first.body.session } });
    assert.equal(replay.status, 401, JSON.stringify(replay.body));
    assert.equal((await keep.get(`${V3}/account/whoami`)).status, 200);
  });

  it('POST /delete_devices cannot delete another user\'s devices', async () => {
    const first = await dev.post(`${V3}/delete_devices`, { devices: [bob.deviceId] });
    assert.equal(first.status, 401);
    await dev.post(`${V3}/delete_devices`, { devices: [bob.deviceId], auth: passwordAuth('dev', PASSWORD, first.body.session) });
    assert.equal((await bob.get(`${V3}/account/whoami`)).status, 200);
    assert.deepEqual(await deviceIds(bob), [bob.deviceId]);
  });

  it('device endpoints need an access token', async () => {
    expectError(await api.get(`${V3}/devices`), 401, 'M_MISSING_TOKEN');
    expectError(await api.get(`${V3}/devices/LAPTOPDEV`), 401, 'M_MISSING_TOKEN');
    expectError(await api.put(`${V3}/devices/LAPTOPDEV`, { display_name: 'x' }), 401, 'M_MISSING_TOKEN');
  });
});
