// The pure pieces of single sign-on: the CAS username -> localpart mapping, the CAS answer reader,
// HTML escaping, redirect URL handling, and login tokens (single use and expiry, locally and on
// a real Redis shared by two "processes").

import assert from 'node:assert/strict';
import pino from 'pino';
import { mapUsernameToLocalpart } from '../../src/auth/sso/localpart.js';
import { CasXmlError, parseCasResponse } from '../../src/auth/sso/cas-xml.js';
import { escapeHtml } from '../../src/auth/sso/html.js';
import { checkRedirectUrl, strictEncode, withLoginToken } from '../../src/auth/sso/cas.js';
import { LOGIN_TOKEN_TTL_MS, LoginTokens } from '../../src/auth/sso/login-tokens.js';
import { LocalExpiringMap } from '../../src/cluster/shared-state.js';
import { openRedisSharedState, type RedisSharedState } from '../../src/cluster/redis.js';
import { MatrixError } from '../../src/errors.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';

describe('SSO: CAS username to localpart', () => {
  const cases: Array<[string, string]> = [
    ['cas_user!', 'cas_user=21'],
    ['Alice', 'alice'],
    ['bob.smith-1/x', 'bob.smith-1/x'],
    ['_bridge', '=5fbridge'],
    ['a_b', 'a_b'],
    ['a=b', 'a=3db'],
    ['a b', 'a=20b'],
    ['é', '=c3=a9'],
    ['@x:y', '=40x=3ay'],
  ];
  for (const [name, want] of cases) {
    it(`maps ${JSON.stringify(name)} to ${JSON.stringify(want)}`, () => {
      assert.equal(mapUsernameToLocalpart(name), want);
    });
  }
  it('is injective on names differing only in escaped characters', () => {
    assert.notEqual(mapUsernameToLocalpart('a=21'), mapUsernameToLocalpart('a!'));
  });
});

describe('SSO: CAS answers', () => {
  it('reads a success with attributes, repeated ones in order', () => {
    const r = parseCasResponse(`<?xml version="1.0"?>
<cas:serviceResponse xmlns:cas='http://www.yale.edu/tp/cas'>
  <cas:authenticationSuccess>
    <cas:user> jo &amp; co </cas:user>
    <cas:attributes><cas:displayName>Jo &lt;3</cas:displayName><cas:group>a</cas:group><!-- c --><cas:group><![CDATA[b<]]></cas:group></cas:attributes>
  </cas:authenticationSuccess>
</cas:serviceResponse>`);
    assert.ok(r.ok);
    assert.equal(r.user, 'jo & co');
    assert.deepEqual(r.attributes.get('displayName'), ['Jo <3']);
    assert.deepEqual(r.attributes.get('group'), ['a', 'b<']);
  });
  it('accepts elements without a namespace prefix', () => {
    const r = parseCasResponse('<serviceResponse><authenticationSuccess><user>u</user></authenticationSuccess></serviceResponse>');
    assert.ok(r.ok && r.user === 'u' && r.attributes.size === 0);
  });
  it('reads a failure with its code', () => {
    const r = parseCasResponse(`<cas:serviceResponse xmlns:cas="x"><cas:authenticationFailure code="INVALID_TICKET">Ticket ST-1 not recognised</cas:authenticationFailure></cas:serviceResponse>`);
    assert.deepEqual(r, { ok: false, code: 'INVALID_TICKET', message: 'Ticket ST-1 not recognised' });
  });
  for (const [what, xml] of [
    ['a DOCTYPE', '<!DOCTYPE x [<!ENTITY a "b">]><serviceResponse/>'],
    ['a mismatched end tag', '<serviceResponse><authenticationSuccess><user>u</usr></authenticationSuccess></serviceResponse>'],
    ['a success without a user', '<serviceResponse><authenticationSuccess></authenticationSuccess></serviceResponse>'],
    ['another root', '<html><body>login</body></html>'],
    ['trailing content', '<serviceResponse><authenticationFailure code="x"/></serviceResponse><x/>'],
    ['an unknown entity', '<serviceResponse><authenticationSuccess><user>&bogus;</user></authenticationSuccess></serviceResponse>'],
    ['empty input', ''],
  ] as const) {
    it(`refuses ${what}`, () => {
      assert.throws(() => parseCasResponse(xml), CasXmlError);
    });
  }
});

