// Rate limits cover every authenticated write, not only /send and /createRoom: redactions and
// typing spend from per-user buckets, fan-outs (profile changes, to-device) cost what they fan out
// to (capped at the bucket), and failed logins are counted per address and per (account, address)
// so an attacker throttles only themselves while the real user still gets in from elsewhere.

import { assert } from '../helpers/assert.js';
import { expectError, makeUser, ok, PASSWORD, roomPath, V3, type Res, type User } from '../helpers/fixtures.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';

const generous = { per_second: 100, burst: 1000 };

/** Asserts a 429 M_LIMIT_EXCEEDED carrying a positive numeric retry_after_ms. */
function expectLimited(r: Res): void {
  expectError(r, 429, 'M_LIMIT_EXCEEDED');
  assert.equal(typeof r.body.retry_after_ms, 'number', JSON.stringify(r.body));
  assert.ok(r.body.retry_after_ms > 0, JSON.stringify(r.body));
}

/** Sends `send()` until it answers non-200 (at most `max` times); returns the successes and the first non-200. */
async function untilRefused(max: number, send: (i: number) => Promise<Res>): Promise<{ allowed: number; refused: Res | undefined }> {
  for (let i = 0; i < max; i++) {
    const r = await send(i);
    if (r.status !== 200) return { allowed: i, refused: r };
  }
  return { allowed: max, refused: undefined };
}

