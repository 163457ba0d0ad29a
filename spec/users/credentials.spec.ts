import { assert } from '../helpers/assert.js';
import {
  generateAccessToken,
  generateDeviceId,
  hashAccessToken,
  hashPassword,
  passwordHashNeedsUpgrade,
  registrationMac,
  verifyPassword,
  verifyRegistrationMac,
} from '../../src/users/credentials.js';

describe('credentials', () => {
  describe('passwords', () => {
    it('hashes to a self-describing scrypt string that verifies', async () => {
      const hash = await hashPassword('correct horse battery staple');
      assert.match(hash, /^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
      assert.equal(await verifyPassword('correct horse battery staple', hash), true);
      assert.equal(passwordHashNeedsUpgrade(hash), false);
    });

    it('rejects a wrong password', async () => {
      const hash = await hashPassword('hunter2');
      assert.equal(await verifyPassword('hunter3', hash), false);
      assert.equal(await verifyPassword('', hash), false);
      assert.equal(await verifyPassword('Hunter2', hash), false);
    });

    it('salts every hash differently', async () => {
      const [a, b] = await Promise.all([hashPassword('same'), hashPassword('same')]);
      assert.notEqual(a, b);
      assert.notEqual(a.split('$')[4], b.split('$')[4]);
      assert.equal(await verifyPassword('same', a), true);
      assert.equal(await verifyPassword('same', b), true);
    });

    it('matches canonically equivalent Unicode passwords', async () => {
      const hash = await hashPassword('caf\u00e9');
      assert.equal(await verifyPassword('cafe\u0301', hash), true);
    });

    it('never matches a malformed or hostile hash', async () => {
      const good = await hashPassword('pw');
      const parts = good.split('$');
      for (const bad of [
        '',
        'plain',
        `bcrypt$${parts.slice(1).join('$')}`,
        [...parts.slice(0, 1), '1000', ...parts.slice(2)].join('$'), // N not a power of two
        [...parts.slice(0, 1), String(2 ** 30), ...parts.slice(2)].join('$'), // N too large
        parts.slice(0, 5).join('$'),
      ]) {
        assert.equal(await verifyPassword('pw', bad), false, bad);
        assert.equal(passwordHashNeedsUpgrade(bad), true);
      }
    });

    it('flags hashes made with weaker parameters', async () => {
      const good = await hashPassword('pw');
      const weak = ['scrypt', '16384', ...good.split('$').slice(2)].join('$');
      assert.equal(passwordHashNeedsUpgrade(weak), true);
    });
  });

  describe('tokens and device IDs', () => {
    it('generates distinct prefixed access tokens', () => {
      const a = generateAccessToken();
      assert.match(a, /^hth_[A-Za-z0-9_-]{43}$/);
      assert.notEqual(a, generateAccessToken());
    });

    it('hashes access tokens to a stable sha256 hex digest', () => {
      assert.equal(hashAccessToken('hth_example'), '5f8c39c9e7f3379155ca53c56dbf0cf76edde91c16da9c154c4b5b5822cb6b97');
      const t = generateAccessToken();
      assert.equal(hashAccessToken(t), hashAccessToken(t));
      assert.notEqual(hashAccessToken(t), hashAccessToken(`${t}x`));
    });

    it('generates ten-letter uppercase device IDs', () => {
      const ids = new Set(Array.from({ length: 50 }, generateDeviceId));
      for (const id of ids) assert.match(id, /^[A-Z]{10}$/);
      assert.equal(ids.size, 50);
    });
  });

  describe('registration MAC', () => {
    // Values computed independently with Python's hmac module.
    const secret = '0123456789abcdef-secret';
    it('matches Synapse shared-secret registration', () => {
      assert.equal(registrationMac(secret, '3f1c0a9e', 'alice', 'correct horse', true), 'a62dcf5bd12e01531049f3f013c2d1a7d3be67bc');
      assert.equal(registrationMac(secret, '3f1c0a9e', 'alice', 'correct horse', false), '1cf376cf40038e46508beae0b2ae17ebc75877ce');
    });

    it('verifies only the right MAC', () => {
      const mac = 'a62dcf5bd12e01531049f3f013c2d1a7d3be67bc';
      assert.equal(verifyRegistrationMac(secret, '3f1c0a9e', 'alice', 'correct horse', true, mac), true);
      assert.equal(verifyRegistrationMac(secret, '3f1c0a9e', 'alice', 'correct horse', true, mac.toUpperCase()), true);
      assert.equal(verifyRegistrationMac(secret, '3f1c0a9e', 'alice', 'correct horse', false, mac), false);
      assert.equal(verifyRegistrationMac(secret, '3f1c0a9e', 'alice', 'correct horse', true, 'abc'), false);
    });
  });
});
