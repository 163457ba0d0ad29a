// Contract: AppServiceStore (src/store/appservice-types.ts).

import { assert } from '../helpers/assert.js';
import type { ContractContext } from './contract.js';

export function describeAppServiceContract(ctx: ContractContext): void {
  describe('application services', function () {
    it('stores each AS delivery state on its own; an unknown AS reads as null', async function () {
      const s = ctx.store.appServices;
      assert.equal(await s.getAppServiceState('irc'), null);
      await s.setAppServiceState('irc', { position: 120, lastTxnId: 3 });
      await s.setAppServiceState('slack', { position: 7, lastTxnId: 1 });
      assert.deepEqual(await s.getAppServiceState('irc'), { position: 120, lastTxnId: 3 });
      await s.setAppServiceState('irc', { position: 4_000_000_000_123, lastTxnId: 4 });
      assert.deepEqual(await s.getAppServiceState('irc'), { position: 4_000_000_000_123, lastTxnId: 4 });
      assert.deepEqual(await s.getAppServiceState('slack'), { position: 7, lastTxnId: 1 });
    });

    it('keeps the delivery state across a reopen', async function () {
      if (!ctx.canReopen) this.skip();
      await ctx.store.appServices.setAppServiceState('irc', { position: 55, lastTxnId: 9 });
      const store = await ctx.closeAndReopen();
      assert.deepEqual(await store.appServices.getAppServiceState('irc'), { position: 55, lastTxnId: 9 });
    });

    it('publishes and withdraws rooms per AS and network, listed in order', async function () {
      const s = ctx.store.appServices;
      await s.setAppServiceRoom('irc', 'libera', '!b:hearth.test', true);
      await s.setAppServiceRoom('irc', 'libera', '!a:hearth.test', true);
      await s.setAppServiceRoom('irc', 'freenode', '!c:hearth.test', true);
      await s.setAppServiceRoom('irc', 'libera', '!a:hearth.test', true); // idempotent
      await s.setAppServiceRoom('slack', 'work', '!a:hearth.test', true);
      assert.deepEqual(await s.listAppServiceRooms('irc'), [
        { networkId: 'freenode', roomId: '!c:hearth.test' },
        { networkId: 'libera', roomId: '!a:hearth.test' },
        { networkId: 'libera', roomId: '!b:hearth.test' },
      ]);
      await s.setAppServiceRoom('irc', 'libera', '!a:hearth.test', false);
      await s.setAppServiceRoom('irc', 'libera', '!zzz:hearth.test', false); // absent: no error
      assert.deepEqual(await s.listAppServiceRooms('irc'), [
        { networkId: 'freenode', roomId: '!c:hearth.test' },
        { networkId: 'libera', roomId: '!b:hearth.test' },
      ]);
      assert.deepEqual(await s.listAppServiceRooms('slack'), [{ networkId: 'work', roomId: '!a:hearth.test' }]);
      assert.deepEqual(await s.listAppServiceRooms('none'), []);
    });
  });
}
