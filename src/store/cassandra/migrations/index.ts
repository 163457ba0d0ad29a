// Numbered CQL migrations, applied in order and recorded in schema_migrations (see ../migrate.ts).
// Each statement must be idempotent (IF NOT EXISTS): CQL DDL is not transactional, so a
// migration interrupted half-way is simply run again.

import { m0001 } from './0001-core.js';
import { m0004 } from './0004-users.js';
import { m0005 } from './0005-e2ee-media.js';
import { m0002 } from './0002-rooms.js';
import { m0003 } from './0003-derived.js';
import { m0006 } from './0006-room-owner.js';
import { m0012 } from './0012-erasure.js';
import { m0013 } from './0013-appservice.js';
import { m0014 } from './0014-room-commits.js';
import { m0015 } from './0015-federation-queue.js';
import { m0016 } from './0016-identity-bindings.js';
import { m0017 } from './0017-media-blobs.js';
import { m0018 } from './0018-remote-media.js';
import { m0019 } from './0019-threepids.js';
import { m0020 } from './0020-event-expiry.js';
import { m0021 } from './0021-peeks.js';
import { m0022 } from './0022-federation-originals.js';
import { m0023 } from './0023-remote-media-eviction.js';
import { m0024 } from './0024-federation-cursors.js';
import { m0025 } from './0025-events-pruned.js';
import { m0026 } from './0026-data-format.js';
import { m0027 } from './0027-drop-event-children.js';

export interface CqlMigration {
  version: number;
  name: string;
  statements: string[];
}

export const MIGRATIONS: CqlMigration[] = [m0001, m0002, m0003, m0004, m0005, m0006, m0012, m0013, m0014, m0015, m0016, m0017, m0018, m0019, m0020, m0021, m0022, m0023, m0024, m0025, m0026, m0027];
