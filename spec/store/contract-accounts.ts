// Contract: AccountStore and DeviceStore.

import { assert } from '../helpers/assert.js';
import type { ContractContext } from './contract.js';
import { assertConflict, userId } from './fixtures.js';

export function describeAccountContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');

  describe('accounts', function () {
    it('creates and reads back a user with defaults', async function () {
      await ctx.store.accounts.createUser({ userId: alice, passwordHash: '$scrypt$x', admin: true, createdTs: 1234, displayname: 'Alice' });
      assert.deepEqual(await ctx.store.accounts.getUser(alice), {
        userId: alice,
        passwordHash: '$scrypt$x',
        admin: true,
        deactivated: false,
        createdTs: 1234,
        displayname: 'Alice',
        avatarUrl: null,
        isGuest: false,
      });
      assert.equal(await ctx.store.accounts.getUser(bob), null);
    });

    it('guest accounts: flagged, upgraded once to a full account with a password', async function () {
      await ctx.store.accounts.createUser({ userId: bob, passwordHash: null, admin: false, createdTs: 1, displayname: null, isGuest: true });
      await ctx.store.accounts.createUser({ userId: alice, passwordHash: 'h', admin: false, createdTs: 1, displayname: null });
      assert.equal((await ctx.store.accounts.getUser(bob))?.isGuest, true);
      await ctx.store.devices.addAccessToken('guest-token', { userId: bob, deviceId: 'G1' }, 1);
      assert.deepEqual(await ctx.store.devices.lookupAccessToken('guest-token'), { userId: bob, deviceId: 'G1', isGuest: true });
      assert.equal(await ctx.store.accounts.upgradeGuest(alice, 'x'), false, 'not a guest');
      assert.equal((await ctx.store.accounts.getUser(alice))?.passwordHash, 'h');
      assert.equal(await ctx.store.accounts.upgradeGuest(bob, 'pw'), true);
      const u = await ctx.store.accounts.getUser(bob);
      assert.equal(u?.isGuest, false);
      assert.equal(u?.passwordHash, 'pw');
      assert.equal(await ctx.store.accounts.upgradeGuest(bob, 'again'), false, 'only once');
      assert.deepEqual(await ctx.store.devices.lookupAccessToken('guest-token'), { userId: bob, deviceId: 'G1', isGuest: false });
    });

    it('OpenID tokens: found until they expire, unknown ones never', async function () {
      await ctx.store.accounts.addOpenIdToken('oid-1', alice, 10_000);
      assert.equal(await ctx.store.accounts.lookupOpenIdToken('oid-1', 9_999), alice);
      assert.equal(await ctx.store.accounts.lookupOpenIdToken('oid-1', 10_000), null, 'expired at expires_ts');
      assert.equal(await ctx.store.accounts.lookupOpenIdToken('nope', 1), null);
      await ctx.store.accounts.addOpenIdToken('oid-2', bob, 10_000 + 48 * 3600_000);
      assert.equal(await ctx.store.accounts.lookupOpenIdToken('oid-2', 20_000), bob);
      assert.equal(await ctx.store.accounts.lookupOpenIdToken('oid-1', 1), null, 'long-expired tokens are pruned on issue');
    });

    it('rejects a taken user ID with StoreConflictError and keeps the original', async function () {
      await ctx.store.accounts.createUser({ userId: alice, passwordHash: 'h1', admin: false, createdTs: 1, displayname: null });
      await assertConflict(ctx.store.accounts.createUser({ userId: alice, passwordHash: 'h2', admin: true, createdTs: 2, displayname: 'X' }));
      const u = await ctx.store.accounts.getUser(alice);
      assert.equal(u?.passwordHash, 'h1');
      assert.equal(u?.admin, false);
      assert.equal(await ctx.store.accounts.countUsers(), 1);
    });

    it('accepts accounts without a password', async function () {
      await ctx.store.accounts.createUser({ userId: bob, passwordHash: null, admin: false, createdTs: 1, displayname: null });
      assert.equal((await ctx.store.accounts.getUser(bob))?.passwordHash, null);
    });

    it('sets the password hash', async function () {
      await ctx.store.accounts.createUser({ userId: alice, passwordHash: 'old', admin: false, createdTs: 1, displayname: null });
      await ctx.store.accounts.setPasswordHash(alice, 'new');
      assert.equal((await ctx.store.accounts.getUser(alice))?.passwordHash, 'new');
    });

    it('deactivates: flag set, password hash cleared, profile kept', async function () {
      await ctx.store.accounts.createUser({ userId: alice, passwordHash: 'h', admin: false, createdTs: 1, displayname: 'A' });
      await ctx.store.accounts.deactivateUser(alice);
      const u = await ctx.store.accounts.getUser(alice);
      assert.equal(u?.deactivated, true);
      assert.equal(u?.passwordHash, null);
      assert.equal(u?.displayname, 'A');
    });

    it('erasure: the first recorded position counts; only erased users are reported', async function () {
      await ctx.store.accounts.createUser({ userId: alice, passwordHash: 'h', admin: false, createdTs: 1, displayname: null });
      await ctx.store.accounts.createUser({ userId: bob, passwordHash: 'h', admin: false, createdTs: 1, displayname: null });
      assert.deepEqual(await ctx.store.accounts.getErasures([alice, bob]), new Map());
      assert.equal(await ctx.store.accounts.markErased(alice, 42), 42);
      assert.equal(await ctx.store.accounts.markErased(alice, 99), 42, 'a second erasure keeps the first position');
      assert.deepEqual(await ctx.store.accounts.getErasures([alice, bob, alice, userId('nobody')]), new Map([[alice, 42]]));
      assert.deepEqual(await ctx.store.accounts.getErasures([]), new Map());
    });

    it('setProfile: undefined leaves a field, null clears it', async function () {
      await ctx.store.accounts.createUser({ userId: alice, passwordHash: null, admin: false, createdTs: 1, displayname: 'A' });
      await ctx.store.accounts.setProfile(alice, { avatarUrl: 'mxc://hearth.test/abc' });
      let u = await ctx.store.accounts.getUser(alice);
      assert.equal(u?.displayname, 'A');
      assert.equal(u?.avatarUrl, 'mxc://hearth.test/abc');
      await ctx.store.accounts.setProfile(alice, { displayname: null });
      u = await ctx.store.accounts.getUser(alice);
      assert.equal(u?.displayname, null);
      assert.equal(u?.avatarUrl, 'mxc://hearth.test/abc');
      await ctx.store.accounts.setProfile(alice, { displayname: 'Alice 2', avatarUrl: null });
      u = await ctx.store.accounts.getUser(alice);
      assert.equal(u?.displayname, 'Alice 2');
      assert.equal(u?.avatarUrl, null);
      await ctx.store.accounts.setProfile(alice, {});
      assert.equal((await ctx.store.accounts.getUser(alice))?.displayname, 'Alice 2');
    });

    it('counts users, including deactivated ones', async function () {
      assert.equal(await ctx.store.accounts.countUsers(), 0);
      await Promise.all(
        ['a', 'b', 'c'].map((l) =>
          ctx.store.accounts.createUser({ userId: userId(l), passwordHash: null, admin: false, createdTs: 1, displayname: null }),
        ),
      );
      await ctx.store.accounts.deactivateUser(userId('b'));
      assert.equal(await ctx.store.accounts.countUsers(), 3);
    });

    it('hands out records the caller owns', async function () {
      await ctx.store.accounts.createUser({ userId: alice, passwordHash: 'h', admin: false, createdTs: 1, displayname: 'A' });
      const u = await ctx.store.accounts.getUser(alice);
      assert.ok(u);
      u.displayname = 'mutated';
      assert.equal((await ctx.store.accounts.getUser(alice))?.displayname, 'A');
    });
  });

  describe('devices and access tokens', function () {
    const device = (deviceId: string, displayName: string | null = null, ts = 100) => ({
      userId: alice,
      deviceId,
      displayName,
      ts,
      ip: '10.0.0.1',
    });

    it('creates a device and lists devices per user', async function () {
      await ctx.store.devices.upsertDevice(device('D1', 'Phone'));
      await ctx.store.devices.upsertDevice(device('D2'));
      await ctx.store.devices.upsertDevice({ userId: bob, deviceId: 'D1', displayName: 'Bob', ts: 5, ip: null });
      assert.deepEqual(await ctx.store.devices.getDevice(alice, 'D1'), {
        userId: alice,
        deviceId: 'D1',
        displayName: 'Phone',
        lastSeenTs: 100,
        lastSeenIp: '10.0.0.1',
        lastSeenUserAgent: null,
      });
      const list = await ctx.store.devices.listDevices(alice);
      assert.deepEqual(list.map((d) => d.deviceId).sort(), ['D1', 'D2']);
      assert.equal(await ctx.store.devices.getDevice(alice, 'D3'), null);
      assert.deepEqual(await ctx.store.devices.listDevices(userId('nobody')), []);
    });

    it('upsert keeps an existing device, updating the display name only when given', async function () {
      await ctx.store.devices.upsertDevice(device('D1', 'Phone'));
      await ctx.store.devices.addAccessToken('hash-1', { userId: alice, deviceId: 'D1' }, 1);
      await ctx.store.devices.upsertDevice(device('D1', null, 200));
      assert.equal((await ctx.store.devices.getDevice(alice, 'D1'))?.displayName, 'Phone');
      await ctx.store.devices.upsertDevice(device('D1', 'Tablet', 300));
      assert.equal((await ctx.store.devices.getDevice(alice, 'D1'))?.displayName, 'Tablet');
      assert.equal((await ctx.store.devices.listDevices(alice)).length, 1);
      assert.deepEqual(await ctx.store.devices.lookupAccessToken('hash-1'), { userId: alice, deviceId: 'D1', isGuest: false });
    });

    it('sets the display name and reports whether the device exists', async function () {
      await ctx.store.devices.upsertDevice(device('D1', 'Phone'));
      assert.equal(await ctx.store.devices.setDeviceDisplayName(alice, 'D1', 'Laptop'), true);
      assert.equal((await ctx.store.devices.getDevice(alice, 'D1'))?.displayName, 'Laptop');
      assert.equal(await ctx.store.devices.setDeviceDisplayName(alice, 'D1', null), true);
      assert.equal((await ctx.store.devices.getDevice(alice, 'D1'))?.displayName, null);
      assert.equal(await ctx.store.devices.setDeviceDisplayName(alice, 'nope', 'x'), false);
    });

    it('deleting a device removes its tokens only', async function () {
      await ctx.store.devices.upsertDevice(device('D1'));
      await ctx.store.devices.upsertDevice(device('D2'));
      await ctx.store.devices.addAccessToken('t1', { userId: alice, deviceId: 'D1' }, 1);
      await ctx.store.devices.addAccessToken('t1b', { userId: alice, deviceId: 'D1' }, 1);
      await ctx.store.devices.addAccessToken('t2', { userId: alice, deviceId: 'D2' }, 1);
      assert.equal(await ctx.store.devices.deleteDevice(alice, 'D1'), true);
      assert.equal(await ctx.store.devices.getDevice(alice, 'D1'), null);
      assert.equal(await ctx.store.devices.lookupAccessToken('t1'), null);
      assert.equal(await ctx.store.devices.lookupAccessToken('t1b'), null);
      assert.deepEqual(await ctx.store.devices.lookupAccessToken('t2'), { userId: alice, deviceId: 'D2', isGuest: false });
      assert.equal(await ctx.store.devices.deleteDevice(alice, 'D1'), false);
    });

    it('touchDevice records last seen; the latest of concurrent touches wins', async function () {
      await ctx.store.devices.upsertDevice(device('D1', null, 1));
      await ctx.store.devices.touchDevice(alice, 'D1', 500, '192.0.2.1');
      let d = await ctx.store.devices.getDevice(alice, 'D1');
      assert.equal(d?.lastSeenTs, 500);
      assert.equal(d?.lastSeenIp, '192.0.2.1');
      await Promise.all(Array.from({ length: 20 }, (_, i) => ctx.store.devices.touchDevice(alice, 'D1', 1000 + i, `192.0.2.${i}`)));
      d = await ctx.store.devices.getDevice(alice, 'D1');
      assert.equal(d?.lastSeenTs, 1019);
      assert.equal(d?.lastSeenIp, '192.0.2.19');
      assert.equal(d?.lastSeenUserAgent, null);
      // A user agent, once seen, stays until another one is seen.
      await ctx.store.devices.touchDevice(alice, 'D1', 2000, '192.0.2.1', 'Element/1.0');
      await ctx.store.devices.touchDevice(alice, 'D1', 2001, '192.0.2.2');
      d = await ctx.store.devices.getDevice(alice, 'D1');
      assert.equal(d?.lastSeenUserAgent, 'Element/1.0');
      assert.equal(d?.lastSeenTs, 2001);
      assert.equal(d?.displayName, null);
    });

    it('stores, looks up and deletes access tokens by hash', async function () {
      await ctx.store.devices.addAccessToken('h-a', { userId: alice, deviceId: 'D1' }, 10);
      assert.deepEqual(await ctx.store.devices.lookupAccessToken('h-a'), { userId: alice, deviceId: 'D1', isGuest: false });
      assert.equal(await ctx.store.devices.lookupAccessToken('h-unknown'), null);
      await ctx.store.devices.deleteAccessToken('h-a');
      assert.equal(await ctx.store.devices.lookupAccessToken('h-a'), null);
      await ctx.store.devices.deleteAccessToken('h-a');
    });

    it('deletes all tokens of a user, optionally sparing one device', async function () {
      await ctx.store.devices.addAccessToken('a1', { userId: alice, deviceId: 'D1' }, 1);
      await ctx.store.devices.addAccessToken('a2', { userId: alice, deviceId: 'D2' }, 1);
      await ctx.store.devices.addAccessToken('a3', { userId: alice, deviceId: 'D3' }, 1);
      await ctx.store.devices.addAccessToken('b1', { userId: bob, deviceId: 'D1' }, 1);
      await ctx.store.devices.deleteAccessTokensForUser(alice, 'D2');
      assert.equal(await ctx.store.devices.lookupAccessToken('a1'), null);
      assert.ok(await ctx.store.devices.lookupAccessToken('a2'));
      assert.equal(await ctx.store.devices.lookupAccessToken('a3'), null);
      assert.ok(await ctx.store.devices.lookupAccessToken('b1'));
      await ctx.store.devices.deleteAccessTokensForUser(alice);
      assert.equal(await ctx.store.devices.lookupAccessToken('a2'), null);
      assert.ok(await ctx.store.devices.lookupAccessToken('b1'));
    });
  });
}
