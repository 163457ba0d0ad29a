// Account erasure over real HTTP (Client-Server API, POST /account/deactivate, `erase`): "any users
// which join the room after the erasure request are served redacted copies of the events sent by
// this account. Users which had visibility on those events prior to the erasure are still able to
// see unredacted copies."

import { assert } from '../helpers/assert.js';
import { createRoom, expectError, ok, PASSWORD, passwordAuth, roomPath as room, sendEvent, V3, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

describe('account erasure (deactivate with erase: true)', function () {
  this.timeout(30000);
  let srv: TestServer;
  let api: Api;
  let n = 0;

  before(async () => {
    srv = await startTestServer();
    api = new Api(srv.url);
  });
  after(async () => srv.stop());

  const user = (name: string) => api.register(`${name}${++n}`, PASSWORD);
  async function deactivate(u: User, extra: Record<string, unknown>): Promise<void> {
    const first = await u.post(`${V3}/account/deactivate`, extra);
    assert.equal(first.status, 401, JSON.stringify(first.body));
    const localpart = u.userId.slice(1, u.userId.indexOf(':'));
    await ok(u.post(`${V3}/account/deactivate`, { ...extra, auth: passwordAuth(localpart, PASSWORD, first.body.session) }), 'deactivate');
  }
  const say = (u: User, roomId: string, body: string) => sendEvent(u, roomId, 'm.room.message', `t${++n}`, { msgtype: 'm.text', body }, body);
  const event = (u: User, roomId: string, id: string) => ok(u.get(room(roomId, `event/${enc(id)}`)), 'event');
  async function messages(u: User, roomId: string): Promise<any[]> {
    return (await ok(u.get(room(roomId, 'messages?dir=b&limit=50')), 'messages')).chunk;
  }
  async function timeline(u: User, roomId: string): Promise<any[]> {
    const filter = enc(JSON.stringify({ room: { timeline: { limit: 50 } } }));
    return (await ok(u.get(`${V3}/sync?timeout=0&filter=${filter}`), 'sync')).rooms.join[roomId].timeline.events;
  }
  const byId = (events: any[], id: string) => events.find((e) => e.event_id === id);

  it('members from before the erasure see the events whole; users who join after it see redacted copies', async () => {
    const [erin, member, early, late] = await Promise.all([user('erin'), user('member'), user('early'), user('late')]);
    await ok(erin.put(`${V3}/profile/${enc(erin.userId)}/displayname`, { displayname: 'Erin Erased' }), 'displayname');
    const roomId = await createRoom(erin, { preset: 'public_chat' });
    await ok(member.post(room(roomId, 'join'), {}), 'member joins');
    const secret = await say(erin, roomId, 'secret words');
    // Joins after the message but before the erasure: shared history gave them visibility on it.
    await ok(early.post(room(roomId, 'join'), {}), 'early joins');
    await ok(erin.put(`${V3}/user/${enc(erin.userId)}/account_data/m.example`, { private: 'notes' }), 'account data');

    await deactivate(erin, { erase: true });
    await ok(late.post(room(roomId, 'join'), {}), 'late joins');

    for (const [who, label] of [[member, 'member'], [early, 'early joiner']] as const) {
      assert.equal((await event(who, roomId, secret)).content.body, 'secret words', `${label}: /event`);
      assert.equal(byId(await messages(who, roomId), secret).content.body, 'secret words', `${label}: /messages`);
      assert.equal(byId(await timeline(who, roomId), secret).content.body, 'secret words', `${label}: /sync`);
    }

    const redacted = await event(late, roomId, secret);
    assert.deepEqual(redacted.content, {}, '/event: the redacted copy');
    assert.equal(redacted.type, 'm.room.message');
    assert.equal(redacted.sender, erin.userId);
    assert.deepEqual(byId(await messages(late, roomId), secret).content, {}, '/messages');
    assert.deepEqual(byId(await timeline(late, roomId), secret).content, {}, '/sync');
    const ctx = await ok(late.get(room(roomId, `context/${enc(secret)}`)), 'context');
    assert.deepEqual(ctx.event.content, {}, '/context');
    // Erin's own join: redaction keeps only the membership.
    const erinJoin = (await messages(late, roomId)).find((e) => e.type === 'm.room.member' && e.state_key === erin.userId && e.content.membership === 'join');
    assert.deepEqual(erinJoin.content, { membership: 'join' }, 'the join event loses its displayname');
    // The server's copy is untouched: nothing was redacted for everyone.
    assert.equal(redacted.unsigned?.redacted_because, undefined, 'no redaction event');

    // Non-event data: the profile is cleared, account data emptied.
    const profile = await api.get(`${V3}/profile/${enc(erin.userId)}`);
    assert.ok(profile.status === 404 || profile.body.displayname === undefined, JSON.stringify(profile.body));
    const data = await srv.hearth.store.userData.getAccountData(erin.userId, '', 'm.example');
    assert.deepEqual(data, {});
  });

  it('a world-readable room: a non-member reading it after the erasure gets the redacted copy', async () => {
    const [erin, member, outsider] = await Promise.all([user('erin'), user('member'), user('outsider')]);
    const roomId = await createRoom(erin, {
      preset: 'public_chat',
      initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'world_readable' } }],
    });
    await ok(member.post(room(roomId, 'join'), {}), 'member joins');
    const said = await say(erin, roomId, 'for all to read');
    assert.equal((await event(outsider, roomId, said)).content.body, 'for all to read', 'readable before the erasure');
    await deactivate(erin, { erase: true });
    assert.deepEqual((await event(outsider, roomId, said)).content, {}, 'a non-member never joined: redacted');
    assert.equal((await event(member, roomId, said)).content.body, 'for all to read', 'the member keeps the whole event');
  });

  it('without erase (or erase: false) nothing is redacted; a non-boolean erase is refused', async () => {
    const [dan, late] = await Promise.all([user('dan'), user('late')]);
    const roomId = await createRoom(dan, { preset: 'public_chat' });
    const said = await say(dan, roomId, 'kept');
    expectError(await dan.post(`${V3}/account/deactivate`, { erase: 'yes' }), 400, 'M_BAD_JSON');
    await deactivate(dan, { erase: false });
    await ok(late.post(room(roomId, 'join'), {}), 'late joins');
    assert.equal((await event(late, roomId, said)).content.body, 'kept');
  });
});
