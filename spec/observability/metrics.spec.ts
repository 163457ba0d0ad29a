import { assert } from '../helpers/assert.js';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/logger.js';
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
