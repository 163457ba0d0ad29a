// The --cluster launcher's pure parts (bench/lib/cluster.ts): argument handling, the comparison
// it runs, the worker configs it writes (validated by Hearth's own config schema, as a worker
// would load them), the spreading of users over workers, and the CPU summing over several
// processes with services kept apart (bench/lib/proc.ts). No timed assertions, no services.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import {
  benchKeyspace,
  CLUSTER_SCENARIOS,
  clusterComparison,
  clusterLabel,
  clusterScenarios,
  parseClusterWorkers,
  workerConfig,
  workerErrors,
  workerOf,
  type WorkerConfigInput,
} from '../../bench/lib/cluster.js';
import { HearthChild } from '../../bench/lib/target.js';
import { CpuMeter, cpuMicrosPer, serviceMicros } from '../../bench/lib/proc.js';
import { validateConfig } from '../../src/config/load.js';

describe('bench --cluster launcher (bench/lib/cluster.ts)', function () {
  describe('argument handling', function () {
    it('absent --cluster is no cluster; a number of workers is taken as is', function () {
      assert.equal(parseClusterWorkers(undefined, undefined), undefined);
      assert.equal(parseClusterWorkers('3', undefined), 3);
      assert.equal(parseClusterWorkers('1', undefined), 1);
    });

    it('refuses what is not a worker count, and --target beside it', function () {
      for (const bad of ['', 'three', '2.5', '-1', '0', '17', '3x']) {
        assert.throws(() => parseClusterWorkers(bad, undefined), /--cluster takes/, `"${bad}"`);
      }
      assert.throws(() => parseClusterWorkers('3', 'http://127.0.0.1:8008'), /exclusive/);
    });

    it('runs the latency, fan-out and send-ceiling scenarios by default, and only those', function () {
      assert.deepEqual(clusterScenarios([]), CLUSTER_SCENARIOS);
      assert.ok(CLUSTER_SCENARIOS.includes('sync-latency') && CLUSTER_SCENARIOS.includes('fanout') && CLUSTER_SCENARIOS.includes('send-ceiling'));
      assert.ok(!CLUSTER_SCENARIOS.includes('socket-latency'), 'socket latency only on request (fanout has a socket half)');
      assert.deepEqual(clusterScenarios(['fanout']), ['fanout']);
      assert.deepEqual(clusterScenarios(['socket-latency']), ['socket-latency']);
      assert.throws(() => clusterScenarios(['fanout', 'storm']), /not storm/);
    });

    it('compares one node on SQLite, one node on Cassandra without Redis, and the cluster', function () {
      const c = clusterComparison(3);
      assert.deepEqual(c, [{ kind: 'hearth' }, { kind: 'cluster', workers: 1, redis: false }, { kind: 'cluster', workers: 3, redis: true }]);
      assert.deepEqual(
        c.filter((s) => s.kind === 'cluster').map((s) => clusterLabel(s as { kind: 'cluster'; workers: number; redis?: boolean })),
        ['hearth-cassandra', 'hearth-cluster-3'],
      );
      assert.deepEqual(clusterComparison(2, true), [{ kind: 'cluster', workers: 2, redis: true }], '--cluster-only: the cluster alone');
    });

    it('picks the error and fatal lines out of a worker\'s log', function () {
      const out = [
        '{"level":40,"msg":"slow"}',
        '{"level":50,"err":{"message":"boom"},"msg":"request failed"}',
        'not json',
        '{"level":60,"msg":"fatal"}',
        '{"level":500,"msg":"not a level"}',
      ].join('\n');
      assert.deepEqual(workerErrors(out), ['{"level":50,"err":{"message":"boom"},"msg":"request failed"}', '{"level":60,"msg":"fatal"}']);
      assert.deepEqual(workerErrors(''), []);
    });
  });

  describe('worker configs', function () {
    let dir = '';
    beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'hearth-cluster-spec-'))));
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    const input = (over: Partial<WorkerConfigInput> = {}): WorkerConfigInput => ({
      cassandra: '127.0.0.1:19042',
      keyspace: benchKeyspace('sync-latency'),
      redisUrl: 'redis://127.0.0.1:40001',
      keyPrefix: 'hearth-bench:abc:',
      signingKeyPath: join(dir, 'signing.key'),
      mediaPath: join(dir, 'media'),
      sharedSecret: 'bench-secret-0123456789abcdef',
      dir: join(dir, 'worker0'),
      ...over,
    });

    /** The config file HearthChild writes for a worker, loaded by Hearth's own validation. */
    async function written(extra: Record<string, unknown>, sub: string) {
      const h = await HearthChild.create({ pin: false, dataDir: join(dir, sub), extraConfig: extra });
      const raw = JSON.parse(readFileSync(h.configPath, 'utf8'));
      h.dispose();
      return { url: h.url, config: validateConfig(raw, h.configPath) };
    }

    it('three workers: one keyspace, one Redis prefix, one signing key, each its own port', async function () {
      const ks = benchKeyspace('fanout');
      const made = [];
      for (let i = 0; i < 3; i++) made.push(await written(workerConfig(input({ keyspace: ks, dir: join(dir, `w${i}`) })), `w${i}`));
      for (const { config } of made) {
        assert.equal(config.storage.backend, 'cassandra');
        assert.deepEqual(config.storage.cassandra.contact_points, ['127.0.0.1:19042']);
        assert.equal(config.storage.cassandra.keyspace, ks);
        assert.equal(config.cluster.redis.url, 'redis://127.0.0.1:40001');
        assert.equal(config.cluster.redis.key_prefix, 'hearth-bench:abc:');
        assert.equal(config.signing_key_path, join(dir, 'signing.key'));
        assert.equal(config.media.path, join(dir, 'media'));
        assert.equal(config.registration.shared_secret, 'bench-secret-0123456789abcdef');
        assert.equal(config.limits.rate_limits.enabled, false, 'HearthChild defaults kept where the cluster does not replace them');
      }
      assert.equal(new Set(made.map((m) => m.url)).size, 3, 'distinct ports');
      assert.equal(new Set(made.map((m) => m.config.storage.sqlite.path)).size, 3, 'no shared SQLite path');
    });

    it('a single node on Cassandra has no cluster section (no Redis)', async function () {
      const { config } = await written(workerConfig(input({ redisUrl: null })), 'single');
      assert.equal(config.storage.backend, 'cassandra');
      assert.equal(config.cluster.redis.url, null);
    });

    it('keyspace names are fresh and pass the config schema', function () {
      const a = benchKeyspace('send-ceiling');
      const b = benchKeyspace('send-ceiling');
      assert.notEqual(a, b);
      for (const ks of [a, benchKeyspace('A very-long scenario name with Spaces and 123')]) assert.match(ks, /^[a-z][a-z0-9_]{0,47}$/);
    });
  });

  it('spreads users round-robin, so every room of two or more consecutive users spans workers', function () {
    const counts = [0, 0, 0];
    for (let u = 0; u < 100; u++) counts[workerOf(u, 3)]++;
    assert.deepEqual(counts, [34, 33, 33]);
    assert.notEqual(workerOf(0, 3), workerOf(1, 3));
    assert.equal(workerOf(7, 1), 0);
  });

  describe('CPU over several processes (bench/lib/proc.ts)', function () {
    /** Spins until this process has used `ms` of CPU (wall time varies on a loaded machine). */
    function burn(ms: number) {
      const c0 = process.cpuUsage();
      let x = 0;
      for (;;) {
        for (let i = 0; i < 10_000; i++) x += Math.sqrt(x + i);
        const c = process.cpuUsage(c0);
        if ((c.user + c.system) / 1000 >= ms) return x;
      }
    }

    it('sums the server processes and keeps services out of the server figure', function () {
      const one = new CpuMeter(() => process.pid);
      const twice = new CpuMeter(() => [process.pid, process.pid], () => ({ cassandra: process.pid, redis: undefined }));
      one.start();
      twice.start();
      burn(250);
      const a = one.stop();
      const b = twice.stop();
      assert.ok(a.serverCpuSec >= 0.2, `this process burnt CPU: ${a.serverCpuSec}`);
      assert.equal(a.serverProcesses, undefined);
      assert.equal(b.serverProcesses, 2);
      // Each pid read at the same moments: the sum is twice the single reading, within a tick.
      assert.ok(Math.abs(b.serverCpuSec - 2 * a.serverCpuSec) <= 0.04, `${b.serverCpuSec} vs 2 × ${a.serverCpuSec}`);
      assert.ok(b.services?.cassandra.cpuSec !== undefined && Math.abs(b.services.cassandra.cpuSec - a.serverCpuSec) <= 0.02);
      assert.ok(Number.isNaN(b.services!.redis.cpuSec), 'an unknown pid is NaN, not 0');
    });

    it('reports CPU per unit of work, NaN without work', function () {
      assert.equal(cpuMicrosPer(0.5, 1000), 500);
      assert.ok(Number.isNaN(cpuMicrosPer(0.5, 0)));
      assert.ok(Number.isNaN(cpuMicrosPer(NaN, 10)));
      assert.deepEqual(serviceMicros({ redis: { cpuSec: 0.01, cpuPct: 1 }, cassandra: { cpuSec: 0.2, cpuPct: 20 } }, 100), {
        'Redis CPU µs/delivery': 100,
        'Cassandra CPU µs/delivery': 2000,
      });
      assert.deepEqual(serviceMicros(undefined, 100), {});
    });
  });
});
