// GET /voip/turnServer: {} without TURN servers (as Synapse), time-limited TURN REST API
// credentials with a shared secret (checked against a vector computed independently with
// Python's hmac), static credentials otherwise, and start-up errors for incomplete turn config.

import { strict as assert } from 'node:assert';
import { createHmac } from 'node:crypto';
import { validateConfig, type HearthConfigInput } from '../../src/config/load.js';
import { turnCredentials, type TurnConfig } from '../../src/voip/turn.js';
import { V3 } from '../helpers/fixtures.js';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';

const URIS = ['turns:turn.example.org:5349?transport=tcp', 'turn:turn.example.org:3478?transport=udp'];

describe('TURN credentials (unit)', () => {
  const base: TurnConfig = { uris: URIS, shared_secret: 'north-wind-secret', username: null, password: null, user_lifetime_ms: 86400000, allow_guests: true };

  it('follows the TURN REST API scheme Synapse and coturn use', () => {
    // python3: base64.b64encode(hmac.new(b'north-wind-secret', b'1700086400:@alice:localhost', hashlib.sha1).digest())
    assert.deepEqual(turnCredentials(base, '@alice:localhost', 1_700_000_000_500), {
      username: '1700086400:@alice:localhost',
      password: '7hpEp+KZQ9tFj95XxXJkOEcypQ4=',
      uris: URIS,
      ttl: 86400,
    });
  });

  it('uses static credentials without a shared secret, and offers nothing without URIs or credentials', () => {
    const fixed = { ...base, shared_secret: null, username: 'turnuser', password: 'turnpass', user_lifetime_ms: 3_600_500 };
    assert.deepEqual(turnCredentials(fixed, '@a:x', 0), { username: 'turnuser', password: 'turnpass', uris: URIS, ttl: 3600 });
    assert.equal(turnCredentials({ ...base, uris: [] }, '@a:x', 0), null);
    assert.equal(turnCredentials({ ...base, shared_secret: null }, '@a:x', 0), null);
  });

  it('rejects incomplete or malformed turn config at start-up, naming the key', () => {
    assert.throws(() => validateConfig({ turn: { uris: URIS } }), /"turn\.shared_secret"/);
    assert.throws(() => validateConfig({ turn: { uris: URIS, username: 'u' } }), /"turn\.password"/);
    assert.throws(() => validateConfig({ turn: { uris: ['https://turn.example.org'], shared_secret: 's' } }), /"turn\.uris\.0"/);
    assert.throws(() => validateConfig({ turn: { user_lifetime_ms: 10 } }), /"turn\.user_lifetime_ms"/);
    assert.deepEqual(validateConfig({}).turn, { uris: [], shared_secret: null, username: null, password: null, user_lifetime_ms: 86400000, allow_guests: true });
  });
});

describe('GET /voip/turnServer', function () {
  this.timeout(20000);
  let srv: TestServer | undefined;
  afterEach(async () => {
    await srv?.stop();
    srv = undefined;
  });

  async function turnFor(config: HearthConfigInput): Promise<{ status: number; body: any; userId: string }> {
    srv = await startTestServer(config);
    const alice = await new Api(srv.url).register('alice');
    const res = await alice.get(`${V3}/voip/turnServer`);
    return { ...res, userId: alice.userId };
  }

  it('answers {} without TURN servers, and needs an access token', async () => {
    const res = await turnFor({});
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {});
    assert.equal((await new Api(srv!.url).get(`${V3}/voip/turnServer`)).status, 401);
  });

  it('hands out time-limited credentials derived from the shared secret', async () => {
    const before = Math.floor(Date.now() / 1000);
    const res = await turnFor({ turn: { uris: URIS, shared_secret: 'north-wind-secret', user_lifetime_ms: 600000 } });
    const after = Math.ceil(Date.now() / 1000);
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.body).sort(), ['password', 'ttl', 'uris', 'username']);
    assert.deepEqual(res.body.uris, URIS);
    assert.equal(res.body.ttl, 600);
    const m = /^(\d+):(.+)$/.exec(res.body.username);
    assert.ok(m, res.body.username);
    assert.equal(m[2], res.userId);
    const expiry = Number(m[1]);
    assert.ok(expiry >= before + 600 && expiry <= after + 600, `expiry ${expiry}`);
    assert.equal(res.body.password, createHmac('sha1', 'north-wind-secret').update(res.body.username).digest('base64'));
  });

  it('hands out static credentials when configured with a username and password', async () => {
    const res = await turnFor({ turn: { uris: URIS, username: 'turnuser', password: 'turnpass' } });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { username: 'turnuser', password: 'turnpass', uris: URIS, ttl: 86400 });
  });
});
