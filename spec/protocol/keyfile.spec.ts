import { assert } from '../helpers/assert.js';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { publicKeyBase64 } from '../../src/protocol/crypto.js';
import {
  formatSigningKeyLine,
  KeyFileError,
  loadOrCreateSigningKey,
  newKeyVersion,
  parseSigningKeyFile,
  readSigningKeyFile,
} from '../../src/protocol/keyfile.js';
import { loadVector, specKey } from './vectors.js';

describe('protocol/keyfile', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hearth-keyfile-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('parses a Synapse key file line with the spec seed', () => {
    const v = loadVector('spec-signing-key.json');
    const [k] = parseSigningKeyFile(`ed25519 1 ${v.seed_base64}\n`);
    assert.equal(k.keyId, 'ed25519:1');
    assert.equal(publicKeyBase64(k), v.public_key_base64);
  });

  it('round-trips through formatSigningKeyLine', () => {
    const { key } = specKey();
    const line = formatSigningKeyLine(key);
    assert.match(line, /^ed25519 1 [A-Za-z0-9+/]{43}$/);
    assert.deepEqual(Buffer.from(parseSigningKeyFile(line)[0].seed), Buffer.from(key.seed));
  });

  it('reads several keys, skipping blank lines and comments', () => {
    const { key } = specKey();
    const keys = parseSigningKeyFile(`# comment\n\r\n${formatSigningKeyLine(key)}\r\ned25519 a_Bc ${'A'.repeat(43)}\n`);
    assert.deepEqual(keys.map((k) => k.keyId), ['ed25519:1', 'ed25519:a_Bc']);
  });

  it('rejects malformed lines', () => {
    for (const text of ['ed25519 1', 'rsa 1 AAAA', 'ed25519 a-b AAAA', 'ed25519 1 !!!!', 'ed25519 1 AAAA', 'ed25519 1 AAAA extra']) {
      assert.throws(() => parseSigningKeyFile(text), KeyFileError, text);
    }
  });

  it('creates a new key file (mode 0600) and loads the same key again', async () => {
    const file = path.join(dir, 'sub', 'signing.key');
    const created = await loadOrCreateSigningKey(file, 'test_1');
    assert.equal(created.keyId, 'ed25519:test_1');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await readFile(file, 'utf8')).trim(), formatSigningKeyLine(created));
    const loaded = await loadOrCreateSigningKey(file, 'ignored');
    assert.equal(loaded.keyId, 'ed25519:test_1');
    assert.deepEqual(Buffer.from(loaded.publicKey), Buffer.from(created.publicKey));
    assert.deepEqual(await readSigningKeyFile(file).then((ks) => ks.length), 1);
  });

  it('concurrent creators end up with one key', async () => {
    const file = path.join(dir, 'race.key');
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateSigningKey(file)));
    const ids = new Set(keys.map((k) => publicKeyBase64(k)));
    assert.equal(ids.size, 1);
    assert.equal(publicKeyBase64((await readSigningKeyFile(file))[0]), [...ids][0]);
  });

  it('an empty existing file is an error, not silently replaced', async () => {
    const file = path.join(dir, 'empty.key');
    await writeFile(file, '\n');
    await assert.rejects(loadOrCreateSigningKey(file), KeyFileError);
  });

  it('generates Synapse-style versions', () => {
    assert.match(newKeyVersion(), /^a_[A-Za-z]{4}$/);
  });
});
