// Contract: E2eeStore key material (src/store/e2ee-types.ts): device keys, one-time and fallback
// keys, cross-signing keys and signatures.

import { assert } from '../helpers/assert.js';
import type { JsonObject } from '../../src/protocol/types.js';
import type { OneTimeKeyInput } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';
import { assertConflict, randomId, userId } from './fixtures.js';

const OTK = 'signed_curve25519';

export function deviceKeys(user: string, device: string, seed = randomId()): JsonObject {
  return {
    user_id: user,
    device_id: device,
    algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
    keys: { [`curve25519:${device}`]: `c-${seed}`, [`ed25519:${device}`]: `e-${seed}` },
    signatures: { [user]: { [`ed25519:${device}`]: `s-${seed}` } },
  };
}

export function otk(keyId: string, algorithm = OTK): OneTimeKeyInput {
  return { algorithm, keyId, key: { key: `k-${keyId}`, signatures: { x: { 'ed25519:D': `sig-${keyId}` } } } };
}

export function describeE2eeKeysContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');
  const carol = userId('carol');
  const changedSince = async (from: number) => ctx.store.e2ee.getDeviceListChanges(from, ctx.store.currentPosition());

  describe('e2ee: device keys', function () {
    it('stores device keys; an identical re-upload is unchanged, a different one replaces them', async function () {
      const keys = deviceKeys(alice, 'DEV1');
      assert.equal(await ctx.store.e2ee.setDeviceKeys(alice, 'DEV1', keys), 'stored');
      // Same object with its keys in another order is still the same object.
      const reordered = Object.fromEntries(Object.entries(structuredClone(keys)).reverse()) as JsonObject;
      assert.equal(await ctx.store.e2ee.setDeviceKeys(alice, 'DEV1', reordered), 'unchanged');
      assert.deepEqual((await ctx.store.e2ee.getDeviceKeys([alice])).get(alice)?.get('DEV1'), keys);
      const replacement = deviceKeys(alice, 'DEV1');
      assert.equal(await ctx.store.e2ee.setDeviceKeys(alice, 'DEV1', replacement), 'replaced');
      assert.deepEqual((await ctx.store.e2ee.getDeviceKeys([alice])).get(alice)?.get('DEV1'), replacement, 'the new keys win');
      assert.equal(await ctx.store.e2ee.setDeviceKeys(alice, 'DEV1', structuredClone(replacement)), 'unchanged');
      // Going back to the first keys is a replacement too.
      assert.equal(await ctx.store.e2ee.setDeviceKeys(alice, 'DEV1', keys), 'replaced');
      assert.deepEqual((await ctx.store.e2ee.getDeviceKeys([alice])).get(alice)?.get('DEV1'), keys);
    });

    it('resolves concurrent uploads to one stored first upload and one of the uploads in the end', async function () {
      const uploads = Array.from({ length: 5 }, () => deviceKeys(alice, 'RACE'));
      const s0 = ctx.store.currentPosition();
      const results = await Promise.all(uploads.map((k) => ctx.store.e2ee.setDeviceKeys(alice, 'RACE', k)));
      assert.equal(results.filter((r) => r === 'stored').length, 1);
      assert.equal(results.filter((r) => r === 'replaced').length, 4, 'all uploads differ, so each later one replaced something');
      const final = (await ctx.store.e2ee.getDeviceKeys([alice])).get(alice)?.get('RACE');
      const ed = (k: JsonObject | undefined) => (k?.keys as Record<string, string> | undefined)?.['ed25519:RACE'];
      assert.ok(uploads.some((u) => ed(u) === ed(final)), 'the stored keys are one of the uploads');
      assert.deepEqual(await changedSince(s0), [alice]);
    });

    it('marks the device list changed on a first store and on each replacement, not on an identical upload', async function () {
      const s0 = ctx.store.currentPosition();
      await ctx.store.e2ee.setDeviceKeys(alice, 'DEV1', deviceKeys(alice, 'DEV1', 'a'));
      assert.deepEqual(await changedSince(s0), [alice]);
      const s1 = ctx.store.currentPosition();
      assert.ok(s1 > s0);
      await ctx.store.e2ee.setDeviceKeys(alice, 'DEV1', deviceKeys(alice, 'DEV1', 'a'));
      assert.equal(ctx.store.currentPosition(), s1, 'an identical upload spends no stream position');
      assert.deepEqual(await changedSince(s1), []);
      assert.equal(await ctx.store.e2ee.setDeviceKeys(alice, 'DEV1', deviceKeys(alice, 'DEV1', 'b')), 'replaced');
      const s2 = ctx.store.currentPosition();
      assert.ok(s2 > s1);
      assert.deepEqual(await changedSince(s1), [alice]);
      assert.equal((await ctx.store.e2ee.getDeviceKeys([alice])).get(alice)?.get('DEV1')?.keys !== undefined, true);
    });

    it('returns every device of each requested user, and an empty entry for users without keys', async function () {
      const a1 = deviceKeys(alice, 'A1');
      const a2 = deviceKeys(alice, 'A2');
      const b1 = deviceKeys(bob, 'B1');
      await ctx.store.e2ee.setDeviceKeys(alice, 'A1', a1);
      await ctx.store.e2ee.setDeviceKeys(alice, 'A2', a2);
      await ctx.store.e2ee.setDeviceKeys(bob, 'B1', b1);
      const got = await ctx.store.e2ee.getDeviceKeys([alice, carol]);
      assert.deepEqual([...got.keys()].sort(), [alice, carol].sort());
      assert.deepEqual(got.get(alice), new Map([['A1', a1], ['A2', a2]]));
      assert.deepEqual(got.get(carol), new Map());
      assert.equal((await ctx.store.e2ee.getDeviceKeys([])).size, 0);
    });

    it('hands out copies: neither the input nor a result is shared with the store', async function () {
      const keys = deviceKeys(alice, 'DEV1');
      const original = structuredClone(keys);
      await ctx.store.e2ee.setDeviceKeys(alice, 'DEV1', keys);
      (keys.keys as JsonObject)['ed25519:DEV1'] = 'mutated';
      const first = (await ctx.store.e2ee.getDeviceKeys([alice])).get(alice)!.get('DEV1')!;
      assert.deepEqual(first, original);
      first.user_id = 'mutated';
      assert.deepEqual((await ctx.store.e2ee.getDeviceKeys([alice])).get(alice)!.get('DEV1'), original);
    });
  });

  describe('e2ee: one-time keys', function () {
    it('adds keys and counts the unclaimed ones per algorithm', async function () {
      assert.deepEqual(await ctx.store.e2ee.countOneTimeKeys(alice, 'D'), {});
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', [otk('A1'), otk('A2'), otk('A3'), otk('X1', 'curve25519')]);
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', []);
      assert.deepEqual(await ctx.store.e2ee.countOneTimeKeys(alice, 'D'), { [OTK]: 3, curve25519: 1 });
      assert.deepEqual(await ctx.store.e2ee.countOneTimeKeys(alice, 'OTHER'), {});
      assert.deepEqual(await ctx.store.e2ee.countOneTimeKeys(bob, 'D'), {});
    });

    it('ignores a re-upload of an existing key with the same content', async function () {
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', [otk('A1'), otk('A2')]);
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', [otk('A2'), otk('A3')]);
      assert.deepEqual(await ctx.store.e2ee.countOneTimeKeys(alice, 'D'), { [OTK]: 3 });
    });

    it('rejects the whole upload if one key ID exists with other content', async function () {
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', [otk('A1')]);
      const clash: OneTimeKeyInput = { algorithm: OTK, keyId: 'A1', key: { key: 'different' } };
      await assertConflict(ctx.store.e2ee.addOneTimeKeys(alice, 'D', [otk('B1'), otk('B2'), clash, otk('B3')]));
      assert.deepEqual(await ctx.store.e2ee.countOneTimeKeys(alice, 'D'), { [OTK]: 1 }, 'nothing of the failed call was written');
      // Duplicates inside one call obey the same rule.
      await assertConflict(ctx.store.e2ee.addOneTimeKeys(alice, 'D', [otk('C1'), { algorithm: OTK, keyId: 'C1', key: 'other' }]));
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', [otk('C1'), otk('C1')]);
      assert.deepEqual(await ctx.store.e2ee.countOneTimeKeys(alice, 'D'), { [OTK]: 2 });
      // The same key ID under another algorithm or device is a different key.
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', [{ algorithm: 'curve25519', keyId: 'A1', key: 'x' }]);
      await ctx.store.e2ee.addOneTimeKeys(alice, 'E', [{ algorithm: OTK, keyId: 'A1', key: 'x' }]);
    });

    it('remembers claimed key IDs: different content conflicts, same content does not come back', async function () {
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', [otk('A1'), otk('A2')]);
      assert.equal((await ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK))?.keyId, 'A1');
      await assertConflict(ctx.store.e2ee.addOneTimeKeys(alice, 'D', [{ algorithm: OTK, keyId: 'A1', key: 'reused' }]));
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', [otk('A1')]);
      assert.deepEqual(await ctx.store.e2ee.countOneTimeKeys(alice, 'D'), { [OTK]: 1 });
      assert.equal((await ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK))?.keyId, 'A2');
      assert.equal(await ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK), null);
    });

    it('claims the oldest unclaimed key of the algorithm, once', async function () {
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', [otk('K3'), otk('K1')]);
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', [otk('K2'), otk('Z1', 'curve25519')]);
      const first = await ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK);
      assert.deepEqual(first, { algorithm: OTK, keyId: 'K3', key: otk('K3').key, fallback: false });
      assert.equal((await ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK))?.keyId, 'K1');
      assert.equal((await ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK))?.keyId, 'K2');
      assert.equal(await ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK), null);
      assert.deepEqual(await ctx.store.e2ee.countOneTimeKeys(alice, 'D'), { curve25519: 1 });
      assert.equal(await ctx.store.e2ee.claimOneTimeKey(alice, 'D', 'unknown'), null);
      assert.equal(await ctx.store.e2ee.claimOneTimeKey(bob, 'D', 'curve25519'), null);
    });

    it('never hands one key to two concurrent claims (50 claims, 20 keys, then the fallback)', async function () {
      const ids = Array.from({ length: 20 }, (_, i) => `K${String(i).padStart(2, '0')}`);
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', ids.map((id) => otk(id)));
      await ctx.store.e2ee.setFallbackKey(alice, 'D', OTK, 'FB', { key: 'fallback' });
      const claims = await Promise.all(Array.from({ length: 50 }, () => ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK)));
      const real = claims.filter((c) => c !== null && !c.fallback);
      assert.equal(real.length, 20);
      assert.deepEqual(real.map((c) => c!.keyId).sort(), ids);
      assert.ok(claims.slice(20).every((c) => c?.fallback === true && c.keyId === 'FB'), 'the rest get the fallback key');
      assert.deepEqual(await ctx.store.e2ee.countOneTimeKeys(alice, 'D'), {});
      assert.deepEqual(await ctx.store.e2ee.getUnusedFallbackKeyTypes(alice, 'D'), []);
    });

    it('answers concurrent claims with null once keys run out and there is no fallback', async function () {
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', Array.from({ length: 20 }, (_, i) => otk(`K${i}`)));
      const claims = await Promise.all(Array.from({ length: 50 }, () => ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK)));
      const got = claims.filter((c) => c !== null);
      assert.equal(got.length, 20);
      assert.equal(new Set(got.map((c) => c!.keyId)).size, 20);
      assert.equal(claims.filter((c) => c === null).length, 30);
    });
  });

  describe('e2ee: fallback keys', function () {
    it('hands out the fallback key when no one-time key is left, keeps it and marks it used', async function () {
      await ctx.store.e2ee.setFallbackKey(alice, 'D', OTK, 'F1', { key: 'f1' });
      assert.deepEqual(await ctx.store.e2ee.getUnusedFallbackKeyTypes(alice, 'D'), [OTK]);
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', [otk('A1')]);
      assert.equal((await ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK))?.fallback, false);
      assert.deepEqual(await ctx.store.e2ee.getUnusedFallbackKeyTypes(alice, 'D'), [OTK], 'untouched while one-time keys last');
      const fb = await ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK);
      assert.deepEqual(fb, { algorithm: OTK, keyId: 'F1', key: { key: 'f1' }, fallback: true });
      assert.deepEqual(await ctx.store.e2ee.getUnusedFallbackKeyTypes(alice, 'D'), []);
      assert.deepEqual(await ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK), fb, 'a used fallback key is still handed out');
    });

    it('replaces the fallback key with a new, unused one', async function () {
      await ctx.store.e2ee.setFallbackKey(alice, 'D', OTK, 'F1', { key: 'f1' });
      await ctx.store.e2ee.setFallbackKey(alice, 'D', 'other_alg', 'O1', 'o1');
      await ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK);
      assert.deepEqual(await ctx.store.e2ee.getUnusedFallbackKeyTypes(alice, 'D'), ['other_alg']);
      await ctx.store.e2ee.setFallbackKey(alice, 'D', OTK, 'F2', { key: 'f2' });
      assert.deepEqual((await ctx.store.e2ee.getUnusedFallbackKeyTypes(alice, 'D')).sort(), ['other_alg', OTK].sort());
      assert.deepEqual(await ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK), { algorithm: OTK, keyId: 'F2', key: { key: 'f2' }, fallback: true });
      assert.deepEqual(await ctx.store.e2ee.getUnusedFallbackKeyTypes(bob, 'D'), []);
    });

    it('does not reset a used fallback key when the very same key is uploaded again', async function () {
      await ctx.store.e2ee.setFallbackKey(alice, 'D', OTK, 'F1', { key: 'f1' });
      await ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK);
      await ctx.store.e2ee.setFallbackKey(alice, 'D', OTK, 'F1', { key: 'f1' });
      assert.deepEqual(await ctx.store.e2ee.getUnusedFallbackKeyTypes(alice, 'D'), []);
      // A new key ID with the same material is a new key as far as the store can tell.
      await ctx.store.e2ee.setFallbackKey(alice, 'D', OTK, 'F1b', { key: 'f1' });
      assert.deepEqual(await ctx.store.e2ee.getUnusedFallbackKeyTypes(alice, 'D'), [OTK]);
    });
  });

  describe('e2ee: cross-signing and signatures', function () {
    const csKey = (usage: string, pub = randomId()) => ({ user_id: alice, usage: [usage], keys: { [`ed25519:${pub}`]: pub } });

    it('sets the given cross-signing keys, leaves the others, and marks the list changed', async function () {
      assert.deepEqual(await ctx.store.e2ee.getCrossSigningKeys(alice), {});
      const master = csKey('master');
      const selfSigning = csKey('self_signing');
      const userSigning = csKey('user_signing');
      const s0 = ctx.store.currentPosition();
      await ctx.store.e2ee.setCrossSigningKeys(alice, { master, self_signing: selfSigning });
      assert.deepEqual(await ctx.store.e2ee.getCrossSigningKeys(alice), { master, self_signing: selfSigning });
      assert.deepEqual(await changedSince(s0), [alice]);
      await ctx.store.e2ee.setCrossSigningKeys(alice, { user_signing: userSigning });
      assert.deepEqual(await ctx.store.e2ee.getCrossSigningKeys(alice), { master, self_signing: selfSigning, user_signing: userSigning });
      const master2 = csKey('master');
      const s1 = ctx.store.currentPosition();
      await ctx.store.e2ee.setCrossSigningKeys(alice, { master: master2 });
      assert.deepEqual((await ctx.store.e2ee.getCrossSigningKeys(alice)).master, master2);
      assert.deepEqual(await changedSince(s1), [alice]);
      assert.deepEqual(await ctx.store.e2ee.getCrossSigningKeys(bob), {});
    });

    it('a change of the user-signing key alone is reported to its owner only', async function () {
      await ctx.store.e2ee.setCrossSigningKeys(alice, { master: csKey('master'), self_signing: csKey('self_signing') });
      const s0 = ctx.store.currentPosition();
      await ctx.store.e2ee.setCrossSigningKeys(alice, { user_signing: csKey('user_signing') });
      const to = ctx.store.currentPosition();
      assert.deepEqual(await ctx.store.e2ee.getDeviceListChanges(s0, to), [], 'nobody in particular');
      assert.deepEqual(await ctx.store.e2ee.getDeviceListChanges(s0, to, bob), [], 'someone else');
      assert.deepEqual(await ctx.store.e2ee.getDeviceListChanges(s0, to, alice), [alice], 'the owner');
      // Together with another key it is a change for everyone.
      const s1 = ctx.store.currentPosition();
      await ctx.store.e2ee.setCrossSigningKeys(alice, { self_signing: csKey('self_signing'), user_signing: csKey('user_signing') });
      assert.deepEqual(await ctx.store.e2ee.getDeviceListChanges(s1, ctx.store.currentPosition(), bob), [alice]);
    });

    it('treats an identical cross-signing upload as no change', async function () {
      const keys = { master: csKey('master'), self_signing: csKey('self_signing') };
      await ctx.store.e2ee.setCrossSigningKeys(alice, keys);
      const s0 = ctx.store.currentPosition();
      await ctx.store.e2ee.setCrossSigningKeys(alice, structuredClone(keys));
      assert.deepEqual(await changedSince(s0), []);
      assert.deepEqual(await ctx.store.e2ee.getCrossSigningKeys(alice), keys);
    });

    it('stores signatures, replacing one by the same signer key on the same target', async function () {
      const sig = (target: string, targetKey: string, signer: string, signerKey: string, signature: string) => ({
        targetUserId: target,
        targetKeyId: targetKey,
        signerUserId: signer,
        signerKeyId: signerKey,
        signature,
      });
      const s0 = ctx.store.currentPosition();
      await ctx.store.e2ee.addSignatures([
        sig(alice, 'DEV1', alice, 'ed25519:SSK', 's1'),
        sig(bob, 'BOBMASTER', alice, 'ed25519:USK', 's2'),
      ]);
      assert.deepEqual((await changedSince(s0)).sort(), [alice, bob].sort(), 'each target user is marked');
      const s1 = ctx.store.currentPosition();
      await ctx.store.e2ee.addSignatures([sig(alice, 'DEV1', alice, 'ed25519:SSK', 's1b'), sig(alice, 'DEV1', bob, 'ed25519:BOBDEV', 's3')]);
      assert.deepEqual(await changedSince(s1), [alice]);

      const mine = await ctx.store.e2ee.getSignatures([alice]);
      const key = (s: { signerUserId: string; signerKeyId: string; signature: string }) => `${s.signerUserId}|${s.signerKeyId}|${s.signature}`;
      assert.equal(mine.length, 2);
      assert.ok(mine.every((s) => s.targetUserId === alice && s.targetKeyId === 'DEV1'));
      assert.deepEqual(mine.map(key).sort(), [`${alice}|ed25519:SSK|s1b`, `${bob}|ed25519:BOBDEV|s3`].sort());
      assert.deepEqual(await ctx.store.e2ee.getSignatures([bob]), [sig(bob, 'BOBMASTER', alice, 'ed25519:USK', 's2')]);
      assert.equal((await ctx.store.e2ee.getSignatures([alice, bob, carol])).length, 3);
      assert.deepEqual(await ctx.store.e2ee.getSignatures([]), []);
    });
  });

  describe('e2ee: key durability', function () {
    it('keeps keys, claims and fallback state across a reopen', async function () {
      if (!ctx.canReopen) this.skip();
      const keys = deviceKeys(alice, 'D');
      const master = csKey2(alice);
      await ctx.store.e2ee.setDeviceKeys(alice, 'D', keys);
      await ctx.store.e2ee.addOneTimeKeys(alice, 'D', [otk('A1'), otk('A2'), otk('A3')]);
      await ctx.store.e2ee.claimOneTimeKey(alice, 'D', OTK);
      await ctx.store.e2ee.setFallbackKey(alice, 'D', OTK, 'F1', 'f1');
      await ctx.store.e2ee.setFallbackKey(alice, 'D', 'alg2', 'G1', 'g1');
      await ctx.store.e2ee.claimOneTimeKey(alice, 'D', 'alg2');
      await ctx.store.e2ee.setCrossSigningKeys(alice, { master });
      await ctx.store.e2ee.addSignatures([{ targetUserId: alice, targetKeyId: 'D', signerUserId: alice, signerKeyId: 'ed25519:M', signature: 'sig' }]);

      const store = await ctx.closeAndReopen();
      assert.deepEqual((await store.e2ee.getDeviceKeys([alice])).get(alice)?.get('D'), keys);
      assert.equal(await store.e2ee.setDeviceKeys(alice, 'D', structuredClone(keys)), 'unchanged');
      assert.deepEqual(await store.e2ee.countOneTimeKeys(alice, 'D'), { [OTK]: 2 });
      await assertConflict(store.e2ee.addOneTimeKeys(alice, 'D', [{ algorithm: OTK, keyId: 'A1', key: 'reused' }]));
      assert.equal((await store.e2ee.claimOneTimeKey(alice, 'D', OTK))?.keyId, 'A2');
      assert.deepEqual(await store.e2ee.getUnusedFallbackKeyTypes(alice, 'D'), [OTK]);
      assert.deepEqual(await store.e2ee.getCrossSigningKeys(alice), { master });
      assert.equal((await store.e2ee.getSignatures([alice])).length, 1);
    });
  });
}

function csKey2(user: string): JsonObject {
  return { user_id: user, usage: ['master'], keys: { 'ed25519:M': 'M' } };
}
