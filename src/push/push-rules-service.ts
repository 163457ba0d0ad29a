// Per-user push rules: the user's customisations are stored as account data under a private
// type, and the effective rule set is also written as `m.push_rules` account data, which is how
// clients learn about changes in /sync. Effective rule sets are cached for evaluation on sends.

import { LRUCache } from 'lru-cache';
import type { JsonObject, JsonValue } from '../protocol/types.js';
import type { Store } from '../store/types.js';
import type { Notifier } from '../sync/notifier.js';
import { defaultPushRules, type PushRuleset } from './default-rules.js';
import { effectiveRuleset, parseUserPushRules, serialiseUserPushRules, type UserPushRules } from './ruleset.js';

/** Account-data type holding a user's customisations; /sync never shows internal types. */
export const USER_RULES_TYPE = 'io.hearth.internal.push_rules';
export const INTERNAL_ACCOUNT_DATA_PREFIX = 'io.hearth.internal.';

export class PushRulesService {
  private readonly cache = new LRUCache<string, PushRuleset>({ max: 50_000 });
  private readonly ignoreCache = new LRUCache<string, Set<string>>({ max: 50_000 });
  // Serialises read-modify-write of one user's rules.
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: Store,
    private readonly notifier: Notifier,
  ) {}

  async userRules(userId: string): Promise<UserPushRules> {
    const data = await this.store.userData.getAccountData(userId, '', USER_RULES_TYPE);
    return parseUserPushRules((data?.rules ?? undefined) as JsonValue | undefined);
  }

  /** The rule set evaluation uses (defaults merged with the user's changes). */
  async ruleset(userId: string): Promise<PushRuleset> {
    const hit = this.cache.get(userId);
    if (hit) return hit;
    const rs = effectiveRuleset(userId, await this.userRules(userId));
    this.cache.set(userId, rs);
    return rs;
  }

  /** Applies a change to the user's rules (one at a time per user) and publishes m.push_rules. */
  async update(userId: string, change: (rules: UserPushRules) => UserPushRules): Promise<void> {
    const prev = this.locks.get(userId) ?? Promise.resolve();
    const job = prev.then(async () => {
      const next = change(await this.userRules(userId));
      await this.store.userData.setAccountData(userId, '', USER_RULES_TYPE, { rules: serialiseUserPushRules(next) });
      const rs = effectiveRuleset(userId, next);
      this.cache.set(userId, rs);
      const stream = await this.store.userData.setAccountData(userId, '', 'm.push_rules', rs as unknown as JsonObject);
      this.notifier.publish({ stream, userIds: [userId] });
    });
    const tail = job.catch(() => undefined);
    this.locks.set(userId, tail);
    void tail.then(() => {
      if (this.locks.get(userId) === tail) this.locks.delete(userId);
    });
    await job;
  }

  /**
   * Rule set and ignore list of each user, as one map. Cached entries are returned without an
   * await per user: this runs for every member of a room on every event.
   */
  async forUsers(userIds: Iterable<string>): Promise<Map<string, { ruleset: PushRuleset; ignored: Set<string> }>> {
    const out = new Map<string, { ruleset: PushRuleset; ignored: Set<string> }>();
    const misses: string[] = [];
    for (const u of userIds) {
      const ruleset = this.cache.get(u);
      const ignored = this.ignoreCache.get(u);
      if (ruleset && ignored) out.set(u, { ruleset, ignored });
      else misses.push(u);
    }
    for (const u of misses) out.set(u, { ruleset: await this.ruleset(u), ignored: await this.ignored(u) });
    return out;
  }

  /** Users whose events never notify `userId` (m.ignored_user_list). */
  async ignored(userId: string): Promise<Set<string>> {
    const hit = this.ignoreCache.get(userId);
    if (hit) return hit;
    const data = await this.store.userData.getAccountData(userId, '', 'm.ignored_user_list');
    const list = data?.ignored_users;
    const set = new Set(list && typeof list === 'object' && !Array.isArray(list) ? Object.keys(list) : []);
    this.ignoreCache.set(userId, set);
    return set;
  }

  /** Account data that affects notifications changed. */
  accountDataChanged(userId: string, type: string): void {
    if (type === 'm.ignored_user_list') this.ignoreCache.delete(userId);
  }

  /** For initial syncs of users who never changed a rule: the defaults as m.push_rules. */
  defaults(userId: string): PushRuleset {
    return defaultPushRules(userId);
  }
}
