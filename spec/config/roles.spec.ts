// cluster.roles: the config refuses role lists that cannot work, with the reason at the key;
// Roles turns a valid list into what the composition root serves (src/cluster/roles.ts).

import { assert } from '../helpers/assert.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import type { HearthConfigInput } from '../../src/config/load.js';
import { Roles } from '../../src/cluster/roles.js';

const CLUSTER: HearthConfigInput = {
  storage: { backend: 'cassandra' },
  cluster: { redis: { url: 'redis://127.0.0.1:6379' } },
};

function withRoles(roles: unknown, extra: HearthConfigInput = {}): HearthConfigInput {
  return {
    ...CLUSTER,
    ...extra,
    cluster: { ...CLUSTER.cluster, ...(extra.cluster ?? {}), roles: roles as never },
  };
}

function configError(overrides: HearthConfigInput): string {
  try {
    loadConfig({ env: {}, overrides });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

const FEDERATION: HearthConfigInput = { listeners: { federation: { enabled: true, tls: false } } };

describe('config: cluster.roles', () => {
  it('defaults to all: every role, a single node as before', () => {
    const c = loadConfig({ env: {} });
    assert.deepEqual(c.cluster.roles, ['all']);
    const roles = new Roles(c.cluster.roles);
    assert.equal(roles.all, true);
    assert.deepEqual(roles.list(), ['client_api', 'room_writer', 'sync', 'federation_in', 'federation_out', 'pusher']);
  });

  it('accepts a role split on the cluster (Cassandra + Redis)', () => {
    const a = loadConfig({ env: {}, overrides: withRoles(['client_api', 'sync']) });
    assert.deepEqual(a.cluster.roles, ['client_api', 'sync']);
    const b = loadConfig({ env: {}, overrides: withRoles(['room_writer', 'pusher']) });
    assert.equal(new Roles(b.cluster.roles).all, false);
    const f = loadConfig({ env: {}, overrides: withRoles(['room_writer', 'federation_in', 'federation_out'], FEDERATION) });
    assert.deepEqual(new Roles(f.cluster.roles).list(), ['room_writer', 'federation_in', 'federation_out']);
    // all on a cluster worker is fine too (every worker does everything).
    assert.deepEqual(loadConfig({ env: {}, overrides: withRoles(['all']) }).cluster.roles, ['all']);
  });

  it('refuses an empty list, an unknown role, a repeated role, and all beside other roles', () => {
    assert.match(configError(withRoles([])), /cluster\.roles.*at least one role/);
    assert.match(configError(withRoles(['client_api', 'gateway'])), /cluster\.roles/);
    assert.match(configError(withRoles(['sync', 'sync'])), /cluster\.roles.*twice/);
    assert.match(configError(withRoles(['all', 'sync'])), /cluster\.roles.*not both/);
  });

  it('refuses a role list without the cluster (Cassandra storage and a Redis)', () => {
    assert.match(configError({ cluster: { roles: ['client_api'] } }), /cluster\.roles.*storage\.backend cassandra and cluster\.redis\.url/);
    assert.match(configError({ storage: { backend: 'cassandra' }, cluster: { roles: ['room_writer'] } }), /cluster\.redis\.url/);
    assert.match(configError({ cluster: { redis: { url: 'redis://127.0.0.1:6379' }, roles: ['room_writer'] } }), /storage\.backend cassandra/);
  });

  it('refuses federation roles without a federation listener', () => {
    assert.match(configError(withRoles(['room_writer', 'federation_in'])), /federation_in needs listeners\.federation\.enabled/);
    assert.match(configError(withRoles(['room_writer', 'federation_out'])), /federation_out needs listeners\.federation\.enabled/);
  });

  it('refuses federation_in apart from room_writer; federation_out and room_writer go anywhere (the outbound queue is shared)', () => {
    assert.match(configError(withRoles(['sync', 'federation_in'], FEDERATION)), /federation_in needs room_writer/);
    assert.deepEqual(loadConfig({ env: {}, overrides: withRoles(['client_api', 'federation_out'], FEDERATION) }).cluster.roles, ['client_api', 'federation_out']);
    assert.deepEqual(loadConfig({ env: {}, overrides: withRoles(['federation_in', 'room_writer'], FEDERATION) }).cluster.roles, ['federation_in', 'room_writer']);
    // Without federation a writer has nothing to send.
    assert.deepEqual(loadConfig({ env: {}, overrides: withRoles(['room_writer']) }).cluster.roles, ['room_writer']);
  });

  it('serves client routes by role: health and discovery always, sync routes with sync, the rest with client_api', () => {
    const api = new Roles(['client_api']);
    const sync = new Roles(['sync']);
    const writer = new Roles(['room_writer']);
    for (const path of ['/health', '/_matrix/client/versions', '/.well-known/matrix/client']) {
      for (const r of [api, sync, writer]) assert.equal(r.serves({ path }), true, path);
    }
    for (const path of ['/_matrix/client/v3/sync', '/_matrix/client/r0/sync', '/_matrix/client/v3/events', '/_matrix/client/v3/initialSync']) {
      assert.equal(sync.serves({ path }), true, path);
      assert.equal(api.serves({ path }), false, path);
      assert.equal(writer.serves({ path }), false, path);
    }
    for (const path of ['/_matrix/client/v3/rooms/:roomId/send/:eventType/:txnId', '/_matrix/client/v3/rooms/:roomId/events', '/_matrix/client/v3/login', '/_matrix/media/v3/upload']) {
      assert.equal(api.serves({ path }), true, path);
      assert.equal(sync.serves({ path }), false, path);
      assert.equal(writer.serves({ path }), false, path);
    }
  });
});
