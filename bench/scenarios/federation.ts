// federation: two Hearth servers federating over TLS on loopback (self-signed certificates,
// verify_tls off, loopback allowed: the setup of spec/federation/two-servers.spec.ts), in two
// phases:
//
// 1. latency: alice on A sends into a room shared with bob on B at a fixed rate (open loop,
//    counted from the intended send time); bob long-polls /sync on B. Per message: A's client
//    API, A's room input and durable commit, A's federation sender, B's /send with X-Matrix,
//    signature and auth checks, B's commit, B's /sync wake-up. Tracker: 0 lost, 0 duplicated.
// 2. inbound: a fake remote server in this process ("ghost": its own Ed25519 key, served at
//    /_matrix/key/v2/server over HTTPS, so B fetches it through its normal key path) joins
//    several rooms of B with make_join/send_join, then pushes pre-signed transactions of 50 valid
//    PDUs each through PUT /_matrix/federation/v1/send/{txnId} with X-Matrix auth, one
//    transaction in flight per room, the rooms in parallel. Every check on B is on (X-Matrix,
//    PDU signatures, hashes, auth against auth events and state). Reported: accepted PDUs/s,
//    B's CPU per PDU (/proc/<pid>/stat), and every PDU accepted (0 rejected) and read back
//    through /messages (0 lost, 0 duplicated).
//
// PDUs and transactions are signed before the clock starts, so the generator's Ed25519 work is
// not what limits phase 2. A runs on CPU 1 with the generator (phase 1 sends little), B on CPU 0.

import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PollClient, clientStats } from '../lib/clients.js';
import { emptyResult, profileDir, type BenchContext, type Scenario, type TargetSpec } from '../lib/context.js';
import { MatrixClient } from '../lib/matrix.js';
import { CpuMeter, round } from '../lib/proc.js';
import { Progress } from '../lib/progress.js';
import type { TargetResult } from '../lib/report.js';
import { runSchedule, sleep } from '../lib/schedule.js';
import { Samples, fmtDist } from '../lib/stats.js';
import { HearthChild, freePort } from '../lib/target.js';
import { Tracker } from '../lib/tracker.js';
import { authEventTypesFor } from '../../src/protocol/auth-rules.js';
import { generateSigningKey } from '../../src/protocol/crypto.js';
import { computeEventId, signEvent } from '../../src/protocol/events.js';
import { roomVersionRules, SUPPORTED_ROOM_VERSIONS } from '../../src/protocol/room-versions.js';
import type { JsonObject, Pdu, RoomVersion, SigningKey } from '../../src/protocol/types.js';
import { buildXMatrixAuthorization } from '../../src/protocol/x-matrix.js';
import { ownKeyDocument } from '../../src/federation/keys.js';
import { generateSelfSignedCertificate } from '../../src/federation/self-signed.js';

const enc = encodeURIComponent;
const PDUS_PER_TXN = 50;

export function federationParams(quick: boolean) {
  return quick
    ? { latency: { ratePerSec: 20, messages: 100 }, inbound: { rooms: 4, txnsPerRoom: 10 } }
    : { latency: { ratePerSec: 20, messages: 1200 }, inbound: { rooms: 8, txnsPerRoom: 50 } };
}

// ---- federation HTTP (TLS, certificates not verified: self-signed test peers) ----------------

const fedAgent = new https.Agent({ keepAlive: true, rejectUnauthorized: false, maxSockets: 256 });

interface FedResult {
  status: number;
  body: any;
}

