import { assert } from '../helpers/assert.js';
import {
  generateDeviceId,
  generateRoomId,
  generateToken,
  InvalidIdError,
  isValidEventId,
  isValidLocalpartForRegistration,
  isValidRoomAlias,
  isValidRoomId,
  isValidServerName,
  isValidUserId,
  parseUserId,
  randomString,
  serverNameOf,
  tryParseUserId,
} from '../../src/protocol/ids.js';

describe('protocol/ids', () => {
  describe('server names', () => {
    for (const name of ['matrix.org', 'matrix.org:8888', '1.2.3.4', '1.2.3.4:1234', '[1234:5678::abcd]', '[1234:5678::abcd]:5678', 'localhost', '127.0.0.1:18448', '[::1]', 'MATRIX.ORG', 'a-b.c', '[::ffff:1.2.3.4]:1']) {
      it(`accepts ${name}`, () => assert.ok(isValidServerName(name)));
    }
    for (const name of ['', 'matrix.org:', 'matrix.org:123456', 'matrix.org:65536', 'matrix.org:-1', 'exa mple.org', 'ex_ample.org', '[1234::abcd', '[not-ip]', '::1', '[::1]x', '256.1.1.1', 'a:b:c', 'é.org', 'x'.repeat(256)]) {
      it(`rejects ${JSON.stringify(name)}`, () => assert.ok(!isValidServerName(name)));
    }
  });

  describe('user IDs', () => {
    it('parses', () => {
      assert.deepEqual(parseUserId('@alice:example.org'), { localpart: 'alice', serverName: 'example.org' });
      assert.deepEqual(parseUserId('@alice:127.0.0.1:18448'), { localpart: 'alice', serverName: '127.0.0.1:18448' });
      assert.deepEqual(parseUserId('@a:[::1]:80'), { localpart: 'a', serverName: '[::1]:80' });
    });

    it('accepts historical localparts when parsing', () => {
      for (const id of ['@Alice:x.org', '@a b!:x.org', '@:x.org', '@日本:x.org', '@a\u0001:x.org']) {
        assert.ok(isValidUserId(id), id);
        assert.ok(!isValidUserId(id, { strict: true }), id);
      }
      assert.ok(isValidUserId('@a.b_c=d-e/f+g:x.org', { strict: true }));
    });

    it('rejects malformed IDs', () => {
      for (const id of ['alice:x.org', '@alice', '@alice:', '@a\u0000b:x.org', '@a\uD800:x.org', '@a:bad host', `@${'a'.repeat(250)}:x.org`, '#a:x.org']) {
        assert.ok(!isValidUserId(id), JSON.stringify(id));
        assert.throws(() => parseUserId(id), InvalidIdError);
      }
      assert.ok(!isValidUserId(42));
      assert.equal(tryParseUserId(null), undefined);
    });

    it('enforces 255 bytes counting UTF-8', () => {
      const at255 = `@${'a'.repeat(255 - 1 - 1 - 5)}:x.org`;
      assert.equal(at255.length, 255);
      assert.ok(isValidUserId(at255));
      assert.ok(!isValidUserId(`@é${'a'.repeat(255 - 1 - 1 - 5 - 1)}:x.org`));
    });

    it('registration localparts', () => {
      for (const lp of ['alice', 'a.b_c=d-e/f+g', '0']) assert.ok(isValidLocalpartForRegistration(lp), lp);
      for (const lp of ['', 'Alice', 'a b', 'a:b', 'é', 'a#']) assert.ok(!isValidLocalpartForRegistration(lp), lp);
      assert.ok(isValidLocalpartForRegistration('a'.repeat(240), 'x.org'));
      assert.ok(!isValidLocalpartForRegistration('a'.repeat(250), 'x.org'));
    });
  });

  describe('room IDs, aliases and event IDs', () => {
    it('room IDs', () => {
      assert.ok(isValidRoomId('!abc:x.org'));
      assert.ok(isValidRoomId('!abc:127.0.0.1:18449'));
      for (const id of ['abc:x.org', '!abc', '!abc:', '@abc:x.org', '!a\u0000:x.org']) assert.ok(!isValidRoomId(id), id);
    });

    it('aliases', () => {
      assert.ok(isValidRoomAlias('#room:x.org'));
      assert.ok(isValidRoomAlias('#日本 room:x.org'));
      for (const id of ['room:x.org', '#room', '#a:b:c d', `#${'a'.repeat(250)}:x.org`]) assert.ok(!isValidRoomAlias(id), id);
    });

    it('event IDs, optionally per room version', () => {
      const v4 = '$qfoDSGz6-OSqb0VD_Q9JYhAI8uRjbREZL-9yl8CYdYo';
      const v3 = '$RrGxF28UrHLmoASHndYb9Jb/1SFww2ptmtur9INS438';
      assert.ok(isValidEventId(v4) && isValidEventId(v4, '4') && isValidEventId(v4, '11'));
      assert.ok(isValidEventId(v3, '3') && !isValidEventId(v3, '11'));
      assert.ok(isValidEventId('$0:domain', '1') && !isValidEventId('$0:domain', '10'));
      assert.ok(isValidEventId('$0:domain'));
      for (const id of ['', '$', 'abc', '$a\u0000', `$${'a'.repeat(255)}`]) assert.ok(!isValidEventId(id), id);
    });

    it('serverNameOf', () => {
      assert.equal(serverNameOf('@a:x.org'), 'x.org');
      assert.equal(serverNameOf('!r:127.0.0.1:18448'), '127.0.0.1:18448');
      assert.equal(serverNameOf('#a:[::1]'), '[::1]');
      assert.equal(serverNameOf('$0:domain'), 'domain');
      assert.equal(serverNameOf('$qfoDSGz6-OSqb0VD_Q9JYhAI8uRjbREZL-9yl8CYdYo'), undefined);
      assert.equal(serverNameOf('no-sigil:x.org'), undefined);
      assert.equal(serverNameOf('@a:bad host'), undefined);
      assert.equal(serverNameOf(''), undefined);
    });
  });

  describe('generators', () => {
    it('room IDs are valid and distinct', () => {
      const ids = new Set(Array.from({ length: 50 }, () => generateRoomId('x.org:8448')));
      assert.equal(ids.size, 50);
      for (const id of ids) {
        assert.ok(isValidRoomId(id), id);
        assert.match(id, /^![A-Za-z]{18}:x\.org:8448$/);
      }
    });

    it('device IDs and tokens', () => {
      assert.match(generateDeviceId(), /^[A-Z]{10}$/);
      assert.match(generateToken(), /^[A-Za-z0-9]{32}$/);
      assert.equal(generateToken(7).length, 7);
      assert.equal(randomString(0), '');
      assert.match(randomString(100, 'ab'), /^[ab]{100}$/);
      assert.throws(() => randomString(3, 'a'));
    });

    it('randomString uses the whole alphabet', () => {
      const seen = new Set(randomString(5000, 'abcdefghij'));
      assert.equal(seen.size, 10);
    });
  });
});
