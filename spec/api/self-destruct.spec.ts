// MSC2228 self-destructing messages over HTTP (src/room/self-destruct.ts): a message with
// org.matrix.self_destruct_after is served whole until that time and pruned (content {}) after,
// in /messages and /sync; the due time survives a restart; nothing happens with the flag off or
// for state events.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assert } from '../helpers/assert.js';
import { Api, enc, startTestServer, type TestServer } from '../helpers/server.js';
import { until } from '../helpers/until.js';

const KEY = 'org.matrix.self_destruct_after';
const ON = { experimental: { msc2228_self_destruct: true } };

async function messages(api: Api, roomId: string): Promise<Array<{ event_id: string; content: Record<string, unknown> }>> {
  const res = await api.get(`/_matrix/client/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50&filter=${enc('{"types":["m.room.message"]}')}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.chunk;
}

async function contentOf(api: Api, roomId: string, eventId: string): Promise<Record<string, unknown> | undefined> {
  return (await messages(api, roomId)).find((e) => e.event_id === eventId)?.content;
}

async function send(api: Api, roomId: string, content: Record<string, unknown>, type = 'm.room.message'): Promise<string> {
  const res = await api.put(`/_matrix/client/v3/rooms/${enc(roomId)}/send/${type}/${Math.random().toString(36).slice(2)}`, content);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.event_id;
}

async function setup(srv: TestServer, name: string): Promise<{ api: Api; roomId: string }> {
  const api = await new Api(srv.url).register(name);
  const created = await api.post('/_matrix/client/v3/createRoom', {});
  assert.equal(created.status, 200);
  return { api, roomId: created.body.room_id };
}

describe('MSC2228 self-destructing messages', function () {
  this.timeout(30_000);

  describe('with experimental.msc2228_self_destruct', function () {
    let srv: TestServer;
    before(async () => {
      srv = await startTestServer(ON);
    });
    after(async () => srv.stop());

    it('serves the message whole until its time, then pruned in /messages and /sync; others are untouched', async function () {
      const { api, roomId } = await setup(srv, 'alice');
      const since: string = (await api.get('/_matrix/client/v3/sync')).body.next_batch;
      const at = Date.now() + 300;
      const doomed = await send(api, roomId, { msgtype: 'm.text', body: 'self-destructs', [KEY]: at });
      const kept = await send(api, roomId, { msgtype: 'm.text', body: 'stays' });
      // Read (and cached by the read model and the formatter) before the due time.
      const before = await contentOf(api, roomId, doomed);
      if (Date.now() < at) assert.equal(before?.body, 'self-destructs');
      // Incremental syncs are served from the read model's timelines.
      const sync1 = await api.get(`/_matrix/client/v3/sync?since=${enc(since)}`);
      assert.ok(sync1.body.rooms.join[roomId].timeline.events.some((e: { event_id: string }) => e.event_id === doomed));

      await until('the message is pruned in /messages', async () => {
        const c = await contentOf(api, roomId, doomed);
        return c !== undefined && Object.keys(c).length === 0;
      });
      assert.ok(Date.now() >= at, 'not before its time');
      assert.equal((await contentOf(api, roomId, kept))?.body, 'stays');
      const ev = await api.get(`/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(doomed)}`);
      assert.equal(ev.status, 200);
      assert.deepEqual(ev.body.content, {});
      const sync2 = await api.get(`/_matrix/client/v3/sync?since=${enc(since)}`);
      const inSync = sync2.body.rooms.join[roomId].timeline.events.find((e: { event_id: string }) => e.event_id === doomed);
      assert.deepEqual(inSync?.content, {});
      assert.equal(await srv.hearth.store.eventExpiry.nextDue(10).then((r) => r.length), 0, 'the row is gone once pruned');
    });

    it('ignores the key on state events and when it is not a number', async function () {
      const { api, roomId } = await setup(srv, 'bob');
      const past = Date.now() - 1000;
      const stateRes = await api.put(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: 'kept', [KEY]: past });
      assert.equal(stateRes.status, 200);
      // (A fraction never gets this far: canonical JSON refuses it at intake.)
      const text = await send(api, roomId, { msgtype: 'm.text', body: 'a string', [KEY]: String(past) });
      // A due message sent last: once it is pruned, the ones before it were looked at too.
      const marker = await send(api, roomId, { msgtype: 'm.text', body: 'marker', [KEY]: past });
      await until('the marker is pruned', async () => Object.keys((await contentOf(api, roomId, marker)) ?? { x: 1 }).length === 0);
      assert.equal((await contentOf(api, roomId, text))?.body, 'a string');
      const topic = await api.get(`/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.topic/`);
      assert.equal(topic.body.topic, 'kept');
    });
  });

  it('a restart before the due time still prunes the message', async function () {
    const dir = mkdtempSync(join(tmpdir(), 'hearth-selfdestruct-'));
    try {
      let srv = await startTestServer(ON, dir);
      const { api, roomId } = await setup(srv, 'carol');
      const at = Date.now() + 1500;
      const doomed = await send(api, roomId, { msgtype: 'm.text', body: 'outlives no restart', [KEY]: at });
      await until('the due time is recorded', async () => (await srv.hearth.store.eventExpiry.nextDue(10)).some((r) => r.eventId === doomed));
      await srv.stop();
      srv = await startTestServer(ON, dir);
      try {
        const again = new Api(srv.url, api.token);
        if (Date.now() < at) assert.equal((await contentOf(again, roomId, doomed))?.body, 'outlives no restart');
        await until('the message is pruned after the restart', async () => Object.keys((await contentOf(again, roomId, doomed)) ?? { x: 1 }).length === 0);
        assert.ok(Date.now() >= at);
      } finally {
        await srv.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with the flag off (the default) nothing is recorded or pruned', async function () {
    const srv = await startTestServer();
    try {
      const { api, roomId } = await setup(srv, 'dave');
      const doomed = await send(api, roomId, { msgtype: 'm.text', body: 'no flag', [KEY]: Date.now() - 1000 });
      // A negative: give a flag-on server's timer (delay 0 for an overdue row) ample time.
      await new Promise((r) => setTimeout(r, 500));
      assert.equal((await contentOf(api, roomId, doomed))?.body, 'no flag');
      assert.deepEqual(await srv.hearth.store.eventExpiry.nextDue(10), []);
    } finally {
      await srv.stop();
    }
  });
});