describe('hardening: rate limits on writes and fan-outs', function () {
  let srv: TestServer;

  before(async () => {
    srv = await startTestServer({
      limits: {
        rate_limits: {
          enabled: true,
          login: generous,
          login_failures_per_address: generous,
          login_failures_per_account_address: generous,
          registration: generous,
          message: { per_second: 0.01, burst: 5 },
          write: { per_second: 0.01, burst: 5 },
          to_device: { per_second: 0.01, burst: 10 },
        },
      },
    });
  });
  after(() => srv.stop());

  /** A room created straight through the room service, so the user's buckets stay full. */
  const serviceRoom = async (who: User): Promise<string> =>
    (await srv.hearth.services.rooms.createRoom({ userId: who.userId, deviceId: who.deviceId }, { preset: 'private_chat' } as never)).roomId;

  it('limits PUT /rooms/{id}/redact with M_LIMIT_EXCEEDED and retry_after_ms', async () => {
    const alice = await makeUser(srv, 'redacter');
    const roomId = await serviceRoom(alice);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await srv.hearth.services.rooms.send({ userId: alice.userId, deviceId: alice.deviceId }, roomId, {
        type: 'm.room.message',
        content: { msgtype: 'm.text', body: `m${i}` },
      });
      ids.push(res.eventId);
    }
    const { allowed, refused } = await untilRefused(10, (i) => alice.put(roomPath(roomId, `redact/${enc(ids[i]!)}/r${i}`), {}));
    assert.equal(allowed, 5, `redactions allowed before the limit: ${allowed}`);
    assert.ok(refused, 'no redaction was refused');
    expectLimited(refused);
  });

  it('charges a profile change one message point per joined room, capped at the bucket', async () => {
    const bob = await makeUser(srv, 'profiler', 'Original');
    const rooms: string[] = [];
    for (let i = 0; i < 6; i++) rooms.push(await serviceRoom(bob));
    assert.equal(await srv.hearth.services.rooms.joinedRoomCount(bob.userId), 6);

    await ok(bob.put(`${V3}/profile/${enc(bob.userId)}/displayname`, { displayname: 'First Change' }), 'first displayname');
    expectLimited(await bob.put(`${V3}/profile/${enc(bob.userId)}/displayname`, { displayname: 'Second Change' }));
    // Plain messages are refused too: the profile change used the whole message bucket.
    expectLimited(await bob.put(roomPath(rooms[0]!, 'send/m.room.message/after'), { msgtype: 'm.text', body: 'x' }));

    const profile = await ok(bob.get(`${V3}/profile/${enc(bob.userId)}/displayname`), 'get displayname');
    assert.equal(profile.displayname, 'First Change');

    const messages = await ok(bob.get(roomPath(rooms[0]!, 'messages?dir=b&limit=100')), 'messages');
    const names = messages.chunk
      .filter((e: any) => e.type === 'm.room.member' && e.state_key === bob.userId)
      .map((e: any) => e.content.displayname);
    assert.equal(names.filter((n: unknown) => n === 'First Change').length, 1, JSON.stringify(names));
    assert.equal(names.filter((n: unknown) => n === 'Second Change').length, 0, JSON.stringify(names));
    // The join, then exactly one profile change.
    assert.equal(names.length, 2, JSON.stringify(names));
  });

  it('charges /sendToDevice per recipient, capped at the bucket', async () => {
    const carol = await makeUser(srv, 'todevice');
    const target = await makeUser(srv, 'todevice-target');
    const byDevice: Record<string, unknown> = {};
    for (let i = 0; i < 1000; i++) byDevice[`D${i}`] = { hello: i };
    const messages = { [target.userId]: byDevice };

    await ok(carol.put(`${V3}/sendToDevice/m.test/t1`, { messages }), 'first to-device (1000 recipients)');
    expectLimited(await carol.put(`${V3}/sendToDevice/m.test/t2`, { messages }));
    // Even a single recipient is now refused: the first request emptied the bucket.
    expectLimited(await carol.put(`${V3}/sendToDevice/m.test/t3`, { messages: { [target.userId]: { D0: { hello: 'again' } } } }));
  });

  it('charges each createRoom invite (local or 3PID) like POST /invite, refusing before the room exists', async () => {
    const guests: User[] = [];
    for (let i = 0; i < 6; i++) guests.push(await makeUser(srv, `invitee-${i}`));
    const joined = async (who: User) => (await ok(who.get(`${V3}/joined_rooms`), 'joined_rooms')).joined_rooms as string[];
    const threepid = (i: number) => ({ id_server: 'id.invalid', id_access_token: 't', medium: 'email', address: `x${i}@example.org` });

    // One point spent elsewhere: 1 for the room and 4 for the invites no longer fit the 4 left.
    const frank = await makeUser(srv, 'inviter');
    const frankRoom = await serviceRoom(frank);
    await ok(frank.put(roomPath(frankRoom, 'send/m.room.message/first'), { msgtype: 'm.text', body: 'x' }), 'first message');
    expectLimited(await frank.post(`${V3}/createRoom`, { invite_3pid: [0, 1, 2, 3].map(threepid) }));
    assert.deepEqual(await joined(frank), [frankRoom]);
    const heidi = await makeUser(srv, 'inviter3');
    const heidiRoom = await serviceRoom(heidi);
    await ok(heidi.put(roomPath(heidiRoom, 'send/m.room.message/first'), { msgtype: 'm.text', body: 'x' }), 'first message');
    expectLimited(await heidi.post(`${V3}/createRoom`, { invite: guests.slice(0, 4).map((g) => g.userId) }));
    assert.deepEqual(await joined(heidi), [heidiRoom]);
    for (const g of guests) assert.deepEqual((await ok(g.get(`${V3}/sync?timeout=0`), 'sync')).rooms?.invite ?? {}, {});

    // 1 + 2 invites leaves 2 of the 5 points: two messages, then a refusal.
    const grace = await makeUser(srv, 'inviter2');
    const made = await ok(grace.post(`${V3}/createRoom`, { invite: guests.slice(0, 2).map((g) => g.userId) }), 'createRoom with 2 invites');
    assert.ok(made.room_id in (await ok(guests[0]!.get(`${V3}/sync?timeout=0`), 'sync')).rooms.invite);
    await ok(grace.put(roomPath(made.room_id, 'send/m.room.message/one'), { msgtype: 'm.text', body: 'x' }), 'fourth point');
    await ok(grace.put(roomPath(made.room_id, 'send/m.room.message/two'), { msgtype: 'm.text', body: 'y' }), 'fifth point');
    expectLimited(await grace.put(roomPath(made.room_id, 'send/m.room.message/three'), { msgtype: 'm.text', body: 'z' }));

    // More invites than the bucket holds: from a full bucket it costs the whole bucket, no more.
    const ivan = await makeUser(srv, 'inviter4');
    const big = await ok(ivan.post(`${V3}/createRoom`, { invite: guests.map((g) => g.userId) }), 'createRoom with 6 invites');
    assert.ok(big.room_id in (await ok(guests[5]!.get(`${V3}/sync?timeout=0`), 'sync')).rooms.invite);
    expectLimited(await ivan.put(roomPath(big.room_id, 'send/m.room.message/after'), { msgtype: 'm.text', body: 'x' }));
  });

  it('limits PUT /rooms/{id}/typing after the write burst, while GETs still work', async () => {
    const dave = await makeUser(srv, 'typist');
    const roomId = await serviceRoom(dave);
    const typing = (i: number) => dave.put(roomPath(roomId, `typing/${enc(dave.userId)}`), { typing: i % 2 === 0, timeout: 30000 });
    const { allowed, refused } = await untilRefused(10, typing);
    assert.equal(allowed, 5, `typing notices allowed before the limit: ${allowed}`);
    assert.ok(refused, 'no typing notice was refused');
    expectLimited(refused);

    // Reads are not charged: whoami and /messages still answer while writes are limited.
    const me = await ok(dave.get(`${V3}/account/whoami`), 'whoami');
    assert.equal(me.user_id, dave.userId);
    await ok(dave.get(roomPath(roomId, 'messages?dir=b&limit=5')), 'messages');
    // And the limit is per user: another user's writes still go through.
    const erin = await makeUser(srv, 'other-typist');
    const erinsRoom = await serviceRoom(erin);
    await ok(erin.put(roomPath(erinsRoom, `typing/${enc(erin.userId)}`), { typing: true, timeout: 30000 }), 'other user typing');
  });
});

