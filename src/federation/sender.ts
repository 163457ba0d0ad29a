// Outbound transactions: one queue per destination server.
//
// Invariants:
// - At most one transaction in flight per destination. A transaction that failed (network
//   error, non-200) is retried with the same txnId and the same contents until a 200: the
//   receiver deduplicates on (origin, txnId), so nothing is delivered twice.
// - Per-PDU errors inside a 200 are final (the receiver judged the event); they are logged.
// - Failures back off exponentially (min_backoff_ms doubling to max_backoff_ms); any valid
//   signed request from the destination (`contact`) resets the backoff and retries at once.
// - PDUs are durable: with a `queueDir`, each destination's queue (the transaction in flight
//   and the PDUs waiting) is rewritten atomically after every change and reloaded at start, so a
//   restart resumes with the same txnId. EDUs sent `durable` (to-device messages, device-list
//   and signing-key updates: losing one costs a user their keys) are kept the same way; the
//   others (typing, receipts, presence) are ephemeral and kept in memory only, the oldest
//   dropped past a bound.
// - A transaction carries at most 50 PDUs and 100 EDUs (the spec's limits).
// - Catch-up: once a transaction to a destination has failed (or a queue was reloaded at start),
//   the destination is behind, and it is sent only the newest queued PDU of each room (the
//   room's latest event from here) instead of every missed one; its prev_events lead back to the
//   rest, which the receiver asks for with get_missing_events (as Synapse does). So a long
//   outage costs one queued PDU per room, not one per event. Caught up again after a
//   transaction succeeds with nothing left waiting.
// - With a `gate` (a cluster: src/cluster/destination-leases.ts), a transaction is sent only
//   while this worker holds the destination's lease, so several workers never have transactions
//   in flight to one destination at once; refused, the destination is tried again shortly. The
//   lease is given back when nothing is left for the destination. Transaction IDs carry `nodeId`
//   so two workers' IDs never collide at the receiver (which deduplicates on origin + txnId).

import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { isJsonObject } from '../protocol/canonical-json.js';
import type { JsonObject, Pdu } from '../protocol/types.js';
import { fedPath, type FederationClient } from './client.js';
import type { DestinationGate } from '../cluster/destination-leases.js';

export interface Edu {
  edu_type: string;
  content: JsonObject;
  /** Kept in the queue file (never sent: stripped when the transaction is built). */
  durable?: boolean;
}

interface InFlight {
  txnId: string;
  pdus: Pdu[];
  edus: Edu[];
}

interface Destination {
  name: string;
  pending: Pdu[];
  edus: Edu[];
  inflight?: InFlight;
  running: boolean;
  backoffMs: number;
  /** Behind since a failure: only each room's newest PDU is kept (see Catch-up). */
  catchingUp: boolean;
  timer?: NodeJS.Timeout;
  writing: Promise<void>;
}

export interface SenderOptions {
  serverName: string;
  client: Pick<FederationClient, 'request'>;
  logger: Logger;
  queueDir?: string;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  now?: () => number;
  /** Destinations refused by federation.allowed_servers/denied_servers get nothing queued. */
  allows?: (server: string) => boolean;
  /** Per-destination leases across workers (see the header); none on a single node. */
  gate?: DestinationGate;
  /** This worker's name in transaction IDs (a cluster). */
  nodeId?: string;
  /** How soon a destination whose lease another worker holds is tried again (ms). */
  gateRetryMs?: number;
}

const MAX_PDUS = 50;
const MAX_EDUS = 100;

export class FederationSender {
  private readonly dests = new Map<string, Destination>();
  private readonly now: () => number;
  private txnCounter = 0;
  private stopped = false;
  /** Transactions answered 200 (tests, metrics). */
  delivered = 0;

  constructor(private readonly opts: SenderOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Reloads queues left by a previous run and starts sending them. */
  start(): void {
    const dir = this.opts.queueDir;
    if (!dir) return;
    mkdirSync(dir, { recursive: true });
    for (const file of readdirSync(dir)) {
      if (!file.endsWith('.json')) continue;
      try {
        const saved = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { name: string; pending: Pdu[]; edus?: Edu[]; inflight?: InFlight };
        if (typeof saved.name !== 'string') continue;
        const d = this.dest(saved.name);
        d.pending.push(...saved.pending);
        d.edus.push(...(saved.edus ?? []));
        d.catchingUp = d.pending.length > 0;
        if (d.catchingUp) d.pending = latestPerRoom(d.pending);
        // A transaction that carried only ephemeral EDUs has nothing left to retry.
        const inflight = saved.inflight ? { ...saved.inflight, edus: saved.inflight.edus ?? [] } : undefined;
        if (inflight && (inflight.pdus.length > 0 || inflight.edus.length > 0)) d.inflight = inflight;
        this.kick(d);
      } catch (err) {
        this.opts.logger.warn({ err, file }, 'unreadable federation queue file skipped');
      }
    }
  }

  sendPdu(destinations: Iterable<string>, pdu: Pdu): void {
    for (const name of destinations) {
      if (name === this.opts.serverName || this.opts.allows?.(name) === false) continue;
      const d = this.dest(name);
      if (d.catchingUp) d.pending = d.pending.filter((p) => p.room_id !== pdu.room_id);
      d.pending.push(pdu);
      this.persist(d);
      this.kick(d);
    }
  }

  sendEdu(destinations: Iterable<string>, edu: Edu, durable = false): void {
    const item: Edu = durable ? { ...edu, durable: true } : edu;
    for (const name of destinations) {
      if (name === this.opts.serverName || this.opts.allows?.(name) === false) continue;
      const d = this.dest(name);
      d.edus.push(item);
      if (d.edus.length > 10 * MAX_EDUS) {
        // Ephemeral ones go first (the oldest); durable ones are only ever removed by delivery.
        const drop = d.edus.findIndex((e) => !e.durable);
        if (drop >= 0) d.edus.splice(drop, 1);
      }
      if (durable) this.persist(d);
      this.kick(d);
    }
  }

  /** Number of EDUs not yet acknowledged for a destination (tests). */
  eduBacklog(name: string): number {
    const d = this.dests.get(name);
    return d ? d.edus.length + (d.inflight?.edus.length ?? 0) : 0;
  }

  /** The destination spoke to us with a valid signature: it is up, retry now. */
  contact(name: string): void {
    const d = this.dests.get(name);
    if (!d || d.backoffMs === 0) return;
    d.backoffMs = 0;
    if (d.timer) {
      clearTimeout(d.timer);
      d.timer = undefined;
    }
    this.kick(d);
  }

  /** True while the destination is behind and gets only each room's newest PDU. */
  catchingUp(name: string): boolean {
    return this.dests.get(name)?.catchingUp ?? false;
  }

  /** Number of PDUs not yet acknowledged for a destination (tests). */
  backlog(name: string): number {
    const d = this.dests.get(name);
    return d ? d.pending.length + (d.inflight?.pdus.length ?? 0) : 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const d of this.dests.values()) if (d.timer) clearTimeout(d.timer);
    await Promise.all([...this.dests.values()].map((d) => d.writing));
    await this.opts.gate?.close();
  }