function fedCall(base: string, method: string, path: string, headers: Record<string, string>, payload?: string): Promise<FedResult> {
  const u = new URL(base);
  const h: Record<string, string> = { ...headers };
  if (payload !== undefined) {
    h['content-type'] = 'application/json';
    h['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const req = https.request({ host: u.hostname, port: u.port, path, method, headers: h, agent: fedAgent, timeout: 120_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = text ? JSON.parse(text) : {};
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${path}`)));
    req.on('error', reject);
    req.end(payload);
  });
}

// ---- the fake remote server ------------------------------------------------------------------

/** What the ghost knows of a room it joined: enough to build the next message. */
interface Chain {
  roomId: string;
  version: RoomVersion;
  sender: string;
  authEvents: string[];
  prev: string;
  depth: number;
}

class Ghost {
  keyRequests = 0;
  sendsReceived = 0;
  private constructor(
    readonly name: string,
    readonly key: SigningKey,
    private readonly server: https.Server,
  ) {}

  static async start(): Promise<Ghost> {
    const port = await freePort();
    const name = `127.0.0.1:${port}`;
    const key = generateSigningKey('fedbench');
    const tls = await generateSelfSignedCertificate('127.0.0.1');
    let ghost: Ghost | undefined;
    const server = https.createServer({ cert: tls.cert, key: tls.key, keepAliveTimeout: 65_000 }, (req, res) => ghost!.handle(req, res));
    ghost = new Ghost(name, key, server);
    await new Promise<void>((r, j) => server.once('error', j).listen(port, '127.0.0.1', () => r()));
    return ghost;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    const answer = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    req.resume();
    req.on('end', () => {
      if (req.method === 'GET' && path.startsWith('/_matrix/key/v2/server')) {
        this.keyRequests++;
        answer(200, ownKeyDocument(this.name, this.key, [], Date.now()));
      } else if (req.method === 'PUT' && path.startsWith('/_matrix/federation/v1/send/')) {
        // B tells us about its own events in the shared rooms (none are sent during the run).
        this.sendsReceived++;
        answer(200, { pdus: {} });
      } else answer(404, { errcode: 'M_UNRECOGNIZED', error: 'ghost serves keys and /send only' });
    });
  }

  auth(method: string, uri: string, destination: string, content?: JsonObject): string {
    return buildXMatrixAuthorization({ method, uri, origin: this.name, destination, content }, this.key);
  }

  /** make_join + send_join as `userId` (a user of this ghost server). */
  async join(fedBase: string, destination: string, roomId: string, userId: string): Promise<Chain> {
    const vers = SUPPORTED_ROOM_VERSIONS.map((v) => `ver=${enc(v)}`).join('&');
    const makePath = `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(userId)}?${vers}`;
    const made = await fedCall(fedBase, 'GET', makePath, { authorization: this.auth('GET', makePath, destination) });
    if (made.status !== 200) throw new Error(`make_join: ${made.status} ${JSON.stringify(made.body).slice(0, 300)}`);
    const version = made.body.room_version as RoomVersion;
    if (roomVersionRules(version).eventReferencesWithHashes) throw new Error(`room version ${version}: the ghost builds event-ID references only`);
    const template = { ...made.body.event, origin_server_ts: Date.now() } as JsonObject;
    delete template.hashes;
    delete template.signatures;
    const joinEvent = signEvent(template, this.name, this.key, version);
    const joinId = computeEventId(joinEvent, version);
    const sendPath = `/_matrix/federation/v2/send_join/${enc(roomId)}/${enc(joinId)}`;
    const sent = await fedCall(fedBase, 'PUT', sendPath, { authorization: this.auth('PUT', sendPath, destination, joinEvent) }, JSON.stringify(joinEvent));
    if (sent.status !== 200) throw new Error(`send_join: ${sent.status} ${JSON.stringify(sent.body).slice(0, 300)}`);
    const state = new Map<string, string>();
    for (const pdu of sent.body.state as JsonObject[]) state.set(`${pdu.type}\u0000${pdu.state_key}`, computeEventId(pdu, version));
    state.set(`m.room.member\u0000${userId}`, joinId);
    const authEvents: string[] = [];
    for (const [t, k] of authEventTypesFor({ type: 'm.room.message', sender: userId, content: {} }, version)) {
      const id = state.get(`${t}\u0000${k}`);
      if (id && !authEvents.includes(id)) authEvents.push(id);
    }
    return { roomId, version, sender: userId, authEvents, prev: joinId, depth: joinEvent.depth as number };
  }

  /** The next message of the chain, signed (linear history: prev_events is the previous one). */
  message(chain: Chain, body: string): { pdu: Pdu; eventId: string } {
    const pdu = {
      room_id: chain.roomId,
      sender: chain.sender,
      type: 'm.room.message',
      content: { msgtype: 'm.text', body },
      origin_server_ts: Date.now(),
      depth: chain.depth + 1,
      prev_events: [chain.prev],
      auth_events: chain.authEvents,
    } as unknown as Pdu;
    const signed = signEvent(pdu, this.name, this.key, chain.version);
    const eventId = computeEventId(signed, chain.version);
    chain.prev = eventId;
    chain.depth++;
    return { pdu: signed, eventId };
  }

  close(): Promise<void> {
    return new Promise((r) => {
      this.server.closeAllConnections();
      this.server.close(() => r());
    });
  }
}

// ---- the two servers ------------------------------------------------------------------------

interface Peer {
  h: HearthChild;
  name: string;
  fedUrl: string;
}

async function startPeer(ctx: BenchContext, users: number, prefix: string, cpu: number): Promise<Peer> {
  const fedPort = await freePort();
  const name = `127.0.0.1:${fedPort}`;
  const h = await HearthChild.create({
    synchronous: ctx.synchronous,
    pin: ctx.pin,
    cpu,
    seedUsers: users,
    userPrefix: prefix,
    serverName: name,
    federationPort: fedPort,
    profileDir: ctx.profile ? profileDir('federation') : undefined,
  });
  await h.start();
  ctx.log(`  hearth ${name} (synchronous ${h.info.synchronous}) client ${h.url}, pid ${h.pid()}${h.pinned ? ` on CPU ${cpu}` : ''}`);
  return { h, name, fedUrl: `https://${name}` };
}

async function waitJoined(mc: MatrixClient, roomId: string, userId: string, timeoutMs = 15_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    const body = await mc.call('GET', `/_matrix/client/v3/rooms/${enc(roomId)}/joined_members`).catch(() => null);
    if (body?.joined?.[userId]) return;
    await sleep(50);
  }
  throw new Error(`${userId} not joined to ${roomId} as ${mc.userId} sees it`);
}

