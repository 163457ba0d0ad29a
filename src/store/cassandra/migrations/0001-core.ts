// Cassandra migration 1: the worker-ID leases and per-worker position marks behind stream
// positions (../positions.ts). Idempotent (IF NOT EXISTS), as every CQL migration (index.ts).

import type { CqlMigration } from './index.js';

export const m0001: CqlMigration = {
  version: 1,
  name: 'core',
  statements: [
    // Which instance holds each worker ID (the low bits of its stream positions), as a lease:
    // a TTL'd row claimed and renewed with LWTs (../positions.ts).
    `CREATE TABLE IF NOT EXISTS worker_leases (id int PRIMARY KEY, owner text)`,
    // Per worker ID, a position above every one it has handed out (written ahead, plain writes),
    // so a restart or a successor with the same ID never reuses a position.
    `CREATE TABLE IF NOT EXISTS worker_clock (id int PRIMARY KEY, high bigint)`,
  ],
};
