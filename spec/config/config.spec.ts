import { assert } from '../helpers/assert.js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { ConfigError, isOpenRegistrationWarningNeeded, loadConfig } from '../../src/config/load.js';

// Compiled to dist/spec/config/; the example lives at the package root.
const EXAMPLE = fileURLToPath(new URL('../../../config.example.yaml', import.meta.url));

describe('config', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'hearth-config-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const writeConfig = (text: string, name = 'hearth.yaml'): string => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  };
  const loadError = (text: string): string => {
    const file = writeConfig(text);
    try {
      loadConfig({ file, env: {} });
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.message;
    }
    assert.fail('expected a ConfigError');
  };

  it('uses the documented defaults without a config', () => {
    const c = loadConfig({ env: {}, cwd: dir });
    assert.equal(c.server_name, 'localhost');
    assert.deepEqual(c.listeners.client, { host: '127.0.0.1', port: 8008, x_forwarded: false, backlog: 4096 });
    assert.equal(c.listeners.federation.enabled, false);
    assert.equal(c.public_baseurl, 'http://127.0.0.1:8008/');
    assert.deepEqual(c.storage, {
      backend: 'sqlite',
      sqlite: { path: path.join(dir, 'data', 'hearth.sqlite'), synchronous: 'full' },
      cassandra: {
        contact_points: ['127.0.0.1:9042'],
        local_datacenter: 'datacenter1',
        keyspace: 'hearth',
        replication_factor: 1,
        username: null,
        password: null,
      },
    });
    assert.equal(c.signing_key_path, path.join(dir, 'data', 'signing.key'));
    assert.deepEqual(c.registration, { enabled: true, token: null, allow_guests: false, require_email: false, shared_secret: null });
    // Email is off by default; when on, the relay must be reached over TLS unless told otherwise.
    assert.equal(c.email.enabled, false);
    assert.equal(c.email.require_transport_security, true);
    assert.deepEqual(c.limits.rate_limits.login, { per_second: 0.5, burst: 10 });
    assert.equal(c.limits.max_request_body_bytes, 1048576);
    assert.equal(c.sync.max_timeout_ms, 60000);
    assert.deepEqual(c.log, { level: 'info', format: 'auto' });
    assert.equal(c.metrics.enabled, true);
    assert.equal(isOpenRegistrationWarningNeeded(c), true);
  });

  it('limits.http: slow-client timeouts and the per-address cap, checked against each other', () => {
    assert.deepEqual(loadConfig({ env: {} }).limits.http, {
      header_timeout_ms: 10000,
      request_timeout_ms: 30000,
      keep_alive_timeout_ms: 5000,
      idle_timeout_ms: 90000,
      max_connections_per_address: 512,
      exempt_addresses: ['127.0.0.1', '::1'],
    });
    // Node refuses a header timeout longer than the request timeout.
    assert.match(loadError('limits: { http: { header_timeout_ms: 40000 } }\n'), /"limits\.http\.header_timeout_ms"/);
    // A parked /sync is idle for up to sync.max_timeout_ms.
    assert.match(loadError('sync: { max_timeout_ms: 120000 }\n'), /"limits\.http\.idle_timeout_ms"/);
    assert.equal(loadConfig({ env: {}, overrides: { sync: { max_timeout_ms: 120000 }, limits: { http: { idle_timeout_ms: 150000 } } } }).limits.http.idle_timeout_ms, 150000);
    assert.match(loadError('limits: { http: { exempt_addresses: [localhost] } }\n'), /"limits\.http\.exempt_addresses\.0"/);
    assert.match(loadError('limits: { http: { max_connections_per_address: -1 } }\n'), /"limits\.http\.max_connections_per_address"/);
    assert.match(loadError('listeners: { client: { backlog: 0 } }\n'), /"listeners\.client\.backlog"/);
  });

  it('metrics: their own loopback listener by default, never the client port', () => {
    assert.deepEqual(loadConfig({ env: {} }).metrics, { enabled: true, listen: { host: '127.0.0.1', port: 9000 }, client_port_secret: null });
    assert.match(loadError('metrics: { listen: { port: 8008 } }\n'), /"metrics\.listen\.port": .*listeners\.client/);
    // Port 0 on both is fine (each gets its own), and so is a clash with metrics off.
    loadConfig({ env: {}, overrides: { listeners: { client: { port: 0 } }, metrics: { listen: { port: 0 } } } });
    loadConfig({ env: {}, overrides: { metrics: { enabled: false, listen: { port: 8008 } } } });
    assert.match(loadError('metrics: { client_port_secret: short }\n'), /"metrics\.client_port_secret"/);
  });

  it('resolves defaults against the process cwd when no cwd is given', () => {
    assert.equal(loadConfig({ env: {} }).storage.sqlite.path, path.resolve('data/hearth.sqlite'));
  });

  it('names an unknown key by its full path', () => {
    const msg = loadError('listeners:\n  client:\n    hots: 0.0.0.0\n');
    assert.match(msg, /config: unknown key "listeners\.client\.hots"/);
    assert.match(msg, /did you mean "host"/);
    assert.match(loadError('sever_name: x\n'), /unknown key "sever_name"/);
  });

  it('names a key with an invalid value', () => {
    assert.match(loadError('listeners:\n  client:\n    port: "eighty"\n'), /invalid value for "listeners\.client\.port"/);
    assert.match(loadError('listeners:\n  client:\n    port: 70000\n'), /"listeners\.client\.port"/);
    assert.match(loadError('storage:\n  sqlite:\n    synchronous: off\n'), /"storage\.sqlite\.synchronous"/);
    assert.match(loadError('log: { level: loud }\n'), /"log\.level"/);
    assert.match(loadError('server_name: "not a server"\n'), /"server_name"/);
    assert.match(loadError('registration: { shared_secret: short }\n'), /"registration\.shared_secret"/);
    assert.match(loadError('public_baseurl: ftp://x/\n'), /"public_baseurl"/);
  });

  it('reports every problem at once, with the file name', () => {
    const msg = loadError('bogus: 1\nlimits: { max_event_bytes: 100000 }\n');
    assert.match(msg, /unknown key "bogus"/);
    assert.match(msg, /"limits\.max_event_bytes"/);
    assert.match(msg, /hearth\.yaml/);
  });

  it('takes both TLS files or neither for the federation listener (neither: self-signed at start)', () => {
    const msg = loadError('listeners: { federation: { enabled: true, tls_certificate_path: /a/cert.pem } }\n');
    assert.match(msg, /"listeners\.federation\.tls_certificate_path"/);
  });

  it('validates the cassandra backend settings: keyspace identifier, host[:port] contact points', () => {
    assert.match(loadError('storage: { backend: cassandra, cassandra: { keyspace: Bad-Name } }\n'), /"storage\.cassandra\.keyspace"/);
    assert.match(loadError('storage: { cassandra: { contact_points: ["db:9042; rm"] } }\n'), /"storage\.cassandra\.contact_points\.0"/);
    assert.match(loadError('storage: { backend: mongo }\n'), /"storage\.backend"/);
    const file = writeConfig('storage: { backend: cassandra, cassandra: { contact_points: ["10.0.0.5:9042", "db2"], keyspace: chat } }\n');
    const c = loadConfig({ file, env: {} });
    assert.equal(c.storage.backend, 'cassandra');
    assert.deepEqual(c.storage.cassandra.contact_points, ['10.0.0.5:9042', 'db2']);
  });

  it('rejects unparseable YAML and duplicate keys', () => {
    assert.match(loadError('server_name: [\n'), /cannot parse/);
    assert.match(loadError('server_name: a\nserver_name: b\n'), /cannot parse/);
  });

  it('reports a missing file', () => {
    assert.throws(() => loadConfig({ file: path.join(dir, 'nope.yaml'), env: {} }), /cannot read .*nope\.yaml/);
  });

  it('treats an empty file and empty sections as defaults', () => {
    const empty = loadConfig({ file: writeConfig('# nothing\n'), env: {} });
    assert.equal(empty.server_name, 'localhost');
    const c = loadConfig({ file: writeConfig('registration:\nlimits:\n  rate_limits:\n'), env: {} });
    assert.equal(c.registration.enabled, true);
    assert.equal(c.limits.rate_limits.message.burst, 100);
  });

  it('reads the file named by HEARTH_CONFIG, and prefers an explicit file', () => {
    const viaEnv = writeConfig('server_name: env.example\n', 'env.yaml');
    const explicit = writeConfig('server_name: file.example\n', 'file.yaml');
    assert.equal(loadConfig({ env: { HEARTH_CONFIG: viaEnv } }).server_name, 'env.example');
    assert.equal(loadConfig({ file: explicit, env: { HEARTH_CONFIG: viaEnv } }).server_name, 'file.example');
  });

  it('resolves relative paths against the config file directory', () => {
    const sub = path.join(dir, 'etc');
    const file = path.join(sub, 'hearth.yaml');
    mkdirSync(sub);
    writeFileSync(
      file,
      [
        'storage: { sqlite: { path: db/h.sqlite } }',
        'signing_key_path: ../keys/signing.key',
        'listeners: { federation: { enabled: true, port: 8449, tls_certificate_path: tls/cert.pem, tls_private_key_path: /abs/key.pem } }',
      ].join('\n'),
    );
    const c = loadConfig({ file, env: {} });
    assert.equal(c.storage.sqlite.path, path.join(sub, 'db', 'h.sqlite'));
    assert.equal(c.signing_key_path, path.join(dir, 'keys', 'signing.key'));
    assert.equal(c.listeners.federation.tls_certificate_path, path.join(sub, 'tls', 'cert.pem'));
    assert.equal(c.listeners.federation.tls_private_key_path, '/abs/key.pem');
  });

  it('keeps the sqlite :memory: name as it is', () => {
    const c = loadConfig({ env: {}, overrides: { storage: { sqlite: { path: ':memory:' } } } });
    assert.equal(c.storage.sqlite.path, ':memory:');
  });

  it('applies and validates overrides over the file', () => {
    const file = writeConfig('server_name: file.example\nregistration: { token: abc }\n');
    const c = loadConfig({ file, env: {}, overrides: { limits: { rate_limits: { enabled: false } }, registration: { enabled: false } } });
    assert.equal(c.server_name, 'file.example');
    assert.equal(c.registration.token, 'abc');
    assert.equal(c.registration.enabled, false);
    assert.equal(c.limits.rate_limits.enabled, false);
    assert.equal(isOpenRegistrationWarningNeeded(c), false);
    assert.throws(() => loadConfig({ env: {}, overrides: { sync: { max_timeout_ms: -1 } } }), /"sync\.max_timeout_ms"/);
  });

  it('derives public_baseurl from the client listener, and normalises a given one', () => {
    assert.equal(loadConfig({ env: {}, overrides: { listeners: { client: { host: '0.0.0.0', port: 9000 } } } }).public_baseurl, 'http://127.0.0.1:9000/');
    assert.equal(loadConfig({ env: {}, overrides: { listeners: { client: { host: '::' } } } }).public_baseurl, 'http://[::1]:8008/');
    assert.equal(loadConfig({ env: {}, overrides: { public_baseurl: 'https://matrix.example.org' } }).public_baseurl, 'https://matrix.example.org/');
  });

  it('warns about open registration only without a token', () => {
    const base = loadConfig({ env: {} });
    assert.equal(isOpenRegistrationWarningNeeded({ registration: { ...base.registration, token: 'x' } }), false);
    assert.equal(isOpenRegistrationWarningNeeded({ registration: { ...base.registration, enabled: false } }), false);
  });

  it('media.store: local by default; cassandra only on the Cassandra backend; chunk_bytes 64 KiB to 1 MiB', () => {
    assert.equal(loadConfig({ env: {} }).media.store, 'local');
    const ok = loadConfig({ env: {}, overrides: { storage: { backend: 'cassandra' }, media: { store: 'cassandra', chunk_bytes: 65536 } } });
    assert.deepEqual([ok.media.store, ok.media.chunk_bytes], ['cassandra', 65536]);
    assert.throws(() => loadConfig({ env: {}, overrides: { media: { store: 'cassandra' } } }), (err: unknown) => err instanceof ConfigError && /media\.store/.test(err.message) && /storage\.backend/.test(err.message));
    for (const chunk of [65535, 1048577]) {
      assert.throws(() => loadConfig({ env: {}, overrides: { storage: { backend: 'cassandra' }, media: { store: 'cassandra', chunk_bytes: chunk } } }), (err: unknown) => err instanceof ConfigError && /chunk_bytes/.test(err.message));
    }
    assert.throws(() => loadConfig({ env: {}, overrides: { media: { store: 's3' as never } } }), ConfigError);
  });

  it('config.example.yaml validates and equals the defaults', () => {
    const example = loadConfig({ file: EXAMPLE, env: {} });
    const defaults = loadConfig({ env: {}, cwd: path.dirname(EXAMPLE) });
    assert.deepEqual(example, defaults);
  });

  it('config.example.yaml spells out every key', () => {
    const keys = (v: unknown, prefix = ''): string[] =>
      typeof v === 'object' && v !== null && !Array.isArray(v)
        ? Object.entries(v).flatMap(([k, child]) => keys(child, `${prefix}${k}.`))
        : [prefix.slice(0, -1)];
    const written = keys(parseYaml(readFileSync(EXAMPLE, 'utf8'))).sort();
    assert.deepEqual(written, keys(loadConfig({ env: {} })).sort());
  });
});
