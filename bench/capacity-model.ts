// The capacity model of docs/scaling.md: from per-node figures measured on this machine to the
// number of gateway nodes, Redis shards and Cassandra load for a target number of concurrent
// connections. `npm run capacity` prints the tables in docs/scaling.md; `-- --json` prints the
// raw numbers; `-- --set name=value` overrides one input (repeatable) to explore.
//
// Every input is either a measurement (with the command that produced it) or an assumption about
// the workload (stated as such). The arithmetic is deliberately simple and visible: each output
// row names its formula. Nothing here is measured at scale; it extrapolates single-node figures,
// and the assumptions dominate the result at 10^8 connections.

interface Input {
  value: number;
  unit: string;
  /** 'measured' inputs name their command; 'assumed' ones are workload choices. */
  kind: 'measured' | 'assumed';
  source: string;
}

const INPUTS = {
  idleSocketKiB: {
    value: 13.8,
    unit: 'KiB',
    kind: 'measured',
    source: 'RSS per idle socket at 10,000 sockets, quiet full run 2026-12-07 (bench/results/2026-12-07-idle-cost.json): npm run bench -- --scenario fanout,socket-latency,idle-cost,storm,overload',
  },
  cpuPerDeliveryUs: {
    value: 279,
    unit: 'µs',
    kind: 'measured',
    source: 'server CPU per delivered message on sockets, send path included, full socket-latency run (1,000 users, 200 sends/s), quiet 2026-12-07 (bench/results/2026-12-07-socket-latency.json); the issue-10 target is 15: --set cpuPerDeliveryUs=15',
  },
  nodeMemoryGiB: { value: 24, unit: 'GiB', kind: 'assumed', source: 'this machine: 2 cores, 24 GiB' },
  nodeMemoryForSocketsShare: { value: 0.6, unit: 'fraction', kind: 'assumed', source: 'rest: heap for the read model, caches, OS' },
  nodeCores: { value: 2, unit: 'cores', kind: 'assumed', source: 'this machine' },
  cpuHeadroom: { value: 0.5, unit: 'fraction', kind: 'assumed', source: 'plan nodes at 50 % CPU so a dead node\'s share fits' },
  messagesPerUserPerDay: { value: 40, unit: 'msgs', kind: 'assumed', source: 'WhatsApp-like: ~100 B msgs/day over ~2 B users' },
  deliveriesPerMessage: { value: 3, unit: 'recipients', kind: 'assumed', source: 'mostly 1:1, some groups (mean recipients per send)' },
  onlineShare: { value: 0.3, unit: 'fraction', kind: 'assumed', source: 'concurrent connections / daily users' },
  peakToMean: { value: 3, unit: '×', kind: 'assumed', source: 'peak-hour rate over the daily mean' },
  sessionMinutes: { value: 20, unit: 'min', kind: 'assumed', source: 'mean connection lifetime (mobile networks churn)' },
  registryEntryBytes: {
    value: 220,
    unit: 'B',
    kind: 'assumed',
    source: 'one hash field per device: user + device + node + connection id (~90 B) plus Redis hash overhead',
  },
  redisOpsPerShard: { value: 100_000, unit: 'ops/s', kind: 'assumed', source: 'a conservative single-thread Redis figure for small commands' },
  redisMemoryPerShardGiB: { value: 16, unit: 'GiB', kind: 'assumed', source: 'shard memory budget' },
  presenceHeartbeatSec: { value: 60, unit: 's', kind: 'assumed', source: 'presence/last-seen refresh per connection' },
  eventBytes: { value: 1000, unit: 'B', kind: 'assumed', source: 'stored PDU with signatures and hashes, typical text message' },
  rowsPerMessage: {
    value: 4,
    unit: 'rows',
    kind: 'assumed',
    source: 'event row, event-id index, txn id, push-bulk row (src/store/cassandra; relations/search add more)',
  },
  bucketSize: { value: 4096, unit: 'events', kind: 'assumed', source: 'events per (room, bucket) partition, src/store/cassandra' },
  cassandraWritesPerNode: { value: 20_000, unit: 'writes/s', kind: 'assumed', source: 'per node at RF 3, small rows (not measured here)' },
  replicationFactor: { value: 3, unit: 'copies', kind: 'assumed', source: 'production keyspace' },
  fanoutBudgetMs: { value: 20, unit: 'ms', kind: 'assumed', source: 'CPU one send may spend on fan-out before the room switches to pull' },
  reconnectAdmitPerNodePerSec: {
    value: 400,
    unit: 'clients/s',
    kind: 'measured',
    source: 'quick storm: 500 clients resumed from tokens in 1.0-1.6 s on one node: npm run bench -- --scenario storm --quick',
  },
  reconnectJitterSec: { value: 10, unit: 's', kind: 'assumed', source: 'clients spread reconnects over retry_after_ms + jitter' },
} satisfies Record<string, Input>;

