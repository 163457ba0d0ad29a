// Contract: E2eeStore room key backup (versions, keys, replacement rules, etag and count).

import { assert } from '../helpers/assert.js';
import type { RoomKeyData, RoomKeyRecord } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';
import { assertConflict, userId } from './fixtures.js';

const ALG = 'm.megolm_backup.v1.curve25519-aes-sha2';
const ROOM1 = '!one:hearth.test';
const ROOM2 = '!two:hearth.test';

function data(fmi: number, fc: number, verified: boolean, tag = `${fmi}/${fc}/${verified}`): RoomKeyData {
  return { first_message_index: fmi, forwarded_count: fc, is_verified: verified, session_data: { ciphertext: tag, mac: 'm', ephemeral: 'e' } };
}

function key(roomId: string, sessionId: string, d: RoomKeyData): RoomKeyRecord {
  return { roomId, sessionId, data: d };
}

export function describeE2eeBackupContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');
  const auth = (n: number) => ({ public_key: `pk${n}`, signatures: {} });
  const sessions = (ks: RoomKeyRecord[]) => ks.map((k) => `${k.roomId}|${k.sessionId}`);

  describe('e2ee: backup versions', function () {
    it('creates versions "1", "2", ... per user; the latest is the default', async function () {
      assert.equal(await ctx.store.e2ee.getBackupVersion(alice), null);
      assert.equal(await ctx.store.e2ee.createBackupVersion(alice, ALG, auth(1)), '1');
      assert.equal(await ctx.store.e2ee.createBackupVersion(alice, ALG, auth(2)), '2');
      assert.equal(await ctx.store.e2ee.createBackupVersion(bob, ALG, auth(9)), '1', 'numbered per user');
      const latest = await ctx.store.e2ee.getBackupVersion(alice);
      assert.ok(latest);
      assert.deepEqual({ ...latest, etag: 'x' }, { version: '2', algorithm: ALG, authData: auth(2), etag: 'x', count: 0 });
      assert.equal(typeof latest.etag, 'string');
      assert.deepEqual((await ctx.store.e2ee.getBackupVersion(alice, '1'))?.authData, auth(1));
      for (const v of ['3', '0', '01', 'abc', '', '-1', '1.0']) assert.equal(await ctx.store.e2ee.getBackupVersion(alice, v), null, v);
    });

    it('hands out distinct versions to concurrent creates', async function () {
      const vs = await Promise.all(Array.from({ length: 5 }, (_, i) => ctx.store.e2ee.createBackupVersion(alice, ALG, auth(i))));
      assert.deepEqual([...vs].sort(), ['1', '2', '3', '4', '5']);
    });

    it('updates the auth data of an existing version only', async function () {
      const v = await ctx.store.e2ee.createBackupVersion(alice, ALG, auth(1));
      assert.equal(await ctx.store.e2ee.updateBackupVersion(alice, v, ALG, auth(7)), true);
      assert.deepEqual((await ctx.store.e2ee.getBackupVersion(alice, v))?.authData, auth(7));
      assert.equal(await ctx.store.e2ee.updateBackupVersion(alice, '2', ALG, auth(8)), false);
      assert.equal(await ctx.store.e2ee.updateBackupVersion(bob, v, ALG, auth(8)), false);
      assert.equal(await ctx.store.e2ee.getBackupVersion(bob), null);
    });

    it('deletes a version with its keys and never reuses its number', async function () {
      const v1 = await ctx.store.e2ee.createBackupVersion(alice, ALG, auth(1));
      const v2 = await ctx.store.e2ee.createBackupVersion(alice, ALG, auth(2));
      await ctx.store.e2ee.putRoomKeys(alice, v2, [key(ROOM1, 's1', data(0, 0, true))]);
      assert.equal(await ctx.store.e2ee.deleteBackupVersion(alice, v2), true);
      assert.equal(await ctx.store.e2ee.deleteBackupVersion(alice, v2), false);
      assert.equal(await ctx.store.e2ee.deleteBackupVersion(alice, '99'), false);
      assert.equal(await ctx.store.e2ee.getBackupVersion(alice, v2), null);
      assert.equal((await ctx.store.e2ee.getBackupVersion(alice))?.version, v1, 'latest non-deleted');
      assert.deepEqual(await ctx.store.e2ee.getRoomKeys(alice, v2), []);
      assert.equal(await ctx.store.e2ee.updateBackupVersion(alice, v2, ALG, auth(3)), false);
      await assertConflict(ctx.store.e2ee.putRoomKeys(alice, v2, [key(ROOM1, 's2', data(0, 0, true))]));
      assert.equal(await ctx.store.e2ee.createBackupVersion(alice, ALG, auth(3)), '3');
      assert.deepEqual(await ctx.store.e2ee.getRoomKeys(alice, '3'), []);
      await ctx.store.e2ee.deleteBackupVersion(alice, '3');
      await ctx.store.e2ee.deleteBackupVersion(alice, v1);
      assert.equal(await ctx.store.e2ee.getBackupVersion(alice), null);
    });
  });

  describe('e2ee: backup keys', function () {
    it('stores keys, counts them and moves the etag when they change', async function () {
      const v = await ctx.store.e2ee.createBackupVersion(alice, ALG, auth(1));
      const etag0 = (await ctx.store.e2ee.getBackupVersion(alice, v))!.etag;
      const r1 = await ctx.store.e2ee.putRoomKeys(alice, v, [
        key(ROOM1, 's1', data(0, 0, false)),
        key(ROOM1, 's2', data(3, 1, true)),
        key(ROOM2, 's1', data(5, 0, false)),
      ]);
      assert.equal(r1.count, 3);
      assert.notEqual(r1.etag, etag0);
      const info = await ctx.store.e2ee.getBackupVersion(alice, v);
      assert.equal(info?.etag, r1.etag);
      assert.equal(info?.count, 3);

      assert.deepEqual(sessions(await ctx.store.e2ee.getRoomKeys(alice, v)).sort(), [`${ROOM1}|s1`, `${ROOM1}|s2`, `${ROOM2}|s1`]);
      assert.deepEqual(sessions(await ctx.store.e2ee.getRoomKeys(alice, v, ROOM1)).sort(), [`${ROOM1}|s1`, `${ROOM1}|s2`]);
      assert.deepEqual(await ctx.store.e2ee.getRoomKeys(alice, v, ROOM1, 's2'), [key(ROOM1, 's2', data(3, 1, true))]);
      assert.deepEqual(await ctx.store.e2ee.getRoomKeys(alice, v, ROOM2, 's2'), []);
      assert.deepEqual(await ctx.store.e2ee.getRoomKeys(alice, '77'), []);

      // Nothing better: neither etag nor count moves.
      const r2 = await ctx.store.e2ee.putRoomKeys(alice, v, [key(ROOM1, 's1', data(1, 0, false)), key(ROOM1, 's2', data(3, 1, true, 'same rank'))]);
      assert.deepEqual(r2, r1);
      assert.deepEqual(await ctx.store.e2ee.getRoomKeys(alice, v, ROOM1, 's2'), [key(ROOM1, 's2', data(3, 1, true))]);
      assert.deepEqual(await ctx.store.e2ee.putRoomKeys(alice, v, []), r1);

      // A replacement moves the etag but not the count; a new session moves both.
      const r3 = await ctx.store.e2ee.putRoomKeys(alice, v, [key(ROOM1, 's1', data(0, 0, true))]);
      assert.equal(r3.count, 3);
      assert.notEqual(r3.etag, r1.etag);
      const r4 = await ctx.store.e2ee.putRoomKeys(alice, v, [key(ROOM2, 's9', data(0, 0, true))]);
      assert.equal(r4.count, 4);
      assert.ok(![etag0, r1.etag, r3.etag].includes(r4.etag));
    });

    it('replaces a session only with a better copy: verified, then lower first index, then lower forwarded count', async function () {
      const v = await ctx.store.e2ee.createBackupVersion(alice, ALG, auth(1));
      const cases: Array<[string, RoomKeyData, RoomKeyData, boolean]> = [
        ['verified beats unverified', data(5, 3, false), data(9, 9, true), true],
        ['unverified never beats verified', data(5, 3, true), data(0, 0, false), false],
        ['lower first index wins', data(5, 3, true), data(4, 9, true), true],
        ['higher first index loses', data(5, 3, false), data(6, 0, false), false],
        ['lower forwarded count wins at equal index', data(5, 3, false), data(5, 2, false), true],
        ['higher forwarded count loses', data(5, 3, true), data(5, 4, true), false],
        ['an equal copy keeps the existing one', data(5, 3, true), data(5, 3, true, 'other'), false],
      ];
      await ctx.store.e2ee.putRoomKeys(alice, v, cases.map(([name, existing]) => key(ROOM1, name, existing)));
      await ctx.store.e2ee.putRoomKeys(alice, v, cases.map(([name, , incoming]) => key(ROOM1, name, incoming)));
      for (const [name, existing, incoming, replaced] of cases) {
        assert.deepEqual(await ctx.store.e2ee.getRoomKeys(alice, v, ROOM1, name), [key(ROOM1, name, replaced ? incoming : existing)], name);
      }
      assert.equal((await ctx.store.e2ee.getBackupVersion(alice, v))?.count, cases.length);
    });

    it('deletes keys by session, by room or all, keeping count and etag in step', async function () {
      const v = await ctx.store.e2ee.createBackupVersion(alice, ALG, auth(1));
      const put = await ctx.store.e2ee.putRoomKeys(alice, v, [
        key(ROOM1, 's1', data(0, 0, true)),
        key(ROOM1, 's2', data(0, 0, true)),
        key(ROOM2, 's1', data(0, 0, true)),
        key(ROOM2, 's2', data(0, 0, true)),
        key(ROOM2, 's3', data(0, 0, true)),
      ]);
      const d1 = await ctx.store.e2ee.deleteRoomKeys(alice, v, ROOM1, 's2');
      assert.equal(d1.count, 4);
      assert.notEqual(d1.etag, put.etag);
      const none = await ctx.store.e2ee.deleteRoomKeys(alice, v, ROOM1, 'missing');
      assert.deepEqual(none, d1, 'deleting nothing changes nothing');
      const d2 = await ctx.store.e2ee.deleteRoomKeys(alice, v, ROOM2);
      assert.equal(d2.count, 1);
      assert.notEqual(d2.etag, d1.etag);
      assert.deepEqual(sessions(await ctx.store.e2ee.getRoomKeys(alice, v)), [`${ROOM1}|s1`]);
      const d3 = await ctx.store.e2ee.deleteRoomKeys(alice, v);
      assert.equal(d3.count, 0);
      assert.deepEqual(await ctx.store.e2ee.getBackupVersion(alice, v).then((b) => b && { etag: b.etag, count: b.count }), d3);
      await assertConflict(ctx.store.e2ee.deleteRoomKeys(alice, '42'));
    });

    it('keeps versions and users apart', async function () {
      const v1 = await ctx.store.e2ee.createBackupVersion(alice, ALG, auth(1));
      const v2 = await ctx.store.e2ee.createBackupVersion(alice, ALG, auth(2));
      const b1 = await ctx.store.e2ee.createBackupVersion(bob, ALG, auth(3));
      await ctx.store.e2ee.putRoomKeys(alice, v1, [key(ROOM1, 's1', data(0, 0, true))]);
      await ctx.store.e2ee.putRoomKeys(alice, v2, [key(ROOM1, 's1', data(9, 9, false)), key(ROOM1, 's2', data(0, 0, false))]);
      await ctx.store.e2ee.putRoomKeys(bob, b1, [key(ROOM2, 's1', data(0, 0, false))]);
      assert.deepEqual(await ctx.store.e2ee.getRoomKeys(alice, v1), [key(ROOM1, 's1', data(0, 0, true))]);
      assert.equal((await ctx.store.e2ee.getRoomKeys(alice, v2)).length, 2);
      assert.deepEqual(sessions(await ctx.store.e2ee.getRoomKeys(bob, b1)), [`${ROOM2}|s1`]);
      await ctx.store.e2ee.deleteRoomKeys(alice, v2);
      assert.equal((await ctx.store.e2ee.getRoomKeys(alice, v1)).length, 1);
      assert.equal((await ctx.store.e2ee.getBackupVersion(bob, b1))?.count, 1);
    });

    it('owns its copies of session data', async function () {
      const v = await ctx.store.e2ee.createBackupVersion(alice, ALG, auth(1));
      const k = key(ROOM1, 's1', data(0, 0, true));
      await ctx.store.e2ee.putRoomKeys(alice, v, [k]);
      k.data.session_data.ciphertext = 'mutated';
      const [got] = await ctx.store.e2ee.getRoomKeys(alice, v);
      assert.equal(got.data.session_data.ciphertext, '0/0/true');
      got.data.session_data.ciphertext = 'mutated';
      assert.equal((await ctx.store.e2ee.getRoomKeys(alice, v))[0].data.session_data.ciphertext, '0/0/true');
    });

    it('keeps versions, keys and etags across a reopen', async function () {
      if (!ctx.canReopen) this.skip();
      const v1 = await ctx.store.e2ee.createBackupVersion(alice, ALG, auth(1));
      const v2 = await ctx.store.e2ee.createBackupVersion(alice, ALG, auth(2));
      await ctx.store.e2ee.deleteBackupVersion(alice, v2);
      const put = await ctx.store.e2ee.putRoomKeys(alice, v1, [key(ROOM1, 's1', data(2, 0, false)), key(ROOM2, 's1', data(0, 0, true))]);
      const store = await ctx.closeAndReopen();
      const info = await store.e2ee.getBackupVersion(alice);
      assert.deepEqual(info, { version: v1, algorithm: ALG, authData: auth(1), etag: put.etag, count: 2 });
      assert.deepEqual(await store.e2ee.getRoomKeys(alice, v1, ROOM1), [key(ROOM1, 's1', data(2, 0, false))]);
      assert.equal(await store.e2ee.createBackupVersion(alice, ALG, auth(3)), '3');
      const again = await store.e2ee.putRoomKeys(alice, v1, [key(ROOM1, 's1', data(1, 0, false))]);
      assert.ok(again.etag !== put.etag && again.count === 2);
    });
  });
}
