// Measures (does not assert) the CPU of the pure parts of a send that the session 8 send-path
// work changed, for one or more builds interleaved in one process (so the machine's load moves
// them alike; the minimum over rounds is reported, the figure least disturbed by other work):
// - canonicalJson of a plain message PDU;
// - signLocalEvent (content hash, redaction, Ed25519 signature, event ID, size) of that PDU;
// - the metrics of one send: one HTTP observation and three store-call timers.
//
//   npm run build && node dist/bench/sign-cpu.js [rounds=150] [buildRoot ...]
//   (no roots: this build; each root is a checkout or copy with its own dist/)

import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Pdu } from '../src/protocol/types.js';

type CanonicalJson = typeof import('../src/protocol/canonical-json.js');
type Events = typeof import('../src/protocol/events.js');
type Crypto = typeof import('../src/protocol/crypto.js');
type MetricsModule = typeof import('../src/observability/metrics.js');

const ROUNDS = Number(process.argv[2] ?? 150);
const here = join(fileURLToPath(import.meta.url), '../..');
const roots = process.argv.length > 3 ? process.argv.slice(3) : [join(here, '..')];

const load = async <T>(root: string, path: string): Promise<T> => (await import(pathToFileURL(join(root, 'dist', path)).href)) as T;

function message(): Pdu {
  return {
    room_id: '!abcdefghijklmnopqr:example.org',
    sender: '@sender12:example.org',
    type: 'm.room.message',
    content: { msgtype: 'm.text', body: 'send-cpu 12345: a short message of the usual length' },
    origin_server_ts: 1_765_000_000_000,
    depth: 1234,
    prev_events: ['$Xh2k3jh4kj23h4kjh23k4jh23k4jh23k4jh2k3j4h2k3'],
    auth_events: ['$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '$bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', '$ccccccccccccccccccccccccccccccccccccccccccc'],
    hashes: { sha256: '' },
    signatures: {},
  };
}

async function main(): Promise<void> {
  const builds = await Promise.all(
    roots.map(async (root) => {
      const crypto = await load<Crypto>(root, 'src/protocol/crypto.js');
      const metrics = new (await load<MetricsModule>(root, 'src/observability/metrics.js')).Metrics({ defaultMetrics: false });
      const timer = metrics.dbTiming.labels({ operation: 'rooms.getEventIdForTxn' });
      return {
        name: root,
        cj: await load<CanonicalJson>(root, 'src/protocol/canonical-json.js'),
        ev: await load<Events>(root, 'src/protocol/events.js'),
        key: crypto.generateSigningKey('bench'),
        metrics,
        timer,
      };
    }),
  );
  const pdu = message();
  const { hashes: _h, ...bare } = message();
  const route = '/_matrix/client/v3/rooms/:roomId/send/:eventType/:txnId';
  const best = new Map<string, number>();
  const time = (label: string, n: number, f: () => unknown): void => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f();
    const us = Number(process.hrtime.bigint() - t0) / n / 1000;
    best.set(label, Math.min(best.get(label) ?? Infinity, us));
  };
  for (let r = 0; r < ROUNDS; r++) {
    for (const b of builds) {
      time(`${b.name}\tcanonicalJson(message PDU)`, 1000, () => b.cj.canonicalJson(pdu));
      time(`${b.name}\tsignLocalEvent(message PDU, v10)`, 100, () => b.ev.signLocalEvent({ ...bare } as Pdu, 'example.org', b.key, '10'));
      time(`${b.name}\tmetrics: 1 HTTP observation + 3 store timers`, 1000, () => {
        b.metrics.observeHttp('PUT', route, 200, 0.003);
        for (let i = 0; i < 3; i++) b.timer.startTimer()();
      });
    }
  }
  console.log(`sign-cpu: min µs over ${ROUNDS} rounds, builds interleaved`);
  for (const [label, us] of best) console.log(`${us.toFixed(2).padStart(8)} µs  ${label}`);
}

await main();
