// Crash safety of the real server process. The server runs as a child (`node dist/src/main.js
// --config FILE`, SQLite with synchronous: full) while 8 concurrent senders PUT messages as fast
// as they can; the process is then SIGKILLed (or SIGTERMed) mid-stream and restarted on the same
// data directory. Whatever the server acknowledged (200 + event_id) must survive, once, in stream
// order; transaction ids must stay idempotent across the restart; and tokens issued before the
// crash must keep working.

import { assert } from '../helpers/assert.js';
import { connect, type Socket } from 'node:net';
import { ChildServer } from '../helpers/child-server.js';
import { Api, enc } from '../helpers/server.js';

const SENDERS = 8;

interface Attempt {
  txnId: string;
  room: string;
  sender: number;
  seq: number;
  startedAt: number;
  endedAt?: number;
  status?: number;
  eventId?: string;
  error?: string;
}

interface ClientEvent {
  event_id: string;
  type: string;
  sender: string;
  content: { body?: string; [k: string]: unknown };
  unsigned?: { transaction_id?: string };
}

/** An `Api` with a token (`req` sends JSON bodies with the bearer token), plus paging helpers. */
class Client extends Api {
  constructor(base: string, token: string) {
    super(base, token);
  }

  async ok(method: string, path: string, body?: unknown): Promise<any> {
    const r = await this.req(method, path, body);
    if (r.status !== 200) throw new Error(`${method} ${path} -> ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  sendPath(room: string, txnId: string): string {
    return `/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/${enc(txnId)}`;
  }

  /** Every event of the room, newest first, by backward pagination from `from` (default: now). */
  async back(room: string, from?: string): Promise<ClientEvent[]> {
    const out: ClientEvent[] = [];
    let token = from;
    for (let i = 0; i < 200; i++) {
      const q = `dir=b&limit=1000${token ? `&from=${enc(token)}` : ''}`;
      const page = await this.ok('GET', `/_matrix/client/v3/rooms/${enc(room)}/messages?${q}`);
      if (from !== undefined || token !== undefined) assert.equal(page.start, token, '/messages echoes `from` as `start`');
      out.push(...page.chunk);
      if (page.end === undefined || page.chunk.length === 0) return out;
      token = page.end;
    }
    throw new Error('backward pagination did not end');
  }

  /** Every event after `from`, oldest first, by forward pagination. */
  async forward(room: string, from: string): Promise<ClientEvent[]> {
    const out: ClientEvent[] = [];
    let token = from;
    for (let i = 0; i < 200; i++) {
      const page = await this.ok('GET', `/_matrix/client/v3/rooms/${enc(room)}/messages?dir=f&limit=1000&from=${enc(token)}`);
      assert.equal(page.start, token);
      out.push(...page.chunk);
      if (page.end === undefined || page.chunk.length === 0) return out;
      token = page.end;
    }
    throw new Error('forward pagination did not end');
  }
}

async function register(base: string, username: string): Promise<Client> {
  const url = `${base}/_matrix/client/v3/register`;
  const post = (body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const first = await post({ username, password: 'crash test password' });
  assert.equal(first.status, 401);
  const { session } = (await first.json()) as { session: string };
  const res = await post({ username, password: 'crash test password', auth: { type: 'm.login.dummy', session } });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { access_token: string };
  return new Client(base, body.access_token);
}

/** Load: SENDERS loops, each PUTting messages one after the other into its room until told to stop or the server goes away. */
function startLoad(c: Client, rooms: string[]): { attempts: Attempt[]; stop: () => Promise<void>; inFlight: () => number } {
  const attempts: Attempt[] = [];
  let stopped = false;
  const loops = Array.from({ length: SENDERS }, async (_, i) => {
    const room = rooms[i % rooms.length];
    for (let seq = 0; !stopped; seq++) {
      const a: Attempt = { txnId: `s${i}-${seq}`, room, sender: i, seq, startedAt: performance.now() };
      attempts.push(a);
      try {
        const r = await c.req('PUT', c.sendPath(room, a.txnId), { msgtype: 'm.text', body: a.txnId });
        a.status = r.status;
        a.eventId = r.body?.event_id;
      } catch (err) {
        a.error = String((err as { cause?: { code?: string } }).cause?.code ?? err);
      }
      a.endedAt = performance.now();
      if (a.status !== 200) return; // the server is gone (or refused): this sender is done
    }
  });
  return {
    attempts,
    inFlight: () => attempts.filter((a) => a.endedAt === undefined).length,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** Long-polls /sync while the load runs, recording every token and event it was given. */
function startSyncPoller(c: Client, since: string): { seen: { token: string; eventIds: string[] }[]; stop: () => Promise<void> } {
  const seen: { token: string; eventIds: string[] }[] = [];
  let stopped = false;
  const filter = enc(JSON.stringify({ room: { timeline: { limit: 100 } } }));
  const loop = (async () => {
    let token = since;
    while (!stopped) {
      try {
        const r = await c.req('GET', `/_matrix/client/v3/sync?since=${enc(token)}&timeout=300&filter=${filter}`);
        if (r.status !== 200) return;
        const eventIds: string[] = [];
        for (const room of Object.values(r.body.rooms?.join ?? {}) as any[]) for (const e of room.timeline.events) eventIds.push(e.event_id);
        token = r.body.next_batch;
        seen.push({ token, eventIds });
      } catch {
        return;
      }
    }
  })();
  return {
    seen,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

function dupes(list: string[]): string[] {
  const seen = new Set<string>();
  return list.filter((x) => (seen.has(x) ? true : (seen.add(x), false)));
}

describe('crash safety of the server process', function () {
  this.timeout(30000);

  describe('SIGKILL mid-stream, then restart on the same data', () => {
    let srv: ChildServer;
    let c: Client;
    let rooms: string[];
    let before: string; // next_batch taken after the rooms existed, before any message
    let attempts: Attempt[] = [];
    let acked: Attempt[] = [];
    let seen: { token: string; eventIds: string[] }[] = [];
    /** Chronological events per room after the restart. */
    const history = new Map<string, ClientEvent[]>();

    beforeEach(function () {
      // Later tests build on the first one's load and crash.
      if (this.currentTest?.title !== 'acknowledges sends under load until SIGKILL, then restarts' && acked.length === 0) {
        throw new Error('the load/crash test did not run or failed');
      }
    });
    afterEach(function () {
      if (this.currentTest?.state === 'failed') {
        console.log(`--- server output (${srv?.history.length} runs) ---\n${srv?.history.map((h, i) => `[run ${i + 1}]\n${h}`).join('\n')}`);
      }
    });
    after(async () => srv?.dispose());

    const load = async (): Promise<void> => {
      for (const room of rooms) {
        const chrono = (await c.back(room)).reverse();
        history.set(room, chrono);
      }
    };

    it('acknowledges sends under load until SIGKILL, then restarts', async () => {
      srv = await ChildServer.create();
      await srv.start();
      c = await register(srv.url, 'crash');
      rooms = [];
      for (const name of ['one', 'two']) rooms.push((await c.ok('POST', '/_matrix/client/v3/createRoom', { name })).room_id);
      before = (await c.ok('GET', '/_matrix/client/v3/sync?timeout=0')).next_batch;

      const poller = startSyncPoller(c, before);
      const gen = startLoad(c, rooms);
      // ~1.5 s of load; on a slow or busy machine a little longer, until 100 sends were acknowledged.
      const t0 = performance.now();
      while (performance.now() - t0 < 1500 || (gen.attempts.filter((a) => a.status === 200).length < 100 && performance.now() - t0 < 6000)) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const inFlightAtKill = gen.inFlight();
      const exit = await srv.kill('SIGKILL');
      await Promise.all([gen.stop(), poller.stop()]);
      attempts = gen.attempts;
      seen = poller.seen;
      acked = attempts.filter((a) => a.status === 200);

      assert.equal(exit.signal, 'SIGKILL');
      assert.ok(inFlightAtKill > 0, 'the kill hit requests in flight');
      assert.ok(acked.length >= 50, `enough load (${acked.length} acknowledged sends)`);
      const bad = attempts.filter((a) => a.status !== undefined && a.status !== 200);
      assert.deepEqual(bad, [], 'before the kill every answered send succeeded');
      for (const a of acked) assert.match(a.eventId ?? '', /^\$/);
      assert.equal(new Set(acked.map((a) => a.eventId)).size, acked.length, 'distinct event ids for distinct txnIds');
      assert.ok(seen.length > 0, 'the sync poller got responses before the kill');

      await srv.start();
      console.log(`      (${acked.length} acknowledged, ${attempts.length - acked.length} cut off by the kill, ${seen.length} syncs)`);
    });

    it('kept every acknowledged event exactly once, each sender in its own order', async () => {
      await load();
      for (const room of rooms) {
        const chrono = history.get(room)!;
        assert.equal(chrono[0]?.type, 'm.room.create', 'history reaches back to m.room.create');
        const ids = chrono.map((e) => e.event_id);
        assert.deepEqual(dupes(ids), [], 'no event twice');
        const bodies = chrono.filter((e) => e.type === 'm.room.message').map((e) => e.content.body!);
        assert.deepEqual(dupes(bodies), [], 'no transaction persisted twice');
        const index = new Map(ids.map((id, i) => [id, i]));
        const mine = acked.filter((a) => a.room === room);
        const missing = mine.filter((a) => !index.has(a.eventId!));
        assert.deepEqual(missing.map((a) => a.txnId), [], 'acknowledged events lost by the crash');
        for (let s = 0; s < SENDERS; s++) {
          const pos = mine.filter((a) => a.sender === s).map((a) => index.get(a.eventId!)!);
          for (let k = 1; k < pos.length; k++) assert.ok(pos[k - 1] < pos[k], `sender ${s}: acknowledged sends stay in sending order`);
        }
        // Unacknowledged sends may or may not have made it, but only ever as the event the
        // sender asked for.
        for (const e of chrono.filter((x) => x.type === 'm.room.message')) {
          const a = attempts.find((x) => x.txnId === e.content.body);
          assert.ok(a && a.room === room, `event ${e.event_id} matches a send into this room`);
          if (a.eventId) assert.equal(e.event_id, a.eventId);
        }
      }
      // Whatever /sync handed out before the crash was durable.
      const all = new Set([...history.values()].flat().map((e) => e.event_id));
      const vanished = seen.flatMap((s) => s.eventIds).filter((id) => !all.has(id));
      assert.deepEqual(vanished, [], 'events delivered by /sync before the crash and gone after it');
    });

    it('orders each room by stream position: forward from an old token = backward reversed', async () => {
      for (const room of rooms) {
        const chrono = history.get(room)!;
        const fwd = await c.forward(room, before);
        assert.ok(fwd.length > 0);
        const tail = chrono.slice(chrono.length - fwd.length);
        assert.deepEqual(fwd.map((e) => e.event_id), tail.map((e) => e.event_id));
        const head = chrono.slice(0, chrono.length - fwd.length);
        assert.ok(head.every((e) => e.type !== 'm.room.message'), 'only room set-up precedes the pre-load token');
      }
    });

    it('replays each acknowledged txnId (same device) with the same event_id and writes nothing new', async () => {
      const queue = [...acked];
      const mismatches: string[] = [];
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (let a = queue.shift(); a; a = queue.shift()) {
            const r = await c.req('PUT', c.sendPath(a.room, a.txnId), { msgtype: 'm.text', body: a.txnId });
            if (r.status !== 200 || r.body.event_id !== a.eventId) mismatches.push(`${a.txnId}: ${r.status} ${JSON.stringify(r.body)} (was ${a.eventId})`);
          }
        }),
      );
      assert.deepEqual(mismatches.slice(0, 10), [], `${mismatches.length} retries did not replay the original response`);
      for (const room of rooms) {
        const now = (await c.back(room)).reverse();
        assert.deepEqual(now.map((e) => e.event_id), history.get(room)!.map((e) => e.event_id), 'retries created nothing');
      }
    });

    it('retrying the sends cut off by the kill yields each event exactly once', async () => {
      const cut = attempts.filter((a) => a.status === undefined);
      assert.ok(cut.length > 0);
      const existing = new Map([...history.values()].flat().filter((e) => e.type === 'm.room.message').map((e) => [e.content.body!, e.event_id]));
      for (const a of cut) {
        const r = await c.req('PUT', c.sendPath(a.room, a.txnId), { msgtype: 'm.text', body: a.txnId });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        const prior = existing.get(a.txnId);
        if (prior) assert.equal(r.body.event_id, prior, `${a.txnId} was persisted before the kill: the retry replays it`);
        a.eventId = r.body.event_id;
      }
      for (const room of rooms) {
        const bodies = (await c.back(room)).filter((e) => e.type === 'm.room.message').map((e) => e.content.body!);
        assert.deepEqual(dupes(bodies), []);
        for (const a of cut.filter((x) => x.room === room)) assert.ok(bodies.includes(a.txnId), `${a.txnId} now present`);
      }
    });

    it('still accepts tokens issued before the crash for /sync and /messages', async () => {
      const mid = seen[seen.length - 1].token; // the last next_batch the poller got before the kill
      const seenIds = new Set(seen.flatMap((s) => s.eventIds));
      const filter = enc(JSON.stringify({ room: { timeline: { limit: 50 } } }));
      for (const token of [before, mid]) {
        const s = await c.req('GET', `/_matrix/client/v3/sync?since=${enc(token)}&timeout=0&filter=${filter}`);
        assert.equal(s.status, 200, `/sync?since=${token}: ${JSON.stringify(s.body)}`);
        for (const room of rooms) {
          const now = (await c.back(room)).reverse();
          const after = await c.forward(room, token);
          const upTo = (await c.back(room, token)).reverse();
          // The token splits the room's history cleanly in two.
          assert.deepEqual([...upTo, ...after].map((e) => e.event_id), now.map((e) => e.event_id), `/messages from ${token} both ways`);
          if (token === mid) {
            const early = now.filter((e) => seenIds.has(e.event_id)).map((e) => e.event_id);
            assert.ok(early.every((id) => upTo.some((e) => e.event_id === id)), 'events synced before the crash are at or before its token');
          }
          const section = s.body.rooms.join[room];
          if (after.length === 0) continue;
          assert.ok(section, `room ${room} has news since ${token}`);
          const tl = section.timeline;
          assert.deepEqual(tl.events.map((e: ClientEvent) => e.event_id), after.slice(-50).map((e) => e.event_id), 'sync timeline = newest events after the token');
          assert.equal(tl.limited, after.length > 50);
        }
      }
      // And the server keeps going: a new send lands after everything else.
      const fresh = await c.ok('PUT', c.sendPath(rooms[0], 'after-restart'), { msgtype: 'm.text', body: 'after-restart' });
      const newest = await c.ok('GET', `/_matrix/client/v3/rooms/${enc(rooms[0])}/messages?dir=b&limit=1`);
      assert.equal(newest.chunk[0].event_id, fresh.event_id);
    });
  });

  describe('SIGTERM mid-stream', () => {
    let srv: ChildServer;
    afterEach(function () {
      if (this.currentTest?.state === 'failed') {
        console.log(`--- server output (${srv?.history.length} runs) ---\n${srv?.history.map((h, i) => `[run ${i + 1}]\n${h}`).join('\n')}`);
      }
    });
    afterEach(async () => srv?.dispose());

    it('finishes in-flight writes, exits 0, and keeps every acknowledged event', async () => {
      srv = await ChildServer.create();
      await srv.start();
      const c = await register(srv.url, 'term');
      const rooms = [(await c.ok('POST', '/_matrix/client/v3/createRoom', {})).room_id];
      const gen = startLoad(c, rooms);
      await new Promise((r) => setTimeout(r, 700));
      const signalledAt = performance.now();
      const pendingAtSignal = new Set(gen.attempts.filter((a) => a.endedAt === undefined));
      const exited = srv.kill('SIGTERM');
      // Senders keep going until the server stops answering (or 8 s have passed).
      const stopLoad = setTimeout(() => void gen.stop(), 8000);
      const exit = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10000).unref())]);
      const exitedAt = performance.now();
      clearTimeout(stopLoad);
      await gen.stop();
      const after = gen.attempts.filter((a) => a.startedAt > signalledAt);
      const answeredAfter = after.filter((a) => a.status === 200);
      const bySender = [...new Set(answeredAfter.map((a) => a.sender))].map((s) => `s${s}: ${answeredAfter.filter((a) => a.sender === s).length}`);
      assert.notEqual(
        exit,
        'timeout',
        `no exit within 10 s of SIGTERM. ${answeredAfter.length} sends started after the signal were accepted (per sender, on their ` +
          `kept-alive connections: ${bySender.join(', ')}); the others got ${[...new Set(after.filter((a) => a.error).map((a) => a.error))].join(', ')}`,
      );
      assert.deepEqual(exit, { code: 0, signal: null }, 'graceful exit');
      const attempts = gen.attempts;
      const acked = attempts.filter((a) => a.status === 200);
      const errors = attempts.filter((a) => a.status !== undefined && a.status !== 200);
      assert.deepEqual(errors.map((a) => `${a.txnId} ${a.status}`), [], 'no error responses during shutdown');
      assert.ok(pendingAtSignal.size > 0, 'sends were in flight at the signal');
      const finished = [...pendingAtSignal].filter((a) => a.status === 200);
      assert.ok(finished.length > 0, `in-flight sends completed after SIGTERM (${[...pendingAtSignal].map((a) => a.error ?? a.status).join(', ')})`);
      assert.ok(exitedAt - signalledAt < 10000);
      const logged = srv.output();
      assert.ok(!/"level":(50|60)/.test(logged), `no error logged during shutdown:\n${logged}`);

      await srv.start();
      const chrono = (await c.back(rooms[0])).reverse();
      const ids = new Set(chrono.map((e) => e.event_id));
      assert.equal(ids.size, chrono.length, 'no event twice');
      assert.deepEqual(acked.filter((a) => !ids.has(a.eventId!)).map((a) => a.txnId), [], 'acknowledged events kept');
      const bodies = chrono.filter((e) => e.type === 'm.room.message').map((e) => e.content.body!);
      assert.deepEqual(dupes(bodies), []);
      for (const a of acked.slice(-20)) {
        const r = await c.req('PUT', c.sendPath(a.room, a.txnId), { msgtype: 'm.text', body: a.txnId });
        assert.equal(r.body.event_id, a.eventId, 'txnId replay after a graceful restart');
      }
      const exit2 = await srv.kill('SIGTERM');
      assert.deepEqual(exit2, { code: 0, signal: null }, 'idle server also exits 0 on SIGTERM');
      console.log(`      (${acked.length} acknowledged, ${finished.length} of ${pendingAtSignal.size} in flight at SIGTERM completed, exit after ${Math.round(exitedAt - signalledAt)} ms)`);
    });

    it('exits promptly on SIGTERM while a client holds an open connection with no request on it', async () => {
      // Browsers pre-connect, and fetch pools can hold a connected socket they never used.
      srv = await ChildServer.create();
      await srv.start();
      const sock: Socket = connect(srv.port, '127.0.0.1');
      await new Promise((r, j) => sock.once('connect', r).once('error', j));
      sock.on('error', () => undefined);
      const t0 = performance.now();
      try {
        const exited = srv.kill('SIGTERM');
        const exit = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 5000).unref())]);
        assert.notEqual(exit, 'timeout', 'SIGTERM did not stop the server within 5 s: an idle, never-used connection keeps http.Server#close() waiting');
        assert.deepEqual(exit, { code: 0, signal: null });
        assert.ok(performance.now() - t0 < 5000);
      } finally {
        sock.destroy();
      }
    });
  });
});
