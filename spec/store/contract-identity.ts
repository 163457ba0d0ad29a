// Contract: IdentityBindingStore (src/store/identity-types.ts).

import { assert } from '../helpers/assert.js';
import type { ContractContext } from './contract.js';

export function describeIdentityBindingContract(ctx: ContractContext): void {
  describe('identity-server bindings', function () {
    it('records bindings per user, idempotently, listed by medium, address, id_server', async function () {
      const s = ctx.store.identityBindings;
      assert.deepEqual(await s.listIdentityBindings('@a:hearth.test'), []);
      await s.addIdentityBinding('@a:hearth.test', { medium: 'email', address: 'z@example.org', idServer: 'is.example.org' });
      await s.addIdentityBinding('@a:hearth.test', { medium: 'email', address: 'a@example.org', idServer: 'is2.example.org:8443' });
      await s.addIdentityBinding('@a:hearth.test', { medium: 'email', address: 'a@example.org', idServer: 'is.example.org' });
      await s.addIdentityBinding('@a:hearth.test', { medium: 'email', address: 'a@example.org', idServer: 'is.example.org' }); // again
      await s.addIdentityBinding('@a:hearth.test', { medium: 'msisdn', address: '4412345', idServer: 'is.example.org' });
      await s.addIdentityBinding('@b:hearth.test', { medium: 'email', address: 'a@example.org', idServer: 'is.example.org' });
      assert.deepEqual(await s.listIdentityBindings('@a:hearth.test'), [
        { medium: 'email', address: 'a@example.org', idServer: 'is.example.org' },
        { medium: 'email', address: 'a@example.org', idServer: 'is2.example.org:8443' },
        { medium: 'email', address: 'z@example.org', idServer: 'is.example.org' },
        { medium: 'msisdn', address: '4412345', idServer: 'is.example.org' },
      ]);
      assert.deepEqual(await s.listIdentityBindings('@b:hearth.test'), [{ medium: 'email', address: 'a@example.org', idServer: 'is.example.org' }]);
    });

    it('removes exactly the binding named; an absent one is a no-op', async function () {
      const s = ctx.store.identityBindings;
      await s.addIdentityBinding('@a:hearth.test', { medium: 'email', address: 'a@example.org', idServer: 'is.example.org' });
      await s.addIdentityBinding('@a:hearth.test', { medium: 'email', address: 'a@example.org', idServer: 'other.example.org' });
      await s.addIdentityBinding('@b:hearth.test', { medium: 'email', address: 'a@example.org', idServer: 'is.example.org' });
      await s.removeIdentityBinding('@a:hearth.test', { medium: 'email', address: 'a@example.org', idServer: 'is.example.org' });
      await s.removeIdentityBinding('@a:hearth.test', { medium: 'email', address: 'nobody@example.org', idServer: 'is.example.org' });
      assert.deepEqual(await s.listIdentityBindings('@a:hearth.test'), [{ medium: 'email', address: 'a@example.org', idServer: 'other.example.org' }]);
      assert.deepEqual(await s.listIdentityBindings('@b:hearth.test'), [{ medium: 'email', address: 'a@example.org', idServer: 'is.example.org' }]);
    });

    it('keeps bindings across a reopen', async function () {
      await ctx.store.identityBindings.addIdentityBinding('@a:hearth.test', { medium: 'email', address: 'a@example.org', idServer: 'is.example.org' });
      const store = await ctx.closeAndReopen();
      assert.deepEqual(await store.identityBindings.listIdentityBindings('@a:hearth.test'), [{ medium: 'email', address: 'a@example.org', idServer: 'is.example.org' }]);
    });
  });
}