// ---- phase 1: latency A -> B ----------------------------------------------------------------

async function latencyPhase(ctx: BenchContext, a: Peer, b: Peer, alice: MatrixClient, bob: MatrixClient, result: TargetResult): Promise<void> {
  const p = federationParams(ctx.quick).latency;
  const roomId = await alice.createRoom('fedbench latency');
  await bob.call('POST', `/_matrix/client/v3/join/${enc(roomId)}?server_name=${enc(a.name)}`, {});
  await waitJoined(alice, roomId, bob.userId);
  const tracker = new Tracker();
  const poll = new PollClient(bob, 1, tracker);
  await poll.initialSync();
  poll.start();
  // One message through first: A's first transaction to B (connection, B's fetch of A's key).
  const warm = tracker.add(performance.now(), 0, new Set([1]));
  await alice.send(roomId, `warm-${tracker.run}`, warm.body);
  if (!(await tracker.drain(10_000, 30_000))) throw new Error('the warm-up message never reached B');
  const stats0 = { ...clientStats };
  const fresh = new Tracker();
  const poll2 = new PollClient(bob, 1, fresh);
  await poll.stop();
  poll2.since = poll.since;
  poll2.start();
  await sleep(300);
  const acks = new Samples();
  let sendErrors = 0;
  const inflight = new Set<Promise<void>>();
  const cpuA = new CpuMeter(() => a.h.pid());
  const cpuB = new CpuMeter(() => b.h.pid());
  cpuA.start();
  cpuB.start();
  const durationMs = (p.messages / p.ratePerSec) * 1000;
  const bar = new Progress('federation latency', durationMs);
  const t0 = performance.now();
  const sched = await runSchedule({
    ratePerSec: p.ratePerSec,
    durationMs,
    onTick: () => bar.update(performance.now() - t0, `${fresh.delivered} at B`),
    fire: (i, intended) => {
      const { id, body } = fresh.add(intended, 0, new Set([1]));
      const job = alice
        .send(roomId, `f${fresh.run}-${i}`, body)
        .then(
          (res) => {
            if (res.status === 200) {
              fresh.acked(id);
              acks.add(res.at - intended);
            } else {
              sendErrors++;
              fresh.failed(id);
            }
          },
          () => {
            sendErrors++;
            fresh.failed(id);
          },
        )
        .finally(() => inflight.delete(job));
      inflight.add(job);
    },
  });
  bar.done();
  await Promise.race([Promise.all(inflight), sleep(30_000)]);
  const drained = await fresh.drain(ctx.quick ? 10_000 : 15_000);
  const ca = cpuA.stop();
  const cb = cpuB.stop();
  await poll2.stop();
  const rep = fresh.report();
  ctx.log(`  A -> B latency ${fmtDist(rep.latency)}`);
  ctx.log(`  ${rep.messages} messages, ${rep.delivered}/${rep.expectedDeliveries} at B, lost ${rep.lost}, duplicated ${rep.duplicated}, send errors ${sendErrors}; CPU A ${ca.serverCpuPct}% B ${cb.serverCpuPct}% generator ${cb.generatorCpuPct}% other ${cb.otherCpuPct}%`);
  Object.assign(result.headline, {
    'A→B p50 ms': rep.latency.p50,
    'A→B p99 ms': rep.latency.p99,
    'A→B max ms': rep.latency.max,
  });
  result.figures.latency = {
    params: p,
    latency: rep.latency,
    sendAck: acks.summary(),
    schedule: sched,
    delivery: { ...rep, latency: undefined, lastRecipient: undefined },
    drainedAll: drained,
    sendErrors,
    syncsCompleted: clientStats.syncs - stats0.syncs,
    gapFills: clientStats.gapFills - stats0.gapFills,
    cpuA: ca,
    cpuB: cb,
  };
  result.lost += rep.lost;
  result.duplicated += rep.duplicated;
  if (sendErrors) result.notes.push(`latency: ${sendErrors} sends failed`);
  if (sched.lateOps) result.notes.push(`latency: ${sched.lateOps} sends fired >5 ms late (max lag ${sched.maxLagMs} ms)`);
}

