// The keyspace's data format (src/store/cassandra/data-format.ts) on the real Cassandra node: a
// store records its format at open and names its worker lease with it; it refuses to open, with
// a DataFormatError that says what to do, a keyspace a newer build wrote, or one where a live
// worker of an older build (a bare-UUID lease owner, as every build before the check wrote)
// could not read what it is about to write. Revoked leases and other owners are not workers.

import type cassandra from 'cassandra-driver';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { openCassandraStore, type CassandraStore } from '../../src/store/cassandra/index.js';
import { DATA_FORMAT, DataFormatError, formatOfOwner } from '../../src/store/cassandra/data-format.js';

describe('Cassandra keyspace data format', function () {
  this.timeout(90_000);
  const keyspace = freshKeyspace('format');
  let addr = '';
  let admin: cassandra.Client;
  let ks: cassandra.Client;
  const open: CassandraStore[] = [];
  let migrated = false;

  const openStore = async (): Promise<CassandraStore> => {
    const s = await openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace, skipMigrations: migrated });
    migrated = true;
    open.push(s);
    return s;
  };
  const refused = (what: RegExp) => (err: unknown) => {
    assert.ok(err instanceof DataFormatError, `expected DataFormatError, got ${String(err)}`);
    assert.match(err.message, what);
    assert.match(err.message, /docs\/deploy\.md/);
    return true;
  };

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    admin = await cassandraClient(addr);
  });

  after(async () => {
    for (const s of open) await s.close().catch(() => undefined);
    await ks?.shutdown();
    await dropKeyspace(admin, keyspace).catch(() => undefined);
    await admin.shutdown();
  });

  it('owner tokens: this build\'s carry its format, a bare UUID is format 0, anything else is no worker', () => {
    assert.equal(formatOfOwner('f1.0b7c3c3e-8d8e-4c55-9d0e-6b1f0c3f5a11'), 1);
    assert.equal(formatOfOwner('0b7c3c3e-8d8e-4c55-9d0e-6b1f0c3f5a11'), 0);
    assert.equal(formatOfOwner('revoked:0b7c3c3e-8d8e-4c55-9d0e-6b1f0c3f5a11'), null);
    assert.equal(formatOfOwner('someone-else'), null);
  });

  it('records its format, refuses a newer keyspace and a live older worker, and opens again once they are gone', async () => {
    const first = await openStore();
    ks = await cassandraClient(addr, keyspace);
    const format = async () => Number((await ks.execute('SELECT format FROM data_format WHERE id = 0')).first()?.['format']);
    assert.equal(await format(), DATA_FORMAT);
    const mine = (await ks.execute('SELECT owner FROM worker_leases')).rows.map((r) => r['owner'] as string);
    assert.ok(mine.length >= 1 && mine.every((o) => formatOfOwner(o) === DATA_FORMAT), `lease owners ${mine.join(', ')}`);

    // A newer build was here.
    await ks.execute('UPDATE data_format SET format = ? WHERE id = 0', [DATA_FORMAT + 1], { prepare: true });
    await assert.rejects(openStore(), refused(new RegExp(`format ${DATA_FORMAT + 1}, written by a newer Hearth`)));
    await ks.execute('UPDATE data_format SET format = ? WHERE id = 0', [DATA_FORMAT], { prepare: true });

    // A live worker of a build before the check (its lease renewed with a TTL, as it does).
    await ks.execute('INSERT INTO worker_leases (id, owner) VALUES (?, ?) USING TTL 30', [41, '0b7c3c3e-8d8e-4c55-9d0e-6b1f0c3f5a11'], { prepare: true });
    await assert.rejects(openStore(), refused(/worker ID 41 is held by a live older Hearth \(data format 0\)/));
    // Revoked, it is no worker any more: the store opens (a running one is not disturbed).
    await ks.execute('UPDATE worker_leases USING TTL 30 SET owner = ? WHERE id = ?', ['revoked:0b7c3c3e-8d8e-4c55-9d0e-6b1f0c3f5a11', 41], { prepare: true });
    const second = await openStore();
    assert.notEqual(second.workerId, first.workerId);
    assert.equal(await format(), DATA_FORMAT);
    assert.ok(first.writable !== false, 'the first store still writes');
  });
});
