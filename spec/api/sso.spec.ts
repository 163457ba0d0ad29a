// Single sign-on through CAS and the reCAPTCHA stage, over HTTP against a real server, with a
// tiny in-process CAS server (/cas/login, /cas/proxyValidate) and a fake siteverify API.

import assert from 'node:assert/strict';
import { Api, startTestServer, type TestServer } from '../helpers/server.js';
import { FakeIdp, raw, unescapeHtml } from '../helpers/fake-idp.js';

const REDIRECT = 'https://client.example/?p=http%3A%2F%2Fserver';

describe('SSO via CAS and reCAPTCHA over HTTP', function () {
  this.timeout(30_000);
  const idp = new FakeIdp();
  let srv: TestServer;
  let api: Api;
  let n = 0;

  before(async () => {
    await idp.start();
    srv = await startTestServer({
      cas: { enabled: true, server_url: `${idp.url}/cas`, displayname_attribute: 'displayName', required_attributes: { staff: null } },
      recaptcha: { enabled: true, required_for_registration: false, public_key: 'pub"<key>', private_key: 'private-key', siteverify_api: `${idp.url}/siteverify` },
    });
    api = new Api(srv.url);
  });
  after(async () => {
    await srv?.stop();
    await idp.stop();
  });

  /** The browser part: redirect to CAS, come back with a ticket; returns the ticket page. */
  async function casLogin(user: string, attrs: Record<string, string> = { staff: 'yes' }, redirectUrl = REDIRECT) {
    const start = await raw(`${srv.url}/_matrix/client/v3/login/sso/redirect?redirectUrl=${encodeURIComponent(redirectUrl)}`);
    assert.equal(start.status, 302);
    const cas = new URL(start.location!);
    assert.equal(`${cas.origin}${cas.pathname}`, `${idp.url}/cas/login`);
    const service = cas.searchParams.get('service')!;
    const ticket = `ST-${++n}`;
    idp.tickets.set(ticket, { user, attrs });
    const page = await raw(`${service}&ticket=${ticket}`);
    return { page, service, ticket };
  }

  function tokenFrom(html: string): string {
    const m = /href="([^"]*loginToken=[^"]*)"/.exec(html);
    assert.ok(m, `no login link in ${html}`);
    const link = new URL(unescapeHtml(m[1]!));
    return link.searchParams.get('loginToken')!;
  }

  it('lists m.login.sso (with the CAS provider), m.login.cas and m.login.token at /login', async () => {
    const res = await api.get('/_matrix/client/v3/login');
    const types = res.body.flows.map((f: { type: string }) => f.type);
    assert.deepEqual(types, ['m.login.password', 'm.login.cas', 'm.login.sso', 'm.login.token']);
    assert.deepEqual(res.body.flows[2].identity_providers, [{ id: 'cas', name: 'CAS' }]);
  });

  it('redirects to the CAS login page with the ticket endpoint as the service', async () => {
    for (const path of ['/_matrix/client/v3/login/sso/redirect', '/_matrix/client/v3/login/sso/redirect/cas', '/_matrix/client/r0/login/cas/redirect']) {
      const res = await raw(`${srv.url}${path}?redirectUrl=${encodeURIComponent(REDIRECT)}`);
      assert.equal(res.status, 302, path);
      const service = new URL(res.location!).searchParams.get('service');
      assert.equal(service, `${srv.url}/_matrix/client/r0/login/cas/ticket?redirectUrl=${encodeURIComponent(REDIRECT)}`);
    }
  });

  it('refuses a missing, script-capable or unknown-provider redirect', async () => {
    let res = await api.get('/_matrix/client/v3/login/sso/redirect');
    assert.equal(res.status, 400);
    assert.equal(res.body.errcode, 'M_MISSING_PARAM');
    res = await api.get(`/_matrix/client/v3/login/sso/redirect?redirectUrl=${encodeURIComponent('javascript:alert(1)')}`);
    assert.equal(res.status, 400);
    assert.equal(res.body.errcode, 'M_INVALID_PARAM');
    res = await api.get(`/_matrix/client/v3/login/sso/redirect/saml?redirectUrl=${encodeURIComponent(REDIRECT)}`);
    assert.equal(res.status, 404);
    assert.equal(res.body.errcode, 'M_NOT_FOUND');
    // The ticket endpoint checks the redirect too: its query comes straight from the browser.
    idp.tickets.set('ST-js', { user: 'js', attrs: { staff: 'yes' } });
    const page = await raw(`${srv.url}/_matrix/client/r0/login/cas/ticket?redirectUrl=${encodeURIComponent('javascript:alert(1)')}&ticket=ST-js`);
    assert.equal(page.status, 400);
    assert.equal(idp.seen.some((s) => s.query.get('ticket') === 'ST-js'), false, 'no validation for a refused redirect');
  });

  it('logs a new CAS user in: validates the ticket, creates the account, and the login token works once', async () => {
    const { page, service, ticket } = await casLogin('New.User!', { staff: 'yes', displayName: 'New &amp; Shiny' });
    assert.equal(page.status, 200);
    assert.match(page.type ?? '', /^text\/html/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    const v = idp.last('/cas/proxyValidate');
    assert.equal(v.query.get('ticket'), ticket);
    assert.equal(v.query.get('service'), service);
    const token = tokenFrom(page.text);
    const link = new URL(unescapeHtml(/href="([^"]*)"/.exec(page.text)![1]!));
    assert.equal(link.searchParams.get('p'), 'http://server', 'the client\'s own query is kept');

    const login = await api.post('/_matrix/client/v3/login', { type: 'm.login.token', token, device_id: 'SSODEV' });
    assert.equal(login.status, 200, JSON.stringify(login.body));
    assert.equal(login.body.user_id, '@new.user=21:localhost');
    assert.equal(login.body.device_id, 'SSODEV');
    const me = new Api(srv.url, login.body.access_token);
    assert.equal((await me.get('/_matrix/client/v3/account/whoami')).body.user_id, '@new.user=21:localhost');
    assert.equal((await me.get('/_matrix/client/v3/profile/@new.user=21:localhost/displayname')).body.displayname, 'New & Shiny');

    const again = await api.post('/_matrix/client/v3/login', { type: 'm.login.token', token });
    assert.equal(again.status, 403);
    assert.equal(again.body.errcode, 'M_FORBIDDEN');
    const bogus = await api.post('/_matrix/client/v3/login', { type: 'm.login.token', token: 'hlt_bogus' });
    assert.equal(bogus.status, 403);
    const missing = await api.post('/_matrix/client/v3/login', { type: 'm.login.token' });
    assert.equal(missing.status, 400);
  });

  it('logs an existing account in through CAS, and a second login finds the same account', async () => {
    const local = await new Api(srv.url).register('existing');
    const first = await casLogin('Existing');
    const r1 = await api.post('/_matrix/client/v3/login', { type: 'm.login.token', token: tokenFrom(first.page.text) });
    assert.equal(r1.body.user_id, local.userId);
    const second = await casLogin('existing');
    const r2 = await api.post('/_matrix/client/v3/login', { type: 'm.login.token', token: tokenFrom(second.page.text) });
    assert.equal(r2.body.user_id, local.userId);
  });

  it('refuses a ticket CAS rejects, and a user without the required attribute (no account made)', async () => {
    idp.tickets.set('ST-bad', 'fail');
    const service = `${srv.url}/_matrix/client/r0/login/cas/ticket?redirectUrl=${encodeURIComponent(REDIRECT)}`;
    const bad = await raw(`${service}&ticket=ST-bad`);
    assert.equal(bad.status, 401);
    assert.doesNotMatch(bad.text, /loginToken/);
    const { page } = await casLogin('outsider', {});
    assert.equal(page.status, 401);
    assert.match(page.text, /not authorised/);
    const avail = await api.get('/_matrix/client/v3/register/available?username=outsider');
    assert.equal(avail.body.available, true);
  });

  it('escapes user-influenced values on the pages', async () => {
    const evil = 'https://client.example/?q="><script>alert(1)</script>';
    // The fake embeds the user as XML text: this is the CAS user "<b>x".
    const { page } = await casLogin('&lt;b&gt;x', { staff: 'yes' }, evil);
    assert.equal(page.status, 200);
    assert.match(page.text, /@=3cb=3ex:localhost/);
    assert.doesNotMatch(page.text, /<script>alert/);
    assert.doesNotMatch(page.text, /"><script/);
    const link = unescapeHtml(/href="([^"]*)"/.exec(page.text)![1]!);
    assert.ok(link.startsWith(evil), link);
    const fallback = await raw(`${srv.url}/_matrix/client/v3/auth/m.login.recaptcha/fallback/web?session=${encodeURIComponent('"><img src=x>')}`);
    assert.equal(fallback.status, 200);
    assert.doesNotMatch(fallback.text, /<img src=x>/);
    assert.match(fallback.text, /data-sitekey="pub&#34;&#60;key&#62;"/);
  });

  describe('user-interactive auth with SSO', () => {
    async function ssoUser(name: string) {
      const local = await new Api(srv.url).register(name);
      const { page } = await casLogin(name);
      const login = await api.post('/_matrix/client/v3/login', { type: 'm.login.token', token: tokenFrom(page.text), device_id: 'DOOMED' });
      assert.equal(login.status, 200);
      return local;
    }

    async function ticketForSession(session: string, casUser: string) {
      const fb = await raw(`${srv.url}/_matrix/client/v3/auth/m.login.sso/fallback/web?session=${encodeURIComponent(session)}`);
      assert.equal(fb.status, 200);
      const cas = new URL(unescapeHtml(/href="([^"]*)"/.exec(fb.text)![1]!));
      const service = cas.searchParams.get('service')!;
      assert.equal(service, `${srv.url}/_matrix/client/r0/login/cas/ticket?session=${encodeURIComponent(session)}`);
      const ticket = `ST-${++n}`;
      idp.tickets.set(ticket, { user: casUser, attrs: { staff: 'yes' } });
      return raw(`${service}&ticket=${ticket}`);
    }

    it('offers m.login.sso and completes it through the fallback page and a CAS ticket', async () => {
      const user = await ssoUser('uia1');
      const first = await user.req('DELETE', '/_matrix/client/v3/devices/DOOMED', {});
      assert.equal(first.status, 401);
      assert.deepEqual(first.body.flows, [{ stages: ['m.login.password'] }, { stages: ['m.login.sso'] }]);
      const done = await ticketForSession(first.body.session, 'uia1');
      assert.equal(done.status, 200);
      assert.match(done.text, /authDone/);
      const del = await user.req('DELETE', '/_matrix/client/v3/devices/DOOMED', { auth: { session: first.body.session } });
      assert.equal(del.status, 200, JSON.stringify(del.body));
      assert.equal((await user.get('/_matrix/client/v3/devices/DOOMED')).status, 404);
    });

    it('refuses (403) a session completed by an SSO login as someone else', async () => {
      const user = await ssoUser('uia2');
      const first = await user.req('DELETE', '/_matrix/client/v3/devices/DOOMED', {});
      await ticketForSession(first.body.session, 'somebody-else');
      const del = await user.req('DELETE', '/_matrix/client/v3/devices/DOOMED', { auth: { session: first.body.session } });
      assert.equal(del.status, 403);
      assert.equal((await user.get('/_matrix/client/v3/devices/DOOMED')).status, 200);
    });

    it('answers an unknown session with an error page', async () => {
      const res = await ticketForSession('no-such-session', 'uia1');
      assert.equal(res.status, 400);
      assert.match(res.text, /unknown or has expired/);
    });
  });

  describe('reCAPTCHA', () => {
    it('can be completed at /register though not required, and is checked with the private key', async () => {
      const res = await api.post('/_matrix/client/v3/register', { username: 'cap1', password: 'pw-pw-pw-pw', auth: { type: 'm.login.recaptcha', response: 'good-captcha' } });
      assert.equal(res.status, 401);
      assert.deepEqual(res.body.completed, ['m.login.recaptcha']);
      assert.deepEqual(res.body.params, {}, 'no parameters for a stage in no flow');
      const form = new URLSearchParams(idp.last('/siteverify').body);
      assert.equal(form.get('secret'), 'private-key');
      assert.equal(form.get('response'), 'good-captcha');
    });

    it('fails the stage when Google says no', async () => {
      const res = await api.post('/_matrix/client/v3/register', { username: 'cap2', password: 'pw-pw-pw-pw', auth: { type: 'm.login.recaptcha', response: 'bad' } });
      assert.equal(res.status, 401);
      assert.deepEqual(res.body.completed, []);
      assert.ok(res.body.errcode);
    });
  });
});

describe('reCAPTCHA required, SSO off', function () {
  this.timeout(30_000);
  const idp = new FakeIdp();
  let srv: TestServer;
  let api: Api;
  before(async () => {
    await idp.start();
    srv = await startTestServer({
      recaptcha: { enabled: true, public_key: 'pk', private_key: 'private-key', siteverify_api: `${idp.url}/siteverify` },
    });
    api = new Api(srv.url);
  });
  after(async () => {
    await srv?.stop();
    await idp.stop();
  });

  it('lists only password login and has no SSO endpoints', async () => {
    const res = await api.get('/_matrix/client/v3/login');
    assert.deepEqual(res.body.flows, [{ type: 'm.login.password' }]);
    const redirect = await api.get(`/_matrix/client/v3/login/sso/redirect?redirectUrl=${encodeURIComponent(REDIRECT)}`);
    assert.equal(redirect.status, 404);
  });

  it('puts the captcha first in every registration flow; the fallback page completes it', async () => {
    const first = await api.post('/_matrix/client/v3/register', { username: 'capreq', password: 'pw-pw-pw-pw' });
    assert.equal(first.status, 401);
    assert.deepEqual(first.body.flows, [{ stages: ['m.login.recaptcha', 'm.login.dummy'] }]);
    assert.deepEqual(first.body.params, { 'm.login.recaptcha': { public_key: 'pk' } });
    const dummyOnly = await api.post('/_matrix/client/v3/register', { auth: { type: 'm.login.dummy', session: first.body.session } });
    assert.equal(dummyOnly.status, 401);
    assert.deepEqual(dummyOnly.body.completed, ['m.login.dummy']);
    const fbBad = await raw(`${srv.url}/_matrix/client/v3/auth/m.login.recaptcha/fallback/web?session=${first.body.session}&response=bad`);
    assert.equal(fbBad.status, 401);
    const fb = await raw(`${srv.url}/_matrix/client/v3/auth/m.login.recaptcha/fallback/web?session=${first.body.session}&response=good-captcha`);
    assert.equal(fb.status, 200);
    assert.match(fb.text, /authDone/);
    const done = await api.post('/_matrix/client/v3/register', { auth: { session: first.body.session } });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.user_id, '@capreq:localhost');
  });
});