type Name = keyof typeof INPUTS;
type Values = Record<Name, number>;

const TARGETS = [1e6, 1e7, 1e8, 3e8];

function parseArgs(argv: string[]): { json: boolean; values: Values } {
  const values = Object.fromEntries(Object.entries(INPUTS).map(([k, v]) => [k, v.value])) as Values;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') json = true;
    else if (a === '--set') {
      const [k, v] = (argv[++i] ?? '').split('=');
      if (!k || !(k in INPUTS) || v === undefined || !Number.isFinite(Number(v))) throw new Error(`--set name=value with a known name: ${argv[i]}`);
      values[k as Name] = Number(v);
    } else throw new Error(`unknown argument ${a}`);
  }
  return { json, values };
}

export interface ModelRow {
  connections: number;
  socketsPerNodeMemory: number;
  socketsPerNodeCpu: number;
  socketsPerNode: number;
  gatewayNodes: number;
  deliveriesPerSecPeak: number;
  registryGiB: number;
  registryOpsPerSec: number;
  redisShards: number;
  cassandraWritesPerSec: number;
  cassandraNodes: number;
  messagesPerDay: number;
  stormSecondsNodeLoss: number;
}

export function model(v: Values, connections: number): ModelRow {
  const dailyUsers = connections / v.onlineShare;
  const messagesPerDay = dailyUsers * v.messagesPerUserPerDay;
  const sendsPerSecPeak = (messagesPerDay / 86_400) * v.peakToMean;
  const deliveriesPerSecPeak = sendsPerSecPeak * v.deliveriesPerMessage;
  const socketsPerNodeMemory = Math.floor((v.nodeMemoryGiB * 1024 * 1024 * v.nodeMemoryForSocketsShare) / v.idleSocketKiB);
  // CPU: deliveries arriving at one node scale with the sockets it holds.
  const deliveriesPerSocketPerSec = deliveriesPerSecPeak / connections;
  const cpuBudgetUsPerSec = v.nodeCores * 1e6 * v.cpuHeadroom;
  const socketsPerNodeCpu = Math.floor(cpuBudgetUsPerSec / (deliveriesPerSocketPerSec * v.cpuPerDeliveryUs));
  const socketsPerNode = Math.min(socketsPerNodeMemory, socketsPerNodeCpu);
  // N+1: the survivors of one node's death still fit every connection.
  const gatewayNodes = Math.max(2, Math.ceil(connections / socketsPerNode) + 1);
  // Registry: one entry per connection; writes on connect and disconnect, presence refreshes,
  // and one lookup per delivery routed to a device that is not on the sender's node.
  const registryGiB = (connections * v.registryEntryBytes) / 1024 ** 3;
  const churnOps = (2 * connections) / (v.sessionMinutes * 60);
  const presenceOps = connections / v.presenceHeartbeatSec;
  const registryOpsPerSec = churnOps + presenceOps + deliveriesPerSecPeak;
  const redisShards = Math.max(1, Math.ceil(registryOpsPerSec / v.redisOpsPerShard), Math.ceil(registryGiB / v.redisMemoryPerShardGiB));
  const cassandraWritesPerSec = sendsPerSecPeak * v.rowsPerMessage * v.replicationFactor;
  const cassandraNodes = Math.max(v.replicationFactor, Math.ceil(cassandraWritesPerSec / v.cassandraWritesPerNode));
  // A dead node's sockets reconnect to the survivors within the jitter window; each survivor admits
  // at its measured resume rate. Whichever is slower bounds the storm.
  const lost = connections / gatewayNodes;
  const admitSeconds = lost / (v.reconnectAdmitPerNodePerSec * Math.max(1, gatewayNodes - 1));
  const stormSecondsNodeLoss = Math.max(admitSeconds, v.reconnectJitterSec);
  return {
    connections,
    socketsPerNodeMemory,
    socketsPerNodeCpu,
    socketsPerNode,
    gatewayNodes,
    deliveriesPerSecPeak,
    registryGiB,
    registryOpsPerSec,
    redisShards,
    cassandraWritesPerSec,
    cassandraNodes,
    messagesPerDay,
    stormSecondsNodeLoss,
  };
}

