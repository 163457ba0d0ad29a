// Contract: ThreepidStore (src/store/threepid-types.ts): account addresses and validation sessions.

import { assert } from '../helpers/assert.js';
import type { ValidationSession } from '../../src/store/threepid-types.js';
import type { ContractContext } from './contract.js';

const T0 = 1_700_000_000_000;

function session(sid: string, over: Partial<ValidationSession> = {}): ValidationSession {
  return { sid, medium: 'email', address: 'a@example.org', clientSecret: 'cs', lastSendAttempt: -1, token: '', nextLink: null, validatedAt: null, createdAt: T0, expiresAt: T0 + 3_600_000, ...over };
}

export function describeThreepidContract(ctx: ContractContext): void {
  describe('account threepids and validation sessions', function () {
    it('an address belongs to one account: in_use for another, idempotent for its owner, listed in order', async function () {
      const s = ctx.store.threepids;
      assert.equal(await s.userForThreepid('email', 'a@example.org'), null);
      assert.equal(await s.addAccountThreepid('@a:hearth.test', { medium: 'email', address: 'z@example.org', validatedAt: T0, addedAt: T0 + 1 }), 'added');
      assert.equal(await s.addAccountThreepid('@a:hearth.test', { medium: 'email', address: 'a@example.org', validatedAt: T0, addedAt: T0 + 2 }), 'added');
      assert.equal(await s.addAccountThreepid('@a:hearth.test', { medium: 'email', address: 'a@example.org', validatedAt: T0, addedAt: T0 + 2 }), 'added');
      assert.equal(await s.addAccountThreepid('@b:hearth.test', { medium: 'email', address: 'a@example.org', validatedAt: T0, addedAt: T0 + 3 }), 'in_use');
      assert.equal(await s.userForThreepid('email', 'a@example.org'), '@a:hearth.test');
      assert.deepEqual(await s.listAccountThreepids('@a:hearth.test'), [
        { medium: 'email', address: 'a@example.org', validatedAt: T0, addedAt: T0 + 2 },
        { medium: 'email', address: 'z@example.org', validatedAt: T0, addedAt: T0 + 1 },
      ]);
      assert.deepEqual(await s.listAccountThreepids('@b:hearth.test'), []);
    });

    it('removal by a non-owner changes nothing; by the owner frees the address', async function () {
      const s = ctx.store.threepids;
      await s.addAccountThreepid('@a:hearth.test', { medium: 'email', address: 'a@example.org', validatedAt: T0, addedAt: T0 });
      await s.removeAccountThreepid('@b:hearth.test', 'email', 'a@example.org');
      assert.equal(await s.userForThreepid('email', 'a@example.org'), '@a:hearth.test');
      await s.removeAccountThreepid('@a:hearth.test', 'email', 'a@example.org');
      await s.removeAccountThreepid('@a:hearth.test', 'email', 'never@example.org');
      assert.equal(await s.userForThreepid('email', 'a@example.org'), null);
      assert.deepEqual(await s.listAccountThreepids('@a:hearth.test'), []);
      assert.equal(await s.addAccountThreepid('@b:hearth.test', { medium: 'email', address: 'a@example.org', validatedAt: T0, addedAt: T0 }), 'added');
      assert.equal(await s.userForThreepid('email', 'a@example.org'), '@b:hearth.test');
    });

    it('opens one session per (medium, client_secret, address) until it is validated or expires', async function () {
      const s = ctx.store.threepids;
      const first = await s.openValidationSession(session('sid1'), T0);
      assert.equal(first.sid, 'sid1');
      assert.equal((await s.openValidationSession(session('sid2'), T0 + 10)).sid, 'sid1', 'same key: the live session');
      assert.equal(await s.getValidationSession('sid2', T0), null, 'the unused fresh one is not stored');
      assert.equal((await s.openValidationSession(session('sid3', { clientSecret: 'other' }), T0)).sid, 'sid3');
      assert.equal((await s.openValidationSession(session('sid4', { address: 'b@example.org' }), T0)).sid, 'sid4');

      // send_attempt is any non-negative integer a client counts with (2^40 does not fit 32 bits).
      await s.recordValidationSend('sid1', { lastSendAttempt: 2 ** 40, token: 'tok', nextLink: 'https://c.example.org/' });
      const sent = await s.getValidationSession('sid1', T0);
      assert.deepEqual(sent, session('sid1', { lastSendAttempt: 2 ** 40, token: 'tok', nextLink: 'https://c.example.org/' }));

      await s.markValidated('sid1', T0 + 50);
      await s.markValidated('sid1', T0 + 99); // only the first counts
      assert.equal((await s.getValidationSession('sid1', T0 + 100))?.validatedAt, T0 + 50);
      // Validated: the key opens a new session; the validated one is still found by sid.
      assert.equal((await s.openValidationSession(session('sid5'), T0 + 100)).sid, 'sid5');
      assert.equal((await s.getValidationSession('sid1', T0 + 100))?.validatedAt, T0 + 50);
    });

    it('an expired session is found neither by sid nor by key', async function () {
      const s = ctx.store.threepids;
      await s.openValidationSession(session('old', { expiresAt: T0 + 1000 }), T0);
      assert.equal((await s.getValidationSession('old', T0 + 1000))?.sid, 'old');
      assert.equal(await s.getValidationSession('old', T0 + 1001), null);
      assert.equal((await s.openValidationSession(session('new', { createdAt: T0 + 2000, expiresAt: T0 + 5000 }), T0 + 2000)).sid, 'new');
    });

    it('keeps addresses and sessions across a reopen', async function () {
      await ctx.store.threepids.addAccountThreepid('@a:hearth.test', { medium: 'email', address: 'a@example.org', validatedAt: T0, addedAt: T0 });
      await ctx.store.threepids.openValidationSession(session('kept'), T0);
      const store = await ctx.closeAndReopen();
      assert.equal(await store.threepids.userForThreepid('email', 'a@example.org'), '@a:hearth.test');
      assert.equal((await store.threepids.getValidationSession('kept', T0))?.clientSecret, 'cs');
    });
  });
}
