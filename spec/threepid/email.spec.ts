// Email on accounts over HTTP (src/threepid, src/api/routes/threepid.ts), with the server's
// mail going over real SMTP to an in-process sink (spec/helpers/smtp-sink.ts): the token is
// read from the mail and its link followed, as a person would.

import { assert } from '../helpers/assert.js';
import { expectError, ok, PASSWORD, V3 } from '../helpers/fixtures.js';
import { SmtpSink, linkIn } from '../helpers/smtp-sink.js';
import { freePort } from '../helpers/ports.js';
import { Api, startTestServer as startServer, type TestServer } from '../helpers/server.js';
import { validateConfig, type HearthConfigInput } from '../../src/config/load.js';

/** A server on a fixed port, so that public_baseurl (the mailed link's base) names it. */
async function startTestServer(overrides: HearthConfigInput = {}): Promise<TestServer> {
  const port = await freePort();
  return startServer({ ...overrides, listeners: { client: { host: '127.0.0.1', port } }, public_baseurl: `http://127.0.0.1:${port}/` });
}

const emailConfig = (sink: SmtpSink) => ({ enabled: true, smtp_host: '127.0.0.1', smtp_port: sink.port, require_transport_security: false, notif_from: 'Hearth <hearth@localhost>' });

let counter = 0;
const secret = () => `secret${++counter}`;

