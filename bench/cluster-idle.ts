// Idle cost of a cluster, alone: `node dist/bench/cluster-idle.js [WORKERS] [ROUNDS]` starts the
// --cluster launcher's cluster (bench/lib/cluster.ts: WORKERS workers on Cassandra + Redis, 2
// accounts), measures the workers' CPU with no clients for 5 s (the launcher's "idle (no
// clients)" figure), stops it, ROUNDS times. For A/B runs of the replication heartbeat without
// the full `npm run bench -- --cluster` scenarios.

import { clusterCleanup, launchCluster } from './lib/cluster.js';
import type { BenchContext } from './lib/context.js';

const workers = Number(process.argv[2] ?? 3);
const rounds = Number(process.argv[3] ?? 2);
const ctx: BenchContext = { quick: false, pin: false, profile: false, accounts: 'seed', synchronous: 'normal', versus: false, log: (m) => console.log(m) };

for (let i = 0; i < rounds; i++) {
  const session = await launchCluster(ctx, { kind: 'cluster', workers }, { users: 2, scenario: 'cluster-idle' });
  await session.close();
}
await clusterCleanup();
process.exit(0);
