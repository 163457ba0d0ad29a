import { assert } from '../helpers/assert.js';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/logger.js';
import { Histogram, Registry } from 'prom-client';
import { LabelledHistogram } from '../../src/observability/labelled.js';
import { Metrics } from '../../src/observability/metrics.js';

describe('metrics', () => {
  it('keeps two instances apart', async () => {
    // Both collect process metrics too: the names would clash in a shared registry.
    const a = new Metrics();
    const b = new Metrics();
    a.eventsPersisted.inc(3);
    b.eventsPersisted.inc();
    a.syncWaiters.set(2);
    assert.match(await a.render(), /^hearth_events_persisted_total 3$/m);
    assert.match(await b.render(), /^hearth_events_persisted_total 1$/m);
    assert.match(await b.render(), /^hearth_sync_waiters 0$/m);
  });

  it('renders every metric, with process metrics in the same registry', async () => {
    const m = new Metrics();
    m.observeHttp('GET', '/_matrix/client/v3/rooms/:roomId/messages', 200, 0.012);
    m.observeHttp('BREW', '/coffee', 418, 0.001);
    await m.timeDb('persistEvent', async () => undefined);
    await assert.rejects(m.timeDb('getEvent', async () => Promise.reject(new Error('boom'))), /boom/);
    const text = await m.render();
    for (const name of [
      'hearth_http_requests_total',
      'hearth_http_request_duration_seconds_bucket',
      'hearth_events_persisted_total',
      'hearth_sync_waiters',
      'hearth_db_operation_duration_seconds_bucket',
      'process_cpu_user_seconds_total',
      'nodejs_heap_size_used_bytes',
    ]) {
      assert.ok(text.includes(name), `missing ${name}`);
    }
    assert.match(text, /hearth_http_requests_total\{method="GET",route="\/_matrix\/client\/v3\/rooms\/:roomId\/messages",status="200"\} 1/);
    assert.match(text, /hearth_http_requests_total\{method="OTHER",route="\/coffee",status="418"\} 1/);
    assert.match(text, /hearth_db_operation_duration_seconds_count\{operation="getEvent"\} 1/);
    assert.match(m.contentType, /^text\/plain/);
  });
});

describe('labelled histogram (store-call timers)', () => {
  // The same observations through prom-client's own classes and ours, each in its own registry
  // under the same name: the exposition text must be identical.
  const observations: Array<[Record<'method' | 'route', string>, number]> = [
    [{ method: 'PUT', route: '/send/:txnId' }, 0.0004],
    [{ method: 'GET', route: '/sync' }, 30],
    [{ method: 'PUT', route: '/send/:txnId' }, 0.001],
    [{ method: 'PUT', route: '/send/:txnId' }, 0.0011],
    [{ method: 'GET', route: '/sync' }, 500],
    [{ method: 'GET', route: 'a "quoted" \\ route\nwith a newline' }, 0],
  ];
  const buckets = [0.001, 0.005, 0.01, 1, 60];

  it('renders a histogram exactly as prom-client does', async () => {
    const theirs = new Registry();
    const ours = new Registry();
    const h = new Histogram({ name: 'x_seconds', help: 'Help "text".', labelNames: ['method', 'route'] as const, buckets, registers: [theirs] });
    const l = new LabelledHistogram({ name: 'x_seconds', help: 'Help "text".', labelNames: ['method', 'route'] as const, buckets, registers: [ours] });
    for (const [labels, v] of observations) {
      h.observe(labels, v);
      l.labels(labels).observe(v);
    }
    const text = await ours.metrics();
    assert.equal(text, await theirs.metrics());
    assert.match(text, /^x_seconds_bucket\{le="0.001",method="PUT",route="\/send\/:txnId"\} 2$/m);
    assert.match(text, /^x_seconds_count\{method="GET",route="\/sync"\} 2$/m);
    // The JSON form too (cluster aggregation reads it), but for prom-client's empty exemplar slots.
    const strip = (metrics: unknown) => JSON.parse(JSON.stringify(metrics, (k, v: unknown) => (k === 'exemplar' ? undefined : v))) as unknown;
    assert.deepEqual(strip(await ours.getMetricsAsJSON()), strip(await theirs.getMetricsAsJSON()));
  });

  it('keeps one child per label set and refuses what prom-client refuses', async () => {
    const ours = new Registry();
    const l = new LabelledHistogram({ name: 'y_seconds', help: 'y', labelNames: ['method', 'route'] as const, buckets, registers: [ours] });
    assert.equal(l.labels({ route: '/sync', method: 'GET' }), l.labels({ method: 'GET', route: '/sync' }));
    assert.notEqual(l.labels({ method: 'GET', route: '/sync' }), l.labels({ method: 'PUT', route: '/sync' }));
    assert.throws(() => l.labels({ method: 'GET', route: '/sync' }).observe(NaN), TypeError);
    l.labels({ method: 'GET', route: '/sync' }).observe(1);
    ours.resetMetrics();
    assert.equal(await ours.metrics(), '# HELP y_seconds y\n# TYPE y_seconds histogram\n');
  });

  it('times through a startTimer child', async () => {
    const m = new Metrics({ defaultMetrics: false });
    const end = m.dbTiming.labels({ operation: 'rooms.persistEvent' }).startTimer();
    await new Promise((r) => setTimeout(r, 5));
    end();
    const text = await m.render();
    assert.match(text, /^hearth_db_operation_duration_seconds_count\{operation="rooms.persistEvent"\} 1$/m);
    assert.match(text, /^hearth_db_operation_duration_seconds_bucket\{le="0.001",operation="rooms.persistEvent"\} 0$/m);
    const sum = Number(/^hearth_db_operation_duration_seconds_sum\{operation="rooms.persistEvent"\} (\S+)$/m.exec(text)?.[1]);
    assert.ok(sum >= 0.004 && sum < 5, `sum ${sum}`);
  });
});

describe('logger', () => {
  const capture = () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    return { lines, destination };
  };

  it('writes JSON at the configured level and redacts credentials', async () => {
    const { lines, destination } = capture();
    const log = createLogger({ log: { level: 'info', format: 'json' } }, { destination });
    log.debug('hidden');
    log.info({ body: { password: 'hunter2', user: 'alice' }, access_token: 'hth_x' }, 'login');
    await new Promise((r) => setImmediate(r));
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0]) as Record<string, any>;
    assert.equal(entry.msg, 'login');
    assert.equal(entry.body.user, 'alice');
    assert.equal(entry.body.password, '[redacted]');
    assert.equal(entry.access_token, '[redacted]');
  });

  it('writes readable lines in pretty format', async () => {
    const { lines, destination } = capture();
    const log = createLogger({ log: { level: 'debug', format: 'pretty' } }, { destination });
    log.warn({ room: '!a:b' }, 'slow');
    await new Promise((r) => setImmediate(r));
    assert.match(lines[0], /^\d\d:\d\d:\d\d\.\d{3} WARN  slow room=!a:b\n$/);
  });
});
