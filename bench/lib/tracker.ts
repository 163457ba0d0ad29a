// Delivery bookkeeping. Every message carries a unique id in its body ("bench:<run>:<n>");
// before it is sent the tracker records its intended send time, its sender and the clients that
// must receive it. Receivers report every body they see; the tracker counts latency per
// (message, recipient) from the INTENDED send time, and counts duplicates, unexpected receipts
// and, at the end, losses. Zero lost and zero duplicated is the only good result.

import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { Samples, summarise, type Distribution } from './stats.js';

interface Msg {
  intended: number;
  sender: number;
  /** Clients that must receive it. */
  recipients: ReadonlySet<number>;
  seen: number;
  /** Latest receipt among recipients so far (ms after intended). */
  maxLatency: number;
  acked: boolean;
  failed: boolean;
  /** performance.now() when the generator actually fired the send, and when its 200 came back (NaN until then). */
  firedAt: number;
  ackAt: number;
}

export interface DeliveryReport {
  messages: number;
  sendFailures: number;
  expectedDeliveries: number;
  delivered: number;
  lost: number;
  duplicated: number;
  unexpected: number;
  /** Deliveries of sends the generator had given up on (timed out, then committed after all). */
  afterFailure: number;
  latency: Distribution;
  /** Per message: time until its last recipient had it (only fully delivered messages). */
  lastRecipient: Distribution;
}

export class Tracker {
  readonly run = randomBytes(4).toString('hex');
  private readonly re = new RegExp(`^bench:${this.run}:(\\d+)$`);
  private readonly msgs: Msg[] = [];
  private readonly seenPairs = new Set<number>();
  readonly latency = new Samples();
  duplicated = 0;
  unexpected = 0;
  /** Receipts of messages whose send had failed (timed out) from the generator's view. */
  afterFailure = 0;
  delivered = 0;
  expected = 0;
  /** Per client: performance.now() of its latest first-time receipt. */
  readonly lastReceipt = new Map<number, number>();
  /** Per client: count of messages still owed to it. */
  private readonly owed = new Map<number, number>();
  /** Set when a message is registered; receipts of unknown ids count as unexpected. */
  private readonly recording = true;
  /**
   * HEARTH_BENCH_SAMPLES=<file>: every delivery as "intended epoch ms, latency ms, message, client,
   * fired, acked, polled" (for lining up with server traces), the last three in ms after the
   * intended time: when the generator fired the send, when its 200 came back (empty if never),
   * and when the recipient sent the request whose response carried it (empty for a socket or a
   * gap fill). A delivery whose poll went out after the send was fired waited on the client's
   * re-poll; one that came soon after its ack waited on the send.
   */
  private readonly dump = process.env.HEARTH_BENCH_SAMPLES ? ([] as Array<[number, number, number, number | undefined]>) : undefined;

  /** Appends the kept delivery samples to HEARTH_BENCH_SAMPLES (no-op without it). */
  flushSamples(): void {
    if (!this.dump || this.dump.length === 0) return;
    const f1 = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '' : x.toFixed(1));
    const lines = this.dump.map(([id, client, lat, polledAt]) => {
      const m = this.msgs[id];
      return `${(performance.timeOrigin + m.intended).toFixed(1)},${lat.toFixed(1)},${id},${client},${f1(m.firedAt - m.intended)},${f1(m.ackAt - m.intended)},${f1(polledAt === undefined ? undefined : polledAt - m.intended)}`;
    });
    appendFileSync(process.env.HEARTH_BENCH_SAMPLES!, lines.join('\n') + '\n');
    this.dump.length = 0;
  }

  /** Registers a message before it is sent; returns its body text. */
  add(intended: number, sender: number, recipients: ReadonlySet<number>): { id: number; body: string } {
    const id = this.msgs.length;
    this.msgs.push({ intended, sender, recipients, seen: 0, maxLatency: 0, acked: false, failed: false, firedAt: performance.now(), ackAt: NaN });
    this.expected += recipients.size;
    for (const r of recipients) this.owed.set(r, (this.owed.get(r) ?? 0) + 1);
    return { id, body: `bench:${this.run}:${id}` };
  }

  acked(id: number, at = performance.now()): void {
    this.msgs[id].acked = true;
    this.msgs[id].ackAt = at;
  }

  /** The server refused or never answered: the message may not exist, so nobody is owed it. */
  failed(id: number): void {
    const m = this.msgs[id];
    if (m.failed) return;
    m.failed = true;
    this.expected -= m.recipients.size;
    for (const r of m.recipients) this.owed.set(r, (this.owed.get(r) ?? 0) - 1);
  }

  /**
   * A client saw a message body at time `at` (performance.now()), in the response to a request
   * it sent at `polledAt` (long-polls only).
   */
  saw(client: number, body: unknown, at: number, polledAt?: number): void {
    if (typeof body !== 'string') return;
    const m = this.re.exec(body);
    if (!m || !this.recording) return;
    const id = Number(m[1]);
    const msg = this.msgs[id];
    if (!msg) {
      this.unexpected++;
      return;
    }
    if (client === msg.sender && !msg.recipients.has(client)) return; // own echo
    if (msg.failed) {
      this.afterFailure++;
      return;
    }
    if (!msg.recipients.has(client)) {
      this.unexpected++;
      return;
    }
    const key = id * 1_000_000 + client;
    if (this.seenPairs.has(key)) {
      this.duplicated++;
      return;
    }
    this.seenPairs.add(key);
    this.delivered++;
    msg.seen++;
    const lat = at - msg.intended;
    this.latency.add(lat);
    this.dump?.push([id, client, lat, polledAt]);
    if (lat > msg.maxLatency) msg.maxLatency = lat;
    this.lastReceipt.set(client, at);
    this.owed.set(client, (this.owed.get(client) ?? 0) - 1);
  }

  /** Messages still owed to `client` (sent, not failed, not yet seen). */
  owedTo(client: number): number {
    return this.owed.get(client) ?? 0;
  }

  /**
   * Waits until every message arrived, giving up once nothing new arrived for `idleMs` (or after
   * `maxMs` in all). Returns whether everything arrived.
   */
  async drain(idleMs = 15_000, maxMs = 180_000): Promise<boolean> {
    const end = performance.now() + maxMs;
    let last = this.delivered;
    let lastChange = performance.now();
    while (!this.complete() && performance.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
      if (this.delivered !== last) {
        last = this.delivered;
        lastChange = performance.now();
      } else if (performance.now() - lastChange > idleMs) break;
    }
    return this.complete();
  }

  /** True when every registered, non-failed message reached every recipient. */
  complete(): boolean {
    return this.delivered >= this.expected;
  }

  get messages(): number {
    return this.msgs.length;
  }

  report(): DeliveryReport {
    this.flushSamples();
    const last: number[] = [];
    let failures = 0;
    for (const m of this.msgs) {
      if (m.failed) failures++;
      else if (m.seen === m.recipients.size && m.recipients.size > 0) last.push(m.maxLatency);
    }
    last.sort((a, b) => a - b);
    return {
      messages: this.msgs.length,
      sendFailures: failures,
      expectedDeliveries: this.expected,
      delivered: this.delivered,
      lost: Math.max(0, this.expected - this.delivered),
      duplicated: this.duplicated,
      unexpected: this.unexpected,
      afterFailure: this.afterFailure,
      latency: this.latency.summary(),
      lastRecipient: summarise(last),
    };
  }
}
