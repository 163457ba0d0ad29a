// The keyspace's data format: which builds can read its rows (src/store/cassandra/data-format.ts).

import type { CqlMigration } from './index.js';

export const m0026: CqlMigration = {
  version: 26,
  name: 'data_format',
  statements: [`CREATE TABLE IF NOT EXISTS data_format (id int PRIMARY KEY, format int)`],
};
