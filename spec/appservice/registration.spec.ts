// Registration files: what loads, and the start-up errors for what must not.

import { writeFileSync } from 'node:fs';
import { assert } from '../helpers/assert.js';
import { AppServiceConfigError, loadRegistrations } from '../../src/appservice/registration.js';
import { startTestServer } from '../helpers/server.js';
import { writeRegistrations } from './fake-as.js';

const base = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  id: 'irc',
  url: 'http://127.0.0.1:9999/',
  as_token: 'as-1',
  hs_token: 'hs-1',
  sender_localpart: 'ircbot',
  namespaces: { users: [{ regex: '@irc_.*:example.org', exclusive: true }], aliases: [], rooms: [] },
  ...over,
});

function loadErr(paths: string[]): string {
  try {
    loadRegistrations(paths, 'example.org');
  } catch (err) {
    assert.ok(err instanceof AppServiceConfigError, String(err));
    return err.message;
  }
  assert.fail('expected an AppServiceConfigError');
}

describe('Application service registration files', function () {
  it('loads the standard format, with defaults and the sender user derived', () => {
    const [p] = writeRegistrations(base({ protocols: ['irc'], rate_limited: false }));
    const [r] = loadRegistrations([p!], 'example.org');
    assert.equal(r!.id, 'irc');
    assert.equal(r!.url, 'http://127.0.0.1:9999', 'trailing slash dropped');
    assert.equal(r!.senderUserId, '@ircbot:example.org');
    assert.deepEqual(r!.protocols, ['irc']);
    assert.equal(r!.rateLimited, false);
    assert.ok(r!.users[0]!.regex.test('@irc_bob:example.org'));
    assert.ok(!r!.users[0]!.regex.test('@bob_irc_x:example.org'), 'anchored at the start');
    const [q] = writeRegistrations(base({ url: null, protocols: null }));
    const [n] = loadRegistrations([q!], 'example.org');
    assert.equal(n!.url, null);
    assert.deepEqual(n!.protocols, []);
    assert.equal(n!.rateLimited, true, 'rate_limited defaults to true');
  });

  it('names the file and key of an invalid regex, an unknown key or a missing field', () => {
    const [bad] = writeRegistrations(base({ namespaces: { users: [{ regex: '@irc_(.*:example.org', exclusive: true }] } }));
    assert.match(loadErr([bad!]), /reg-0\.yaml: namespaces\.users\.0\.regex: invalid regex/);
    const [typo] = writeRegistrations(base({ hs_tokn: 'x' }));
    assert.match(loadErr([typo!]), /reg-0\.yaml: .*hs_tokn/);
    const noToken = base();
    delete noToken.as_token;
    const [missing] = writeRegistrations(noToken);
    assert.match(loadErr([missing!]), /reg-0\.yaml: as_token/);
    assert.match(loadErr(['/nonexistent/reg.yaml']), /\/nonexistent\/reg\.yaml: cannot read/);
  });

  it('refuses IDs, tokens and sender users that two registrations share', () => {
    const paths = writeRegistrations(base(), base({ sender_localpart: 'other', hs_token: 'hs-2' }));
    const msg = loadErr(paths);
    assert.match(msg, /reg-1\.yaml: id is also used by .*reg-0\.yaml/);
    assert.match(msg, /reg-1\.yaml: as_token is also used by/);
    const swapped = writeRegistrations(base(), base({ id: 'slack', as_token: 'hs-1', hs_token: 'hs-9', sender_localpart: 'slackbot' }));
    assert.match(loadErr(swapped), /as_token is another service's hs_token/);
  });

  it('stops the server from starting on a bad registration file', async () => {
    const [p] = writeRegistrations(base());
    writeFileSync(p!, 'id: [unclosed\n');
    await assert.rejects(startTestServer({ app_services: [p!] }), (err: unknown) => err instanceof AppServiceConfigError && /cannot read/.test(err.message));
  });
});
