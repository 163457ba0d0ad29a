// Profiles and account data over real HTTP (spec v1.12 data/api/client-server/profile.yaml and
// account-data.yaml, "Events on Change of Profile Information", "Client Config").

import { assert } from '../helpers/assert.js';
import { expectError, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('profiles', function () {
  let srv: TestServer;
  let api: Api;
  let pia: User;
  let quinn: User;
  let roomId: string;
  const PIA = '@pia:localhost';

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
    pia = await api.register('pia');
    quinn = await api.register('quinn');
    const room = await pia.post(`${V3}/createRoom`, {});
    assert.equal(room.status, 200, JSON.stringify(room.body));
    roomId = room.body.room_id;
  });
  after(async () => srv.stop());

  it('GET /profile/{userId}: the display name defaults to the localpart, no avatar, no auth needed', async () => {
    const r = await api.get(`${V3}/profile/${enc(PIA)}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { displayname: 'pia' });
    const dn = await api.get(`${V3}/profile/${enc('@quinn:localhost')}/displayname`);
    assert.equal(dn.status, 200, JSON.stringify(dn.body));
    assert.deepEqual(dn.body, { displayname: 'quinn' });
    const none = await api.get(`${V3}/profile/${enc(PIA)}/avatar_url`);
    assert.equal(none.status, 200, 'no avatar set: an empty answer, not 404');
    assert.deepEqual(none.body, {});
  });

  it('GET /profile of an unknown user is 404 M_NOT_FOUND', async () => {
    expectError(await api.get(`${V3}/profile/${enc('@nobody:localhost')}`), 404, 'M_NOT_FOUND');
    expectError(await api.get(`${V3}/profile/${enc('@nobody:localhost')}/displayname`), 404, 'M_NOT_FOUND');
    expectError(await api.get(`${V3}/profile/${enc('@nobody:localhost')}/avatar_url`), 404, 'M_NOT_FOUND');
  });

  it('PUT displayname sets it, and it propagates to the member event of rooms the user is in', async () => {
    const r = await pia.put(`${V3}/profile/${enc(PIA)}/displayname`, { displayname: 'Pia Pirate' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, {});
    assert.deepEqual((await api.get(`${V3}/profile/${enc(PIA)}/displayname`)).body, { displayname: 'Pia Pirate' });
    assert.equal((await api.get(`${V3}/profile/${enc(PIA)}`)).body.displayname, 'Pia Pirate');
    const member = await pia.get(`${V3}/rooms/${enc(roomId)}/state/m.room.member/${enc(PIA)}`);
    assert.equal(member.status, 200, JSON.stringify(member.body));
    assert.equal(member.body.membership, 'join');
    assert.equal(member.body.displayname, 'Pia Pirate');
  });

  it('PUT avatar_url accepts an mxc:// URI, and other strings are stored as sent', async () => {
    const ok = await pia.put(`${V3}/profile/${enc(PIA)}/avatar_url`, { avatar_url: 'mxc://localhost/abcDEF123' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual((await api.get(`${V3}/profile/${enc(PIA)}/avatar_url`)).body, { avatar_url: 'mxc://localhost/abcDEF123' });
    const profile = (await api.get(`${V3}/profile/${enc(PIA)}`)).body;
    assert.equal(profile.avatar_url, 'mxc://localhost/abcDEF123');
    const member = await pia.get(`${V3}/rooms/${enc(roomId)}/state/m.room.member/${enc(PIA)}`);
    assert.equal(member.body.avatar_url, 'mxc://localhost/abcDEF123');

    for (const other of ['https://example.org/cat.png', 'LemurFace']) {
      const r = await pia.put(`${V3}/profile/${enc(PIA)}/avatar_url`, { avatar_url: other });
      assert.equal(r.status, 200, `${other}: ${JSON.stringify(r.body)}`);
      assert.deepEqual((await api.get(`${V3}/profile/${enc(PIA)}/avatar_url`)).body, { avatar_url: other });
    }
    const bad = await pia.put(`${V3}/profile/${enc(PIA)}/avatar_url`, { avatar_url: 7 });
    assert.equal(bad.status, 400, 'still a string');
    assert.equal((await pia.put(`${V3}/profile/${enc(PIA)}/avatar_url`, { avatar_url: 'mxc://localhost/abcDEF123' })).status, 200);
  });

  it('setting another user\'s profile is 403 M_FORBIDDEN and changes nothing', async () => {
    expectError(await quinn.put(`${V3}/profile/${enc(PIA)}/displayname`, { displayname: 'Hacked' }), 403, 'M_FORBIDDEN');
    expectError(await quinn.put(`${V3}/profile/${enc(PIA)}/avatar_url`, { avatar_url: 'mxc://localhost/evil' }), 403, 'M_FORBIDDEN');
    const p = (await api.get(`${V3}/profile/${enc(PIA)}`)).body;
    assert.equal(p.displayname, 'Pia Pirate');
    assert.equal(p.avatar_url, 'mxc://localhost/abcDEF123');
    expectError(await api.put(`${V3}/profile/${enc(PIA)}/displayname`, { displayname: 'anon' }), 401, 'M_MISSING_TOKEN');
  });
});

describe('account data', function () {
  let srv: TestServer;
  let api: Api;
  let pia: User;
  let quinn: User;
  let roomId: string;
  const PIA = '@pia:localhost';
  const global = (user: string, type: string) => `${V3}/user/${enc(user)}/account_data/${enc(type)}`;
  const inRoom = (user: string, room: string, type: string) => `${V3}/user/${enc(user)}/rooms/${enc(room)}/account_data/${enc(type)}`;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
    pia = await api.register('pia');
    quinn = await api.register('quinn');
    roomId = (await pia.post(`${V3}/createRoom`, {})).body.room_id;
  });
  after(async () => srv.stop());

  it('global m.direct round-trips and can be overwritten', async () => {
    const direct = { '@quinn:localhost': [roomId] };
    const put = await pia.put(global(PIA, 'm.direct'), direct);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body, {});
    const got = await pia.get(global(PIA, 'm.direct'));
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.deepEqual(got.body, direct);
    const replaced = { '@quinn:localhost': [roomId, '!other:localhost'] };
    assert.equal((await pia.put(global(PIA, 'm.direct'), replaced)).status, 200);
    assert.deepEqual((await pia.get(global(PIA, 'm.direct'))).body, replaced);
  });

  it('missing account data is 404 M_NOT_FOUND', async () => {
    expectError(await pia.get(global(PIA, 'org.example.never.set')), 404, 'M_NOT_FOUND');
    expectError(await pia.get(inRoom(PIA, roomId, 'org.example.never.set')), 404, 'M_NOT_FOUND');
    // Account data is per user: quinn has no m.direct even though pia does.
    expectError(await quinn.get(global('@quinn:localhost', 'm.direct')), 404, 'M_NOT_FOUND');
  });

  it('reading or writing another user\'s account data is 403 M_FORBIDDEN', async () => {
    expectError(await quinn.get(global(PIA, 'm.direct')), 403, 'M_FORBIDDEN');
    expectError(await quinn.put(global(PIA, 'm.direct'), { evil: [] }), 403, 'M_FORBIDDEN');
    expectError(await quinn.get(inRoom(PIA, roomId, 'm.tag')), 403, 'M_FORBIDDEN');
    expectError(await quinn.put(inRoom(PIA, roomId, 'org.example.x'), {}), 403, 'M_FORBIDDEN');
    assert.deepEqual(Object.keys((await pia.get(global(PIA, 'm.direct'))).body), ['@quinn:localhost']);
  });

  it('per-room account data round-trips and is scoped to the room', async () => {
    const content = { colour: 'teal', n: 3 };
    const put = await pia.put(inRoom(PIA, roomId, 'org.example.room_prefs'), content);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const got = await pia.get(inRoom(PIA, roomId, 'org.example.room_prefs'));
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.deepEqual(got.body, content);
    expectError(await pia.get(global(PIA, 'org.example.room_prefs')), 404, 'M_NOT_FOUND');
    const other = (await pia.post(`${V3}/createRoom`, {})).body.room_id;
    expectError(await pia.get(inRoom(PIA, other, 'org.example.room_prefs')), 404, 'M_NOT_FOUND');
  });

  it('room account data for a room you are not in is 403', async () => {
    expectError(await quinn.put(inRoom('@quinn:localhost', roomId, 'org.example.x'), { a: 1 }), 403, 'M_FORBIDDEN');
    expectError(await quinn.get(inRoom('@quinn:localhost', roomId, 'org.example.x')), 403, 'M_FORBIDDEN');
    expectError(await quinn.put(inRoom('@quinn:localhost', '!unknown:localhost', 'org.example.x'), { a: 1 }), 403, 'M_FORBIDDEN');
  });

  it('an invalid room ID is 400 M_INVALID_PARAM', async () => {
    expectError(await pia.put(inRoom(PIA, 'not-a-room', 'org.example.x'), {}), 400, 'M_INVALID_PARAM');
    expectError(await pia.get(inRoom(PIA, 'not-a-room', 'org.example.x')), 400, 'M_INVALID_PARAM');
  });

  it('server-managed types (m.fully_read, m.push_rules) cannot be set: 405 M_BAD_JSON', async () => {
    expectError(await pia.put(global(PIA, 'm.push_rules'), { global: {} }), 405, 'M_BAD_JSON');
    expectError(await pia.put(inRoom(PIA, roomId, 'm.fully_read'), { event_id: '$x' }), 405, 'M_BAD_JSON');
  });

  it('a non-object body is rejected with M_BAD_JSON / M_NOT_JSON', async () => {
    expectError(await pia.req('PUT', global(PIA, 'org.example.y'), '[1]'), 400, 'M_BAD_JSON');
    expectError(await pia.req('PUT', global(PIA, 'org.example.y'), 'nope'), 400, 'M_NOT_JSON');
  });

  it('account data appears in /sync (global and per room)', async () => {
    const r = await pia.get(`${V3}/sync`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const globalEvents = r.body.account_data?.events ?? [];
    const direct = globalEvents.find((e: any) => e.type === 'm.direct');
    assert.ok(direct, JSON.stringify(globalEvents));
    assert.deepEqual(Object.keys(direct.content), ['@quinn:localhost']);
    const roomEvents = r.body.rooms?.join?.[roomId]?.account_data?.events ?? [];
    const prefs = roomEvents.find((e: any) => e.type === 'org.example.room_prefs');
    assert.ok(prefs, JSON.stringify(roomEvents));
    assert.deepEqual(prefs.content, { colour: 'teal', n: 3 });

    // An incremental sync carries a later change.
    const since = r.body.next_batch;
    assert.equal((await pia.put(global(PIA, 'org.example.later'), { v: 1 })).status, 200);
    const inc = await pia.get(`${V3}/sync?since=${enc(since)}&timeout=0`);
    assert.equal(inc.status, 200);
    const later = (inc.body.account_data?.events ?? []).find((e: any) => e.type === 'org.example.later');
    assert.deepEqual(later?.content, { v: 1 });
  });
});
