// Measures (does not assert) what the Cassandra E2EE paths cost on the test node
// (scripts/cassandra.sh): sequential one-time key claims (local mutex + LWT), concurrent claims
// from two instances on one keyspace (checking every key went out once), to-device queueing,
// get(10) + ack cycles draining a device, and the ack every /sync makes with nothing pending.
// Uses a throwaway keyspace, dropped at the end.
//
//   npm run build && node dist/bench/cassandra-e2ee.js [claims=100]

import cassandra from 'cassandra-driver';
import { startCassandra } from '../spec/helpers/cassandra.js';
import { openCassandraStore } from '../src/store/cassandra/index.js';
import type { ClaimedKey } from '../src/store/types.js';

const N = Number(process.argv[2] ?? 100);
const ALG = 'signed_curve25519';
const USER = '@bench:hearth.test';

const addr = await startCassandra();
const keyspace = `t_bench_e2ee_${Date.now()}`;
const open = () => openCassandraStore({ contactPoints: [addr], localDataCenter: 'datacenter1', keyspace });
const a = await open();
const b = await open();
const keys = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => ({ algorithm: ALG, keyId: `${prefix}${i}`, key: { key: `k${i}` } }));
const ms = (t: number) => performance.now() - t;

try {
  await a.e2ee.addOneTimeKeys(USER, 'SEQ', keys(N, 'S'));
  let t = performance.now();
  for (let i = 0; i < N; i++) await a.e2ee.claimOneTimeKey(USER, 'SEQ', ALG);
  console.log(`sequential claims, one instance: ${(ms(t) / N).toFixed(2)} ms/claim`);

  await a.e2ee.addOneTimeKeys(USER, 'PAR', keys(2 * N, 'P'));
  t = performance.now();
  const got = await Promise.all(Array.from({ length: 2 * N }, (_, i) => (i % 2 ? a : b).e2ee.claimOneTimeKey(USER, 'PAR', ALG)));
  const ids = got.filter((c): c is ClaimedKey => c !== null).map((c) => c.keyId);
  console.log(`${2 * N} concurrent claims on two instances for ${2 * N} keys: ${ms(t).toFixed(0)} ms total, ${ids.length} handed out, ${new Set(ids).size} distinct`);

  t = performance.now();
  for (let i = 0; i < 2 * N; i++) await a.e2ee.queueToDevice([{ userId: USER, deviceId: 'TD', type: 't', sender: USER, content: { i } }]);
  console.log(`queueToDevice (one message): ${(ms(t) / (2 * N)).toFixed(2)} ms/call`);

  t = performance.now();
  let cycles = 0;
  for (;;) {
    const batch = await a.e2ee.getToDevice(USER, 'TD', a.currentPosition(), 10);
    if (batch.length === 0) break;
    cycles++;
    await a.e2ee.ackToDevice(USER, 'TD', batch[batch.length - 1]!.stream);
  }
  console.log(`get(10) + ack draining ${2 * N} messages: ${(ms(t) / cycles).toFixed(2)} ms/cycle`);

  t = performance.now();
  for (let i = 0; i < N; i++) await a.e2ee.ackToDevice(USER, 'TD', a.currentPosition());
  console.log(`ack with nothing pending: ${(ms(t) / N).toFixed(2)} ms/call`);
} finally {
  await a.close();
  await b.close();
  const admin = new cassandra.Client({ contactPoints: [addr], localDataCenter: 'datacenter1' });
  await admin.connect();
  await admin.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  await admin.shutdown();
}
