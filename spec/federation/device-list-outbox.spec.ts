// DeviceListOutbox (src/federation/device-list-outbox.ts) on a real SQLite store: the device-list
// change stream is the outbox, the cursor moves only past what was published, a failed publish
// is retried with the cursor held, a new process resumes from the cursor, and with a lease gate
// only the holder publishes.

import { assert } from '../helpers/assert.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';
import { DEVICE_LIST_CURSOR, DeviceListOutbox } from '../../src/federation/device-list-outbox.js';
import { waitFor } from '../helpers/federation.js';

const ME = 'me.test';
const logger = pino({ level: 'silent' });

describe('federation: device-list outbox (the change stream plus a durable cursor)', function () {
  this.timeout(20_000);
  let dir: string;
  let store: SqliteStore;
  const outboxes: DeviceListOutbox[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hearth-dl-outbox-'));
    store = await openSqliteStore({ path: join(dir, 'hearth.sqlite'), logger: { warn: () => undefined } });
  });

  afterEach(async () => {
    for (const o of outboxes.splice(0)) await o.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function outbox(publish: (userId: string) => Promise<void>, extra: Partial<ConstructorParameters<typeof DeviceListOutbox>[0]> = {}): DeviceListOutbox {
    const o = new DeviceListOutbox({
      serverName: ME,
      changes: store.e2ee,
      cursors: store.federationQueue,
      position: () => store.currentPosition(),
      publish,
      onChanges: (l) => store.onChanges(l),
      logger,
      retryMs: 20,
      ...extra,
    });
    outboxes.push(o);
    return o;
  }

  it("starts a never-set cursor where the process did, publishes each local user changed after it once, then moves the cursor past them", async () => {
    await store.e2ee.markDeviceListChanged(`@before:${ME}`);
    const published: string[] = [];
    const o = outbox(async (u) => void published.push(u));
    o.start();
    await o.settled();
    await store.e2ee.markDeviceListChanged(`@alice:${ME}`);
    const a = await store.e2ee.markDeviceListChanged(`@alice:${ME}`);
    await store.e2ee.markDeviceListChanged('@remote:other.test');
    await waitFor(async () => (await store.federationQueue.getCursor(DEVICE_LIST_CURSOR)) !== null && (await store.federationQueue.getCursor(DEVICE_LIST_CURSOR))! >= a, 5000, 'the cursor to pass the change');
    await o.settled();
    assert.deepEqual([...new Set(published)], [`@alice:${ME}`], 'only local users changed after the start; before it was published the old way');
    assert.ok(((await store.federationQueue.getCursor(DEVICE_LIST_CURSOR)) ?? 0) >= a, "the cursor passed alice's changes (a remote user's change pokes nothing)");
  });

  it('a publish that fails holds the cursor below the change; the retry publishes it and only then moves the cursor', async () => {
    const published: string[] = [];
    const queue = { fails: true };
    const o = outbox(async (u) => {
      if (queue.fails) throw new Error('queue write failed');
      published.push(u);
    });
    o.start();
    await o.settled();
    const start = await store.federationQueue.getCursor(DEVICE_LIST_CURSOR);
    const p = await store.e2ee.markDeviceListChanged(`@bob:${ME}`);
    await new Promise((r) => setTimeout(r, 100));
    await o.settled();
    assert.equal(published.length, 0);
    const held = await store.federationQueue.getCursor(DEVICE_LIST_CURSOR);
    assert.ok(held !== null && held === start && held < p, `the cursor was set at build and stays below the change (${held} < ${p})`);
    queue.fails = false;
    await waitFor(async () => published.includes(`@bob:${ME}`), 5000, 'the retry to publish bob');
    await waitFor(async () => ((await store.federationQueue.getCursor(DEVICE_LIST_CURSOR)) ?? 0) >= p, 5000, 'the cursor to pass the change');
  });

  it('a change left above the cursor by a process that died is published by the next process at start', async () => {
    const first: string[] = [];
    const o1 = outbox(async (u) => void first.push(u));
    o1.start();
    await o1.settled();
    assert.notEqual(await store.federationQueue.getCursor(DEVICE_LIST_CURSOR), null, 'the cursor is set once the outbox is built');
    await o1.stop(); // "dies": nothing publishes the change below
    await store.e2ee.markDeviceListChanged(`@carol:${ME}`);
    assert.deepEqual(first, []);
    const second: string[] = [];
    const o2 = outbox(async (u) => void second.push(u)); // built after the change: the cursor, not the start, decides
    o2.start();
    await o2.settled();
    assert.deepEqual(second, [`@carol:${ME}`]);
    assert.equal(await store.federationQueue.getCursor(DEVICE_LIST_CURSOR), store.currentPosition());
  });

  it('with a lease gate only the holder publishes; a refused worker stops looking once the cursor passed what it heard of', async () => {
    const byHolder: string[] = [];
    const byOther: string[] = [];
    let otherAsks = 0;
    const holder = outbox(async (u) => void byHolder.push(u), { gate: { acquire: async () => true } });
    const other = outbox(async (u) => void byOther.push(u), {
      gate: {
        acquire: async () => {
          otherAsks++;
          return false;
        },
      },
    });
    holder.start();
    other.start();
    await Promise.all([holder.settled(), other.settled()]);
    const p = await store.e2ee.markDeviceListChanged(`@dave:${ME}`);
    await waitFor(async () => ((await store.federationQueue.getCursor(DEVICE_LIST_CURSOR)) ?? 0) >= p, 5000, 'the holder to pass the change');
    // The refused worker looks again on its retry timer until it sees the cursor past the change:
    // wait for that last look (no timer armed, no drain running), not for a fixed time a late
    // timer on a loaded machine can overrun (its last ask then fell into the window below).
    const idle = (o: DeviceListOutbox) => (o as unknown as { timer?: NodeJS.Timeout }).timer === undefined;
    await waitFor(async () => (await other.settled(), idle(other)), 5000, 'the refused worker to stop looking');
    await Promise.all([holder.settled(), other.settled()]);
    assert.deepEqual(byHolder, [`@dave:${ME}`]);
    assert.deepEqual(byOther, [], 'the refused worker published nothing');
    const asked = otherAsks;
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(otherAsks, asked, 'and stopped asking once the cursor passed the change');
  });
});
