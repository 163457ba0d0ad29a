// Writer-only room operations reached from a worker without the room_writer role
// (src/room/writer-operations.ts, forwarded by src/cluster/owned-room-input.ts): one Cassandra
// keyspace and Redis prefix, worker A = client_api + sync, worker B = room_writer + pusher +
// federation (both named 127.0.0.1:<B's federation port>), and C, a separate single-node server.
// Shows, each asked of A (which answered 501 for them before): a room upgrade (tombstone in the
// old room, predecessor in the new one), an invite to a user of C (C signed it, C's user sees it),
// and the admin purges (purge_history, room deletion with purge); A never takes a room lease and
// B serves each as a forwarded call.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import { cassandraClient, dropKeyspace, freshKeyspace, startCassandra } from '../helpers/cassandra.js';
import { freshPrefix, startRedis } from '../helpers/redis.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { closeFedRequests, freePort, startFederated, syncUntil } from '../helpers/federation.js';
import type { HearthConfigInput } from '../../src/config/load.js';
import { retryBusyCassandra, V3 } from './room-owner-helpers.js';

type Role = 'client_api' | 'sync' | 'room_writer' | 'pusher' | 'federation_in' | 'federation_out';
const ADMIN = '/_synapse/admin';

describe('cluster: writer-only operations forwarded from a client_api worker', function () {
  this.timeout(180_000);
  const keyspace = freshKeyspace('writerops');
  const prefix = freshPrefix('writerops');
  const keyDir = mkdtempSync(join(tmpdir(), 'hearth-writerops-'));
  let addr = '';
  let fedPort = 0;
  let a: TestServer | null = null;
  let b: TestServer | null = null;
  let c: TestServer | null = null;
  let root: Api;
  let alice: Api & { userId: string };

  const config = (roles: Role[]): HearthConfigInput => ({
    server_name: `127.0.0.1:${fedPort}`,
    listeners: { client: { host: '127.0.0.1', port: 0 }, federation: { enabled: true, host: '127.0.0.1', port: fedPort } },
    federation: { verify_tls: false, ip_range_whitelist: ['127.0.0.1/32'], min_backoff_ms: 100, max_backoff_ms: 500 },
    storage: { backend: 'cassandra', cassandra: { contact_points: [addr], keyspace } },
    cluster: { redis: { url: startRedis(), key_prefix: prefix }, room_lease_ms: 2_000, roles },
    signing_key_path: join(keyDir, 'signing.key'),
  });

  const owner = (s: TestServer) => s.hearth.roomInput as unknown as { ownerStats: { forwarded: number; served: number; acquired: number } };

  /** Runs `op` and checks that A forwarded it and B served it. */
  async function forwarded<T>(what: string, op: () => Promise<T>): Promise<T> {
    const fwd = owner(a!).ownerStats.forwarded;
    const served = owner(b!).ownerStats.served;
    const out = await op();
    assert.ok(owner(a!).ownerStats.forwarded > fwd, `${what}: A forwarded it`);
    assert.ok(owner(b!).ownerStats.served > served, `${what}: B served it`);
    assert.equal(owner(a!).ownerStats.acquired, 0, `${what}: A never took a room lease`);
    return out;
  }

  async function createRoom(body: Record<string, unknown> = {}): Promise<string> {
    const r = await alice.post(`${V3}/createRoom`, { preset: 'public_chat', ...body });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.room_id as string;
  }

  async function send(roomId: string, text: string): Promise<string> {
    const r = await alice.put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/${encodeURIComponent(text)}`, { msgtype: 'm.text', body: text });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.event_id as string;
  }

  before(async function () {
    this.timeout(600_000);
    addr = await startCassandra();
    fedPort = await freePort();
    b = await retryBusyCassandra('worker B', () => startTestServer(config(['room_writer', 'pusher', 'federation_in', 'federation_out'])));
    a = await retryBusyCassandra('worker A', () => startTestServer(config(['client_api', 'sync'])));
    c = await startFederated(await freePort());
    const accounts = a.hearth.services.accounts;
    const rootId = await accounts.createAccount('root', null, true);
    root = new Api(a.url, (await accounts.login(rootId, undefined, null, null)).access_token);
    alice = (await new Api(a.url).register('alice')) as Api & { userId: string };
  });

  after(async () => {
    await a?.stop().catch(() => undefined);
    await b?.stop().catch(() => undefined);
    await c?.stop().catch(() => undefined);
    await closeFedRequests();
    const admin = await cassandraClient(addr);
    await dropKeyspace(admin, keyspace).catch(() => undefined);
    await admin.shutdown();
    rmSync(keyDir, { recursive: true, force: true });
  });

  it('a room upgrade asked of A runs on B: tombstone in the old room, predecessor in the new one', async () => {
    const oldRoom = await createRoom({ room_version: '11', name: 'before the upgrade' });
    await send(oldRoom, 'hello');
    const up = await forwarded('upgrade', () => alice.post(`${V3}/rooms/${enc(oldRoom)}/upgrade`, { new_version: '12' }));
    assert.equal(up.status, 200, JSON.stringify(up.body));
    const newRoom = up.body.replacement_room as string;
    assert.ok(typeof newRoom === 'string' && newRoom !== oldRoom);
    const tomb = await alice.get(`${V3}/rooms/${enc(oldRoom)}/state/m.room.tombstone/`);
    assert.equal(tomb.status, 200, JSON.stringify(tomb.body));
    assert.equal(tomb.body.replacement_room, newRoom);
    const create = await alice.get(`${V3}/rooms/${enc(newRoom)}/state/m.room.create/`);
    assert.equal(create.status, 200, JSON.stringify(create.body));
    assert.equal(create.body.predecessor.room_id, oldRoom);
    const name = await alice.get(`${V3}/rooms/${enc(newRoom)}/state/m.room.name/`);
    assert.equal(name.body.name, 'before the upgrade', 'the state was copied');
    // A refusal crosses back as the writer's Matrix error, not a 500.
    const again = await alice.post(`${V3}/rooms/${enc(newRoom)}/upgrade`, { new_version: '99' });
    assert.equal(again.status, 400, JSON.stringify(again.body));
    assert.equal(again.body.errcode, 'M_UNSUPPORTED_ROOM_VERSION');
  });

  it('an invite of a user on another server asked of A is signed by that server through B', async () => {
    const carol = await new Api(c!.url).register('carol');
    const carolId = `@carol:${c!.hearth.config.server_name}`;
    const roomId = await createRoom({ preset: 'private_chat' });
    const inv = await forwarded('remote invite', () => alice.post(`${V3}/rooms/${enc(roomId)}/invite`, { user_id: carolId }));
    assert.equal(inv.status, 200, JSON.stringify(inv.body));
    const member = await alice.get(`${V3}/rooms/${enc(roomId)}/state/m.room.member/${enc(carolId)}`);
    assert.equal(member.body.membership, 'invite');
    const invited = await syncUntil(carol, (body) => body.rooms?.invite?.[roomId], 30_000);
    assert.ok(invited.invite_state.events.some((e: any) => e.type === 'm.room.member' && e.state_key === carolId), 'C\'s user sees the invite');
    // The invitee then joins over federation through B's listener.
    const join = await carol.post(`${V3}/join/${enc(roomId)}?server_name=${enc(`127.0.0.1:${fedPort}`)}`, {});
    assert.equal(join.status, 200, JSON.stringify(join.body));
  });

  it('admin purge_history and room deletion with purge asked of A run on B', async () => {
    const roomId = await createRoom();
    const old = await send(roomId, 'old one');
    const cut = await send(roomId, 'cut here');
    const keep = await send(roomId, 'newest');
    const res = await forwarded('purge_history', () => root.post(`${ADMIN}/v1/purge_history/${enc(roomId)}`, { purge_up_to_event_id: cut, delete_local_events: true }));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const left = (await alice.get(`${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=50`)).body.chunk.map((e: any) => e.event_id) as string[];
    assert.ok(!left.includes(old), 'the older message is gone');
    assert.ok(left.includes(cut) && left.includes(keep), 'the given event and later ones stay');
    const status = await root.get(`${ADMIN}/v1/purge_history_status/${res.body.purge_id}`);
    assert.deepEqual(status.body, { status: 'complete' });

    const del = await forwarded('room deletion', () => root.req('DELETE', `${ADMIN}/v1/rooms/${enc(roomId)}`, { purge: true }));
    assert.equal(del.status, 200, JSON.stringify(del.body));
    assert.deepEqual(del.body.kicked_users, [alice.userId]);
    const gone = await root.get(`${ADMIN}/v1/rooms/${enc(roomId)}`);
    assert.equal(gone.status, 404, JSON.stringify(gone.body));
  });
});
