import { assert } from '../helpers/assert.js';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { runCli, type CliIo } from '../../src/cli/index.js';
import { generateConfig } from '../../src/cli/generate-config.js';
import { parseUserArg, registerUserDirect } from '../../src/cli/register-user.js';
import { loadConfig } from '../../src/config/load.js';
import { StoreConflictError, type AccountStore, type NewUser } from '../../src/store/types.js';
import { verifyPassword } from '../../src/users/credentials.js';

interface FakeIo extends CliIo {
  out: string[];
  err: string[];
  requests: { url: string; method: string; body: unknown }[];
}

function fakeIo(env: NodeJS.ProcessEnv = {}, stdin = ''): FakeIo {
  const io: FakeIo = {
    out: [],
    err: [],
    requests: [],
    env,
    stdout: (t) => void io.out.push(t),
    stderr: (t) => void io.err.push(t),
    readStdin: async () => stdin,
    // A stand-in for the server's /_synapse/admin/v1/register.
    fetch: (async (url: string | URL | Request, init?: RequestInit) => {
      const method = init?.method ?? 'GET';
      const body = init?.body === undefined ? undefined : JSON.parse(String(init.body));
      io.requests.push({ url: String(url), method, body });
      const json = method === 'GET' ? { nonce: '3f1c0a9e' } : { user_id: `@${(body as { username: string }).username}:localhost` };
      return new Response(JSON.stringify(json), { status: 200, headers: { 'content-type': 'application/json' } });
    }) as typeof fetch,
  };
  return io;
}

