// A user's pushers (spec "Push notifications"): listing, adding or replacing, and removing them.
// Checking a request (kinds, sizes, the gateway URL against the outbound guard) is the route's;
// this is the one place pushers are changed, so an added pusher is seen by the dispatcher's
// next read.

import type { PusherRecord, Store } from '../store/types.js';

export class PusherService {
  constructor(private readonly store: Store) {}

  list(userId: string): Promise<PusherRecord[]> {
    return this.store.pushers.getPushers(userId);
  }

  /** Adds or replaces (same app ID and pushkey) a pusher; `append` keeps other users' pushers of that key. */
  set(pusher: PusherRecord, append: boolean): Promise<void> {
    return this.store.pushers.setPusher(pusher, append);
  }

  async remove(userId: string, appId: string, pushkey: string): Promise<void> {
    await this.store.pushers.deletePusher(userId, appId, pushkey);
  }
}