  private dest(name: string): Destination {
    let d = this.dests.get(name);
    if (!d) {
      d = { name, pending: [], edus: [], running: false, backoffMs: 0, catchingUp: false, writing: Promise.resolve() };
      this.dests.set(name, d);
    }
    return d;
  }

  private kick(d: Destination): void {
    if (d.running || d.timer || this.stopped) return;
    d.running = true;
    void this.run(d).finally(() => {
      d.running = false;
      const more = d.inflight || d.pending.length > 0 || d.edus.length > 0;
      if (more && !d.timer && d.backoffMs === 0) this.kick(d);
    });
  }

  private async run(d: Destination): Promise<void> {
    while (!this.stopped) {
      if (!d.inflight && d.pending.length === 0 && d.edus.length === 0) {
        await this.opts.gate?.release(d.name);
        return;
      }
      const gate = this.opts.gate;
      if (gate && !(await gate.acquire(d.name))) {
        // Another worker is sending to it: ours wait their turn (the queue keeps them).
        d.timer = setTimeout(() => {
          d.timer = undefined;
          this.kick(d);
        }, this.opts.gateRetryMs ?? 1000);
        d.timer.unref();
        return;
      }
      if (this.stopped) return;
      if (!d.inflight) {
        const edus = d.edus.splice(0, MAX_EDUS);
        const node = this.opts.nodeId ? `${this.opts.nodeId}_` : '';
        d.inflight = { txnId: `${this.now()}_${node}${++this.txnCounter}`, pdus: d.pending.splice(0, MAX_PDUS), edus };
        this.persist(d);
      }
      const t = d.inflight;
      try {
        const res = await this.opts.client.request(d.name, {
          method: 'PUT',
          path: fedPath`/_matrix/federation/v1/send/${t.txnId}`,
          body: { origin: this.opts.serverName, origin_server_ts: this.now(), pdus: t.pdus as unknown as JsonObject[], edus: t.edus.map(({ edu_type, content }) => ({ edu_type, content })) },
        });
        if (isJsonObject(res) && isJsonObject(res.pdus)) {
          for (const [id, r] of Object.entries(res.pdus)) {
            if (isJsonObject(r) && r.error !== undefined) this.opts.logger.warn({ destination: d.name, eventId: id, error: r.error }, 'destination refused a PDU');
          }
        }
        d.inflight = undefined;
        d.backoffMs = 0;
        if (d.pending.length === 0) d.catchingUp = false;
        this.delivered++;
        this.persist(d);
      } catch (err) {
        if (!d.catchingUp) {
          d.catchingUp = true;
          d.pending = latestPerRoom(d.pending);
          this.persist(d);
        }
        d.backoffMs = Math.min(d.backoffMs === 0 ? (this.opts.minBackoffMs ?? 2000) : d.backoffMs * 2, this.opts.maxBackoffMs ?? 3600_000);
        this.opts.logger.warn({ err, destination: d.name, txnId: t.txnId, retryInMs: d.backoffMs }, 'federation transaction failed; will retry');
        d.timer = setTimeout(() => {
          d.timer = undefined;
          this.kick(d);
        }, d.backoffMs);
        d.timer.unref();
        return;
      }
    }
  }

  private persist(d: Destination): void {
    const dir = this.opts.queueDir;
    if (!dir) return;
    const durable = (edus: Edu[]) => edus.filter((e) => e.durable);
    const text = JSON.stringify({
      name: d.name,
      pending: d.pending,
      edus: durable(d.edus),
      inflight: d.inflight ? { txnId: d.inflight.txnId, pdus: d.inflight.pdus, edus: durable(d.inflight.edus) } : undefined,
    });
    const file = join(dir, `${Buffer.from(d.name).toString('base64url')}.json`);
    d.writing = d.writing.then(async () => {
      try {
        await writeFile(`${file}.tmp`, text);
        await rename(`${file}.tmp`, file);
      } catch (err) {
        this.opts.logger.warn({ err, destination: d.name }, 'could not persist a federation queue');
      }
    });
  }
}

/** The newest PDU of each room, in queue order (a room's PDUs were queued oldest first). */
export function latestPerRoom(pdus: readonly Pdu[]): Pdu[] {
  const last = new Map<string | undefined, number>();
  pdus.forEach((p, i) => last.set(p.room_id, i));
  return pdus.filter((p, i) => last.get(p.room_id) === i);
}
