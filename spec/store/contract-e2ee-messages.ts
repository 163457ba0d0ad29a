// Contract: E2eeStore device-list change stream, to-device messages and device removal.

import { assert } from '../helpers/assert.js';
import type { ToDeviceInput, ToDeviceMessage } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';
import { deviceKeys, otk } from './contract-e2ee-keys.js';
import { FakeRoom, userId } from './fixtures.js';

export function describeE2eeMessagesContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');
  const carol = userId('carol');

  const msg = (user: string, device: string, n: number, sender = carol): ToDeviceInput => ({
    userId: user,
    deviceId: device,
    type: 'm.room.encrypted',
    sender,
    content: { n, ciphertext: { x: `c${n}` } },
  });
  const ns = (ms: ToDeviceMessage[]) => ms.map((m) => m.content.n);

  describe('e2ee: device-list changes', function () {
    it('gives each change a new, completed position on the global stream', async function () {
      const room = new FakeRoom();
      await room.create(ctx.store, alice);
      const [p1, ev, p2, ad] = await Promise.all([
        ctx.store.e2ee.markDeviceListChanged(alice),
        room.message(ctx.store, alice, 'hi'),
        ctx.store.e2ee.markDeviceListChanged(bob),
        ctx.store.userData.setAccountData(alice, '', 't', {}),
      ]);
      assert.equal(new Set([p1, ev.stream, p2, ad]).size, 4);
      assert.ok(p2 > p1);
      assert.ok(ctx.store.currentPosition() >= Math.max(p1, p2, ev.stream, ad));
    });

    it('lists the distinct users changed in (from, to]', async function () {
      const s0 = ctx.store.currentPosition();
      const a1 = await ctx.store.e2ee.markDeviceListChanged(alice);
      const b1 = await ctx.store.e2ee.markDeviceListChanged(bob);
      const a2 = await ctx.store.e2ee.markDeviceListChanged(alice);
      const c1 = await ctx.store.e2ee.markDeviceListChanged(carol);
      const sorted = (xs: string[]) => [...xs].sort();
      assert.deepEqual(sorted(await ctx.store.e2ee.getDeviceListChanges(s0, c1)), sorted([alice, bob, carol]));
      assert.equal((await ctx.store.e2ee.getDeviceListChanges(s0, c1)).length, 3, 'distinct');
      assert.deepEqual(await ctx.store.e2ee.getDeviceListChanges(s0, a1), [alice], 'to is inclusive');
      assert.deepEqual(await ctx.store.e2ee.getDeviceListChanges(a1, b1), [bob], 'from is exclusive');
      assert.deepEqual(sorted(await ctx.store.e2ee.getDeviceListChanges(a1, a2)), sorted([alice, bob]));
      // A later change does not hide an earlier one from a past range (/keys/changes).
      assert.deepEqual(await ctx.store.e2ee.getDeviceListChanges(s0, a1), [alice]);
      assert.deepEqual(await ctx.store.e2ee.getDeviceListChanges(c1, ctx.store.currentPosition()), []);
      assert.deepEqual(await ctx.store.e2ee.getDeviceListChanges(c1, s0), [], 'empty or reversed range');
    });

    it('keeps the change log across a reopen and continues above it', async function () {
      if (!ctx.canReopen) this.skip();
      const s0 = ctx.store.currentPosition();
      const p = await ctx.store.e2ee.markDeviceListChanged(alice);
      const store = await ctx.closeAndReopen();
      assert.ok(store.currentPosition() >= p);
      assert.deepEqual(await store.e2ee.getDeviceListChanges(s0, p), [alice]);
      assert.ok((await store.e2ee.markDeviceListChanged(bob)) > p);
    });
  });

  describe('e2ee: to-device messages', function () {
    it('gives all messages of one call one new, completed position', async function () {
      const before = ctx.store.currentPosition();
      const pos = await ctx.store.e2ee.queueToDevice([msg(alice, 'A', 1), msg(alice, 'A2', 2), msg(bob, 'B', 3)]);
      assert.ok(pos > before && ctx.store.currentPosition() >= pos);
      const got = await ctx.store.e2ee.getToDevice(alice, 'A', pos, 10);
      assert.deepEqual(got, [{ stream: pos, type: 'm.room.encrypted', sender: carol, content: { n: 1, ciphertext: { x: 'c1' } } }]);
      assert.deepEqual(ns(await ctx.store.e2ee.getToDevice(alice, 'A2', pos, 10)), [2]);
      assert.deepEqual(ns(await ctx.store.e2ee.getToDevice(bob, 'B', pos, 10)), [3]);
      assert.deepEqual(await ctx.store.e2ee.getToDevice(bob, 'A', pos, 10), []);
      const next = await ctx.store.e2ee.queueToDevice([msg(alice, 'A', 4)]);
      assert.ok(next > pos);
    });

    it('returns messages oldest first, bounded by upTo and limit', async function () {
      const p1 = await ctx.store.e2ee.queueToDevice([msg(alice, 'A', 1)]);
      const p2 = await ctx.store.e2ee.queueToDevice([msg(alice, 'A', 2), msg(alice, 'A', 3)]);
      const p3 = await ctx.store.e2ee.queueToDevice([msg(alice, 'A', 4)]);
      const all = await ctx.store.e2ee.getToDevice(alice, 'A', p3, 100);
      assert.deepEqual(ns(all), [1, 2, 3, 4], 'in queue order, also within one position');
      assert.deepEqual(all.map((m) => m.stream), [p1, p2, p2, p3]);
      assert.deepEqual(ns(await ctx.store.e2ee.getToDevice(alice, 'A', p2, 100)), [1, 2, 3]);
      assert.deepEqual(ns(await ctx.store.e2ee.getToDevice(alice, 'A', p1 - 1, 100)), []);
      assert.deepEqual(ns(await ctx.store.e2ee.getToDevice(alice, 'A', p3, 2)), [1, 2]);
      assert.deepEqual(ns(await ctx.store.e2ee.getToDevice(alice, 'A', p3, 1)), [1]);
      assert.deepEqual(await ctx.store.e2ee.getToDevice(alice, 'A', p3, 0), []);
    });

    it('deletes only the acknowledged messages (stream <= upTo) of that device', async function () {
      const p1 = await ctx.store.e2ee.queueToDevice([msg(alice, 'A', 1), msg(alice, 'OTHER', 9)]);
      const p2 = await ctx.store.e2ee.queueToDevice([msg(alice, 'A', 2), msg(alice, 'A', 3)]);
      const p3 = await ctx.store.e2ee.queueToDevice([msg(alice, 'A', 4)]);
      await ctx.store.e2ee.ackToDevice(alice, 'A', p1 - 1);
      assert.deepEqual(ns(await ctx.store.e2ee.getToDevice(alice, 'A', p3, 100)), [1, 2, 3, 4]);
      await ctx.store.e2ee.ackToDevice(alice, 'A', p2);
      assert.deepEqual(ns(await ctx.store.e2ee.getToDevice(alice, 'A', p3, 100)), [4]);
      assert.deepEqual(ns(await ctx.store.e2ee.getToDevice(alice, 'OTHER', p3, 100)), [9], 'other devices keep theirs');
      await ctx.store.e2ee.ackToDevice(alice, 'A', p2);
      await ctx.store.e2ee.ackToDevice(alice, 'A', ctx.store.currentPosition());
      assert.deepEqual(await ctx.store.e2ee.getToDevice(alice, 'A', ctx.store.currentPosition(), 100), []);
      await ctx.store.e2ee.ackToDevice(bob, 'NOBODY', ctx.store.currentPosition());
    });

    it('owns its copy of message content', async function () {
      const m = msg(alice, 'A', 1);
      const pos = await ctx.store.e2ee.queueToDevice([m]);
      m.content.n = 99;
      const [got] = await ctx.store.e2ee.getToDevice(alice, 'A', pos, 10);
      assert.equal(got.content.n, 1);
      got.content.n = 42;
      assert.deepEqual(ns(await ctx.store.e2ee.getToDevice(alice, 'A', pos, 10)), [1]);
    });

    it('keeps queued messages across a reopen', async function () {
      if (!ctx.canReopen) this.skip();
      const p1 = await ctx.store.e2ee.queueToDevice([msg(alice, 'A', 1), msg(alice, 'A', 2)]);
      const p2 = await ctx.store.e2ee.queueToDevice([msg(alice, 'A', 3)]);
      await ctx.store.e2ee.ackToDevice(alice, 'A', p1 - 1);
      const store = await ctx.closeAndReopen();
      assert.ok(store.currentPosition() >= p2);
      const got = await store.e2ee.getToDevice(alice, 'A', store.currentPosition(), 10);
      assert.deepEqual(ns(got), [1, 2, 3]);
      assert.deepEqual(got.map((m) => m.stream), [p1, p1, p2]);
      const p3 = await store.e2ee.queueToDevice([msg(alice, 'A', 4)]);
      assert.ok(p3 > p2, 'no position is reused after reopen');
    });
  });

  describe('e2ee: deleting a device', function () {
    it("removes the device's keys, one-time and fallback keys and pending messages, and marks the list changed", async function () {
      await ctx.store.e2ee.setDeviceKeys(alice, 'A', deviceKeys(alice, 'A'));
      await ctx.store.e2ee.setDeviceKeys(alice, 'KEEP', deviceKeys(alice, 'KEEP'));
      await ctx.store.e2ee.addOneTimeKeys(alice, 'A', [otk('K1'), otk('K2')]);
      await ctx.store.e2ee.addOneTimeKeys(alice, 'KEEP', [otk('K1')]);
      await ctx.store.e2ee.claimOneTimeKey(alice, 'A', 'signed_curve25519');
      await ctx.store.e2ee.setFallbackKey(alice, 'A', 'signed_curve25519', 'F', 'f');
      await ctx.store.e2ee.setFallbackKey(alice, 'KEEP', 'signed_curve25519', 'F', 'f');
      const sig = (device: string) => ({ targetUserId: alice, targetKeyId: device, signerUserId: alice, signerKeyId: 'ed25519:SSK', signature: device });
      await ctx.store.e2ee.addSignatures([sig('A'), sig('KEEP')]);
      const pos = await ctx.store.e2ee.queueToDevice([msg(alice, 'A', 1), msg(alice, 'KEEP', 2)]);
      const s0 = ctx.store.currentPosition();

      await ctx.store.e2ee.deleteDeviceE2ee(alice, 'A');
      assert.deepEqual(await ctx.store.e2ee.getDeviceListChanges(s0, ctx.store.currentPosition()), [alice]);
      assert.deepEqual([...(await ctx.store.e2ee.getDeviceKeys([alice])).get(alice)!.keys()], ['KEEP']);
      assert.deepEqual(await ctx.store.e2ee.countOneTimeKeys(alice, 'A'), {});
      assert.equal(await ctx.store.e2ee.claimOneTimeKey(alice, 'A', 'signed_curve25519'), null, 'no fallback either');
      assert.deepEqual(await ctx.store.e2ee.getUnusedFallbackKeyTypes(alice, 'A'), []);
      assert.deepEqual(await ctx.store.e2ee.getToDevice(alice, 'A', pos, 10), []);

      assert.deepEqual(await ctx.store.e2ee.countOneTimeKeys(alice, 'KEEP'), { signed_curve25519: 1 });
      assert.deepEqual(await ctx.store.e2ee.getUnusedFallbackKeyTypes(alice, 'KEEP'), ['signed_curve25519']);
      assert.deepEqual(ns(await ctx.store.e2ee.getToDevice(alice, 'KEEP', pos, 10)), [2]);
      assert.deepEqual(await ctx.store.e2ee.getSignatures([alice]), [sig('KEEP')], 'signatures on the deleted device go too');

      // A new device under the same ID starts from scratch, including its one-time key IDs.
      assert.equal(await ctx.store.e2ee.setDeviceKeys(alice, 'A', deviceKeys(alice, 'A')), 'stored');
      await ctx.store.e2ee.addOneTimeKeys(alice, 'A', [{ algorithm: 'signed_curve25519', keyId: 'K1', key: 'fresh' }]);
      assert.deepEqual(await ctx.store.e2ee.countOneTimeKeys(alice, 'A'), { signed_curve25519: 1 });
    });

    it('marks the list changed even for a device that never uploaded keys', async function () {
      const s0 = ctx.store.currentPosition();
      await ctx.store.e2ee.deleteDeviceE2ee(bob, 'NONE');
      assert.deepEqual(await ctx.store.e2ee.getDeviceListChanges(s0, ctx.store.currentPosition()), [bob]);
    });
  });
}
