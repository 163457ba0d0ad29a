// Issue 9, items 3 and 4: a redaction sent through /send gets the checks /redact gets, and a
// user-interactive-auth session is good only for the request it began with.

import { assert } from '../helpers/assert.js';
import { expectError, loginClient, ok, passwordAuth, PASSWORD, roomPath, roomWith, sendEvent, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('hardening: redactions through /send', function () {
  let srv: TestServer;
  let owner: User;
  let member: User;
  let roomId: string;
  let otherRoom: string;
  let ownersMessage: string;

  before(async () => {
    srv = await startTestServer();
    const api = new Api(srv.url);
    owner = await api.register('owner');
    member = await api.register('member');
    roomId = await roomWith(owner, [member]);
    otherRoom = await roomWith(owner, [member]);
    ownersMessage = await sendEvent(owner, roomId, 'm.room.message', 't1', { msgtype: 'm.text', body: 'mine' }, 'send');
  });
  after(() => srv.stop());

  const timelineIds = async (who: User): Promise<string[]> => {
    const r = await ok(who.get(roomPath(roomId, 'messages?dir=b&limit=50')), 'messages');
    return r.chunk.map((e: { event_id: string }) => e.event_id);
  };

  it('refuses a redaction of another user\'s event without the redact power, as /redact does', async () => {
    expectError(await member.put(roomPath(roomId, `redact/${enc(ownersMessage)}/r1`), {}), 403, 'M_FORBIDDEN');
    const before = await timelineIds(owner);
    const r = await member.put(roomPath(roomId, 'send/m.room.redaction/r2'), { redacts: ownersMessage });
    expectError(r, 403, 'M_FORBIDDEN');
    // Nothing was stored or sent to members, and the target is intact.
    assert.deepEqual(await timelineIds(owner), before);
    const ev = await ok(owner.get(roomPath(roomId, `event/${enc(ownersMessage)}`)), 'event');
    assert.equal(ev.content.body, 'mine');
  });

  it('lets a user redact their own event through /send, and the target is redacted', async () => {
    const own = await sendEvent(member, roomId, 'm.room.message', 't2', { msgtype: 'm.text', body: 'oops' }, 'send');
    const id = await sendEvent(member, roomId, 'm.room.redaction', 'r3', { redacts: own }, 'redact via send');
    const ev = await ok(owner.get(roomPath(roomId, `event/${enc(own)}`)), 'event');
    assert.deepEqual(ev.content, {});
    assert.equal(ev.unsigned?.redacted_because?.event_id, id);
  });

  it('lets the room owner redact others through /send', async () => {
    const theirs = await sendEvent(member, roomId, 'm.room.message', 't3', { msgtype: 'm.text', body: 'spam' }, 'send');
    await sendEvent(owner, roomId, 'm.room.redaction', 'r4', { redacts: theirs }, 'moderator redact');
    const ev = await ok(owner.get(roomPath(roomId, `event/${enc(theirs)}`)), 'event');
    assert.deepEqual(ev.content, {});
  });

  it('answers 400 for a target in another room, or one that does not exist, on both paths', async () => {
    const elsewhere = await sendEvent(member, otherRoom, 'm.room.message', 't4', { msgtype: 'm.text', body: 'there' }, 'send');
    expectError(await member.put(roomPath(roomId, 'send/m.room.redaction/r5'), { redacts: elsewhere }), 400, 'M_INVALID_PARAM');
    expectError(await member.put(roomPath(roomId, `redact/${enc(elsewhere)}/r6`), {}), 400, 'M_INVALID_PARAM');
    expectError(await member.put(roomPath(roomId, 'send/m.room.redaction/r7'), { redacts: '$doesnotexist' }), 400, 'M_INVALID_PARAM');
    expectError(await member.put(roomPath(roomId, `redact/${enc('$doesnotexist')}/r8`), {}), 400, 'M_INVALID_PARAM');
    const ev = await ok(member.get(`${V3}/rooms/${enc(otherRoom)}/event/${enc(elsewhere)}`), 'event');
    assert.equal(ev.content.body, 'there');
  });

  it('refuses a redaction with no usable target', async () => {
    expectError(await member.put(roomPath(roomId, 'send/m.room.redaction/r9'), {}), 400, 'M_BAD_JSON');
    expectError(await member.put(roomPath(roomId, 'send/m.room.redaction/r10'), { redacts: 42 }), 400, 'M_BAD_JSON');
  });
});

describe('hardening: user-interactive auth sessions are bound to their request', function () {
  let srv: TestServer;
  let api: Api;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
  });
  after(() => srv.stop());

  it('a session begun to delete device A cannot delete device B', async () => {
    const u = await api.register('uia1');
    const a = await loginClient(srv.url, 'uia1', PASSWORD);
    const b = await loginClient(srv.url, 'uia1', PASSWORD);
    const first = await u.req('DELETE', `${V3}/devices/${enc(a.deviceId)}`, {});
    assert.equal(first.status, 401, JSON.stringify(first.body));
    const session = first.body.session as string;
    const r = await u.req('DELETE', `${V3}/devices/${enc(b.deviceId)}`, { auth: passwordAuth(u.userId, PASSWORD, session) });
    expectError(r, 403, 'M_FORBIDDEN');
    assert.equal((await b.get(`${V3}/account/whoami`)).status, 200, 'device B survives');
    // The session still completes the request it was begun for.
    const done = await u.req('DELETE', `${V3}/devices/${enc(a.deviceId)}`, { auth: passwordAuth(u.userId, PASSWORD, session) });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal((await a.get(`${V3}/account/whoami`)).status, 401);
  });

  it('a session cannot switch to another body (delete_devices list) or another endpoint', async () => {
    const u = await api.register('uia2');
    const a = await loginClient(srv.url, 'uia2', PASSWORD);
    const b = await loginClient(srv.url, 'uia2', PASSWORD);
    const first = await u.post(`${V3}/delete_devices`, { devices: [a.deviceId] });
    assert.equal(first.status, 401);
    const session = first.body.session as string;
    expectError(await u.post(`${V3}/delete_devices`, { devices: [b.deviceId], auth: passwordAuth(u.userId, PASSWORD, session) }), 403, 'M_FORBIDDEN');
    expectError(await u.post(`${V3}/account/password`, { new_password: 'x', auth: passwordAuth(u.userId, PASSWORD, session) }), 403, 'M_FORBIDDEN');
    assert.equal((await b.get(`${V3}/account/whoami`)).status, 200);
    assert.equal((await a.get(`${V3}/account/whoami`)).status, 200);
  });

  it('a session of one user is not another user\'s', async () => {
    const u = await api.register('uia3');
    const v = await api.register('uia4');
    const first = await u.post(`${V3}/account/password`, { new_password: 'n1' });
    const r = await v.post(`${V3}/account/password`, { new_password: 'n1', auth: passwordAuth(v.userId, PASSWORD, first.body.session) });
    expectError(r, 403, 'M_FORBIDDEN');
  });

  it('authenticating as another user is 403, not 401', async () => {
    const u = await api.register('uia5');
    await api.register('uia6');
    const a = await loginClient(srv.url, 'uia5', PASSWORD);
    const first = await u.req('DELETE', `${V3}/devices/${enc(a.deviceId)}`, {});
    const r = await u.req('DELETE', `${V3}/devices/${enc(a.deviceId)}`, { auth: passwordAuth('@uia6:localhost', PASSWORD, first.body.session) });
    expectError(r, 403, 'M_FORBIDDEN');
    assert.equal((await a.get(`${V3}/account/whoami`)).status, 200);
  });
});
