import type { CqlMigration } from './index.js';

export const m0001: CqlMigration = {
  version: 1,
  name: 'core',
  statements: [
    // The global stream sequence: each store instance reserves blocks of positions with an LWT
    // on this one row (a few LWTs per thousand writes), see ../positions.ts.
    `CREATE TABLE IF NOT EXISTS stream_seq (name text PRIMARY KEY, high bigint)`,
  ],
};