/** Fan-out: per-send CPU by room size, and the size at which a room should switch to pull. */
export function fanout(v: Values): { sizes: Array<{ members: number; cpuMsPerSend: number }>; pullAbove: number } {
  const sizes = [2, 10, 100, 1_000, 10_000, 100_000].map((members) => ({
    members,
    cpuMsPerSend: ((members - 1) * v.cpuPerDeliveryUs * v.onlineShare) / 1000,
  }));
  const pullAbove = Math.floor((v.fanoutBudgetMs * 1000) / (v.cpuPerDeliveryUs * v.onlineShare)) + 1;
  return { sizes, pullAbove };
}

/** Partition sizes: one (room, bucket) partition holds bucketSize events. */
export function partitions(v: Values): { bucketMiB: number; bucketsPerBusyRoomPerDay: number } {
  const busyRoomMessagesPerDay = 50_000;
  return { bucketMiB: (v.bucketSize * v.eventBytes) / 1024 ** 2, bucketsPerBusyRoomPerDay: busyRoomMessagesPerDay / v.bucketSize };
}

const fmt = (n: number): string =>
  n >= 1e9 ? `${(n / 1e9).toFixed(1)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e4 ? `${Math.round(n / 1e3)} k` : Number.isInteger(n) || n >= 10 ? String(Math.round(n)) : n.toFixed(2);

function main(): void {
  const { json, values } = parseArgs(process.argv.slice(2));
  const rows = TARGETS.map((c) => model(values, c));
  const fan = fanout(values);
  const part = partitions(values);
  if (json) {
    process.stdout.write(JSON.stringify({ inputs: values, rows, fanout: fan, partitions: part }, null, 2) + '\n');
    return;
  }
  const out: string[] = [];
  out.push('| input | value | kind | source |', '| --- | --- | --- | --- |');
  for (const [k, i] of Object.entries(INPUTS) as Array<[Name, Input]>) {
    out.push(`| ${k} | ${values[k]} ${i.unit} | ${i.kind} | ${i.source} |`);
  }
  out.push('');
  out.push(
    '| concurrent connections | sockets/node (memory) | sockets/node (CPU) | gateway nodes | peak deliveries/s | registry size | registry ops/s | Redis shards | Cassandra writes/s (×RF) | Cassandra nodes | messages/day | node-loss storm |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const r of rows) {
    out.push(
      `| ${fmt(r.connections)} | ${fmt(r.socketsPerNodeMemory)} | ${fmt(r.socketsPerNodeCpu)} | ${fmt(r.gatewayNodes)} | ${fmt(r.deliveriesPerSecPeak)} | ${r.registryGiB.toFixed(1)} GiB | ${fmt(r.registryOpsPerSec)} | ${r.redisShards} | ${fmt(r.cassandraWritesPerSec)} | ${fmt(r.cassandraNodes)} | ${fmt(r.messagesPerDay)} | ${r.stormSecondsNodeLoss.toFixed(0)} s |`,
    );
  }
  out.push('');
  out.push('| room members | fan-out CPU per send (online members only) |', '| --- | --- |');
  for (const s of fan.sizes) out.push(`| ${fmt(s.members)} | ${s.cpuMsPerSend.toFixed(2)} ms |`);
  out.push('', `Rooms above ${fmt(fan.pullAbove)} members exceed the ${values.fanoutBudgetMs} ms fan-out budget per send: switch them to pull.`);
  out.push(`A (room, bucket) partition holds ${values.bucketSize} events ≈ ${part.bucketMiB.toFixed(1)} MiB; a room with 50,000 messages a day fills ${part.bucketsPerBusyRoomPerDay.toFixed(1)} buckets a day.`);
  process.stdout.write(out.join('\n') + '\n');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) main();