describe('SSO: HTML and redirect URLs', () => {
  it('escapes every character that could leave text or a quoted attribute', () => {
    assert.equal(escapeHtml(`<a href="x" onclick='y'>&\``), '&#60;a href=&#34;x&#34; onclick=&#39;y&#39;&#62;&#38;&#96;');
  });
  it('encodes like Perl uri_escape / Python quote (only unreserved characters stay)', () => {
    assert.equal(strictEncode("https://client?p=http%3A%2F%2Fserver!*'()~"), 'https%3A%2F%2Fclient%3Fp%3Dhttp%253A%252F%252Fserver%21%2A%27%28%29~');
  });
  it('adds the login token to the query, before any fragment', () => {
    assert.equal(withLoginToken('https://c/x', 't'), 'https://c/x?loginToken=t');
    assert.equal(withLoginToken('https://c/?p=1', 't'), 'https://c/?p=1&loginToken=t');
    assert.equal(withLoginToken('https://c/?', 't'), 'https://c/?loginToken=t');
    assert.equal(withLoginToken('https://c/#/room?x', 't'), 'https://c/?loginToken=t#/room?x');
    assert.equal(withLoginToken('element://vector/webapp/', 't'), 'element://vector/webapp/?loginToken=t');
  });
  it('accepts http(s) and app schemes, refuses script-capable schemes and junk', () => {
    assert.equal(checkRedirectUrl('https://app.example/'), 'https://app.example/');
    assert.equal(checkRedirectUrl('im.fluffychat://login'), 'im.fluffychat://login');
    for (const bad of ['javascript:alert(1)', 'JavaScript:alert(1)', 'data:text/html,x', 'vbscript:x', 'not a url', '/relative', 'https://a/\nb']) {
      assert.throws(() => checkRedirectUrl(bad), (e: unknown) => e instanceof MatrixError && e.errcode === 'M_INVALID_PARAM', bad);
    }
    assert.throws(() => checkRedirectUrl(undefined), (e: unknown) => e instanceof MatrixError && e.errcode === 'M_MISSING_PARAM');
  });
});

describe('SSO: login tokens', () => {
  it('are spent by the first redemption', async () => {
    const tokens = new LoginTokens(new LocalExpiringMap());
    const t = await tokens.issue('@a:hs');
    assert.match(t, /^[A-Za-z0-9_-]+$/);
    assert.equal(await tokens.redeem(t), '@a:hs');
    assert.equal(await tokens.redeem(t), null);
  });
  it('expire after two minutes', async () => {
    let now = 1_000_000;
    const tokens = new LoginTokens(new LocalExpiringMap(() => now), () => now);
    const a = await tokens.issue('@a:hs');
    const b = await tokens.issue('@b:hs');
    now += LOGIN_TOKEN_TTL_MS - 1;
    assert.equal(await tokens.redeem(a), '@a:hs');
    now += 2;
    assert.equal(await tokens.redeem(b), null);
  });
  it('refuse unknown and absurd tokens', async () => {
    const tokens = new LoginTokens(new LocalExpiringMap());
    assert.equal(await tokens.redeem('hlt_nope'), null);
    assert.equal(await tokens.redeem(''), null);
    assert.equal(await tokens.redeem('x'.repeat(10_000)), null);
  });

  describe('on Redis, across processes', () => {
    let one: RedisSharedState;
    let two: RedisSharedState;
    before(async function () {
      this.timeout(300_000);
      const url = startRedis();
      const prefix = freshPrefix('login-tokens');
      const logger = pino({ level: 'silent' });
      one = await openRedisSharedState({ url, keyPrefix: prefix, logger });
      two = await openRedisSharedState({ url, keyPrefix: prefix, logger });
    });
    after(async () => {
      await one?.close();
      await two?.close();
    });
    it('a token issued by one is redeemed by the other, once, even when both try at once', async () => {
      const issuer = new LoginTokens(one.map('login-token'));
      const a = new LoginTokens(one.map('login-token'));
      const b = new LoginTokens(two.map('login-token'));
      const t = await issuer.issue('@c:hs');
      const got = await Promise.all([a.redeem(t), b.redeem(t), b.redeem(t)]);
      assert.deepEqual(got.filter((x) => x !== null), ['@c:hs']);
    });
  });
});