describe('threepid: email validated by the homeserver', function () {
  let sink: SmtpSink;
  let srv: TestServer;
  let anon: Api;

  before(async function () {
    sink = await SmtpSink.start();
    srv = await startTestServer({ email: emailConfig(sink) });
    anon = new Api(srv.url);
  });
  after(async function () {
    await srv?.stop();
    await sink?.stop();
  });

  /** requestToken at `path`, then the mailed link followed; the session's credentials. */
  async function validate(path: string, email: string, to = email.toLowerCase()): Promise<{ sid: string; client_secret: string }> {
    const client_secret = secret();
    const r = await ok(anon.post(`${V3}${path}`, { client_secret, email, send_attempt: 1 }), 'requestToken');
    assert.equal(typeof r.sid, 'string');
    assert.equal(r.submit_url, `${srv.url}/_hearth/client/email/submit_token`);
    const mail = await sink.next(to);
    const page = await fetch(linkIn(mail));
    assert.equal(page.status, 200, await page.clone().text());
    assert.match(await page.text(), /validated/);
    return { sid: r.sid, client_secret };
  }

  async function passwordUser(localpart: string): Promise<Api & { userId: string }> {
    const r = await ok(anon.post(`${V3}/register`, { username: localpart, password: PASSWORD, auth: { type: 'm.login.dummy' } }), 'register');
    return Object.assign(new Api(srv.url, r.access_token), { userId: r.user_id as string });
  }

  async function addEmail(u: Api, email: string): Promise<void> {
    const creds = await validate('/account/3pid/email/requestToken', email);
    const first = await u.post(`${V3}/account/3pid/add`, creds);
    assert.equal(first.status, 401);
    await ok(u.post(`${V3}/account/3pid/add`, { ...creds, auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: (u as Api & { userId: string }).userId }, password: PASSWORD, session: first.body.session } }), '3pid/add');
  }

  it('registers with the m.login.email.identity stage; the address is on the account, lower-cased', async function () {
    const first = await anon.post(`${V3}/register`, { username: 'mailer1', password: PASSWORD });
    assert.equal(first.status, 401);
    assert.deepEqual(first.body.flows, [{ stages: ['m.login.dummy'] }, { stages: ['m.login.email.identity'] }]);

    const creds = await validate('/register/email/requestToken', 'Mailer1@Example.ORG');
    const mail = sink.mails.at(-1)!;
    assert.equal(mail.from, 'hearth@localhost');
    assert.match(mail.headers.subject ?? '', /Validate your email/);
    assert.ok(mail.html?.includes('submit_token'), 'an HTML part with the link too');

    const r = await ok(
      anon.post(`${V3}/register`, { username: 'mailer1', password: PASSWORD, auth: { type: 'm.login.email.identity', session: first.body.session, threepid_creds: creds } }),
      'register',
    );
    assert.equal(r.user_id, '@mailer1:localhost');
    const u = new Api(srv.url, r.access_token);
    const list = await ok(u.get(`${V3}/account/3pid`), 'list');
    assert.equal(list.threepids.length, 1);
    assert.equal(list.threepids[0].medium, 'email');
    assert.equal(list.threepids[0].address, 'mailer1@example.org');
    assert.equal(typeof list.threepids[0].validated_at, 'number');
    assert.equal(typeof list.threepids[0].added_at, 'number');

    // The address is now taken: registering with it again is refused at requestToken.
    expectError(await anon.post(`${V3}/register/email/requestToken`, { client_secret: secret(), email: 'MAILER1@example.org', send_attempt: 1 }), 400, 'M_THREEPID_IN_USE');
  });

  it('an unvalidated session does not complete the email stage', async function () {
    const client_secret = secret();
    const r = await ok(anon.post(`${V3}/register/email/requestToken`, { client_secret, email: 'notclicked@example.org', send_attempt: 1 }), 'requestToken');
    await sink.next('notclicked@example.org');
    const first = await anon.post(`${V3}/register`, { username: 'notclicked', password: PASSWORD });
    const again = await anon.post(`${V3}/register`, { username: 'notclicked', password: PASSWORD, auth: { type: 'm.login.email.identity', session: first.body.session, threepid_creds: { sid: r.sid, client_secret } } });
    assert.equal(again.status, 401);
    assert.deepEqual(again.body.completed, []);
    assert.equal(again.body.errcode, 'M_FORBIDDEN');
  });

  it('send_attempt: a repeat sends nothing and keeps the sid; a higher one mails a new token that replaces the old', async function () {
    const client_secret = secret();
    const body = { client_secret, email: 'attempts@example.org', send_attempt: 1 };
    const a = await ok(anon.post(`${V3}/account/3pid/email/requestToken`, body), 'first');
    const firstLink = linkIn(await sink.next('attempts@example.org'));
    const before = sink.mails.length;
    const b = await ok(anon.post(`${V3}/account/3pid/email/requestToken`, body), 'repeat');
    assert.equal(b.sid, a.sid);
    assert.equal(sink.mails.length, before, 'no second mail for the same send_attempt');
    const c = await ok(anon.post(`${V3}/account/3pid/email/requestToken`, { ...body, send_attempt: 2 }), 'next attempt');
    assert.equal(c.sid, a.sid);
    const secondLink = linkIn(await sink.next('attempts@example.org'));
    assert.notEqual(secondLink, firstLink);
    assert.equal((await fetch(firstLink)).status, 400, 'the replaced token no longer validates');
    assert.equal((await fetch(secondLink)).status, 200);
    // Another client_secret is another session.
    const d = await ok(anon.post(`${V3}/account/3pid/email/requestToken`, { ...body, client_secret: secret() }), 'other secret');
    assert.notEqual(d.sid, a.sid);
    await sink.next('attempts@example.org');
  });

  it('adds an address with UIA, lists it, logs in by it (m.id.thirdparty and legacy fields), deletes it', async function () {
    const u = await passwordUser('adder');
    await addEmail(u, 'Adder@Example.org');
    assert.deepEqual((await ok(u.get(`${V3}/account/3pid`), 'list')).threepids.map((t: { address: string }) => t.address), ['adder@example.org']);

    const byId = await ok(anon.post(`${V3}/login`, { type: 'm.login.password', identifier: { type: 'm.id.thirdparty', medium: 'email', address: 'ADDER@example.org' }, password: PASSWORD }), 'login m.id.thirdparty');
    assert.equal(byId.user_id, u.userId);
    const legacy = await ok(anon.post(`${V3}/login`, { type: 'm.login.password', medium: 'email', address: 'adder@example.org', password: PASSWORD }), 'login legacy');
    assert.equal(legacy.user_id, u.userId);
    expectError(await anon.post(`${V3}/login`, { type: 'm.login.password', medium: 'email', address: 'adder@example.org', password: 'wrong' }), 403, 'M_FORBIDDEN');
    expectError(await anon.post(`${V3}/login`, { type: 'm.login.password', identifier: { type: 'm.id.thirdparty', medium: 'email', address: 'nobody@example.org' }, password: PASSWORD }), 403, 'M_FORBIDDEN');

    // Another account cannot take it.
    expectError(await anon.post(`${V3}/account/3pid/email/requestToken`, { client_secret: secret(), email: 'adder@example.org', send_attempt: 1 }), 400, 'M_THREEPID_IN_USE');

    await ok(u.post(`${V3}/account/3pid/delete`, { medium: 'email', address: 'Adder@example.org' }), 'delete');
    assert.deepEqual((await ok(u.get(`${V3}/account/3pid`), 'list')).threepids, []);
    expectError(await anon.post(`${V3}/login`, { type: 'm.login.password', medium: 'email', address: 'adder@example.org', password: PASSWORD }), 403, 'M_FORBIDDEN');
    // Free again for another account.
    const other = await passwordUser('adder2');
    await addEmail(other, 'adder@example.org');
    assert.equal((await ok(anon.post(`${V3}/login`, { type: 'm.login.password', medium: 'email', address: 'adder@example.org', password: PASSWORD }), 'login')).user_id, other.userId);
  });

  it('capabilities say addresses can change; the admin API lists a user\'s addresses', async function () {
    const u = await passwordUser('shown');
    assert.deepEqual((await ok(u.get(`${V3}/capabilities`), 'capabilities')).capabilities['m.3pid_changes'], { enabled: true });
    await addEmail(u, 'shown@example.org');
    const adminId = await srv.hearth.services.accounts.createAccount('mailadmin', PASSWORD, true);
    const login = await srv.hearth.services.accounts.login(adminId, undefined, null, null);
    const admin = new Api(srv.url, login.access_token);
    const details = await ok(admin.get(`/_synapse/admin/v2/users/${encodeURIComponent(u.userId)}`), 'admin user');
    assert.equal(details.threepids.length, 1);
    assert.equal(details.threepids[0].address, 'shown@example.org');
  });

  it('the deprecated POST /account/3pid adds from three_pid_creds; an unvalidated session is M_THREEPID_AUTH_FAILED', async function () {
    const u = await passwordUser('deprecated');
    const client_secret = secret();
    const r = await ok(anon.post(`${V3}/account/3pid/email/requestToken`, { client_secret, email: 'dep@example.org', send_attempt: 1 }), 'requestToken');
    const mail = await sink.next('dep@example.org');
    expectError(await u.post(`${V3}/account/3pid`, { three_pid_creds: { sid: r.sid, client_secret } }), 400, 'M_THREEPID_AUTH_FAILED');
    expectError(await u.post(`${V3}/account/3pid`, { three_pid_creds: { sid: r.sid, client_secret: 'not-the-secret' } }), 400, 'M_THREEPID_AUTH_FAILED');
    assert.equal((await fetch(linkIn(mail))).status, 200);
    await ok(u.post(`${V3}/account/3pid`, { three_pid_creds: { sid: r.sid, client_secret } }), 'add');
    assert.deepEqual((await ok(u.get(`${V3}/account/3pid`), 'list')).threepids.map((t: { address: string }) => t.address), ['dep@example.org']);
  });

  it('resets a password by email: unknown address M_THREEPID_NOT_FOUND; the old password and sessions end', async function () {
    expectError(await anon.post(`${V3}/account/password/email/requestToken`, { client_secret: secret(), email: 'nobody@example.org', send_attempt: 1 }), 400, 'M_THREEPID_NOT_FOUND');
    const u = await passwordUser('forgetful');
    await addEmail(u, 'forgetful@example.org');
    const creds = await validate('/account/password/email/requestToken', 'forgetful@example.org');
    assert.match(sink.mails.at(-1)!.headers.subject ?? '', /Password reset/);
    const body = { new_password: 'a brand new password' };
    const first = await anon.post(`${V3}/account/password`, body);
    assert.equal(first.status, 401);
    assert.deepEqual(first.body.flows, [{ stages: ['m.login.email.identity'] }]);
    await ok(anon.post(`${V3}/account/password`, { ...body, auth: { type: 'm.login.email.identity', session: first.body.session, threepid_creds: creds } }), 'reset');
    expectError(await anon.post(`${V3}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'forgetful' }, password: PASSWORD }), 403, 'M_FORBIDDEN');
    await ok(anon.post(`${V3}/login`, { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'forgetful' }, password: 'a brand new password' }), 'new password');
    expectError(await u.get(`${V3}/account/whoami`), 401, 'M_UNKNOWN_TOKEN');
  });

  it('deactivation takes the addresses off the account', async function () {
    const u = await passwordUser('leaver');
    await addEmail(u, 'leaver@example.org');
    const first = await u.post(`${V3}/account/deactivate`, {});
    await ok(u.post(`${V3}/account/deactivate`, { auth: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'leaver' }, password: PASSWORD, session: first.body.session } }), 'deactivate');
    expectError(await anon.post(`${V3}/login`, { type: 'm.login.password', medium: 'email', address: 'leaver@example.org', password: PASSWORD }), 403, 'M_FORBIDDEN');
    await ok(anon.post(`${V3}/register/email/requestToken`, { client_secret: secret(), email: 'leaver@example.org', send_attempt: 1 }), 'free again');
    await sink.next('leaver@example.org');
  });

  it('next_link: the link redirects there with the sid; a non-http next_link is refused', async function () {
    const client_secret = secret();
    const r = await ok(anon.post(`${V3}/register/email/requestToken`, { client_secret, email: 'next@example.org', send_attempt: 1, next_link: 'https://client.example.org/done?x=1' }), 'requestToken');
    const res = await fetch(linkIn(await sink.next('next@example.org')), { redirect: 'manual' });
    assert.equal(res.status, 302);
    const to = new URL(res.headers.get('location')!);
    assert.equal(to.origin + to.pathname, 'https://client.example.org/done');
    assert.equal(to.searchParams.get('x'), '1');
    assert.equal(to.searchParams.get('sid'), r.sid);
    expectError(await anon.post(`${V3}/register/email/requestToken`, { client_secret: secret(), email: 'next@example.org', send_attempt: 1, next_link: 'javascript:alert(1)' }), 400, 'M_INVALID_PARAM');
  });

  it('submit_url takes the token by POST', async function () {
    const client_secret = secret();
    const r = await ok(anon.post(`${V3}/register/email/requestToken`, { client_secret, email: 'posted@example.org', send_attempt: 1 }), 'requestToken');
    const token = new URL(linkIn(await sink.next('posted@example.org'))).searchParams.get('token')!;
    const submit = new Api(r.submit_url.replace(/\/_hearth.*$/, ''));
    expectError(await submit.post('/_hearth/client/email/submit_token', { sid: r.sid, client_secret, token: 'wrong' }), 400, 'M_THREEPID_AUTH_FAILED');
    assert.deepEqual(await ok(submit.post('/_hearth/client/email/submit_token', { sid: r.sid, client_secret, token }), 'submit'), { success: true });
  });

  it('bad input: client_secret grammar, an invalid address, a missing field, msisdn', async function () {
    expectError(await anon.post(`${V3}/register/email/requestToken`, { client_secret: 'has space', email: 'a@example.org', send_attempt: 1 }), 400, 'M_INVALID_PARAM');
    expectError(await anon.post(`${V3}/register/email/requestToken`, { client_secret: secret(), email: 'not-an-address', send_attempt: 1 }), 400, 'M_INVALID_EMAIL');
    expectError(await anon.post(`${V3}/register/email/requestToken`, { client_secret: secret(), email: 'a@example.org\r\nBcc: x@example.org', send_attempt: 1 }), 400, 'M_INVALID_EMAIL');
    const missing = await anon.post(`${V3}/register/email/requestToken`, { client_secret: secret(), email: 'a@example.org' });
    assert.equal(missing.status, 400);
    for (const p of ['/register/msisdn/requestToken', '/account/3pid/msisdn/requestToken', '/account/password/msisdn/requestToken']) {
      expectError(await anon.post(`${V3}${p}`, { client_secret: secret(), country_code: 'GB', phone_number: '07700900000', send_attempt: 1 }), 400, 'M_THREEPID_MEDIUM_NOT_SUPPORTED');
    }
    assert.equal((await fetch(`${srv.url}/_hearth/client/email/submit_token?sid=nope&client_secret=x&token=y`)).status, 400);
  });

  it('a relay that refuses the mail: 502, and the same send_attempt sends again', async function () {
    const body = { client_secret: secret(), email: 'bounce@example.org', send_attempt: 1 };
    sink.rejectNext = true;
    const r = await anon.post(`${V3}/account/3pid/email/requestToken`, body);
    assert.equal(r.status, 502);
    assert.equal(r.body.errcode, 'M_UNKNOWN');
    await ok(anon.post(`${V3}/account/3pid/email/requestToken`, body), 'retry');
    await sink.next('bounce@example.org');
  });

  it('falls back to HELO for a relay that refuses EHLO (as SyTest\'s does)', async function () {
    sink.refuseEhlo = true;
    try {
      await ok(anon.post(`${V3}/account/3pid/email/requestToken`, { client_secret: secret(), email: 'helo@example.org', send_attempt: 1 }), 'requestToken');
      await sink.next('helo@example.org');
      const cmds = sink.sessions.at(-1)!;
      assert.deepEqual(cmds.slice(0, 2), ['EHLO', 'HELO']);
    } finally {
      sink.refuseEhlo = false;
    }
  });
});

describe('threepid: email settings', function () {
  it('with email off, no email stage and requestToken is M_THREEPID_DENIED; addresses still list', async function () {
    const srv = await startTestServer();
    try {
      const anon = new Api(srv.url);
      const first = await anon.post(`${V3}/register`, { username: 'plain', password: PASSWORD });
      assert.deepEqual(first.body.flows, [{ stages: ['m.login.dummy'] }]);
      expectError(await anon.post(`${V3}/register/email/requestToken`, { client_secret: 'abc', email: 'a@example.org', send_attempt: 1 }), 403, 'M_THREEPID_DENIED');
      const r = await ok(anon.post(`${V3}/register`, { username: 'plain', password: PASSWORD, auth: { type: 'm.login.dummy', session: first.body.session } }), 'register');
      const u = new Api(srv.url, r.access_token);
      assert.deepEqual(await ok(u.get(`${V3}/account/3pid`), 'list'), { threepids: [] });
      assert.deepEqual((await ok(u.get(`${V3}/capabilities`), 'capabilities')).capabilities['m.3pid_changes'], { enabled: false });
      // No access token and no email: password reset needs a token.
      expectError(await anon.post(`${V3}/account/password`, { new_password: 'x' }), 401, 'M_MISSING_TOKEN');
    } finally {
      await srv.stop();
    }
  });

  it('require_transport_security: no mail goes to a relay without STARTTLS', async function () {
    const sink = await SmtpSink.start();
    const srv = await startTestServer({ email: { ...emailConfig(sink), require_transport_security: true, send_timeout_ms: 2000 } });
    try {
      const r = await new Api(srv.url).post(`${V3}/register/email/requestToken`, { client_secret: 'abc', email: 'tls@example.org', send_attempt: 1 });
      assert.equal(r.status, 502);
      assert.equal(sink.mails.length, 0);
    } finally {
      await srv.stop();
      await sink.stop();
    }
  });

  it('registration.require_email: the email flow is the only one; it needs email.enabled', async function () {
    assert.throws(() => validateConfig({ registration: { require_email: true } }), /registration\.require_email/);
    const sink = await SmtpSink.start();
    const srv = await startTestServer({ email: emailConfig(sink), registration: { require_email: true, token: 'org-token' } });
    try {
      const anon = new Api(srv.url);
      const first = await anon.post(`${V3}/register`, { username: 'required', password: PASSWORD });
      assert.deepEqual(first.body.flows, [{ stages: ['m.login.registration_token', 'm.login.email.identity'] }]);
      const dummy = await anon.post(`${V3}/register`, { username: 'required', password: PASSWORD, auth: { type: 'm.login.dummy', session: first.body.session } });
      assert.equal(dummy.status, 401);
      assert.equal(dummy.body.errcode, 'M_UNKNOWN');
    } finally {
      await srv.stop();
      await sink.stop();
    }
  });

  it('requestToken is rate-limited per client address', async function () {
    const sink = await SmtpSink.start();
    const srv = await startTestServer({ email: emailConfig(sink), limits: { rate_limits: { enabled: true, threepid_request_token: { per_second: 0.01, burst: 2 } } } });
    try {
      const anon = new Api(srv.url);
      for (let i = 0; i < 2; i++) await ok(anon.post(`${V3}/register/email/requestToken`, { client_secret: `s${i}`, email: `r${i}@example.org`, send_attempt: 1 }), `requestToken ${i}`);
      const r = await anon.post(`${V3}/register/email/requestToken`, { client_secret: 's9', email: 'r9@example.org', send_attempt: 1 });
      expectError(r, 429, 'M_LIMIT_EXCEEDED');
      assert.equal(typeof r.body.retry_after_ms, 'number');
    } finally {
      await srv.stop();
      await sink.stop();
    }
  });
});