describe('cli', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'hearth-cli-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('prints usage for --help', async () => {
    const io = fakeIo();
    await runCli(['--help'], io);
    for (const cmd of ['start', 'generate-config', 'register-user']) assert.ok(io.out.join('').includes(cmd));
    await assert.rejects(runCli(['frobnicate'], io), /unknown command "frobnicate"/);
    await assert.rejects(runCli(['generate-config', '--bogus'], io), /bogus/);
  });

  describe('generate-config', () => {
    it('prints a valid config with a fresh shared secret and the comments kept', async () => {
      const io = fakeIo();
      await runCli(['generate-config', '--server-name', 'example.org'], io);
      const text = io.out.join('');
      assert.match(text, /# The domain part of user IDs/);
      const file = path.join(dir, 'hearth.yaml');
      writeFileSync(file, text);
      const config = loadConfig({ file, env: {} });
      assert.equal(config.server_name, 'example.org');
      assert.ok(config.registration.shared_secret !== null && config.registration.shared_secret.length >= 32);
      const again = parseYaml(generateConfig()) as { registration: { shared_secret: string } };
      assert.notEqual(again.registration.shared_secret, config.registration.shared_secret);
    });

    it('writes a private file, and will not overwrite one without --force', async () => {
      const file = path.join(dir, 'out.yaml');
      await runCli(['generate-config', '--output', file], fakeIo());
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(loadConfig({ file, env: {} }).server_name, 'localhost');
      await assert.rejects(runCli(['generate-config', '--output', file], fakeIo()), /EEXIST/);
      await runCli(['generate-config', '--output', file, '--force', '--server-name', 'other.example'], fakeIo());
      assert.equal(loadConfig({ file, env: {} }).server_name, 'other.example');
    });

    it('rejects an invalid server name', () => {
      assert.throws(() => generateConfig({ serverName: 'no spaces allowed' }), /"server_name"/);
    });
  });

  describe('register-user', () => {
    it('registers through the admin API with the Synapse HMAC', async () => {
      const io = fakeIo();
      const secret = '0123456789abcdef-secret';
      await runCli(['register-user', '--user', 'alice', '--password', 'correct horse', '--admin', '--shared-secret', secret, '--url', 'http://127.0.0.1:1234'], io);
      assert.deepEqual(io.requests[0], { url: 'http://127.0.0.1:1234/_synapse/admin/v1/register', method: 'GET', body: undefined });
      // hex HMAC-SHA1(secret, "3f1c0a9e\0alice\0correct horse\0admin"), computed with Python's hmac.
      assert.deepEqual(io.requests[1].body, {
        nonce: '3f1c0a9e',
        username: 'alice',
        password: 'correct horse',
        admin: true,
        mac: 'a62dcf5bd12e01531049f3f013c2d1a7d3be67bc',
      });
      assert.equal(io.out.join(''), 'Registered @alice:localhost (admin)\n');
    });

    it('takes the secret and URL from the config and the password from stdin', async () => {
      const file = path.join(dir, 'hearth.yaml');
      writeFileSync(file, 'listeners: { client: { host: 0.0.0.0, port: 9123 } }\nregistration: { shared_secret: 0123456789abcdef-secret }\n');
      const io = fakeIo({ HEARTH_CONFIG: file }, 'correct horse\n');
      await runCli(['register-user', '--user', '@alice:localhost', '--password-file', '-'], io);
      assert.equal(io.requests[0].url, 'http://127.0.0.1:9123/_synapse/admin/v1/register');
      assert.equal((io.requests[1].body as { mac: string }).mac, '1cf376cf40038e46508beae0b2ae17ebc75877ce');
    });

    it('explains what is missing', async () => {
      await assert.rejects(runCli(['register-user', '--password', 'x'], fakeIo()), /needs --user/);
      await assert.rejects(runCli(['register-user', '--user', 'alice'], fakeIo()), /needs --password/);
      await assert.rejects(runCli(['register-user', '--user', 'alice', '--password', 'x'], fakeIo()), /no shared secret/);
      await assert.rejects(runCli(['register-user', '--user', 'Alice', '--password', 'x'], fakeIo()), /not a valid user name/);
      await assert.rejects(
        runCli(['register-user', '--user', '@alice:elsewhere', '--password', 'x', '--shared-secret', '0123456789abcdef'], fakeIo()),
        /not on this server/,
      );
    });

    it('parses user arguments', () => {
      assert.deepEqual(parseUserArg('bob'), { localpart: 'bob', server: null });
      assert.deepEqual(parseUserArg('@bob:example.org:8448'), { localpart: 'bob', server: 'example.org:8448' });
      assert.throws(() => parseUserArg('@bob'), /not a user ID/);
    });

    it('registers with --direct into the configured SQLite database', async () => {
      const file = path.join(dir, 'hearth.yaml');
      writeFileSync(file, 'server_name: example.org\n');
      const io = fakeIo();
      await runCli(['register-user', '--config', file, '--user', 'dave', '--password', 'pw', '--direct'], io);
      assert.equal(io.requests.length, 0);
      const dbPath = path.join(dir, 'data', 'hearth.sqlite');
      assert.match(io.out.join(''), /Registered @dave:example\.org in /);
      const { openSqliteStore } = await import('../../src/store/sqlite/index.js');
      const store = await openSqliteStore({ path: dbPath });
      try {
        const user = await store.accounts.getUser('@dave:example.org');
        assert.equal(user?.admin, false);
        assert.equal(await verifyPassword('pw', user?.passwordHash ?? ''), true);
      } finally {
        await store.close();
      }
    });

    it('registers directly through the store contract', async () => {
      const created: NewUser[] = [];
      const accounts = {
        createUser: async (u: NewUser) => {
          if (created.some((c) => c.userId === u.userId)) throw new StoreConflictError('taken');
          created.push(u);
        },
      } as Partial<AccountStore> as AccountStore;
      const userId = await registerUserDirect({ accounts }, 'example.org', 'carol', 'pw', true);
      assert.equal(userId, '@carol:example.org');
      assert.equal(created[0].admin, true);
      assert.equal(created[0].displayname, 'carol');
      assert.equal(await verifyPassword('pw', created[0].passwordHash ?? ''), true);
      await assert.rejects(registerUserDirect({ accounts }, 'example.org', 'carol', 'pw', false), /already exists/);
    });
  });
});
