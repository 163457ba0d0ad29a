// Backend-agnostic contract suite for src/store/types.ts and src/store/chat-types.ts. Every
// backend's spec calls describeStoreContract with a factory; each test gets a fresh, empty store.

import type { Store } from '../../src/store/types.js';
import { describeAccountContract } from './contract-accounts.js';
import { describeDagContract } from './contract-dag.js';
import { describeDirectoryContract } from './contract-directory.js';
import { describeE2eeBackupContract } from './contract-e2ee-backup.js';
import { describeE2eeKeysContract } from './contract-e2ee-keys.js';
import { describeE2eeMessagesContract } from './contract-e2ee-messages.js';
import { describeMediaContract } from './contract-media.js';
import { describeNotificationContract } from './contract-notifications.js';
import { describePushContract } from './contract-push.js';
import { describeReceiptContract } from './contract-receipts.js';
import { describeRelationContract } from './contract-relations.js';
import { describeRoomContract } from './contract-rooms.js';
import { describeSearchContract } from './contract-search.js';
import { describeAdminContract } from './contract-admin.js';
import { describeAppServiceContract } from './contract-appservices.js';
import { describeFederationQueueContract } from './contract-federation-queue.js';
import { describeIdentityBindingContract } from './contract-identity.js';
import { describeThreepidContract } from './contract-threepids.js';
import { describeEventExpiryContract } from './contract-expiry.js';
import { describePeekContract } from './contract-peeks.js';
import { describeStateContract } from './contract-state.js';
import { describeStreamContract } from './contract-streams.js';
import { describeTimelineContract } from './contract-timeline.js';
import { describeUserDataContract } from './contract-userdata.js';

export interface StoreHarness {
  store: Store;
  /**
   * Opens the same database again. Called only after the test closed the current store; the
   * returned store becomes the one `cleanup` must close. Absent for backends without durability.
   */
  reopen?: () => Promise<Store>;
  /** Closes whatever is still open and removes the data. Must tolerate already-closed stores. */
  cleanup: () => Promise<void>;
}

export type StoreFactory = () => Promise<StoreHarness>;

/** What the sub-suites see: the current store of the running test. */
export interface ContractContext {
  readonly store: Store;
  readonly canReopen: boolean;
  /** Closes the current store, reopens the same database and makes the result current. */
  closeAndReopen(): Promise<Store>;
  /** Like closeAndReopen, for a test that already closed the current store itself. */
  reopenClosed(): Promise<Store>;
}

export function describeStoreContract(name: string, factory: StoreFactory): void {
  describe(`Store contract: ${name}`, function () {
    let harness: StoreHarness | null = null;
    let current: Store | null = null;

    const ctx: ContractContext = {
      get store(): Store {
        if (current === null) throw new Error('no store: used outside a test');
        return current;
      },
      get canReopen(): boolean {
        return harness?.reopen !== undefined;
      },
      async closeAndReopen(): Promise<Store> {
        if (current === null) throw new Error('no store: used outside a test');
        await current.close();
        return ctx.reopenClosed();
      },
      async reopenClosed(): Promise<Store> {
        if (harness?.reopen === undefined) throw new Error('backend cannot reopen');
        current = await harness.reopen();
        return current;
      },
    };

    beforeEach(async function () {
      harness = await factory();
      current = harness.store;
    });

    afterEach(async function () {
      const h = harness;
      harness = null;
      current = null;
      if (h) await h.cleanup();
    });

    describeAccountContract(ctx);
    describeRoomContract(ctx);
    describeStateContract(ctx);
    describeDagContract(ctx);
    describeTimelineContract(ctx);
    describeUserDataContract(ctx);
    describeStreamContract(ctx);
    describeReceiptContract(ctx);
    describeNotificationContract(ctx);
    describeRelationContract(ctx);
    describeDirectoryContract(ctx);
    describeE2eeKeysContract(ctx);
    describeE2eeMessagesContract(ctx);
    describeE2eeBackupContract(ctx);
    describePushContract(ctx);
    describeMediaContract(ctx);
    describeSearchContract(ctx);
    describeAdminContract(ctx);
    describeAppServiceContract(ctx);
    describeFederationQueueContract(ctx);
    describeIdentityBindingContract(ctx);
    describeThreepidContract(ctx);
    describeEventExpiryContract(ctx);
    describePeekContract(ctx);
  });
}
