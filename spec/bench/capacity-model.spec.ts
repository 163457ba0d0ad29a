import { assert } from '../helpers/assert.js';
import { fanout, model } from '../../bench/capacity-model.js';

const base = {
  idleSocketKiB: 10,
  cpuPerDeliveryUs: 50,
  nodeMemoryGiB: 10,
  nodeMemoryForSocketsShare: 0.5,
  nodeCores: 2,
  cpuHeadroom: 0.5,
  messagesPerUserPerDay: 43.2,
  deliveriesPerMessage: 2,
  onlineShare: 0.5,
  peakToMean: 1,
  sessionMinutes: 10,
  registryEntryBytes: 100,
  redisOpsPerShard: 1000,
  redisMemoryPerShardGiB: 1,
  presenceHeartbeatSec: 60,
  eventBytes: 1000,
  rowsPerMessage: 4,
  bucketSize: 4096,
  cassandraWritesPerNode: 1000,
  replicationFactor: 3,
  fanoutBudgetMs: 10,
  reconnectAdmitPerNodePerSec: 100,
  reconnectJitterSec: 5,
};

describe('capacity model (bench/capacity-model.ts)', function () {
  it('sizes gateways by the tighter of memory and CPU, with one spare node', function () {
    const r = model(base, 1_000_000);
    // memory: 10 GiB × 0.5 / 10 KiB = 524,288 sockets
    assert.equal(r.socketsPerNodeMemory, 524_288);
    // 1M online of 2M daily users × 43.2 msgs = 86.4M/day = 1,000 sends/s, 2,000 deliveries/s
    assert.equal(Math.round(r.deliveriesPerSecPeak), 2000);
    // CPU: 1e6 µs/s budget / (0.002 deliveries/s per socket × 50 µs) = 10M sockets
    assert.equal(r.socketsPerNodeCpu, 10_000_000);
    assert.equal(r.gatewayNodes, Math.ceil(1_000_000 / 524_288) + 1);
    // Cassandra: 1,000 sends/s × 4 rows × RF 3
    assert.equal(Math.round(r.cassandraWritesPerSec), 12_000);
    assert.equal(r.cassandraNodes, 12);
  });

  it('shards the registry when its operations exceed one shard', function () {
    const small = model(base, 1_000);
    const big = model(base, 10_000_000);
    assert.equal(small.redisShards, 1);
    assert.ok(big.redisShards > 1);
    assert.ok(big.registryOpsPerSec > small.registryOpsPerSec);
  });

  it('switches a room to pull where fan-out exceeds the budget', function () {
    const f = fanout(base);
    // 10 ms / (50 µs × 0.5 online) = 400 members
    assert.equal(f.pullAbove, 401);
    assert.ok(f.sizes.every((s, i) => i === 0 || s.cpuMsPerSend > f.sizes[i - 1]!.cpuMsPerSend));
  });
});
