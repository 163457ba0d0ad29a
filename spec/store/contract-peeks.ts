// Contract: PeekStore (src/store/peek-types.ts): a device's MSC2753 peeks, positioned starts
// and ends with their change records, durable across a reopen.

import { assert } from '../helpers/assert.js';
import type { ChangeRecord } from '../../src/store/change-types.js';
import type { StoreBackend } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';

export function describePeekContract(ctx: ContractContext): void {
  describe('peeks (MSC2753)', function () {
    const u = '@peeker:x';

    it('starts, ends and restarts a peek per device at stream positions, with peek change records', async function () {
      const s = ctx.store.peeks;
      const seen: ChangeRecord[] = [];
      // Every backend is a StoreBackend; the contract's harness types it as the domain Store.
      (ctx.store as StoreBackend).onChanges((changes) => seen.push(...changes));
      assert.deepEqual(await s.getPeeks(u, 'D1'), []);
      const p1 = await s.startPeek(u, 'D1', '!b:x');
      const p2 = await s.startPeek(u, 'D1', '!a:x');
      await s.startPeek(u, 'D2', '!c:x');
      assert.ok(p2 > p1);
      assert.ok(ctx.store.currentPosition() >= p2, 'completed before the promise resolved');
      assert.deepEqual(await s.getPeeks(u, 'D1'), [
        { roomId: '!a:x', stream: p2, endedAt: null },
        { roomId: '!b:x', stream: p1, endedAt: null },
      ]);
      assert.deepEqual((await s.getPeeks(u, 'D2')).map((p) => p.roomId), ['!c:x'], 'per device');
      assert.deepEqual(await s.getPeeks('@other:x', 'D1'), []);

      const end = await s.endPeek(u, 'D1', '!b:x');
      assert.ok(end !== null && end > p2);
      assert.equal(await s.endPeek(u, 'D1', '!b:x'), null, 'already ended');
      assert.equal(await s.endPeek(u, 'D1', '!never:x'), null, 'never peeked');
      assert.deepEqual((await s.getPeeks(u, 'D1')).find((p) => p.roomId === '!b:x'), { roomId: '!b:x', stream: p1, endedAt: end });

      const again = await s.startPeek(u, 'D1', '!b:x');
      assert.ok(again > end!);
      assert.deepEqual((await s.getPeeks(u, 'D1')).find((p) => p.roomId === '!b:x'), { roomId: '!b:x', stream: again, endedAt: null });

      const peekRecords = seen.filter((c) => c.kind === 'peek');
      assert.deepEqual(peekRecords, [
        { kind: 'peek', stream: p1, userId: u, deviceId: 'D1', roomId: '!b:x' },
        { kind: 'peek', stream: p2, userId: u, deviceId: 'D1', roomId: '!a:x' },
        { kind: 'peek', stream: peekRecords[2]!.stream, userId: u, deviceId: 'D2', roomId: '!c:x' },
        { kind: 'peek', stream: end, userId: u, deviceId: 'D1', roomId: '!b:x' },
        { kind: 'peek', stream: again, userId: u, deviceId: 'D1', roomId: '!b:x' },
      ], 'no record for the ends that changed nothing');
    });

    it('deleting a device deletes its peeks, and only its', async function () {
      const s = ctx.store.peeks;
      await s.startPeek(u, 'D1', '!a:x');
      await s.startPeek(u, 'D1', '!b:x');
      await s.endPeek(u, 'D1', '!b:x');
      const kept = await s.startPeek(u, 'D2', '!a:x');
      await ctx.store.devices.deleteDevice(u, 'D1');
      assert.deepEqual(await s.getPeeks(u, 'D1'), []);
      assert.deepEqual(await s.getPeeks(u, 'D2'), [{ roomId: '!a:x', stream: kept, endedAt: null }]);
    });

    it('keeps peeks across a reopen', async function () {
      if (!ctx.canReopen) this.skip();
      const start = await ctx.store.peeks.startPeek(u, 'D1', '!r:x');
      const end = await ctx.store.peeks.endPeek(u, 'D1', '!r:x');
      const kept = await ctx.store.peeks.startPeek(u, 'D1', '!s:x');
      const reopened = await ctx.closeAndReopen();
      assert.deepEqual(await reopened.peeks.getPeeks(u, 'D1'), [
        { roomId: '!r:x', stream: start, endedAt: end },
        { roomId: '!s:x', stream: kept, endedAt: null },
      ]);
    });
  });
}
