// Contract: user directory search and content reports (DirectoryStore in src/store/chat-types.ts).

import { assert } from '../helpers/assert.js';
import type { ReportRecord } from '../../src/store/types.js';
import type { ContractContext } from './contract.js';
import { FakeRoom, SERVER, userId } from './fixtures.js';

export function describeDirectoryContract(ctx: ContractContext): void {
  const alice = userId('alice');
  const bob = userId('bob');
  const carol = userId('carol');
  const dave = userId('dave');
  const erin = userId('erin');
  const frank = userId('frank');

  async function user(id: string, displayname: string | null, avatarUrl?: string): Promise<void> {
    await ctx.store.accounts.createUser({ userId: id, passwordHash: null, admin: false, createdTs: 1, displayname });
    if (avatarUrl !== undefined) await ctx.store.accounts.setProfile(id, { avatarUrl });
  }

  /** A 'public' room has the public join rule; a 'private' one is invite-only with shared history. */
  async function room(members: string[], visibility: 'public' | 'private' = 'private'): Promise<FakeRoom> {
    const r = new FakeRoom();
    await r.create(ctx.store, members[0]);
    creators.set(r, members[0]);
    if (visibility === 'private') await joinRule(r, 'invite');
    for (const m of members.slice(1)) await r.member(ctx.store, m, m, 'join');
    return r;
  }
  const creators = new Map<FakeRoom, string>();
  const joinRule = (r: FakeRoom, rule: string) => r.send(ctx.store, 'm.room.join_rules', creators.get(r)!, { join_rule: rule }, '');
  const historyVisibility = (r: FakeRoom, v: string) =>
    r.send(ctx.store, 'm.room.history_visibility', creators.get(r)!, { history_visibility: v }, '');

  const search = async (term: string, searcher = alice, limit = 10) =>
    (await ctx.store.directory.searchUsers(searcher, term, limit)).map((u) => u.userId);

  describe('user directory', function () {
    /**
     * alice shares a private room with bob and erin; carol is in a public room alice is not in;
     * dave is only in a private room without alice; frank left alice's room.
     */
    async function seed(): Promise<{ shared: FakeRoom }> {
      await user(alice, 'Alice Liddell');
      await user(bob, 'Robert "Bob" Smith', 'mxc://hearth.test/bob');
      await user(carol, 'Carol Danvers');
      await user(dave, 'Dave Smith');
      await user(erin, 'Élodie Durand');
      await user(frank, 'Frank Smith');
      const shared = await room([alice, bob, erin, frank]);
      await shared.member(ctx.store, frank, frank, 'leave');
      await room([carol], 'public');
      await room([dave]);
      return { shared };
    }

    it('finds users sharing a joined room, with their profile', async function () {
      await seed();
      assert.deepEqual(await ctx.store.directory.searchUsers(alice, 'robert', 10), [
        { userId: bob, displayname: 'Robert "Bob" Smith', avatarUrl: 'mxc://hearth.test/bob' },
      ]);
    });

    it('finds users joined to a room with the public join rule', async function () {
      await seed();
      assert.deepEqual(await search('carol'), [carol]);
      assert.deepEqual(await search('danvers', dave), [carol], 'visible to anyone');
    });

    it('does not find users without a shared or public room', async function () {
      await seed();
      assert.deepEqual(await search('dave'), []);
      assert.deepEqual(await search('smith'), [bob], 'dave (no shared room) and frank (left) are not found');
      assert.deepEqual(await search('alice', dave), [], 'symmetric');
    });

    it('stops finding users once the shared room is no longer joined or public', async function () {
      const { shared } = await seed();
      const pub = await room([dave, carol]);
      await joinRule(pub, 'public');
      assert.deepEqual(await search('dave'), [dave]);
      await joinRule(pub, 'invite');
      assert.deepEqual(await search('dave'), []);
      await shared.member(ctx.store, alice, alice, 'leave');
      assert.deepEqual(await search('robert'), [], 'the searcher left the shared room');
      const invite = await room([dave]);
      await invite.member(ctx.store, dave, alice, 'invite');
      assert.deepEqual(await search('dave'), [], 'an invite is not a joined room');
    });

    it('finds the members of a world-readable room whatever its join rule, until it is not', async function () {
      await seed();
      const r = await room([dave]);
      assert.deepEqual(await search('dave'), []);
      await historyVisibility(r, 'world_readable');
      assert.deepEqual(await search('dave'), [dave], 'world_readable history visibility');
      await joinRule(r, 'public');
      await joinRule(r, 'invite');
      assert.deepEqual(await search('dave'), [dave], 'still world_readable after the join rule changes');
      await historyVisibility(r, 'shared');
      assert.deepEqual(await search('dave'), [], 'neither public nor world_readable');
    });

    it('does not count publishing in the room directory as public', async function () {
      await seed();
      const r = await room([dave]);
      await ctx.store.rooms.setRoomVisibility(r.roomId, 'public');
      assert.deepEqual(await search('dave'), [], 'a listed invite-only room does not expose its members');
    });

    it('finds the searcher only through a public room, not a room shared with others', async function () {
      await seed();
      assert.deepEqual(await search('alice'), [], 'alice shares a private room with bob, but not with herself');
      assert.deepEqual(await search('alice', bob), [alice]);
      assert.deepEqual(await search('carol', carol), [carol], 'carol is in a public room');
    });

    it('finds a user of another server by the display name of their latest join', async function () {
      await seed();
      const remote = '@zed:elsewhere.test';
      const r = await room([alice]);
      await r.send(ctx.store, 'm.room.member', remote, { membership: 'join', displayname: 'Zed Old' }, remote);
      await r.send(ctx.store, 'm.room.member', remote, { membership: 'join', displayname: 'Zed Zebulon', avatar_url: 'mxc://elsewhere.test/z' }, remote);
      assert.deepEqual(await ctx.store.directory.searchUsers(alice, 'zebulon', 10), [{ userId: remote, displayname: 'Zed Zebulon', avatarUrl: 'mxc://elsewhere.test/z' }]);
      assert.deepEqual(await search('old'), [], 'an earlier name is not theirs any more');
      assert.deepEqual(await search('zed'), [remote], 'by ID as before');
      // Not a string: no name, found by ID only.
      await r.send(ctx.store, 'm.room.member', remote, { membership: 'join', displayname: 7 }, remote);
      assert.deepEqual(await ctx.store.directory.searchUsers(alice, 'zed', 10), [{ userId: remote, displayname: null, avatarUrl: null }]);
      // Once they leave, they are not found.
      await r.send(ctx.store, 'm.room.member', remote, { membership: 'leave' }, remote);
      assert.deepEqual(await search('zed'), []);
    });

    it('a public room counts only while one of our users is joined to it', async function () {
      await seed();
      const remote = '@yan:elsewhere.test';
      const r = await room([dave], 'public');
      await r.send(ctx.store, 'm.room.member', remote, { membership: 'join', displayname: 'Yan' }, remote);
      assert.deepEqual(await search('yan'), [remote]);
      // Our last user leaves: what we hold of the room still shows yan joined, but is stale.
      await r.member(ctx.store, dave, dave, 'leave');
      assert.deepEqual(await search('yan'), []);
      assert.deepEqual(await search('yan', bob), []);
    });

    it('never finds deactivated users', async function () {
      await seed();
      await ctx.store.accounts.deactivateUser(bob);
      assert.deepEqual(await search('robert'), []);
      assert.deepEqual(await search('bob'), []);
    });

    it('matches every word as a case-insensitive prefix of the ID or a display-name word', async function () {
      await seed();
      assert.deepEqual(await search('smi'), [bob], 'prefix of a later display-name word');
      assert.deepEqual(await search('ROB smi'), [bob], 'every word, any case');
      assert.deepEqual(await search('  robert   smith '), [bob]);
      assert.deepEqual(await search('obert'), [], 'not a prefix');
      assert.deepEqual(await search('robert jones'), [], 'every word must match');
      assert.deepEqual(await search('bo'), [bob], 'prefix of the localpart');
      assert.deepEqual(await search('@bob:'), [bob], 'prefix of the full user ID');
      assert.deepEqual(await search(`@BOB:${SERVER.toUpperCase()}`), [bob]);
      assert.deepEqual(await search('élodie'), [erin], 'non-ASCII case folding');
      assert.deepEqual(await search('ÉLO dur'), [erin]);
      assert.deepEqual(await search('%'), [], 'no pattern characters');
      assert.deepEqual(await search('_ob'), []);
      assert.deepEqual(await search(''), []);
    });

    it('returns at most limit + 1 users, best matches first', async function () {
      const names = ['Sam Zed', 'Sam', 'Samantha', 'Zoe Sam', 'Sammy'];
      const ids = names.map((_, i) => userId(`u${i}`));
      await user(alice, 'Alice');
      for (const [i, n] of names.entries()) await user(ids[i], n);
      await room([alice, ...ids]);
      const all = await search('sam');
      assert.equal(all.length, 5);
      assert.equal(all[0], ids[1], 'exact display name first');
      assert.equal(all[all.length - 1], ids[3], 'a later-word match after prefix matches');
      assert.equal((await search('sam', alice, 2)).length, 3);
      assert.equal((await search('sam', alice, 0)).length, 1);
    });
  });

  describe('reports', function () {
    it('stores reports and lists them newest first', async function () {
      const base = { roomId: `!r:${SERVER}`, reporter: alice, score: null, reason: null };
      const r1: ReportRecord = { ...base, eventId: '$e1', reason: 'spam', score: -100, ts: 10 };
      const r2: ReportRecord = { ...base, eventId: null, reporter: bob, ts: 20 };
      const r3: ReportRecord = { ...base, eventId: '$e3', reason: 'abuse', ts: 30 };
      assert.deepEqual(await ctx.store.directory.listReports(10), []);
      for (const r of [r1, r2, r3]) await ctx.store.directory.addReport(r);
      assert.deepEqual(await ctx.store.directory.listReports(10), [r3, r2, r1]);
      assert.deepEqual(await ctx.store.directory.listReports(2), [r3, r2]);
      // Reports are not deduplicated: the same report twice is two reports.
      await ctx.store.directory.addReport(r1);
      assert.equal((await ctx.store.directory.listReports(10)).length, 4);
    });
  });
}
