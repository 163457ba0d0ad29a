// DeliveredService when no client asked for delivered receipts: an acknowledgement moves the
// user's position at once and sets no coalescing timer (a fan-out's acknowledgements cost no
// timer each); once someone opted in, acknowledgements coalesce as before. The markers
// themselves, end to end, are in spec/socket/delivered.spec.ts.

import { assert } from '../helpers/assert.js';
import { openSqliteStore } from '../../src/store/sqlite/index.js';
import { DeliveredService } from '../../src/receipts/delivered.js';
import { LocalNotifier } from '../../src/sync/notifier.js';
import type { Store } from '../../src/store/types.js';

const silent = { warn: () => undefined };

describe('delivered receipts: acknowledgements with nobody opted in', function () {
  let store: Store;
  before(async () => {
    store = await openSqliteStore({ path: ':memory:' });
  });
  after(async () => store.close());

  it('sets no timer while nobody opted in; coalesces once someone did', async () => {
    const svc = new DeliveredService(store, store.delivery, new LocalNotifier(), silent);
    for (let i = 1; i <= 3; i++) await svc.acknowledged('@bob:hs', i * 10);
    assert.equal(svc.pendingCount, 0, 'no window opened');
    svc.optedIn('@alice:hs');
    await svc.acknowledged('@bob:hs', 40);
    await svc.acknowledged('@bob:hs', 50);
    assert.equal(svc.pendingCount, 1, 'one window per user');
    await svc.flush();
    assert.equal(svc.pendingCount, 0);
    // The opted-in user's own acknowledgements need no marker from anyone else, but still coalesce.
    await svc.acknowledged('@alice:hs', 60);
    assert.equal(svc.pendingCount, 1);
    await svc.flush();
  });
});
