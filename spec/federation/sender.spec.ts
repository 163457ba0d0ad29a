// The outbound sender (src/federation/sender.ts) over a real SQLite store's queue, with a
// scripted peer: a failing destination keeps its recorded transaction (retried with its txnId)
// and is then sent only each room's newest PDU; once it answers it is caught up. A new sender
// on the reopened store resumes the transaction in flight with the same txnId.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { build, FederationSender } from '../../src/federation/sender.js';
import { importLegacyQueue } from '../../src/federation/legacy-queue.js';
import type { FederationRequest } from '../../src/federation/client.js';
import type { JsonObject, JsonValue, Pdu } from '../../src/protocol/types.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/index.js';
import type { OutboundEntry } from '../../src/store/types.js';

const silent = pino({ level: 'silent' });
const pdu = (room: string, n: number) => ({ room_id: room, type: 'm.room.message', content: { body: `${room} ${n}` } }) as unknown as Pdu;
const body = (p: Pdu | JsonObject) => (p.content as { body: string }).body;

function peer() {
  const state = { down: true, txns: [] as Array<{ txnId: string; bodies: string[]; edus: JsonObject[] }> };
  const client = {
    async request(_dest: string, req: FederationRequest): Promise<JsonValue> {
      const txn = req.body as unknown as { pdus: Pdu[]; edus: JsonObject[] };
      const record = { txnId: req.path.split('/').pop() as string, bodies: txn.pdus.map(body), edus: txn.edus };
      if (state.down) {
        state.txns.push({ ...record, txnId: `failed ${record.txnId}` });
        throw new Error('connect ECONNREFUSED');
      }
      state.txns.push(record);
      return { pdus: {} };
    },
  };
  return { state, client };
}

