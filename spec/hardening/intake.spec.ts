// Issue 9, item 5: one intake check at the JSON boundary. Values with no canonical form get
// 400 M_BAD_JSON wherever they arrive; invalid UTF-8 is M_NOT_JSON (never stored as U+FFFD); NUL
// is refused in event types, state keys and account-data types.

import { assert } from '../helpers/assert.js';
import { expectError, makeUser, ok, roomPath, roomWith, V3, type User } from '../helpers/fixtures.js';
import { enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('hardening: JSON intake', function () {
  let srv: TestServer;
  let u: User;
  let roomId: string;

  before(async () => {
    srv = await startTestServer();
    u = await makeUser(srv, 'intake');
    roomId = await roomWith(u, []);
  });
  after(() => srv.stop());

  const raw = (method: string, path: string, body: Buffer | string) =>
    fetch(srv.url + path, { method, headers: { authorization: `Bearer ${u.token}`, 'content-type': 'application/json' }, body: typeof body === 'string' ? body : new Uint8Array(body) }).then(async (r) => ({
      status: r.status,
      body: await r.json(),
    }));

  const targets = () => [
    ['PUT', `${V3}/sendToDevice/m.test/t${Math.random()}`, (v: string) => `{"messages":{"${u.userId}":{"DEV":{"v":${v}}}}}`],
    ['POST', `${V3}/user/${enc(u.userId)}/filter`, (v: string) => `{"room":{"timeline":{"limit":${v}}}}`],
    ['PUT', `${V3}/user/${enc(u.userId)}/account_data/m.test`, (v: string) => `{"v":${v}}`],
    ['PUT', roomPath(roomId, `send/m.room.message/t${Math.random()}`), (v: string) => `{"msgtype":"m.text","body":"x","v":${v}}`],
  ] as const;

  for (const [name, value] of [
    ['1e400', '1e400'],
    ['an integer past 2^53', '9007199254740993'],
    ['a lone surrogate', '"\\ud800"'],
  ]) {
    it(`refuses ${name} with 400 M_BAD_JSON on to-device, filters, account data and events`, async () => {
      for (const [method, path, make] of targets()) expectError(await raw(method, path, make(value)), 400, 'M_BAD_JSON');
    });
  }

  it('refuses fractions except in account data, where the spec allows them (tag order)', async () => {
    const [toDevice, filter, accountData, send] = targets();
    expectError(await raw(toDevice[0], toDevice[1], toDevice[2]('0.5')), 400, 'M_BAD_JSON');
    expectError(await raw(filter[0], filter[1], filter[2]('0.5')), 400, 'M_BAD_JSON');
    expectError(await raw(send[0], send[1], send[2]('0.5')), 400, 'M_BAD_JSON');
    assert.equal((await raw(accountData[0], accountData[1], accountData[2]('0.5'))).status, 200);
  });

  it('an inline ?filter= (/sync, /messages) gets the intake rules of a POST /filter body', async () => {
    const deep = `{"x":${'['.repeat(600)}${']'.repeat(600)}}`;
    const paths = (f: string) => [
      `${V3}/sync?timeout=0&filter=${enc(f)}`,
      roomPath(roomId, `messages?dir=b&filter=${enc(f)}`),
    ];
    for (const bad of [deep, '{"x":1e1}', '{"x":0.5}', '{"x":9007199254740993}', '{"x":"\\ud800"}']) {
      for (const path of paths(bad)) expectError(await u.get(path), 400, 'M_BAD_JSON');
      expectError(await raw('POST', `${V3}/user/${enc(u.userId)}/filter`, bad), 400, 'M_BAD_JSON');
    }
    for (const path of paths('{"x":')) expectError(await u.get(path), 400, 'M_NOT_JSON');
    for (const path of paths('{"room":{"timeline":{"limit":2}},"x":[[1]]}')) await ok(u.get(path), path);
    for (const path of paths('{"limit":2}')) await ok(u.get(path), path);
  });

  it('refuses nesting 10,000 deep with 400 M_BAD_JSON, and the server goes on', async () => {
    const deep = '{"a":'.repeat(10000) + '1' + '}'.repeat(10000);
    expectError(await raw('PUT', `${V3}/user/${enc(u.userId)}/account_data/m.deep`, deep), 400, 'M_BAD_JSON');
    expectError(await raw('PUT', `${V3}/user/${enc(u.userId)}/account_data/m.deep`, '['.repeat(10000) + ']'.repeat(10000)), 400, 'M_BAD_JSON');
    assert.equal((await u.get(`${V3}/account/whoami`)).status, 200);
  });

  it('refuses invalid UTF-8 with 400 M_NOT_JSON and stores nothing', async () => {
    const bad = Buffer.concat([Buffer.from('{"displayname":"a'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    expectError(await raw('PUT', `${V3}/profile/${enc(u.userId)}/displayname`, bad), 400, 'M_NOT_JSON');
    expectError(await raw('PUT', `${V3}/user/${enc(u.userId)}/account_data/m.utf8`, Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x22, 0x7d])), 400, 'M_NOT_JSON');
    expectError(await u.get(`${V3}/user/${enc(u.userId)}/account_data/m.utf8`), 404, 'M_NOT_FOUND');
    const profile = await ok(u.get(`${V3}/profile/${enc(u.userId)}`), 'profile');
    assert.ok(!JSON.stringify(profile).includes('\ufffd'));
  });

  it('refuses NUL in event types, state keys and account-data types', async () => {
    expectError(await u.put(roomPath(roomId, `send/${enc('m.x\u0000y')}/t1`), { a: 1 }), 400, 'M_INVALID_PARAM');
    expectError(await u.put(roomPath(roomId, `state/${enc('m.x\u0000y')}/k`), { a: 1 }), 400, 'M_INVALID_PARAM');
    expectError(await u.put(roomPath(roomId, `state/m.custom/${enc('k\u0000j')}`), { a: 1 }), 400, 'M_INVALID_PARAM');
    expectError(await u.put(`${V3}/user/${enc(u.userId)}/account_data/${enc('m.a\u0000b')}`, { a: 1 }), 400, 'M_INVALID_PARAM');
    const r = await u.post(`${V3}/createRoom`, { initial_state: [{ type: 'm.nul\u0000', state_key: '', content: {} }] });
    expectError(r, 400, 'M_INVALID_PARAM');
  });
});