// ---- phase 2: inbound PDUs/s at B -----------------------------------------------------------

async function inboundPhase(ctx: BenchContext, b: Peer, carol: MatrixClient, result: TargetResult): Promise<void> {
  const p = federationParams(ctx.quick).inbound;
  const ghost = await Ghost.start();
  try {
    const ghostUser = `@fedbench:${ghost.name}`;
    const rooms: string[] = [];
    for (let r = 0; r < p.rooms; r++) rooms.push(await carol.createRoom(`fedbench inbound ${r}`));
    const tJoin = performance.now();
    const chains = [];
    for (const roomId of rooms) chains.push(await ghost.join(b.fedUrl, b.name, roomId, ghostUser));
    ctx.log(`  ghost ${ghost.name} joined ${rooms.length} rooms of B in ${((performance.now() - tJoin) / 1000).toFixed(1)} s (B fetched its key ${ghost.keyRequests}×)`);

    // Every PDU and transaction signed up front.
    const tSign = performance.now();
    const run = Math.random().toString(36).slice(2, 8);
    const expected = new Map<string, number>(); // event ID -> room index
    const lanes: Array<Array<{ path: string; auth: string; payload: string; ids: string[] }>> = [];
    for (let r = 0; r < p.rooms; r++) {
      const txns = [];
      for (let t = 0; t < p.txnsPerRoom; t++) {
        const pdus: Pdu[] = [];
        const ids: string[] = [];
        for (let k = 0; k < PDUS_PER_TXN; k++) {
          const m = ghost.message(chains[r], `fedbench:${run}:${r}:${t * PDUS_PER_TXN + k}`);
          pdus.push(m.pdu);
          ids.push(m.eventId);
          expected.set(m.eventId, r);
        }
        const txn = { origin: ghost.name, origin_server_ts: Date.now(), pdus, edus: [] } as unknown as JsonObject;
        const path = `/_matrix/federation/v1/send/${run}-${r}-${t}`;
        txns.push({ path, auth: ghost.auth('PUT', path, b.name, txn), payload: JSON.stringify(txn), ids });
      }
      lanes.push(txns);
    }
    const total = expected.size;
    ctx.log(`  ${total} PDUs in ${p.rooms * p.txnsPerRoom} transactions signed in ${((performance.now() - tSign) / 1000).toFixed(1)} s`);

    let accepted = 0;
    let httpErrors = 0;
    const rejected: Record<string, number> = {};
    let missingInAnswer = 0;
    const txnMs = new Samples();
    const cpu = new CpuMeter(() => b.h.pid());
    const bar = new Progress('federation inbound', total);
    cpu.start();
    const t0 = performance.now();
    await Promise.all(
      lanes.map(async (txns) => {
        for (const t of txns) {
          const s = performance.now();
          let res: FedResult;
          try {
            res = await fedCall(b.fedUrl, 'PUT', t.path, { authorization: t.auth }, t.payload);
          } catch (err) {
            httpErrors++;
            ctx.log(`  transaction ${t.path} failed: ${(err as Error).message}`);
            continue;
          }
          txnMs.add(performance.now() - s);
          if (res.status !== 200) {
            httpErrors++;
            ctx.log(`  transaction ${t.path}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
            continue;
          }
          // `error` only marks an invalid PDU: one the auth rules reject is answered {} (as
          // Synapse answers) and counts as accepted here, but the read-back below finds it lost.
          for (const id of t.ids) {
            const r = res.body?.pdus?.[id];
            if (r === undefined) missingInAnswer++;
            else if (r.error !== undefined) rejected[String(r.error)] = (rejected[String(r.error)] ?? 0) + 1;
            else accepted++;
          }
          bar.update(accepted, `${accepted} accepted`);
        }
      }),
    );
    const wallSec = (performance.now() - t0) / 1000;
    bar.done();
    const c = cpu.stop();
    const rejectedCount = Object.values(rejected).reduce((x, y) => x + y, 0);

    // Read back: every PDU in its room's timeline exactly once, as carol sees it through /messages.
    const sync = await carol.call('GET', `/_matrix/client/v3/sync?timeout=0&filter=${enc(JSON.stringify({ room: { timeline: { limit: 1 } }, presence: { types: [] } }))}`);
    const seen = new Map<string, number>();
    for (const roomId of rooms) {
      let from: string | undefined = sync.next_batch as string;
      for (let page = 0; page < 10_000 && from; page++) {
        const res = await carol.messages(roomId, from, undefined, 1000);
        for (const ev of res.chunk ?? []) if (expected.has(ev.event_id)) seen.set(ev.event_id, (seen.get(ev.event_id) ?? 0) + 1);
        if (!res.chunk?.length || !res.end || res.end === from) break;
        from = res.end;
      }
    }
    let lost = 0;
    let duplicated = 0;
    for (const id of expected.keys()) {
      const n = seen.get(id) ?? 0;
      if (n === 0) lost++;
      else duplicated += n - 1;
    }
    const rate = accepted / wallSec;
    const cpuPerPduUs = (c.serverCpuSec * 1e6) / Math.max(1, accepted);
    ctx.log(
      `  inbound: ${accepted}/${total} accepted in ${wallSec.toFixed(2)} s = ${rate.toFixed(0)} PDUs/s; rejected ${rejectedCount}, not answered ${missingInAnswer}, HTTP errors ${httpErrors}; read back: lost ${lost}, duplicated ${duplicated}`,
    );
    ctx.log(`  B CPU ${c.serverCpuPct}% (${cpuPerPduUs.toFixed(0)} µs per PDU = ${(1e6 / cpuPerPduUs).toFixed(0)} PDUs per CPU-second), generator ${c.generatorCpuPct}%, other ${c.otherCpuPct}%; transaction ${fmtDist(txnMs.summary())}`);
    if (rejectedCount) ctx.log(`  rejections: ${JSON.stringify(rejected)}`);
    Object.assign(result.headline, {
      'inbound PDUs/s': round(rate, 0),
      'B CPU µs/PDU': round(cpuPerPduUs, 0),
      'PDUs per CPU-s': round(1e6 / cpuPerPduUs, 0),
      'inbound rejected': rejectedCount + missingInAnswer + httpErrors,
    });
    result.figures.inbound = {
      params: { ...p, pdusPerTxn: PDUS_PER_TXN, inflightTxns: p.rooms },
      pdus: total,
      accepted,
      rejected,
      notAnswered: missingInAnswer,
      httpErrors,
      readBack: { lost, duplicated },
      wallSec: round(wallSec),
      transactionMs: txnMs.summary(),
      cpu: c,
      ghostKeyRequests: ghost.keyRequests,
    };
    result.serverCpuPct = c.serverCpuPct;
    result.generatorCpuPct = c.generatorCpuPct;
    result.otherCpuPct = c.otherCpuPct;
    result.lost += lost;
    result.duplicated += duplicated;
    if (rejectedCount + missingInAnswer + httpErrors > 0) {
      result.notes.push(`inbound: ${rejectedCount} rejected, ${missingInAnswer} not answered, ${httpErrors} transactions failed`);
      throw new Error(`inbound: ${rejectedCount} PDUs rejected (${JSON.stringify(rejected).slice(0, 200)}), ${missingInAnswer} not answered, ${httpErrors} transactions failed`);
    }
  } finally {
    await ghost.close();
  }
}

async function run(ctx: BenchContext, _spec: TargetSpec): Promise<TargetResult[]> {
  // A with the generator on CPU 1 (phase 1 sends a few messages a second), B alone on CPU 0.
  const a = await startPeer(ctx, 1, 'fa', 1);
  let b: Peer | undefined;
  const result = emptyResult('hearth', { ...a.h.info, servers: 2, federation: 'TLS on loopback, self-signed, verify_tls false' });
  try {
    b = await startPeer(ctx, 2, 'fb', 0);
    const [alice] = a.h.seeded;
    const [bob, carol] = b.h.seeded;
    await latencyPhase(ctx, a, b, alice, bob, result);
    await inboundPhase(ctx, b, carol, result);
    result.figures.params = federationParams(ctx.quick);
  } finally {
    for (const p of [b, a]) {
      if (!p) continue;
      await p.h.stop();
      p.h.dispose();
    }
  }
  return [result];
}

export const federation: Scenario = {
  name: 'federation',
  supports: (spec) => (spec.kind === 'hearth' ? null : 'starts its own two federating Hearth servers'),
  run,
};
