// Direct-to-store provisioning for a Hearth the bench started itself, with the server STOPPED.
// Both helpers go through the Store interface (dist/src/store/sqlite, or dist/src/store/cassandra
// for a cluster's keyspace) and Hearth's own room writer, never raw SQL:
//  - seedAccounts: accounts, devices and access tokens. Registration through the API costs one
//    scrypt hash (~90 ms of server CPU) per account, which would dominate the quick run; the
//    accounts written here are the same rows /register writes (one shared password hash).
//  - prepopulateEvents: millions of signed m.room.message events through RoomInput, the same
//    code path a client send takes after HTTP, for the cold-start scenario.

import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { MatrixClient } from './matrix.js';

const silent = pino({ level: 'silent' });

/**
 * Hearth's modules, from the build the server runs (HEARTH_BENCH_SERVER_ROOT, else this one), so
 * that a database prepared here has the schema the server expects.
 */
async function hearthModules() {
  const root = process.env.HEARTH_BENCH_SERVER_ROOT;
  const from = <T>(rel: string, local: () => Promise<T>): Promise<T> =>
    root ? (import(pathToFileURL(resolve(root, 'dist/src', rel)).href) as Promise<T>) : local();
  const [sqlite, credentials, keyfile, notifier, roomInput] = await Promise.all([
    from('store/sqlite/index.js', () => import('../../src/store/sqlite/index.js')),
    from('users/credentials.js', () => import('../../src/users/credentials.js')),
    from('protocol/keyfile.js', () => import('../../src/protocol/keyfile.js')),
    from('sync/notifier.js', () => import('../../src/sync/notifier.js')),
    from('room/room-input.js', () => import('../../src/room/room-input.js')),
  ]);
  return { ...sqlite, ...credentials, ...keyfile, ...notifier, ...roomInput };
}

/** The Cassandra backend of the same build, loaded only when a run needs it. */
async function cassandraModule() {
  const root = process.env.HEARTH_BENCH_SERVER_ROOT;
  return root
    ? ((await import(pathToFileURL(resolve(root, 'dist/src/store/cassandra/index.js')).href)) as typeof import('../../src/store/cassandra/index.js'))
    : import('../../src/store/cassandra/index.js');
}

export async function seedAccounts(dbPath: string, serverName: string, baseUrl: string, n: number, prefix: string): Promise<MatrixClient[]> {
  const { openSqliteStore } = await hearthModules();
  const store = await openSqliteStore({ path: dbPath, synchronous: 'normal', logger: silent });
  try {
    return await seedAccountsInto(store, serverName, () => baseUrl, n, prefix);
  } finally {
    await store.close();
  }
}

export interface CassandraSeedTarget {
  contactPoint: string;
  keyspace: string;
}

/**
 * The same accounts in a Cassandra keyspace (created and migrated here, before any worker
 * starts), each client pointed at `baseUrlFor(i)`: a cluster's users spread over its workers.
 */
export async function seedCassandraAccounts(c: CassandraSeedTarget, serverName: string, baseUrlFor: (i: number) => string, n: number, prefix: string): Promise<MatrixClient[]> {
  const { openCassandraStore } = await cassandraModule();
  const store = await openCassandraStore({ contactPoints: [c.contactPoint], localDataCenter: 'datacenter1', keyspace: c.keyspace, replicationFactor: 1, logger: silent });
  try {
    return await seedAccountsInto(store, serverName, baseUrlFor, n, prefix);
  } finally {
    await store.close();
  }
}

/** The server build's signing-key loader (a cluster's workers share one key, written before they start). */
export async function createSigningKey(path: string): Promise<void> {
  const { loadOrCreateSigningKey } = await hearthModules();
  await loadOrCreateSigningKey(path);
}

type SeedStore = Pick<import('../../src/store/types.js').Store, 'accounts' | 'devices'>;

async function seedAccountsInto(store: SeedStore, serverName: string, baseUrlFor: (i: number) => string, n: number, prefix: string): Promise<MatrixClient[]> {
  const { hashPassword, generateAccessToken, generateDeviceId, hashAccessToken } = await hearthModules();
  const passwordHash = await hashPassword('bench-password');
  const now = Date.now();
  const out: MatrixClient[] = [];
  const BATCH = 500;
  for (let start = 0; start < n; start += BATCH) {
    const jobs: Promise<void>[] = [];
    for (let i = start; i < Math.min(n, start + BATCH); i++) {
      const userId = `@${prefix}${i}:${serverName}`;
      const deviceId = generateDeviceId();
      const token = generateAccessToken();
      out.push(new MatrixClient(baseUrlFor(i), userId, token, deviceId));
      jobs.push(
        (async () => {
          await store.accounts.createUser({ userId, passwordHash, admin: false, createdTs: now, displayname: `${prefix}${i}` });
          await store.devices.upsertDevice({ userId, deviceId, displayName: 'bench', ts: now, ip: null });
          await store.devices.addAccessToken(hashAccessToken(token), { userId, deviceId }, now);
        })(),
      );
    }
    await Promise.all(jobs);
  }
  return out;
}

/**
 * Appends `total` messages, round-robin over `rooms` (whose `sender` is joined), through
 * RoomInput on the stopped server's database and signing key. Returns events written per second.
 */
export async function prepopulateEvents(
  dataDir: string,
  serverName: string,
  rooms: string[],
  sender: string,
  total: number,
  onProgress?: (done: number) => void,
): Promise<number> {
  const { openSqliteStore, loadOrCreateSigningKey, RoomInput, LocalNotifier } = await hearthModules();
  const store = await openSqliteStore({ path: join(dataDir, 'data', 'hearth.sqlite'), synchronous: 'normal', logger: silent });
  const signingKey = await loadOrCreateSigningKey(join(dataDir, 'data', 'signing.key'));
  const input = new RoomInput({ store, notifier: new LocalNotifier(), serverName, signingKey });
  const started = performance.now();
  let done = 0;
  try {
    // Each room's writer is serial; keep a few events queued per room so every tick commits a
    // batch across rooms.
    const perRoomInFlight = 4;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < total) {
        const i = next++;
        const roomId = rooms[i % rooms.length];
        await input.submit(roomId, {
          type: 'm.room.message',
          sender,
          content: { msgtype: 'm.text', body: `history ${i}: the quick brown fox jumps over the lazy dog` },
        });
        if (++done % 20_000 === 0) onProgress?.(done);
      }
    };
    await Promise.all(Array.from({ length: rooms.length * perRoomInFlight }, worker));
    await input.drain();
  } finally {
    await store.close();
  }
  return done / ((performance.now() - started) / 1000);
}
