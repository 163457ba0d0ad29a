// The store contract against a real single-node Cassandra (scripts/cassandra.sh), plus what is
// specific to the backend: migrations, positions across reopen and across two instances.
//
// One keyspace per run, migrated once; each test starts from emptied tables (truncating only
// those that hold rows), which keeps ~200 contract tests to minutes.

import type cassandra from 'cassandra-driver';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra, truncateKeyspace } from '../helpers/cassandra.js';
import { openCassandraStore, type CassandraStore, type CassandraStoreOptions } from '../../src/store/cassandra/index.js';
import { MIGRATIONS } from '../../src/store/cassandra/migrations/index.js';
import { PositionAllocator } from '../../src/store/cassandra/positions.js';
import { describeStoreContract } from './contract.js';

const keyspace = freshKeyspace('contract');
let addr = '';
let admin: cassandra.Client | null = null;
let migrated = false;

async function open(extra: Partial<CassandraStoreOptions> = {}): Promise<CassandraStore> {
  const store = await openCassandraStore({
    contactPoints: [addr],
    localDataCenter: 'datacenter1',
    keyspace,
    skipMigrations: migrated,
    ...extra,
  });
  migrated = true;
  return store;
}

before(async function () {
  this.timeout(600_000);
  addr = await startCassandra();
  admin = await cassandraClient(addr);
});

after(async function () {
  this.timeout(60_000);
  if (admin) {
    await dropKeyspace(admin, keyspace);
    await admin.shutdown();
  }
});

describeStoreContract('cassandra (single node)', async () => {
  const opened: CassandraStore[] = [];
  const openTracked = async () => {
    const s = await open();
    opened.push(s);
    return s;
  };
  const store = await openTracked();
  return {
    store,
    reopen: openTracked,
    cleanup: async () => {
      for (const s of opened) await s.close();
      await truncateKeyspace(admin!, keyspace);
    },
  };
});

describe('CassandraStore', function () {
  const stores: CassandraStore[] = [];
  afterEach(async function () {
    for (const s of stores.splice(0)) await s.close();
    await truncateKeyspace(admin!, keyspace);
  });

  it('records every migration once, and a second open applies none', async function () {
    const ks = freshKeyspace('migrate');
    try {
      const first = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace: ks });
      stores.push(first);
      assert.deepEqual([...first.appliedMigrations], MIGRATIONS.map((m) => m.version));
      const second = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace: ks });
      stores.push(second);
      assert.deepEqual([...second.appliedMigrations], []);
    } finally {
      for (const s of stores.splice(0)) await s.close();
      await dropKeyspace(admin!, ks);
    }
  });

  it('refuses a keyspace name that is not a plain identifier', async function () {
    await assert.rejects(
      openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace: 'x; DROP KEYSPACE system' }),
      /invalid keyspace name/,
    );
  });

  describe('positions', function () {
    let client: cassandra.Client | null = null;
    beforeEach(async function () {
      await open().then((s) => stores.push(s));
      client = await cassandraClient(addr, keyspace);
    });
    afterEach(async function () {
      await client?.shutdown();
    });

    it('two instances on one keyspace never hand out the same position', async function () {
      const a = await PositionAllocator.open(client!, { blockSize: 10 });
      const b = await PositionAllocator.open(client!, { blockSize: 10 });
      const seen = new Set<number>();
      for (let i = 0; i < 35; i++) {
        for (const alloc of [a, b]) {
          const p = await alloc.reserve();
          assert.ok(!seen.has(p), `position ${p} handed out twice`);
          seen.add(p);
          alloc.gen.complete(p);
        }
      }
      assert.equal(seen.size, 70);
    });

    it('a reopened allocator starts above every position handed out before, used or not', async function () {
      const a = await PositionAllocator.open(client!, { blockSize: 100 });
      const p1 = await a.reserve();
      a.gen.complete(p1);
      const unused = await a.reserve(); // reserved, never completed: the process "died"
      const b = await PositionAllocator.open(client!, { blockSize: 100 });
      const p2 = await b.reserve();
      assert.ok(p2 > unused, `${p2} must be above ${unused}`);
      assert.equal(b.gen.current(), p2 - 1, 'the watermark starts right below the first new position');
    });

    it('the watermark waits for an earlier position that completes later', async function () {
      const a = await PositionAllocator.open(client!, { blockSize: 5 });
      const p1 = await a.reserve();
      const p2 = await a.reserve();
      a.gen.complete(p2);
      assert.equal(a.gen.current(), p1 - 1);
      a.gen.complete(p1);
      assert.equal(a.gen.current(), p2);
    });
  });
});
