// The outbound queue's catch-up (src/federation/sender.ts) with a scripted peer: while a
// destination fails it keeps the transaction in flight unchanged and, of the rest, only each
// room's newest PDU; once it answers again it gets those and is caught up.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FederationSender, latestPerRoom } from '../../src/federation/sender.js';
import type { FederationRequest } from '../../src/federation/client.js';
import type { JsonValue, Pdu } from '../../src/protocol/types.js';

const pdu = (room: string, n: number) => ({ room_id: room, type: 'm.room.message', content: { body: `${room} ${n}` } }) as unknown as Pdu;
const body = (p: Pdu) => (p.content as { body: string }).body;

function peer() {
  const state = { down: true, txns: [] as Array<{ txnId: string; bodies: string[] }> };
  const client = {
    async request(_dest: string, req: FederationRequest): Promise<JsonValue> {
      if (state.down) throw new Error('connect ECONNREFUSED');
      const txn = req.body as unknown as { pdus: Pdu[] };
      state.txns.push({ txnId: req.path.split('/').pop() as string, bodies: txn.pdus.map(body) });
      return { pdus: {} };
    },
  };
  return { state, client };
}

const until = async (cond: () => boolean) => {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('federation/sender: catch-up', () => {
  it('latestPerRoom keeps the newest PDU of each room in queue order', () => {
    assert.deepEqual(latestPerRoom([pdu('!a', 1), pdu('!b', 1), pdu('!a', 2), pdu('!c', 1), pdu('!b', 2)]).map(body), ['!a 2', '!c 1', '!b 2']);
  });

  it('a failing destination keeps its transaction in flight and each room\'s newest PDU; recovered, it gets those and is caught up', async () => {
    const { state, client } = peer();
    const s = new FederationSender({ serverName: 'me', client, logger: pino({ level: 'silent' }), minBackoffMs: 20, maxBackoffMs: 40 });
    s.sendPdu(['them'], pdu('!a', 1));
    await until(() => s.catchingUp('them'));
    for (const p of [pdu('!a', 2), pdu('!b', 1), pdu('!a', 3), pdu('!b', 2)]) s.sendPdu(['them'], p);
    assert.equal(s.backlog('them'), 3, 'in flight: !a 1; waiting: !a 3 and !b 2');
    state.down = false;
    await until(() => state.txns.length === 2);
    assert.deepEqual(state.txns.map((t) => t.bodies), [['!a 1'], ['!a 3', '!b 2']]);
    assert.equal(s.catchingUp('them'), false);
    s.sendPdu(['them'], pdu('!a', 4));
    s.sendPdu(['them'], pdu('!a', 5));
    await until(() => state.txns.flatMap((t) => t.bodies).includes('!a 5'));
    assert.deepEqual(state.txns.slice(2).flatMap((t) => t.bodies), ['!a 4', '!a 5'], 'caught up: every PDU again');
    await s.stop();
  });

  it('a queue reloaded at start is treated as behind: the same transaction in flight, then each room\'s newest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-sender-'));
    try {
      const first = peer();
      const s1 = new FederationSender({ serverName: 'me', client: first.client, logger: pino({ level: 'silent' }), queueDir: dir, minBackoffMs: 10_000 });
      s1.start();
      s1.sendPdu(['them'], pdu('!a', 1));
      await until(() => s1.catchingUp('them'));
      s1.sendPdu(['them'], pdu('!a', 2));
      s1.sendPdu(['them'], pdu('!a', 3));
      await s1.stop();
      const second = peer();
      second.state.down = false;
      const s2 = new FederationSender({ serverName: 'me', client: second.client, logger: pino({ level: 'silent' }), queueDir: dir });
      s2.start();
      await until(() => second.state.txns.length === 2);
      assert.deepEqual(second.state.txns.map((t) => t.bodies), [['!a 1'], ['!a 3']]);
      await s2.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
