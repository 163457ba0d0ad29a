// A durable local event's PDU is durable too (src/store/federation-types.ts, PersistEventInput.outbound):
// server A runs as a child process (`node dist/src/main.js`, SQLite synchronous: full) and is
// SIGKILLed right after an event's commit, where its PDU used to be queued in a separate write
// (the HEARTH_TEST_KILL_AFTER_COMMIT hook), and at random moments right after a send was
// acknowledged. Restarted, A must push every such event to server B (a real Hearth in this
// process whose /send handler records what arrives), in order, without a later event for B to
// find it through (the room stays quiet after the restart, so get_missing_events cannot help).

import { assert } from '../helpers/assert.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { ChildServer, freePort } from '../helpers/child-server.js';
import { closeFedRequests, startFederated, waitFor } from '../helpers/federation.js';
import { Api, enc, type TestServer } from '../helpers/server.js';
import type { JsonObject, JsonValue } from '../../src/protocol/types.js';

const V3 = '/_matrix/client/v3';

describe('crash: a local event durable at SIGKILL reaches the other server', function () {
  this.timeout(180_000);
  let a: ChildServer | undefined;
  let b: TestServer | undefined;
  let nameA = '';
  let alice: Api & { userId: string };
  let roomId = '';
  /** Message bodies of A's room as B's /send received them, first arrival order (retries counted once). */
  const pushed: string[] = [];
  /** Joins of A's room by users of other servers than A and B, as B's /send received them from A. */
  const relayedJoins: string[] = [];
  let c: TestServer | undefined;

  before(async function () {
    this.timeout(120_000);
    const fedA = await freePort();
    nameA = `127.0.0.1:${fedA}`;
    a = await ChildServer.create({
      server_name: nameA,
      federation: { verify_tls: false, ip_range_whitelist: ['127.0.0.1/32'], min_backoff_ms: 100, max_backoff_ms: 500 },
    });
    const cfg = JSON.parse(readFileSync(a.configPath, 'utf8')) as { listeners: Record<string, unknown> };
    cfg.listeners.federation = { enabled: true, host: '127.0.0.1', port: fedA };
    writeFileSync(a.configPath, JSON.stringify(cfg));
    process.env.HEARTH_TEST_KILL_AFTER_COMMIT = 'crash-here';
    try {
      await a.start(30_000);
    } finally {
      delete process.env.HEARTH_TEST_KILL_AFTER_COMMIT;
    }
    b = await startFederated(await freePort());
    const inbound = b.hearth.federation!.inbound;
    const send = inbound.send.bind(inbound);
    const seen = new Set<string>();
    inbound.send = (origin: string, txnId: string, body: JsonValue | undefined) => {
      for (const p of (body as { pdus?: JsonObject[] } | undefined)?.pdus ?? []) {
        const text = (p.content as { body?: unknown } | undefined)?.body;
        if (origin === nameA && p.room_id === roomId && p.type === 'm.room.message' && typeof text === 'string' && !seen.has(text)) {
          seen.add(text);
          pushed.push(text);
        }
        const member = p.state_key as string | undefined;
        if (origin === nameA && p.room_id === roomId && p.type === 'm.room.member' && (p.content as JsonObject | undefined)?.membership === 'join' && typeof member === 'string' && !member.endsWith(`:${nameA}`) && !member.startsWith('@bob:') && !relayedJoins.includes(member)) {
          relayedJoins.push(member);
        }
      }
      return send(origin, txnId, body);
    };
    alice = await new Api(a.url).register('alice');
    const bob = await new Api(b.url).register('bob');
    const created = await alice.post(`${V3}/createRoom`, { preset: 'public_chat' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    roomId = created.body.room_id as string;
    const joined = await bob.post(`${V3}/join/${enc(roomId)}?server_name=${enc(nameA)}`, {});
    assert.equal(joined.status, 200, JSON.stringify(joined.body));
  });

  after(async () => {
    await a?.dispose();
    await b?.stop().catch(() => undefined);
    await c?.stop().catch(() => undefined);
    await closeFedRequests();
  });

  const send = (body: string, txnId: string) => alice.put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/${enc(txnId)}`, { msgtype: 'm.text', body });

  async function restart(): Promise<void> {
    await a!.start(30_000);
    alice = Object.assign(new Api(a!.url, alice.token), { userId: alice.userId });
  }

  it('killed between the commit and where the PDU used to be queued: after the restart B still gets it, in order', async () => {
    for (const body of ['m0', 'm1', 'm2']) assert.equal((await send(body, body)).status, 200);
    await waitFor(async () => pushed.length === 3, 30_000, 'B to receive m0..m2');

    const dying = await send('crash-here', 'crash').catch((err: Error) => err);
    assert.ok(dying instanceof Error || dying.status !== 200, 'the request dies with the server');
    const exit = await a!.waitForExit(10_000);
    assert.equal(exit.signal, 'SIGKILL', 'killed by the hook, after the commit');
    assert.deepEqual(pushed, ['m0', 'm1', 'm2'], 'nothing of it reached B before the kill');

    await restart();
    const stored = await alice.get(`${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=5`);
    assert.equal(stored.status, 200);
    assert.ok(stored.body.chunk.some((e: any) => e.content?.body === 'crash-here'), 'the event was durable at the kill');
    // Nothing else is sent: B can only have it because A pushes it.
    await waitFor(async () => pushed.length === 4, 30_000, `B to receive the event committed before the kill (got ${JSON.stringify(pushed)})`).catch((err: Error) => {
      throw new Error(`${err.message}\n${a!.output()}`);
    });
    assert.deepEqual(pushed, ['m0', 'm1', 'm2', 'crash-here']);
  });

  it("a remote join through A's send_join, killed right after its commit: after the restart A relays it to B", async () => {
    // C's carol joins through A; B hears of it only from A (the resident server passes it on).
    // The hook is read at start-up: restart A with it (the first restart went without).
    await a!.kill('SIGTERM');
    process.env.HEARTH_TEST_KILL_AFTER_COMMIT = 'crash-here';
    try {
      await restart();
    } finally {
      delete process.env.HEARTH_TEST_KILL_AFTER_COMMIT;
    }
    c = await startFederated(await freePort());
    const carol = await new Api(c.url).register('carol');
    assert.equal((await carol.put(`${V3}/profile/${enc(carol.userId)}/displayname`, { displayname: 'crash-here' })).status, 200);
    const dying = await carol.post(`${V3}/join/${enc(roomId)}?server_name=${enc(nameA)}`, {});
    assert.notEqual(dying.status, 200, 'the send_join dies with A');
    const exit = await a!.waitForExit(10_000);
    assert.equal(exit.signal, 'SIGKILL', 'killed by the hook, after the join was committed');
    assert.deepEqual(relayedJoins, [], 'nothing of it reached B before the kill');

    await restart();
    const members = await alice.get(`${V3}/rooms/${enc(roomId)}/members`);
    assert.equal(members.status, 200);
    assert.ok(members.body.chunk.some((e: any) => e.state_key === carol.userId && e.content?.membership === 'join'), 'the join was durable at the kill');
    await waitFor(async () => relayedJoins.length === 1, 30_000, 'B to receive carol\'s join from A').catch((err: Error) => {
      throw new Error(`${err.message}\n${a!.output()}`);
    });
    assert.deepEqual(relayedJoins, [carol.userId]);
  });

  it('SIGKILLed at random right after an acknowledged send (3 rounds, 2 senders): every acknowledged PDU is pushed, each sender\'s in order', async () => {
    for (let round = 0; round < 3; round++) {
      const acked: string[][] = [[], []];
      const killAfter = 4 + Math.floor(Math.random() * 16);
      let total = 0;
      let killed: Promise<unknown> | undefined;
      const sender = async (s: number) => {
        for (let i = 0; i < 40 && !killed; i++) {
          const body = `r${round}s${s}m${i}`;
          const res = await send(body, body).catch(() => undefined);
          if (res?.status !== 200) return;
          acked[s]!.push(body);
          // Right after this acknowledgement: the kill lands while the writer's later work is in flight.
          if (++total === killAfter && !killed) killed = a!.kill('SIGKILL');
        }
      };
      await Promise.all([sender(0), sender(1)]);
      assert.ok(killed, `round ${round}: the server was killed`);
      await killed;
      await restart();
      const all = acked.flat();
      await waitFor(async () => all.every((m) => pushed.includes(m)), 30_000, `round ${round}: B to receive every acknowledged message`).catch((err: Error) => {
        throw new Error(`${err.message}: missing ${JSON.stringify(all.filter((m) => !pushed.includes(m)))}`);
      });
      for (const [s, mine] of acked.entries()) {
        const got = pushed.filter((m) => m.startsWith(`r${round}s${s}m`));
        // Sends after the last acknowledged one may have been committed unacknowledged: a prefix holds.
        assert.deepEqual(got.slice(0, mine.length), mine, `round ${round}, sender ${s}: in order`);
      }
    }
  });
});