describe('hardening: shared-secret registration nonces are rate limited', function () {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer({
      registration: { shared_secret: 's'.repeat(32) },
      limits: {
        rate_limits: {
          enabled: true,
          login: generous,
          login_failures_per_address: generous,
          login_failures_per_account_address: generous,
          registration: generous,
          message: generous,
          write: { per_second: 0.01, burst: 5 },
          to_device: generous,
        },
      },
    });
  });
  after(() => srv.stop());

  it('GET /_synapse/admin/v1/register stores a nonce per call: an anonymous loop is refused past the write burst', async () => {
    const api = new Api(srv.url);
    const { allowed, refused } = await untilRefused(10, () => api.get('/_synapse/admin/v1/register'));
    assert.equal(allowed, 5, `nonces handed out before the limit: ${allowed}`);
    assert.ok(refused, 'no nonce request was refused');
    expectLimited(refused);
  });
});

describe('hardening: login brute force is limited per address, not per account', function () {
  let srv: TestServer;
  const anon = () => new Api(srv.url);

  const login = (user: string, password: string, ip: string): Promise<Res> =>
    anon().req('POST', `${V3}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password }, { 'x-forwarded-for': ip });

  before(async () => {
    srv = await startTestServer({
      listeners: { client: { host: '127.0.0.1', port: 0, x_forwarded: true } },
      limits: {
        rate_limits: {
          enabled: true,
          login: generous,
          login_failures_per_address: { per_second: 0.01, burst: 20 },
          login_failures_per_account_address: { per_second: 0.01, burst: 5 },
          registration: generous,
          message: generous,
          write: generous,
          to_device: generous,
        },
      },
    });
  });
  after(() => srv.stop());

  it("an attacker's wrong passwords lock out their address, not the real user", async () => {
    const victim = await anon().register('victim');
    const attacker = '203.0.113.66';
    const statuses: number[] = [];
    let lastLimited: Res | undefined;
    for (let i = 0; i < 30; i++) {
      const r = await login('victim', `wrong ${i}`, attacker);
      statuses.push(r.status);
      if (r.status === 429) lastLimited = r;
      else expectError(r, 403, 'M_FORBIDDEN');
    }
    assert.deepEqual(statuses.slice(0, 5), [403, 403, 403, 403, 403], JSON.stringify(statuses));
    assert.ok(statuses.slice(5).every((s) => s === 429), JSON.stringify(statuses));
    assert.ok(lastLimited);
    expectLimited(lastLimited);

    // The right password from the attacker's address is refused too...
    expectLimited(await login('victim', PASSWORD, attacker));
    // ...but the real user, from their own address, gets in.
    const real = await login('victim', PASSWORD, '203.0.113.77');
    assert.equal(real.status, 200, JSON.stringify(real.body));
    assert.equal(typeof real.body.access_token, 'string');
    assert.equal(real.body.user_id, victim.userId);
    const me = await ok(new Api(srv.url, real.body.access_token).get(`${V3}/account/whoami`), 'whoami');
    assert.equal(me.user_id, victim.userId);
  });

  it('spraying wrong passwords over many accounts from one address hits the per-address limit', async () => {
    const sprayer = '203.0.113.88';
    const statuses: number[] = [];
    for (let i = 0; i < 25; i++) {
      await makeUser(srv, `spray${i}`);
      const r = await login(`spray${i}`, 'guess', sprayer);
      statuses.push(r.status);
      if (r.status === 429) expectLimited(r);
      else expectError(r, 403, 'M_FORBIDDEN');
    }
    assert.deepEqual(statuses.slice(0, 20), new Array(20).fill(403), JSON.stringify(statuses));
    assert.deepEqual(statuses.slice(20), new Array(5).fill(429), JSON.stringify(statuses));

    // A user with a real password is refused from the spraying address, but not from a fresh one.
    await anon().register('sprayed');
    expectLimited(await login('sprayed', PASSWORD, sprayer));
    const fresh = await login('sprayed', PASSWORD, '203.0.113.99');
    assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
    assert.equal(typeof fresh.body.access_token, 'string');
  });
});