const until = async (cond: () => boolean | Promise<boolean>, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('federation/sender: the store-backed queue', () => {
  let dir: string;
  let store: SqliteStore;
  const open = async () => (store = await openSqliteStore({ path: join(dir, 'hearth.sqlite'), logger: { warn: () => undefined } }));
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hearth-sender-'));
    await open();
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const sender = (client: ReturnType<typeof peer>['client'], extra: Partial<ConstructorParameters<typeof FederationSender>[0]> = {}) =>
    new FederationSender({ serverName: 'me', client, logger: silent, queue: store.federationQueue, watermark: () => store.currentPosition(), minBackoffMs: 20, maxBackoffMs: 40, ...extra });

  it('build: catching up keeps each room\'s newest PDU and drops typing; the 50-PDU limit cuts after the last taken', () => {
    const e = (pos: number, item: OutboundEntry['item']): OutboundEntry => ({ pos, item });
    const p = (pos: number, room: string, n: number) => e(pos, { kind: 'pdu', roomId: room, pdu: pdu(room, n) as unknown as JsonObject });
    const entries = [p(1, '!a', 1), p(2, '!b', 1), e(3, { kind: 'edu', edu: { edu_type: 'm.typing', content: {} } }), p(4, '!a', 2), e(5, { kind: 'edu', edu: { edu_type: 'm.receipt', content: {} } }), p(6, '!b', 2)];
    const behind = build(entries, true, Infinity);
    assert.deepEqual(behind.body.pdus.map(body), ['!a 2', '!b 2']);
    assert.deepEqual(behind.body.edus.map((x) => x.edu_type), ['m.receipt']);
    assert.equal(behind.upto, 6);
    const normal = build(entries, false, 500);
    assert.equal(normal.body.pdus.length, 4);
    assert.equal(normal.body.edus.length, 2);
    assert.equal(normal.upto, 500, 'nothing cut: the whole window read is covered');
    const many = Array.from({ length: 60 }, (_, i) => p(i + 1, '!c', i));
    const cut = build(many, false, 60);
    assert.equal(cut.body.pdus.length, 50);
    assert.equal(cut.upto, 50);
  });

  it('a failing destination keeps its transaction (same txnId) and gets each room\'s newest PDU; recovered, it is caught up', async () => {
    const { state, client } = peer();
    const s = sender(client);
    await s.sendPdu(['them'], pdu('!a', 1));
    await until(() => s.catchingUp('them'));
    for (const x of [pdu('!a', 2), pdu('!b', 1), pdu('!a', 3), pdu('!b', 2)]) await s.sendPdu(['them'], x);
    assert.equal(await s.backlog('them'), 5, 'every queued PDU is unacknowledged');
    const firstTxn = state.txns[0]!.txnId.replace('failed ', '');
    state.down = false;
    await until(() => state.txns.filter((t) => !t.txnId.startsWith('failed')).length === 2);
    const ok = state.txns.filter((t) => !t.txnId.startsWith('failed'));
    assert.equal(ok[0]!.txnId, firstTxn, 'retried with its txnId');
    assert.deepEqual(ok.map((t) => t.bodies), [['!a 1'], ['!a 3', '!b 2']]);
    await until(() => !s.catchingUp('them'));
    assert.equal(await s.backlog('them'), 0, 'the skipped ones are covered');
    const before = state.txns.length;
    await s.sendPdu(['them'], pdu('!a', 4));
    await s.sendPdu(['them'], pdu('!a', 5));
    await until(() => state.txns.flatMap((t) => t.bodies).includes('!a 5'));
    assert.deepEqual(state.txns.slice(before).flatMap((t) => t.bodies), ['!a 4', '!a 5'], 'caught up: every PDU again');
    await s.stop();
  });

  it('a new sender on the reopened store resumes the transaction in flight with its txnId, then the rest; EDUs carry only type and content', async () => {
    const { state, client } = peer();
    const first = sender(client, { minBackoffMs: 60_000, maxBackoffMs: 60_000 });
    await first.sendEdu(['b.test'], { edu_type: 'm.direct_to_device', content: { message_id: 'm1' } });
    await until(() => state.txns.length === 1);
    await first.sendEdu(['b.test'], { edu_type: 'm.typing', content: { room_id: '!r', user_id: '@u:me', typing: true } });
    await first.sendEdu(['b.test'], { edu_type: 'm.device_list_update', content: { stream_id: 7 } });
    await first.stop();
    const firstTxn = state.txns[0]!;
    assert.deepEqual(firstTxn.edus.map((e) => e.edu_type), ['m.direct_to_device']);
    await store.close();
    await open();
    state.down = false;
    state.txns.length = 0;
    const second = sender(client);
    second.start();
    await until(async () => (await second.eduBacklog('b.test')) === 0);
    await second.stop();
    assert.equal(state.txns[0]!.txnId, firstTxn.txnId.replace('failed ', ''), 'the transaction in flight is retried with its txnId');
    assert.deepEqual(state.txns[0]!.edus, firstTxn.edus);
    // This sender never failed: it sends everything left, typing included.
    assert.deepEqual(state.txns.slice(1).flatMap((t) => t.edus.map((e) => e.edu_type)), ['m.typing', 'm.device_list_update']);
    assert.ok(state.txns.every((t) => t.edus.every((e) => Object.keys(e).sort().join() === 'content,edu_type')), JSON.stringify(state.txns));
  });

  it('queues nothing for itself or a refused server; a sender with sends: false only queues', async () => {
    const { state, client } = peer();
    state.down = false;
    const quiet = sender(client, { sends: false, allows: (s) => s !== 'denied.test' });
    quiet.start();
    await quiet.sendPdu(['me', 'denied.test', 'ok.test'], pdu('!a', 1));
    assert.deepEqual((await store.federationQueue.listDestinationQueues()).map((d) => d.destination), ['ok.test']);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(state.txns.length, 0, 'nothing sent by a worker without federation_out');
    await quiet.stop();
    const active = sender(client);
    active.start(); // the start-up scan finds what another worker queued
    await until(() => state.txns.length === 1);
    assert.deepEqual(state.txns[0]!.bodies, ['!a 1']);
    await active.stop();
  });

  it('a wake for entries above the watermark waits until the watermark passes them, then sends', async () => {
    const { state, client } = peer();
    state.down = false;
    let held = true;
    let advanced = () => {};
    const s = sender(client, { watermark: () => (held ? 0 : store.currentPosition()), onWatermarkAdvance: (l) => ((advanced = l), () => {}) });
    s.start();
    // Queued by another writer (as a local event's PDU is, in the event's commit), then woken
    // while the watermark is still below the entry.
    const quiet = sender(client, { sends: false });
    await quiet.sendPdu(['ok.test'], pdu('!a', 1));
    await quiet.stop();
    const pos = store.currentPosition();
    s.wake(['ok.test'], pos);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(state.txns.length, 0, 'nothing readable yet');
    held = false; // the lower write completes: no other wake comes, and a single node has no scan
    advanced();
    await until(() => state.txns.length === 1);
    assert.deepEqual(state.txns[0]!.bodies, ['!a 1']);
    await s.stop();
  });

  it('imports a legacy queue directory once: the transaction in flight, then the waiting PDUs and EDUs, in order', async () => {
    const legacy = join(dir, 'federation-queue');
    mkdirSync(legacy);
    writeFileSync(join(legacy, 'b.json'), JSON.stringify({ name: 'b.test', inflight: { txnId: 'old', pdus: [pdu('!a', 1)], edus: [] }, pending: [pdu('!a', 2)], edus: [{ edu_type: 'm.direct_to_device', content: { message_id: 'x' }, durable: true }] }));
    writeFileSync(join(legacy, 'broken.json'), '{');
    const { state, client } = peer();
    state.down = false;
    const s = sender(client);
    assert.equal(await importLegacyQueue(legacy, s, silent), 3);
    assert.ok(!existsSync(legacy) && existsSync(`${legacy}.imported`), 'renamed: a restart does not import it again');
    assert.equal(await importLegacyQueue(legacy, s, silent), 0);
    await until(() => state.txns.length > 0 && state.txns.flatMap((t) => t.bodies).length === 2 && state.txns.some((t) => t.edus.length > 0));
    assert.deepEqual(state.txns.flatMap((t) => t.bodies), ['!a 1', '!a 2']);
    assert.deepEqual(JSON.parse(JSON.stringify(state.txns.flatMap((t) => t.edus))), [{ edu_type: 'm.direct_to_device', content: { message_id: 'x' } }], 'no durable flag sent');
    await s.stop();
  });
});
